#!/usr/bin/env bash
# Brings up, on loopback and without Docker, a real Karmada control plane with
# two real member clusters, a simulated and a real node in each, an OCI registry, and
# stateshift's own components where they are built:
#
#   etcd (one, a prefix per API server) .......... 127.0.0.1:32379
#   karmada-apiserver (kube-apiserver) ........... https://127.0.0.1:5443
#     karmada-aggregated-apiserver (clusters) .... https://127.0.0.1:7443 via an APIService
#     karmada-webhook ............................ https://127.0.0.1:8443
#     kube-controller-manager (gc + namespace), karmada-controller-manager, karmada-scheduler
#   member1 / member2 kube-apiserver ............. https://127.0.0.1:6443 / :6444
#     kube-controller-manager, kube-scheduler, node simulator on 127.0.0.11 / 127.0.0.12:10250
#     real node: kubelet + CRI-O + runc + CRIU on 127.0.0.21 / 127.0.0.22:10250
#   docker-registry .............................. 127.0.0.1:5000 (REGISTRY_AUTH=1: htpasswd)
#   STATESHIFT_LOCAL_MODE=chart: karmada-host ..... https://127.0.0.1:6445, real node 127.0.0.23
#     (the Karmada host cluster stateshift's chart installs into; then no
#     stateshift process is started)
#
# Everything (PIDs, logs, certificates, kubeconfigs, data) lives in one run
# folder, $STATESHIFT_RUN_DIR (default /tmp/stateshift-local); hack/local-down.sh
# stops what was started and removes it. Running local-up again is safe: it
# starts only what is not running and checks the health of the rest.
#
# Usage: hack/local-up.sh        (env: STATESHIFT_RUN_DIR, REGISTRY_AUTH=1, LOCAL_UP_TIMEOUT=120,
#                                  STATESHIFT_CONTROLLER_ARGS: more controller flags)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "${HACK_DIR}/local/lib.sh"
. "${HACK_DIR}/local/pki.sh"

TIMEOUT="${LOCAL_UP_TIMEOUT:-120}"
KARMADA_SRC=""
START_SECONDS=${SECONDS}

phase() { log "== $* (t+$((SECONDS - START_SECONDS))s)"; }

# ------------------------------------------------------------------ preflight

ensure_binaries() {
  local b missing=0
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [[ -x "${KUBE_BIN}/${b}" ]] || missing=1
  done
  for b in karmada-controller-manager karmada-scheduler karmada-webhook karmada-aggregated-apiserver karmadactl; do
    [[ -x "${KARMADA_BIN}/${b}" ]] || missing=1
  done
  if ((missing)); then
    log "kubernetes/karmada binaries not cached: running hack/build-deps.sh (cold: ~30 min on two cores)"
    "${HACK_DIR}/build-deps.sh" kube
    "${HACK_DIR}/build-deps.sh" karmada
  fi
  command -v docker-registry > /dev/null || "${HACK_DIR}/install-debs.sh"
  command -v openssl > /dev/null || die "openssl is missing (hack/install-debs.sh installs it)"
  command -v curl > /dev/null || die "curl is missing"
  if [[ -d "${KARMADA_BIN}/../src/charts" ]]; then
    KARMADA_SRC="$(readlink -f "${KARMADA_BIN}/../src")"
  else
    KARMADA_SRC="$(cd "${ROOT_DIR}" && go mod download -json "github.com/karmada-io/karmada@${KARMADA_VERSION}" |
      sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  fi
  [[ -d "${KARMADA_SRC}/charts/karmada/_crds/bases" ]] || die "karmada ${KARMADA_VERSION} source not found (${KARMADA_SRC})"
}

# The sum of the RSS of every process local-up started, sampled each second;
# the peak is written to RUN_DIR/peak-rss-kb (a re-run keeps the higher one).
MEM_SAMPLER_PID=""
start_memory_sampler() {
  (
    peak="$(cat "${RUN_DIR}/peak-rss-kb" 2>/dev/null || echo 0)"
    while sleep 1; do
      now="$(rss_total_kb)"
      if ((now > peak)); then peak=${now}; echo "${peak}" > "${RUN_DIR}/peak-rss-kb"; fi
    done
  ) 9>&- &
  MEM_SAMPLER_PID=$!
}
stop_memory_sampler() {
  [[ -n "${MEM_SAMPLER_PID}" ]] && kill "${MEM_SAMPLER_PID}" 2>/dev/null || true
  MEM_SAMPLER_PID=""
}

# ------------------------------------------------------------------ etcd

