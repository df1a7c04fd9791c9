# Real nodes: in every member cluster, beside the simulated node, one node
# runs the real kubelet (KUBE_VERSION) on its own CRI-O (CRIO_VERSION), runc
# (Debian) and CRIU (CRIU_VERSION, built from Debian's source package). The
# agent checkpoints its pods through the kubelet's own checkpoint API and
# CRI-O restores them from checkpoint images. Source after lib.sh, pki.sh,
# nodes.sh and registry.sh.
#
# Per member, under RUN_DIR/<member>/real/:
#   crio/      CRI-O's config, storage (root), runroot, socket, namespaces
#   kubelet/   the kubelet's --root-dir (a shared mount point: see start_kubelet),
#              its config, kubeconfig and checkpoints/ (the archives)
#   cni/       a loopback-only network: pods get no address outside their own
#              network namespace (this machine must send nothing to private or
#              public ranges; tests read pod state with kubectl exec)
#
# The real node is tainted and labelled (REAL_NODE_LABEL): only workloads
# that ask for it run there, so the simulated tier's tests are unchanged.
# Workarounds this machine needs (../shared/design/realnode.md): the kubelet
# runs in a private mount namespace that hides the hugetlb controller it
# cannot use here and keeps it from changing three kernel settings of the
# machine; CRI-O has no signature_policy (CRI-O 1.34 refuses restores when one
# is set); the Node's address is patched to its loopback InternalIP.

declare -A REAL_NODE_IP=([member1]=127.0.0.21 [member2]=127.0.0.22 [karmada-host]=127.0.0.23)
REAL_NODE_LABEL_KEY=stateshift.io/node-tier
REAL_NODE_LABEL_VALUE=real
REAL_NODE_HEALTHZ_PORT=10248

real_node_name() { echo "$1-real"; }
real_node_dir() { echo "${RUN_DIR}/$1/real"; }
# Every pod cgroup of a member's real node lives under this root, so two
# kubelets on one machine never see (and clean up) each other's pods.
real_node_cgroup() { echo "stateshift-$1-real"; }

ensure_real_node_binaries() {
  [[ -x "${KUBE_BIN}/kubelet" ]] || "${HACK_DIR}/build-deps.sh" kube
  [[ -x "${CRIU_BIN}/criu" ]] || "${HACK_DIR}/build-deps.sh" criu
  [[ -x "${CRIO_BIN}/crio" && -x "${CRIO_BIN}/pinns" ]] || "${HACK_DIR}/build-deps.sh" crio
  local b
  for b in runc conmon; do
    command -v "${b}" > /dev/null || "${HACK_DIR}/install-debs.sh"
  done
  [[ -x /usr/lib/cni/loopback ]] || "${HACK_DIR}/install-debs.sh"
}

start_real_nodes() {
  ensure_real_node_binaries
  local m
  for m in "${NODE_CLUSTERS[@]}"; do
    start_crio "${m}"
  done
  for m in "${NODE_CLUSTERS[@]}"; do
    wait_for "crio-${m}" "${TIMEOUT}" test -S "$(real_node_dir "${m}")/crio/crio.sock"
    start_kubelet "${m}"
  done
  for m in "${NODE_CLUSTERS[@]}"; do wait_real_node "${m}"; done
}

# ------------------------------------------------------------------ CRI-O

