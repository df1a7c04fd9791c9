#!/usr/bin/env bash
# hack/local/real-node-restore.sh MEMBER on|off: turns checkpoint/restore of
# MEMBER's real node's CRI-O on or off and restarts that CRI-O, so a test can
# play a member whose runtime cannot restore with the real runtime's own
# answer (CRI-O 1.34 with enable_criu_support = false starts a checkpoint
# image as if it were an ordinary image, and the container fails with
# CreateContainerError), rather than with a label a person set.
#
# The switch is a drop-in in CRI-O's config folder, which CRI-O reads after
# its main file; the kubelet keeps running and reconnects, and running
# containers stay up under conmon. Needs a running local environment.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "${HACK_DIR}/local/lib.sh"
. "${HACK_DIR}/local/registry.sh"
. "${HACK_DIR}/local/realnode.sh"

usage() { echo "usage: $0 MEMBER on|off" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
member="$1" want="$2"
[[ -n "${REAL_NODE_IP[${member}]:-}" ]] || die "no real node for ${member} (members: ${MEMBERS[*]})"
[[ "${want}" == on || "${want}" == off ]] || usage
is_running "crio-${member}" || die "crio-${member} is not running: start the local environment first (make local-up)"

TIMEOUT="${TIMEOUT:-60}"
dropin="$(real_node_dir "${member}")/crio/conf.d/90-stateshift-restore.conf"
if [[ "${want}" == off ]]; then
  printf '# Written by hack/local/real-node-restore.sh: this node cannot restore.\n[crio.runtime]\nenable_criu_support = false\n' > "${dropin}"
else
  rm -f "${dropin}"
fi

lock_run_dir
stop_proc "crio-${member}"
start_crio "${member}"
wait_for "crio-${member}" "${TIMEOUT}" test -S "$(real_node_dir "${member}")/crio/crio.sock"
# CRI-O answers on its socket before it has loaded every container again;
# its own version call over the socket says it serves the CRI.
sock="$(real_node_dir "${member}")/crio/crio.sock"
wait_for "crio-${member}" "${TIMEOUT}" curl -sf --max-time 2 --unix-socket "${sock}" http://localhost/info
log "crio-${member}: checkpoint/restore ${want}"
