#!/usr/bin/env bash
# Stops what hack/local-up.sh started — only the processes whose PIDs it
# recorded in the run folder, and only while they still run the recorded
# program — in reverse order of their dependencies, then removes the run folder.
#
# Usage: hack/local-down.sh     (env: STATESHIFT_RUN_DIR, default /tmp/stateshift-local)
#        KEEP_RUN_DIR=1 hack/local-down.sh   keeps logs and data
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "${HACK_DIR}/local/lib.sh"
. "${HACK_DIR}/local/pki.sh"
. "${HACK_DIR}/local/realnode.sh"

lock_run_dir
if [[ ! -d "${RUN_DIR}" ]]; then
  log "nothing to stop: ${RUN_DIR} does not exist"
  exit 0
fi
[[ -d "${PID_DIR}" ]] || die "${RUN_DIR} has no pids/ folder: not a local-up run folder, leaving it alone"

# Clients first, etcd last, so nothing logs storms of connection errors.
order=(
  checkpoint-agent- pod-restore- interpreter-webhook nodesim- kubelet- crio-
  karmada-scheduler karmada-controller-manager karmada-webhook
  member1-kube-scheduler member2-kube-scheduler
  karmada-kube-controller-manager member1-kube-controller-manager member2-kube-controller-manager
  karmada-aggregated-apiserver karmada-apiserver member1-apiserver member2-apiserver
  registry etcd
)
for prefix in "${order[@]}"; do
  for f in "${PID_DIR}/${prefix}"*.pid; do
    [[ -e "${f}" ]] || continue
    stop_proc "$(basename "${f}" .pid)"
  done
done
# Anything else local-up recorded (components added later).
for f in "${PID_DIR}"/*.pid; do
  [[ -e "${f}" ]] || continue
  stop_proc "$(basename "${f}" .pid)"
done

# A real node's containers and conmon outlive the kubelet and CRI-O.
for m in "${MEMBERS[@]}" "${HOST_CLUSTER}"; do stop_real_node_workloads "${m}"; done
clean_real_node_host_paths

if [[ "${KEEP_RUN_DIR:-0}" == 1 ]]; then
  log "stopped; kept ${RUN_DIR}"
else
  # buildah may leave overlay mounts under an agent's storage, CRI-O its
  # containers' root file systems and network namespaces, the kubelet pod
  # volumes: unmount first, deepest first.
  { awk '{print $2}' /proc/mounts | grep "^${RUN_DIR}/" || true; } | sort -r | while read -r mnt; do
    umount "${mnt}" 2>/dev/null || umount -l "${mnt}" 2>/dev/null || log "could not unmount ${mnt}"
  done
  rm -rf "${RUN_DIR}"
  log "stopped; removed ${RUN_DIR}"
fi
