#!/usr/bin/env bash
# make demo: stateshift end to end on one Debian machine, as root, without
# Docker. Installs what is missing, builds what is not cached, brings up a real
# Karmada with two member clusters (hack/local-up.sh), deploys a stateful demo
# application on member1, protects it with a CheckpointPolicy (scheduled
# checkpoints through the kubelet API, images in the registry), moves it to
# member2 with `karmadactl cordon member1` and a NoExecute taint (the
# reschedule that moves a workload off a cordoned cluster in Karmada v1.18.2),
# and shows its state before and after. It leaves everything running and prints
# how to explore and stop it.
#
# Only the kubelet and the container runtime are simulated (test/nodesim):
# CRIU cannot run on this machine's kernel. The "state" of the demo container
# is the simulator's: a counter that grows every second plus 16 MiB of memory
# derived from it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "${HACK_DIR}/local/lib.sh"
cd "${ROOT_DIR}"

NS=demo
APP=counter
MEMORY_BYTES=$((16 << 20))

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
karmada() { kubectl_for karmada "$@"; }
member() { local m="$1"; shift; kubectl_for "${m}" "$@"; }
node_ca() { echo "${RUN_DIR}/$1/$1-node/data/pki/ca.crt"; }
declare -A NODE_IP=([member1]=127.0.0.11 [member2]=127.0.0.12)

# state MEMBER: the simulated container's state (JSON) on that member's node.
state() {
  curl -fsS --cacert "$(node_ca "$1")" \
    "https://${NODE_IP[$1]}:10250/nodesim/state?namespace=${NS}&pod=${APP}-0&container=${APP}"
}
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -1; }

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local t="$1" what="$2"; shift 2
  local deadline=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${t}s waiting for ${what}"
    sleep 1
  done
}

step "1/7 install and build what is missing (Debian packages; etcd, Kubernetes ${KUBE_VERSION}, Karmada ${KARMADA_VERSION} from Go modules, cached in ${STATESHIFT_CACHE})"
[[ $(id -u) == 0 ]] || die "run as root: the demo installs Debian packages and runs buildah"
hack/install-debs.sh
hack/build-deps.sh all

step "2/7 bring up Karmada, member1 and member2 with simulated nodes, the registry and stateshift"
hack/local-up.sh
karmada get clusters

step "3/7 deploy the demo StatefulSet '${APP}' on member1 (its PropagationPolicy allows member1 and member2)"
# A previous demo run left member1 cordoned and tainted: undo that first.
"${KARMADA_BIN}/karmadactl" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" uncordon member1 >/dev/null 2>&1 || true
"${KARMADA_BIN}/karmadactl" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" taint clusters member1 stateshift-demo=move:NoExecute- >/dev/null 2>&1 || true
if karmada get namespace "${NS}" >/dev/null 2>&1; then
  say "removing the previous demo's namespace"
  karmada delete namespace "${NS}" --wait=true --timeout=120s >/dev/null
  for m in member1 member2; do member "${m}" wait --for=delete namespace/"${NS}" --timeout=120s >/dev/null 2>&1 || true; done
fi
# member2 is cordoned while the application is first placed, so that it starts
# on member1 only; it is a valid destination for the move later.
"${KARMADA_BIN}/karmadactl" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" cordon member2 >/dev/null
karmada apply -f - >/dev/null <<EOF
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
      annotations: {nodesim.stateshift.io/memory-bytes: "${MEMORY_BYTES}"}
    spec:
      containers:
        - name: ${APP}
          image: docker.io/library/redis:7.4
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
EOF
running() { state "$1" | grep -q '"running":true'; }
wait_until 90 "${APP}-0 running on member1" running member1
"${KARMADA_BIN}/karmadactl" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" uncordon member2 >/dev/null
member member1 -n "${NS}" get pods -o wide
sleep 3
say "state on member1: $(state member1)"

