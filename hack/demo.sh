#!/usr/bin/env bash
# make demo: stateshift end to end on one Debian machine, as root, without
# Docker. Installs what is missing, builds what is not cached, brings up a real
# Karmada with two member clusters, each with a real node (kubelet, CRI-O,
# runc, CRIU) beside a simulated one (hack/local-up.sh), runs Debian's
# redis-server with persistence off on member1's real node, writes keys into
# its memory, protects it with a CheckpointPolicy (scheduled checkpoints
# through the kubelet's checkpoint API, images in the registry), moves it to
# member2 with `karmadactl cordon member1` and a NoExecute taint (the
# reschedule that moves a workload off a cordoned cluster in Karmada
# v1.18.2), and shows the keys, the process (redis's run_id, random per
# start) and the digest of its in-memory dataset before and after. It leaves
# everything running and prints how to explore and stop it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "${HACK_DIR}/local/lib.sh"
cd "${ROOT_DIR}"

NS=demo
APP=redis

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
karmada() { kubectl_for karmada "$@"; }
member() { local m="$1"; shift; kubectl_for "${m}" "$@"; }
karmadactl() { "${KARMADA_BIN}/karmadactl" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" "$@"; }
# rcli MEMBER ARGS...: redis-cli in the application's pod on that member,
# through kubectl exec (the member's API server, the real kubelet, CRI-O).
rcli() { local m="$1"; shift; member "${m}" -n "${NS}" exec "${APP}-0" -c "${APP}" -- /usr/bin/redis-cli "$@" | tr -d '\r'; }
# show MEMBER: the process and what its memory holds.
show() {
  local info k
  info="$(rcli "$1" info server)"
  say "run_id (random per process start): $(sed -n 's/^run_id://p' <<< "${info}")"
  say "uptime_in_seconds:                 $(sed -n 's/^uptime_in_seconds://p' <<< "${info}")"
  say "DEBUG DIGEST of the dataset:       $(rcli "$1" debug digest)"
  for k in user:1 user:2 cart:42; do say "GET ${k} = $(rcli "$1" get "${k}")"; done
}

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local t="$1" what="$2"; shift 2
  local deadline=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${t}s waiting for ${what}"
    sleep 1
  done
}

step "1/7 install and build what is missing (Debian packages; etcd, Kubernetes ${KUBE_VERSION} with the kubelet, Karmada ${KARMADA_VERSION}, CRI-O ${CRIO_VERSION} from Go modules; CRIU ${CRIU_VERSION} from Debian's sources; cached in ${STATESHIFT_CACHE})"
[[ $(id -u) == 0 ]] || die "run as root: the demo installs Debian packages, runs buildah and real nodes"
hack/install-debs.sh
hack/build-deps.sh all

step "2/7 bring up Karmada, member1 and member2 (a real and a simulated node each), the registry and stateshift"
hack/local-up.sh
karmada get clusters
member member1 get nodes -o wide

IMAGE_REF="127.0.0.1:${REGISTRY_PORT}/stateshift-test/redis:v1@$(cat "${RUN_DIR}/workload-images/redis.digest")"
step "3/7 run redis-server (Debian's, persistence off: its data lives only in memory) on member1's real node"
# A previous demo run left member1 cordoned and tainted: undo that first.
karmadactl uncordon member1 >/dev/null 2>&1 || true
karmadactl taint clusters member1 stateshift-demo=move:NoExecute- >/dev/null 2>&1 || true
if karmada get namespace "${NS}" >/dev/null 2>&1; then
  say "removing the previous demo's namespace"
  karmada delete namespace "${NS}" --wait=true --timeout=120s >/dev/null
  for m in member1 member2; do member "${m}" wait --for=delete namespace/"${NS}" --timeout=120s >/dev/null 2>&1 || true; done