start_etcd() {
  start_proc etcd "${KUBE_BIN}/etcd" --name local --data-dir "${RUN_DIR}/etcd" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORT}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "local=http://127.0.0.1:${ETCD_PEER_PORT}" \
    --log-level warn
  wait_for etcd 30 http_ok "http://127.0.0.1:${ETCD_CLIENT_PORT}/health"
}

# ------------------------------------------------------------------ API servers

# start_apiserver CLUSTER PORT EXTRA_ARGS...: a kube-apiserver storing under
# /CLUSTER in the shared etcd, serving on 127.0.0.1:PORT. The front-proxy
# (requestheader) flags let Karmada's API server proxy to
# karmada-aggregated-apiserver; on members they fill the
# extension-apiserver-authentication ConfigMap that controller-managers and
# schedulers read (without them they log an error every minute).
start_apiserver() {
  local cluster="$1" port="$2"; shift 2
  start_proc "${cluster}-apiserver" "${KUBE_BIN}/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${ETCD_CLIENT_PORT}" --etcd-prefix "/${cluster}" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "${port}" \
    --cert-dir "${RUN_DIR}/${cluster}/apiserver" \
    --tls-cert-file "${PKI_DIR}/apiserver.crt" --tls-private-key-file "${PKI_DIR}/apiserver.key" \
    --client-ca-file "${PKI_DIR}/ca.crt" \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "${PKI_DIR}/sa-${cluster}.pub" \
    --service-account-signing-key-file "${PKI_DIR}/sa-${cluster}.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --allow-privileged=true --profiling=false \
    --proxy-client-cert-file "${PKI_DIR}/front-proxy-client.crt" \
    --proxy-client-key-file "${PKI_DIR}/front-proxy-client.key" \
    --requestheader-client-ca-file "${PKI_DIR}/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-username-headers X-Remote-User \
    "$@"
  write_kubeconfig "${RUN_DIR}/${cluster}.kubeconfig" "https://127.0.0.1:${port}" "${PKI_DIR}/admin" admin
}

apiserver_ready() { kubectl_for "$1" get --raw /readyz; }

start_apiservers() {
  mkdir -p "${RUN_DIR}/karmada/apiserver"
  # Karmada runs no pods: ServiceAccount admission would only get in the way.
  start_apiserver karmada "${KARMADA_APISERVER_PORT}" \
    --disable-admission-plugins ServiceAccount,StorageObjectInUseProtection
  local m
  for m in "${NODE_CLUSTERS[@]}"; do
    mkdir -p "${RUN_DIR}/${m}/apiserver"
    # exec and logs reach the real node's kubelet on its loopback InternalIP,
    # with a client certificate the kubelet's x509 authentication accepts.
    start_apiserver "${m}" "${MEMBER_APISERVER_PORT[${m}]}" \
      --kubelet-preferred-address-types InternalIP \
      --kubelet-client-certificate "${PKI_DIR}/apiserver-kubelet-client.crt" \
      --kubelet-client-key "${PKI_DIR}/apiserver-kubelet-client.key"
  done
  for m in karmada "${NODE_CLUSTERS[@]}"; do
    wait_for "${m}-apiserver" "${TIMEOUT}" apiserver_ready "${m}"
  done
}

# ------------------------------------------------------------------ kube controllers

# start_kcm CLUSTER PORT CONTROLLERS
start_kcm() {
  local cluster="$1" port="$2" controllers="$3" kc="${RUN_DIR}/$1.kubeconfig"
  mkdir -p "${RUN_DIR}/${cluster}/kcm"
  start_proc "${cluster}-kube-controller-manager" "${KUBE_BIN}/kube-controller-manager" \
    --kubeconfig "${kc}" --authentication-kubeconfig "${kc}" --authorization-kubeconfig "${kc}" \
    --bind-address 127.0.0.1 --secure-port "${port}" --cert-dir "${RUN_DIR}/${cluster}/kcm" \
    --controllers "${controllers}" --leader-elect=false --cluster-name "${cluster}" \
    --service-account-private-key-file "${PKI_DIR}/sa-${cluster}.key" \
    --root-ca-file "${PKI_DIR}/ca.crt" \
    --cluster-signing-cert-file "${PKI_DIR}/ca.crt" --cluster-signing-key-file "${PKI_DIR}/ca.key" \
    --use-service-account-credentials=false --profiling=false
}

start_scheduler() {
  local cluster="$1" port="$2" kc="${RUN_DIR}/$1.kubeconfig"
  start_proc "${cluster}-kube-scheduler" "${KUBE_BIN}/kube-scheduler" \
    --kubeconfig "${kc}" --authentication-kubeconfig "${kc}" --authorization-kubeconfig "${kc}" \
    --bind-address 127.0.0.1 --secure-port "${port}" --leader-elect=false --profiling=false
}

