#!/usr/bin/env bash
# make demo: stateshift end to end on one Debian machine, as root, without
# Docker. Installs what is missing, builds what is not cached, brings up a real
# Karmada with two member clusters (hack/local-up.sh), deploys a stateful demo
# application on member1, checkpoints it through stateshift, shows the image
# in the registry, moves the application to member2 and shows its state before
# and after. It leaves everything running and prints how to explore and stop.
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

# move_to_member2: the restore plan as an OverridePolicy that rewrites the
# workload for every cluster except member1 (the source is never rewritten),
# then a placement change to member2. This is what stateshift's control
# plane arms by itself for protected workloads (pkg/restore.OverridePolicy);
# here it is written by hand so that every step is visible.
move_to_member2() {
  say "restore plan: an OverridePolicy for every cluster except member1, setting ${APP}'s image to the checkpoint image"
  karmada apply -f - >/dev/null <<EOF
apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata: {name: stateshift-restore-${APP}, namespace: ${NS}}
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: StatefulSet, name: ${APP}}
  overrideRules:
    - targetCluster: {exclude: [member1]}
      overriders:
        plaintext:
          - {path: /spec/template/spec/containers/0/image, operator: replace, value: "${IMAGE}"}
          - {path: /spec/template/spec/containers/0/imagePullPolicy, operator: add, value: IfNotPresent}
          - {path: /spec/template/metadata/annotations/stateshift.io~1restored-from, operator: add, value: "${CKPT}"}
EOF
  say "placement: member1 -> member2"
  karmada -n "${NS}" patch propagationpolicy "${APP}" --type merge -p '{"spec":{"placement":{"clusterAffinity":{"clusterNames":["member2"]}}}}' >/dev/null
  restored() { state member2 | grep -q "\"restoredFrom\":\"${IMAGE}\""; }
  wait_until 120 "${APP}-0 restored on member2" restored
  member member2 -n "${NS}" get pods -o wide
  say "member1 runs nothing of ${NS} any more: $(member member1 -n "${NS}" get pods -o name | wc -l) pod(s)"
}

step "1/7 install and build what is missing (Debian packages; etcd, Kubernetes ${KUBE_VERSION}, Karmada ${KARMADA_VERSION} from Go modules, cached in ${STATESHIFT_CACHE})"
[[ $(id -u) == 0 ]] || die "run as root: the demo installs Debian packages and runs buildah"
hack/install-debs.sh
hack/build-deps.sh all

step "2/7 bring up Karmada, member1 and member2 with simulated nodes, the registry and stateshift"
hack/local-up.sh
karmada get clusters

step "3/7 deploy the demo StatefulSet '${APP}' with a PropagationPolicy to member1"
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
    clusterAffinity: {clusterNames: [member1]}
EOF
running() { state "$1" | grep -q '"running":true'; }
wait_until 90 "${APP}-0 running on member1" running member1
member member1 -n "${NS}" get pods -o wide
sleep 3
say "state on member1: $(state member1)"

step "4/7 checkpoint it through stateshift: a Checkpoint in the Karmada API, propagated to member1, executed by member1's checkpoint agent"
CKPT="${APP}-0-$(date +%H%M%S)"
karmada apply -f - >/dev/null <<EOF
apiVersion: stateshift.io/v1alpha1
kind: Checkpoint
metadata: {name: ${CKPT}, namespace: ${NS}, labels: {demo: checkpoint}}
spec:
  podName: ${APP}-0
  repository: 127.0.0.1:${REGISTRY_PORT}/demo/${APP}
  builder: native
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: checkpoints-to-member1, namespace: ${NS}}
spec:
  resourceSelectors:
    - {apiVersion: stateshift.io/v1alpha1, kind: Checkpoint, labelSelector: {matchLabels: {demo: checkpoint}}}
  placement:
    clusterAffinity: {clusterNames: [member1]}
EOF
checkpoint_done() { [[ "$(karmada -n "${NS}" get checkpoint "${CKPT}" -o jsonpath='{.status.phase}')" == Succeeded ]]; }
wait_until 120 "Checkpoint ${CKPT} to succeed (status reflected into the Karmada API by the interpreter webhook)" checkpoint_done
karmada -n "${NS}" get checkpoint "${CKPT}" -o wide
IMAGE="$(karmada -n "${NS}" get checkpoint "${CKPT}" -o jsonpath='{.status.containers[0].image}')"
say "checkpoint image: ${IMAGE}"

step "5/7 the image in the registry: one OCI manifest with the checkpoint annotations"
curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:${REGISTRY_PORT}/v2/demo/${APP}/manifests/${IMAGE##*@}" | sed 's/^/   /'
echo

step "6/7 move ${APP} to member2"
BEFORE="$(state member1)"
move_to_member2

step "7/7 state before and after the move"
AFTER="$(state member2)"
say "member1, last seen before the move:  counter=$(field counter <<<"${BEFORE}") (it kept running after the checkpoint)"
say "member2, resumed from the checkpoint:  counter=$(field restoredCounter <<<"${AFTER}") (the counter saved in ${CKPT})"
say "member2, now:                          counter=$(field counter <<<"${AFTER}")"
say "restored from: $(field restoredFrom <<<"${AFTER}")"
say "where each piece ran:"
say "  Karmada control plane + interpreter webhook: 127.0.0.1 (run folder ${RUN_DIR})"
say "  member1 node 127.0.0.11: ${APP}-0 before, checkpoint agent that built ${IMAGE%@*}"
say "  member2 node 127.0.0.12: ${APP}-0 after, restored from ${IMAGE}"
cat <<EOF

The environment stays up. Explore it:
  export KUBECONFIG=${RUN_DIR}/karmada.kubeconfig   # kubectl get clusters,checkpoints,migrations -A
  ${KUBE_BIN}/kubectl --kubeconfig ${RUN_DIR}/member2.kubeconfig -n ${NS} get pods -o wide
  curl --cacert $(node_ca member2) 'https://127.0.0.12:10250/nodesim/state?namespace=${NS}'
Tear it down:
  make local-down
EOF