fi
# CRI-O restores on top of the image the container ran and never pulls that
# image itself: member2's real node gets it beforehand, as an operator's
# pre-pull DaemonSet would.
member member2 create namespace prepull --dry-run=client -o yaml | member member2 apply -f - >/dev/null
member member2 -n prepull delete pod redis-image --ignore-not-found >/dev/null
member member2 apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: redis-image, namespace: prepull}
spec:
  restartPolicy: Never
  nodeSelector: {stateshift.io/node-tier: real}
  tolerations: [{key: stateshift.io/node-tier, operator: Equal, value: real, effect: NoSchedule}]
  containers: [{name: pull, image: "${IMAGE_REF}", command: [/bin/true]}]
YAML
# member2 is cordoned while the application is first placed, so that it starts
# on member1 only; it is a valid destination for the move later.
karmadactl cordon member2 >/dev/null
karmada apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ${APP}, namespace: ${NS}}
spec:
  replicas: 1
  serviceName: ${APP}
  selector: {matchLabels: {app: ${APP}}}
  template:
    metadata:
      labels: {app: ${APP}}
    spec:
      terminationGracePeriodSeconds: 2
      nodeSelector: {stateshift.io/node-tier: real}
      tolerations: [{key: stateshift.io/node-tier, operator: Equal, value: real, effect: NoSchedule}]
      containers:
        - name: ${APP}
          image: "${IMAGE_REF}"
          args: [--save, "", --appendonly, "no", --bind, 127.0.0.1, --port, "6379", --protected-mode, "no", --enable-debug-command, local]
          resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: ${APP}, namespace: ${NS}}
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: StatefulSet, name: ${APP}}
  placement:
    clusterAffinity: {clusterNames: [member1, member2]}
    # One copy, on one cluster at a time (Duplicated would run it on both).
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Aggregated}
YAML
answering() { rcli "$1" ping | grep -q PONG; }
wait_until 120 "${APP}-0 answering on member1" answering member1
pulled() { [[ "$(member member2 -n prepull get pod redis-image -o jsonpath='{.status.phase}')" == Succeeded ]]; }
wait_until 120 "the redis image on member2's real node" pulled
member member2 -n prepull delete pod redis-image >/dev/null
karmadactl uncordon member2 >/dev/null
member member1 -n "${NS}" get pods -o wide
rcli member1 set user:1 ada >/dev/null
rcli member1 set user:2 grace >/dev/null
rcli member1 set cart:42 "apples=3,pears=5" >/dev/null
say "keys written into member1's redis (in memory only: --save '' --appendonly no)"

step "4/7 protect it: a CheckpointPolicy keeps a verified checkpoint every 10s and the restore armed"
credentials=""
[[ -f "${RUN_DIR}/registry/auth.json" ]] && credentials="credentialsSecretRef: {name: checkpoint-registry}"
karmada apply -f - >/dev/null <<YAML
apiVersion: stateshift.io/v1alpha1
kind: CheckpointPolicy
metadata: {name: protect-${APP}, namespace: ${NS}}
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: StatefulSet, name: ${APP}}
  repository: 127.0.0.1:${REGISTRY_PORT}/demo/${APP}
  builder: native
  schedule: {interval: 10s}
  retention: {keep: 3}
  onRestoreImpossible: ColdStart
  ${credentials}
YAML
armed() { [[ "$(karmada -n "${NS}" get checkpointpolicy "protect-${APP}" -o jsonpath='{.status.workloads[0].armed}')" == true ]]; }
wait_until 120 "the restore to be armed with a verified checkpoint" armed
karmada -n "${NS}" get checkpoints
say "each Checkpoint was created in the Karmada API, propagated to member1, executed by its real node's agent"
say "(kubelet checkpoint API -> CRI-O -> runc -> CRIU -> OCI image -> registry); its status came back through the interpreter webhook"
CKPT="$(karmada -n "${NS}" get checkpointpolicy "protect-${APP}" -o jsonpath='{.status.workloads[0].armedCheckpoint}')"
IMAGE="$(karmada -n "${NS}" get checkpoint "${CKPT}" -o jsonpath='{.status.containers[0].image}')"
say "armed with ${CKPT}: ${IMAGE}"