start_kube_controllers() {
  # On the Karmada API server only garbage collection and namespace deletion:
  # deployment/replicaset controllers would fight Karmada over workload status.
  start_kcm karmada "${KARMADA_KCM_PORT}" namespace-controller,garbage-collector-controller
  local m
  for m in "${NODE_CLUSTERS[@]}"; do
    # All default controllers, serviceaccount-token included (karmadactl join
    # waits for a token Secret); no cloud provider.
    start_kcm "${m}" "${MEMBER_KCM_PORT[${m}]}" '*'
    start_scheduler "${m}" "${MEMBER_SCHEDULER_PORT[${m}]}"
  done
  wait_for karmada-kube-controller-manager "${TIMEOUT}" http_ok "https://127.0.0.1:${KARMADA_KCM_PORT}/healthz" -k
  for m in "${NODE_CLUSTERS[@]}"; do
    wait_for "${m}-kube-controller-manager" "${TIMEOUT}" http_ok "https://127.0.0.1:${MEMBER_KCM_PORT[${m}]}/healthz" -k
    wait_for "${m}-kube-scheduler" "${TIMEOUT}" http_ok "https://127.0.0.1:${MEMBER_SCHEDULER_PORT[${m}]}/healthz" -k
  done
}

# ------------------------------------------------------------------ Karmada

install_karmada_apis() {
  kubectl_for karmada apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: karmada-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: karmada-cluster}
EOF
  # Bases only: the chart's patches add conversion webhooks this setup does
  # not run. Server-side apply: some CRDs exceed the last-applied annotation.
  kubectl_for karmada apply --server-side --force-conflicts -R \
    -f "${KARMADA_SRC}/charts/karmada/_crds/bases" > /dev/null
  kubectl_for karmada wait --for condition=Established crd --all --timeout "${TIMEOUT}s" > /dev/null
}

clusters_api_served() { kubectl_for karmada get --raw /apis/cluster.karmada.io/v1alpha1/clusters; }

start_aggregated_apiserver() {
  local kc="${RUN_DIR}/karmada.kubeconfig"
  start_proc karmada-aggregated-apiserver "${KARMADA_BIN}/karmada-aggregated-apiserver" \
    --kubeconfig "${kc}" --authentication-kubeconfig "${kc}" --authorization-kubeconfig "${kc}" \
    --etcd-servers "http://127.0.0.1:${ETCD_CLIENT_PORT}" --etcd-prefix /karmada \
    --bind-address 127.0.0.1 --secure-port "${AGGREGATED_APISERVER_PORT}" \
    --tls-cert-file "${PKI_DIR}/aggregated-apiserver.crt" \
    --tls-private-key-file "${PKI_DIR}/aggregated-apiserver.key" \
    --audit-log-maxage 0 --audit-log-maxbackup 0
  wait_for karmada-aggregated-apiserver "${TIMEOUT}" \
    http_ok "https://127.0.0.1:${AGGREGATED_APISERVER_PORT}/readyz" --cacert "${PKI_DIR}/ca.crt"
  # The aggregator resolves an ExternalName Service to its host name, and
  # checks the serving certificate for <service>.<namespace>.svc.
  kubectl_for karmada apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: karmada-aggregated-apiserver, namespace: karmada-system}
spec: {type: ExternalName, externalName: localhost}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.cluster.karmada.io}
spec:
  group: cluster.karmada.io
  version: v1alpha1
  groupPriorityMinimum: 2000
  versionPriority: 10
  caBundle: $(base64 -w0 < "${PKI_DIR}/ca.crt")
  service: {name: karmada-aggregated-apiserver, namespace: karmada-system, port: ${AGGREGATED_APISERVER_PORT}}
EOF
  wait_for karmada-aggregated-apiserver "${TIMEOUT}" clusters_api_served
}