step "4/7 protect it: a CheckpointPolicy keeps a verified checkpoint every 10s and the restore armed"
karmada apply -f - >/dev/null <<EOF
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
EOF
armed() { [[ "$(karmada -n "${NS}" get checkpointpolicy "protect-${APP}" -o jsonpath='{.status.workloads[0].armed}')" == true ]]; }
wait_until 120 "the restore to be armed with a verified checkpoint" armed
karmada -n "${NS}" get checkpoints
say "each Checkpoint was created in the Karmada API, propagated to member1, executed by member1's agent (kubelet API -> OCI image -> registry), and its status came back through the interpreter webhook"
CKPT="$(karmada -n "${NS}" get checkpointpolicy "protect-${APP}" -o jsonpath='{.status.workloads[0].armedCheckpoint}')"
IMAGE="$(karmada -n "${NS}" get checkpoint "${CKPT}" -o jsonpath='{.status.containers[0].image}')"
say "armed with ${CKPT}: ${IMAGE}"
karmada -n "${NS}" get overridepolicies -o name | sed 's/^/   restore plan: /'

step "5/7 the image in the registry: one OCI manifest with the checkpoint annotations"
curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:${REGISTRY_PORT}/v2/demo/${APP}/manifests/${IMAGE##*@}" | sed 's/^/   /'
echo

step "6/7 move ${APP} to member2: karmadactl cordon member1, then the reschedule (a NoExecute taint)"
"${KARMADA_BIN}/karmadactl" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" cordon member1
migration() { karmada -n "${NS}" get migrations -o jsonpath='{.items[0].metadata.name}' 2>/dev/null | grep -q .; }
wait_until 60 "stateshift to record the cordon as a Migration" migration
MIG="$(karmada -n "${NS}" get migrations -o jsonpath='{.items[0].metadata.name}')"
phase_is() { [[ "$(karmada -n "${NS}" get migration "${MIG}" -o jsonpath='{.status.phase}')" == "$1" ]]; }
wait_until 120 "Migration ${MIG} to be Armed (fresh checkpoint taken after the cordon, verified, armed)" phase_is Armed
karmada -n "${NS}" get migrations
FRESH="$(karmada -n "${NS}" get migration "${MIG}" -o jsonpath='{.status.checkpoints[0].name}')"
IMAGE="$(karmada -n "${NS}" get checkpoint "${FRESH}" -o jsonpath='{.status.containers[0].image}')"
say "fresh checkpoint ${FRESH}: ${IMAGE}"
BEFORE="$(state member1)"
"${KARMADA_BIN}/karmadactl" --kubeconfig "${RUN_DIR}/karmada.kubeconfig" taint clusters member1 stateshift-demo=move:NoExecute
wait_until 180 "Migration ${MIG} to be Restored" phase_is Restored
karmada -n "${NS}" get migrations
member member2 -n "${NS}" get pods -o wide
say "member1 runs nothing of ${NS} any more: $(member member1 -n "${NS}" get pods -o name | wc -l) pod(s)"

step "7/7 state before and after the move"
AFTER="$(state member2)"
say "member1, last seen before the move:  counter=$(field counter <<<"${BEFORE}") (it kept running after the checkpoint)"
say "member2, resumed from the checkpoint:  counter=$(field restoredCounter <<<"${AFTER}") (the counter saved in ${FRESH})"
say "member2, now:                          counter=$(field counter <<<"${AFTER}")"
say "restored from: $(field restoredFrom <<<"${AFTER}")"
say "where each piece ran:"
say "  Karmada control plane, interpreter webhook and migration controller: 127.0.0.1 (run folder ${RUN_DIR})"
say "  member1 node 127.0.0.11: ${APP}-0 before; its checkpoint agent built and pushed the checkpoint images"
say "  member2 node 127.0.0.12: ${APP}-0 after, restored from ${IMAGE}"
cat <<EOF

The environment stays up (member1 is still cordoned and tainted). Explore it:
  export KUBECONFIG=${RUN_DIR}/karmada.kubeconfig   # kubectl get clusters; kubectl -n ${NS} get checkpoints,migrations,checkpointpolicies
  ${KUBE_BIN}/kubectl --kubeconfig ${RUN_DIR}/member2.kubeconfig -n ${NS} get pods -o wide
  curl --cacert $(node_ca member2) 'https://127.0.0.12:10250/nodesim/state?namespace=${NS}'
Give member1 back: karmadactl uncordon member1; karmadactl taint clusters member1 stateshift-demo=move:NoExecute-
Tear it down:      make local-down
EOF