write_crio_config() {
  local m="$1" d auth_line=""
  d="$(real_node_dir "${m}")/crio"
  mkdir -p "${d}/storage" "${d}/run" "${d}/logs" "${d}/conf.d" "${d}/policies" "${d}/hooks" \
    "${d}/cdi" "$(real_node_dir "${m}")/cni/net.d"
  # CRI-O pulls as the node: with registry auth on, the node's credentials
  # are the registry's auth file (a real node's are its global auth file).
  if [[ -f "${RUN_DIR}/registry/auth.json" ]]; then
    auth_line="global_auth_file = \"${RUN_DIR}/registry/auth.json\"
pause_image_auth_file = \"${RUN_DIR}/registry/auth.json\""
  fi
  cat > "${d}/crio.conf" <<EOF
# CRI-O of ${m}'s real node, written by hack/local/realnode.sh.
[crio]
root = "${d}/storage"
runroot = "${d}/run/storage"
storage_driver = "overlay"
log_dir = "${d}/logs"
version_file = "${d}/run/version"
version_file_persist = "${d}/version"
clean_shutdown_file = "${d}/clean.shutdown"

[crio.api]
listen = "${d}/crio.sock"
stream_address = "${REAL_NODE_IP[${m}]}"
stream_port = "0"

[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
selinux = false
seccomp_profile = ""
apparmor_profile = "unconfined"
drop_infra_ctr = true
pinns_path = "${CRIO_BIN}/pinns"
namespaces_dir = "${d}/run/ns"
container_exits_dir = "${d}/run/exits"
container_attach_socket_dir = "${d}/run"
hooks_dir = ["${d}/hooks"]
cdi_spec_dirs = ["${d}/cdi"]
# CRI-O 1.34's switch for checkpoint and restore; newer releases use
# [crio.checkpoint_restore] container_level_enabled = "checkpoint_restore".
enable_criu_support = true
# Leave the machine's IRQ settings alone.
irqbalance_config_file = ""
irqbalance_config_restore_file = "disable"

[crio.runtime.runtimes.runc]
runtime_path = "$(command -v runc)"
runtime_type = "oci"
runtime_root = "${d}/run/runc"
monitor_path = "$(command -v conmon)"
# runc finds criu on PATH: the cached CRIU first (Debian bookworm's 3.17
# fails on this kernel).
# CRIU_FAULT=130: see CRIU_NO_BREAKPOINTS in start_crio.
monitor_env = ["PATH=${CRIU_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CRIU_FAULT=${CRIU_NO_BREAKPOINTS}"]

[crio.image]
# The pause image from the loopback registry (hack/local/workload-images.sh),
# by digest: CRI-O checks for it even though it drops infra containers.
pause_image = "${REGISTRY_HOST}/stateshift-test/pause:v1@$(cat "${RUN_DIR}/workload-images/pause.digest")"
pause_command = "/pause"
# No signature_policy: CRI-O 1.34 refuses every restore from an image when
# one is set ("signature validation is not supported for container restore").
signature_policy_dir = "${d}/policies"
${auth_line}

[crio.network]
network_dir = "$(real_node_dir "${m}")/cni/net.d"
plugin_dirs = ["/usr/lib/cni"]

[crio.metrics]
enable_metrics = false

[crio.nri]
enable_nri = false
EOF
  # A loopback-only network: each pod gets its own network namespace with
  # only lo up. A real cluster's CNI gives pods routable addresses instead.
  cat > "$(real_node_dir "${m}")/cni/net.d/10-loopback.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "stateshift-loopback", "plugins": [{"type": "loopback"}]}
EOF
  # The local registry speaks plain HTTP on loopback. Public registries
  # are blocked: an image from one must never be fetched from this machine.
  {
    printf 'unqualified-search-registries = []\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "${REGISTRY_HOST}"
    local r
    for r in docker.io registry.k8s.io k8s.gcr.io gcr.io quay.io ghcr.io registry.access.redhat.com; do
      printf '[[registry]]\nlocation = "%s"\nblocked = true\n' "${r}"
    done
  } > "${d}/registries.conf"
  mkdir -p "${d}/registries.d"
}

# Hardware breakpoints never trap in this machine's microVM: CRIU, which
# uses one to stop a process at the end of its parasite's work, waits
# forever ("Waiting for PID to trap"). CRIU's fault-injection switch 130
# makes it step there without the breakpoint (slower by microseconds). A
# node on ordinary hardware needs nothing of the kind. CRI-O runs runc
# (checkpoint) and conmon runs runc (restore): both pass it on to criu.
CRIU_NO_BREAKPOINTS=130

start_crio() {
  local m="$1" d
  d="$(real_node_dir "${m}")/crio"
  write_crio_config "${m}"
  PATH="${CRIU_BIN}:${PATH}" CRIU_FAULT="${CRIU_NO_BREAKPOINTS}" start_proc "crio-${m}" "${CRIO_BIN}/crio" \
    --config "${d}/crio.conf" --config-dir "${d}/conf.d" \
    --registries-conf "${d}/registries.conf" --registries-conf-dir "${d}/registries.d" \
    --log-level info
}

# ------------------------------------------------------------------ kubelet

write_kubelet_config() {
  local m="$1" node kd ip
  node="$(real_node_name "${m}")"
  kd="$(real_node_dir "${m}")/kubelet"
  ip="${REAL_NODE_IP[${m}]}"
  mkdir -p "${kd}" "$(real_node_dir "${m}")/pod-logs" "$(real_node_dir "${m}")/empty" "$(real_node_dir "${m}")/sysctl"
  # The kubelet's serving certificate, signed by the local CA: the agent
  # verifies it with --kubelet-ca as it would a cluster's kubelet CA.
  new_cert ca "${PKI_DIR}/kubelet-${node}" "/CN=${node}" "IP:${ip}"
  new_cert ca "${PKI_DIR}/node-${node}" "/O=system:nodes/CN=system:node:${node}"
  write_kubeconfig "${kd}/kubeconfig" "https://127.0.0.1:${MEMBER_APISERVER_PORT[${m}]}" \
    "${PKI_DIR}/node-${node}" "system:node:${node}"
  cat > "${kd}/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${ip}
port: ${NODE_PORT}
readOnlyPort: 0
healthzBindAddress: ${ip}
healthzPort: ${REAL_NODE_HEALTHZ_PORT}
tlsCertFile: ${PKI_DIR}/kubelet-${node}.crt
tlsPrivateKeyFile: ${PKI_DIR}/kubelet-${node}.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 10s}
  x509: {clientCAFile: ${PKI_DIR}/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 10s, cacheUnauthorizedTTL: 5s}
containerRuntimeEndpoint: unix://$(real_node_dir "${m}")/crio/crio.sock
cgroupDriver: cgroupfs
cgroupRoot: /$(real_node_cgroup "${m}")
failCgroupV1: false
failSwapOn: false
featureGates: {ContainerCheckpoint: true}
resolvConf: ""
clusterDNS: []
podLogsDir: $(real_node_dir "${m}")/pod-logs
enforceNodeAllocatable: ["pods"]
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 10s
syncFrequency: 10s
serializeImagePulls: false
EOF
  # On members the real node is tainted so that only workloads that ask for
  # it run there; the host cluster has no other node.
  [[ "${m}" == "${HOST_CLUSTER}" ]] || cat >> "${kd}/config.yaml" <<EOF
registerWithTaints:
- {key: ${REAL_NODE_LABEL_KEY}, value: ${REAL_NODE_LABEL_VALUE}, effect: NoSchedule}
EOF
  # The values the kubelet would write into /proc/sys land in these files.
  echo 0 > "$(real_node_dir "${m}")/sysctl/overcommit_memory"
  echo 0 > "$(real_node_dir "${m}")/sysctl/panic"
  echo 0 > "$(real_node_dir "${m}")/sysctl/panic_on_oops"
  local c
  for c in /sys/fs/cgroup/*/; do
    [[ "$(basename "${c}")" == unified ]] && continue
    mkdir -p "${c}$(real_node_cgroup "${m}")"
  done
}

start_kubelet() {
  local m="$1" node kd rd pid
  node="$(real_node_name "${m}")"
  rd="$(real_node_dir "${m}")"
  kd="${rd}/kubelet"
  write_kubelet_config "${m}"
  # The kubelet mounts pod volumes (tmpfs for tokens, Secrets) under its
  # root dir and CRI-O, in the machine's mount namespace, must see them:
  # the root dir is a shared mount, so they propagate out of the kubelet's
  # private namespace.
  if ! findmnt -n "${kd}" > /dev/null; then
    mount --bind "${kd}" "${kd}"
    mount --make-shared "${kd}"
  fi
  # shellcheck disable=SC2016
  start_proc "kubelet-${m}" "$(command -v unshare)" -m --propagation unchanged -- bash -c '
    set -e
    rd="$1"; shift
    mount --bind "${rd}/empty" /sys/kernel/mm/hugepages
    mount --bind "${rd}/sysctl/overcommit_memory" /proc/sys/vm/overcommit_memory
    mount --bind "${rd}/sysctl/panic" /proc/sys/kernel/panic
    mount --bind "${rd}/sysctl/panic_on_oops" /proc/sys/kernel/panic_on_oops
    exec "$@"' kubelet "${rd}" \
    "${KUBE_BIN}/kubelet" --config "${kd}/config.yaml" --kubeconfig "${kd}/kubeconfig" \
    --root-dir "${kd}" --hostname-override "${node}" --node-ip "${REAL_NODE_IP[${m}]}" \
    --node-labels "${REAL_NODE_LABEL_KEY}=${REAL_NODE_LABEL_VALUE}" --v 1
  # unshare and bash exec the kubelet in the same process: record it as
  # the kubelet so local-down and a second local-up recognise it.
  pid="$(awk '{print $1}' "${PID_DIR}/kubelet-${m}.pid")"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ "$(readlink "/proc/${pid}/exe" 2>/dev/null)" == "$(readlink -f "${KUBE_BIN}/kubelet")" ]] && break
    proc_alive "${pid}" || { show_log "kubelet-${m}"; die "kubelet-${m}: exited while starting"; }
    sleep 0.1
  done
  echo "${pid} $(readlink -f "${KUBE_BIN}/kubelet")" > "${PID_DIR}/kubelet-${m}.pid"
}

# The kubelet refuses a loopback address as the Node's address, and without
# one the API server cannot reach it for exec and logs: give the Node its
# loopback InternalIP (and no Hostname address, which the API server would
# resolve through the machine's DNS).
patch_real_node_address() {
  local m="$1" node
  node="$(real_node_name "${m}")"
  kubectl_for "${m}" get node "${node}" > /dev/null 2>&1 || return 1
  kubectl_for "${m}" patch node "${node}" --subresource status --type merge \
    -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"${REAL_NODE_IP[${m}]}\"}]}}" > /dev/null
}

wait_real_node() {
  local m="$1" node
  node="$(real_node_name "${m}")"
  wait_for "kubelet-${m}" "${TIMEOUT}" patch_real_node_address "${m}"
  wait_for "kubelet-${m}" "${TIMEOUT}" node_ready "${m}" "${node}"
  patch_real_node_address "${m}"
  log "${m}: real node ${node} Ready (kubelet ${KUBE_VERSION}, CRI-O ${CRIO_VERSION}, runc, CRIU ${CRIU_VERSION})"
}

# ------------------------------------------------------------------ teardown

# stop_real_node_workloads MEMBER: what outlives the kubelet and CRI-O (conmon
# and container processes, pod cgroups, mounts under the run folder, the
# libcni cache), removed once both are stopped. Called by local-down.
stop_real_node_workloads() {
  local m="$1" cg c procs p
  cg="$(real_node_cgroup "${m}")"
  for c in /sys/fs/cgroup/*/"${cg}"; do
    [[ -d "${c}" ]] || continue
    procs="$(find "${c}" -name cgroup.procs -exec cat {} + 2>/dev/null || true)"
    for p in ${procs}; do kill -KILL "${p}" 2>/dev/null || true; done
  done
  sleep 0.5
  for c in /sys/fs/cgroup/*/"${cg}"; do
    [[ -d "${c}" ]] || continue
    find "${c}" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# clean_real_node_host_paths: the two host paths a kubelet and CRI-O write
# outside their configured folders (the device-plugin folder is hard-coded in
# the kubelet; libcni caches results by network name).
clean_real_node_host_paths() {
  rm -f /var/lib/cni/results/stateshift-loopback-* 2>/dev/null || true
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock 2>/dev/null || true
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
}