start_karmada_webhook() {
  start_proc karmada-webhook "${KARMADA_BIN}/karmada-webhook" \
    --kubeconfig "${RUN_DIR}/karmada.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "${KARMADA_WEBHOOK_PORT}" \
    --cert-dir "${PKI_DIR}/karmada-webhook" \
    --health-probe-bind-address "127.0.0.1:${KARMADA_WEBHOOK_HEALTH_PORT}" \
    --metrics-bind-address "127.0.0.1:${KARMADA_WEBHOOK_METRICS_PORT}" \
    --feature-gates "${KARMADA_FEATURE_GATES}" --allow-no-execute-taint-policy=true
  wait_for karmada-webhook "${TIMEOUT}" \
    http_ok "https://127.0.0.1:${KARMADA_WEBHOOK_PORT}/readyz/" --cacert "${PKI_DIR}/ca.crt"
  # Karmada's own webhook configuration, pointed at 127.0.0.1.
  sed -e "s#https://karmada-webhook.karmada-system.svc:443#https://127.0.0.1:${KARMADA_WEBHOOK_PORT}#" \
    -e "s#{{caBundle}}#$(base64 -w0 < "${PKI_DIR}/ca.crt")#" \
    "${KARMADA_SRC}/artifacts/deploy/webhook-configuration.yaml" > "${RUN_DIR}/karmada/webhook-configuration.yaml"
  kubectl_for karmada apply -f "${RUN_DIR}/karmada/webhook-configuration.yaml" > /dev/null
}

# KARMADA_API_QPS and KARMADA_CONCURRENT_SYNCS (unset: Karmada's defaults,
# 40 requests a second and 5 workers) set karmada-controller-manager's and
# karmada-scheduler's client rate limits (burst twice the rate) and the
# controller manager's workers for templates, bindings and Works. Every
# Checkpoint is a resource template with its own binding and Work, so the
# defaults hold a federation to about two checkpoints a second; the scale
# benchmark raises them as an operator of a large federation would.
# KARMADA_RESOURCE_EVICTION_RATE (unset: 0.5) is the controller manager's
# --resource-eviction-rate: each of its taint manager's three workers
# evicts that many bindings a second from a lost member, so at the default
# a member running 100 workloads takes more than a minute to be emptied.
karmada_tuning_flags() {
  local scheduler="${1:-}"
  if [[ -n "${KARMADA_API_QPS:-}" ]]; then
    echo "--kube-api-qps ${KARMADA_API_QPS} --kube-api-burst $((KARMADA_API_QPS * 2))"
    [[ -n "${scheduler}" ]] ||
      echo "--cluster-api-qps ${KARMADA_API_QPS} --cluster-api-burst $((KARMADA_API_QPS * 2))"
  fi
  if [[ -n "${KARMADA_RESOURCE_EVICTION_RATE:-}" && -z "${scheduler}" ]]; then
    echo "--resource-eviction-rate ${KARMADA_RESOURCE_EVICTION_RATE}"
  fi
  if [[ -n "${KARMADA_CONCURRENT_SYNCS:-}" && -z "${scheduler}" ]]; then
    local n="${KARMADA_CONCURRENT_SYNCS}"
    echo "--concurrent-resource-template-syncs ${n} --concurrent-resourcebinding-syncs ${n} --concurrent-work-syncs ${n}"
  fi
}

start_karmada_controllers() {
  local kc="${RUN_DIR}/karmada.kubeconfig"
  # shellcheck disable=SC2046 # the tuning flags are words
  start_proc karmada-controller-manager "${KARMADA_BIN}/karmada-controller-manager" \
    --kubeconfig "${kc}" --leader-elect=false \
    --feature-gates "${KARMADA_FEATURE_GATES}" --enable-no-execute-taint-eviction=true \
    --cluster-status-update-frequency 10s $(karmada_tuning_flags) \
    --health-probe-bind-address "127.0.0.1:${KARMADA_CM_HEALTH_PORT}" \
    --metrics-bind-address "127.0.0.1:${KARMADA_CM_METRICS_PORT}"
  # shellcheck disable=SC2046
  start_proc karmada-scheduler "${KARMADA_BIN}/karmada-scheduler" \
    --kubeconfig "${kc}" --leader-elect=false --feature-gates "${KARMADA_FEATURE_GATES}" \
    $(karmada_tuning_flags scheduler) \
    --health-probe-bind-address "127.0.0.1:${KARMADA_SCHEDULER_HEALTH_PORT}" \
    --metrics-bind-address "127.0.0.1:${KARMADA_SCHEDULER_METRICS_PORT}"
  wait_for karmada-controller-manager "${TIMEOUT}" http_ok "http://127.0.0.1:${KARMADA_CM_HEALTH_PORT}/healthz"
  wait_for karmada-scheduler "${TIMEOUT}" http_ok "http://127.0.0.1:${KARMADA_SCHEDULER_HEALTH_PORT}/healthz"
}

# ------------------------------------------------------------------ nodes

# The node simulator (test/nodesim) plays kubelet + container runtime: see
# hack/local/nodes.sh.
. "${HACK_DIR}/local/nodes.sh"