step "5/7 the image in the registry: one OCI manifest with the checkpoint annotations"
netrc=()
if [[ -f "${RUN_DIR}/registry/password" ]]; then
  # Credentials through a netrc file, never on argv.
  (umask 077 && printf 'machine 127.0.0.1 login stateshift password %s\n' "$(cat "${RUN_DIR}/registry/password")" > "${RUN_DIR}/registry/netrc")
  netrc=(--netrc-file "${RUN_DIR}/registry/netrc")
fi
curl -fsS "${netrc[@]}" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:${REGISTRY_PORT}/v2/demo/${APP}/manifests/${IMAGE##*@}" | sed 's/^/   /'
echo

step "6/7 move ${APP} to member2: karmadactl cordon member1, then the reschedule (a NoExecute taint)"
say "member1, before the move:"
show member1
karmadactl cordon member1
migration() { karmada -n "${NS}" get migrations -o jsonpath='{.items[0].metadata.name}' 2>/dev/null | grep -q .; }
wait_until 60 "stateshift to record the cordon as a Migration" migration
MIG="$(karmada -n "${NS}" get migrations -o jsonpath='{.items[0].metadata.name}')"
phase_is() { [[ "$(karmada -n "${NS}" get migration "${MIG}" -o jsonpath='{.status.phase}')" == "$1" ]]; }
wait_until 120 "Migration ${MIG} to be Armed (fresh checkpoint taken after the cordon, verified, armed)" phase_is Armed
karmada -n "${NS}" get migrations
FRESH="$(karmada -n "${NS}" get migration "${MIG}" -o jsonpath='{.status.checkpoints[0].name}')"
IMAGE="$(karmada -n "${NS}" get checkpoint "${FRESH}" -o jsonpath='{.status.containers[0].image}')"
say "fresh checkpoint ${FRESH}: ${IMAGE}"
karmadactl taint clusters member1 stateshift-demo=move:NoExecute
wait_until 180 "Migration ${MIG} to be Restored" phase_is Restored
wait_until 60 "${APP}-0 answering on member2" answering member2
karmada -n "${NS}" get migrations
member member2 -n "${NS}" get pods -o wide
say "member1 runs nothing of ${NS} any more: $(member member1 -n "${NS}" get pods -o name | wc -l) pod(s)"

step "7/7 the same process on member2, restored by CRI-O from ${FRESH}"
show member2
say "the same run_id and dataset digest: the process and its memory moved; nothing was replayed or reloaded"
say "where each piece ran:"
say "  Karmada control plane, interpreter webhook and migration controller: 127.0.0.1 (run folder ${RUN_DIR})"
say "  member1-real (kubelet 127.0.0.21, CRI-O, runc, CRIU): ${APP}-0 before; its agent built and pushed the checkpoint images"
say "  member2-real (kubelet 127.0.0.22, CRI-O, runc, CRIU): ${APP}-0 after, restored from ${IMAGE}"
cat <<EOF

The environment stays up (member1 is still cordoned and tainted). Explore it:
  export KUBECONFIG=${RUN_DIR}/karmada.kubeconfig   # kubectl get clusters; kubectl -n ${NS} get checkpoints,migrations,checkpointpolicies
  ${KUBE_BIN}/kubectl --kubeconfig ${RUN_DIR}/member2.kubeconfig -n ${NS} exec ${APP}-0 -- /usr/bin/redis-cli keys '*'
  grep 'Restored container' ${RUN_DIR}/logs/crio-member2.log
Give member1 back: karmadactl uncordon member1; karmadactl taint clusters member1 stateshift-demo=move:NoExecute-
Tear it down:      make local-down
EOF
