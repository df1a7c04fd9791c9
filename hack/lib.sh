# Shared shell helpers for hack/ scripts. Source it; it sets no options.
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "${HACK_DIR}/.." && pwd)"
# shellcheck source=versions.env
. "${HACK_DIR}/versions.env"

# The cache lives outside the repository so binaries and build caches never
# land in git and survive a fresh checkout on the same machine.
STATESHIFT_CACHE="${STATESHIFT_CACHE:-${HOME}/.cache/stateshift}"
KUBE_BIN="${STATESHIFT_CACHE}/kubernetes-${KUBE_VERSION}/bin"
KARMADA_BIN="${STATESHIFT_CACHE}/karmada-${KARMADA_VERSION}/bin"
TOOLS_BIN="${STATESHIFT_CACHE}/tools/bin"
# The real node's runtime: CRIU, CRI-O and pinns (the kubelet is in KUBE_BIN).
CRIU_BIN="${STATESHIFT_CACHE}/criu-${CRIU_VERSION}/bin"
CRIO_BIN="${STATESHIFT_CACHE}/cri-o-${CRIO_VERSION}/bin"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