# kubelet + CRI-O + runc + CRIU: see hack/local/realnode.sh; the images
# its test workloads run are built here (hack/local/workload-images.sh).
. "${HACK_DIR}/local/realnode.sh"
. "${HACK_DIR}/local/workload-images.sh"

# ------------------------------------------------------------------ join

cluster_ready() {
  [[ "$(kubectl_for karmada get clusters "$1" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

join_members() {
  local m
  declare -A joins=()
  # The joins mostly wait (for token Secrets): run them side by side.
  for m in "${MEMBERS[@]}"; do
    if kubectl_for karmada get clusters "${m}" > /dev/null 2>&1; then
      log "${m}: already joined"
    else
      log "${m}: karmadactl join (push mode)"
      "${KARMADA_BIN}/karmadactl" join "${m}" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" \
        --cluster-kubeconfig "${RUN_DIR}/${m}.kubeconfig" > "${LOG_DIR}/join-${m}.log" 2>&1 &
      joins[${m}]=$!
    fi
  done
  for m in "${!joins[@]}"; do
    wait "${joins[${m}]}" || { cat "${LOG_DIR}/join-${m}.log" >&2; die "${m}: karmadactl join failed"; }
  done
  for m in "${MEMBERS[@]}"; do
    wait_for karmada-controller-manager "${TIMEOUT}" cluster_ready "${m}"
    log "${m}: Ready in Karmada"
  done
}

# ------------------------------------------------------------------ registry

. "${HACK_DIR}/local/registry.sh"

# ------------------------------------------------------------------ stateshift

. "${HACK_DIR}/local/stateshift.sh"

# ------------------------------------------------------------------ summary

summary() {
  local took=$((SECONDS - START_SECONDS)) peak now
  stop_memory_sampler
  peak="$(cat "${RUN_DIR}/peak-rss-kb" 2>/dev/null || echo 0)"
  now="$(rss_total_kb)"
  if ((now > peak)); then peak=${now}; echo "${peak}" > "${RUN_DIR}/peak-rss-kb"; fi
  echo "${took}" > "${RUN_DIR}/up-seconds"
  cat <<EOF

stateshift local environment is up (${took}s; RSS of its processes now $((now / 1024)) MiB, peak $((peak / 1024)) MiB)
  run folder: ${RUN_DIR}  (logs/, pids/, pki/)
  Karmada:    export KUBECONFIG=${RUN_DIR}/karmada.kubeconfig   # kubectl get clusters
  member1:    export KUBECONFIG=${RUN_DIR}/member1.kubeconfig
  member2:    export KUBECONFIG=${RUN_DIR}/member2.kubeconfig
$( [[ "${LOCAL_MODE}" == chart ]] && echo "  host:       export KUBECONFIG=${RUN_DIR}/${HOST_CLUSTER}.kubeconfig   # the Karmada host cluster (real node ${REAL_NODE_IP[${HOST_CLUSTER}]})")
  kubectl:    ${KUBE_BIN}/kubectl    karmadactl: ${KARMADA_BIN}/karmadactl
  registry:   ${REGISTRY_HOST}$( [[ -f "${RUN_DIR}/registry/auth.json" ]] && echo " (htpasswd; auth file ${RUN_DIR}/registry/auth.json)")
  stop:       hack/local-down.sh
EOF
}

main() {
  lock_run_dir
  ensure_binaries
  mkdir -p "${RUN_DIR}" "${PID_DIR}" "${LOG_DIR}"
  trap stop_memory_sampler EXIT
  start_memory_sampler
  phase "certificates";           setup_pki
  phase "etcd";                   start_etcd
  phase "API servers";            start_apiservers
  phase "kube controllers";       start_kube_controllers
  phase "Karmada APIs";           install_karmada_apis
  phase "aggregated apiserver";   start_aggregated_apiserver
  phase "karmada-webhook";        start_karmada_webhook
  phase "Karmada controllers";    start_karmada_controllers
  phase "registry";               start_registry
  phase "simulated nodes";        start_nodes
  phase "workload images";        build_workload_images "${REGISTRY_HOST}" \
                                    "$( [[ -f "${RUN_DIR}/registry/auth.json" ]] && echo "${RUN_DIR}/registry/auth.json")"
  phase "real nodes";             start_real_nodes
  phase "join members";           join_members
  if [[ "${LOCAL_MODE}" == chart ]]; then
    log "stateshift: not started (STATESHIFT_LOCAL_MODE=chart: install it with its Helm chart into ${HOST_CLUSTER})"
  else
    phase "stateshift";           start_stateshift
  fi
  summary
}

main "$@"
