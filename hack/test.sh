#!/usr/bin/env bash
# make test: every test. Installs and builds what the tests need first
# (Debian packages, etcd/Kubernetes/Karmada binaries), then runs, timing each
# phase: unit + integration (real kube-apiserver, buildah, registry), fuzz
# targets briefly, end-to-end against a local Karmada. Exits non-zero when any
# phase fails; every phase runs so one failure does not hide another.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "${ROOT_DIR}"

[[ $(id -u) == 0 ]] || die "tests need root (buildah storage, loopback node addresses, the kubelet's root-only archive layout)"

declare -a summary=()
failed=0
phase() {
  local name="$1"; shift
  local t0=$SECONDS rc=0
  log "=== phase ${name}: $*"
  "$@" || rc=$?
  local took=$((SECONDS - t0))
  if ((rc == 0)); then summary+=("PASS ${name} ${took}s"); else summary+=("FAIL ${name} ${took}s (exit ${rc})"); failed=1; fi
  log "=== phase ${name}: exit ${rc} after ${took}s"
}

# background NAME CMD...: runs CMD at the lowest CPU and I/O priority,
# its output kept for the phase that waits for it (wait_background NAME).
declare -A background_pids=() background_logs=()
background() {
  local name="$1"; shift
  background_logs[${name}]="$(mktemp "${TMPDIR:-/tmp}/stateshift-${name}.XXXXXX")"
  nice -n 19 ionice -c 2 -n 7 "$@" > "${background_logs[${name}]}" 2>&1 &
  background_pids[${name}]=$!
}
wait_background() {
  local rc=0
  wait "${background_pids[$1]}" || rc=$?
  cat "${background_logs[$1]}" >&2
  rm -f "${background_logs[$1]}"
  return "${rc}"
}

# What unit and integration tests need (the API server and etcd of
# envtest, controller-gen, helm, promtool) is built in the foreground.
# What only the end-to-end phases need (Karmada, CRI-O, CRIU) builds in
# the background from the start: beside the foreground build it takes the
# cycles links and downloads leave idle, beside the unit tests those left
# while they wait on API servers. A cold build of it is ~15 minutes of two
# cores, the longest path of a cold run. (CI starts the same build even
# earlier, beside make verify; this one then waits on its locks.)
phase debs hack/install-debs.sh
background deps hack/build-deps.sh criu karmada crio
phase deps hack/build-deps.sh tools helm promtool kube
export KUBEBUILDER_ASSETS="${KUBE_BIN}"
export PATH="${KUBE_BIN}:${KARMADA_BIN}:${PATH}"

mapfile -t pkgs < <(go list ./... | grep -v '/test/e2e')
phase unit-and-integration go test -count=1 -timeout "${TEST_TIMEOUT:-40m}" "${pkgs[@]}"
phase deps-background wait_background deps
# During e2e, which mostly waits on its clusters, two more background
# jobs: the fuzz targets (cold, their instrumented builds took 10 minutes
# beside the deps build, which then finished that much later) and the
# install phase's images (Debian root file systems by mmdebstrap, a
# static kubectl, the binaries with the pinned toolchain; cold ~10
# minutes, warm seconds of cache checks). One after the other: together
# they would take a core from e2e.
background fuzz-and-images bash -c \
  'env FUZZ_TIME="${FUZZ_TIME:-10s}" hack/fuzz.sh; rc=$?; hack/images.sh --prepare || exit; exit "${rc}"'
# The e2e suite (build tag e2e) brings up hack/local-up.sh when no local
# environment runs, and stops it at the end when it started it.
phase e2e go test -tags e2e -count=1 -timeout "${E2E_TIMEOUT:-40m}" ./test/e2e/ -v
phase fuzz-and-images-background wait_background fuzz-and-images
# The install suite (test/install) brings up its own environment in chart
# mode (a Karmada host cluster, no stateshift process), builds the images
# (make images) and installs stateshift with helm.
phase install go test -tags e2e -count=1 -timeout "${INSTALL_TIMEOUT:-60m}" ./test/install/ -v

log "summary:"
printf '  %s\n' "${summary[@]}" >&2
exit "${failed}"
