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

# What unit and integration tests need (the API server and etcd of
# envtest, controller-gen, helm) is built first. What only the end-to-end
# phases need (Karmada, CRI-O, CRIU; promtool, which one chart test asks
# for and then waits for) builds in the background at the lowest CPU
# priority while the unit tests run: they mostly wait on API servers and
# leave a core idle, and a cold build is ~20 minutes of two cores.
phase deps bash -c "hack/install-debs.sh && hack/build-deps.sh tools helm kube"
background_log="$(mktemp "${TMPDIR:-/tmp}/stateshift-deps.XXXXXX")"
nice -n 19 hack/build-deps.sh promtool criu karmada crio > "${background_log}" 2>&1 &
background_pid=$!
wait_background_deps() {
  local rc=0
  wait "${background_pid}" || rc=$?
  cat "${background_log}" >&2
  rm -f "${background_log}"
  return "${rc}"
}
export KUBEBUILDER_ASSETS="${KUBE_BIN}"
export PATH="${KUBE_BIN}:${KARMADA_BIN}:${PATH}"

mapfile -t pkgs < <(go list ./... | grep -v '/test/e2e')
phase unit-and-integration go test -count=1 -timeout "${TEST_TIMEOUT:-40m}" "${pkgs[@]}"
phase fuzz env FUZZ_TIME="${FUZZ_TIME:-10s}" hack/fuzz.sh
phase deps-background wait_background_deps
# The install phase's images (Debian root file systems by mmdebstrap, a
# static kubectl, the binaries with the pinned toolchain) build in the
# background during e2e, which mostly waits on its clusters: cold, they
# are ~10 minutes of downloads and compiles; warm, seconds of cache checks.
images_log="$(mktemp "${TMPDIR:-/tmp}/stateshift-images.XXXXXX")"
nice -n 19 ionice -c 3 hack/images.sh --prepare > "${images_log}" 2>&1 &
images_pid=$!
wait_images_prepared() {
  local rc=0
  wait "${images_pid}" || rc=$?
  cat "${images_log}" >&2
  rm -f "${images_log}"
  return "${rc}"
}
# The e2e suite (build tag e2e) brings up hack/local-up.sh when no local
# environment runs, and stops it at the end when it started it.
phase e2e go test -tags e2e -count=1 -timeout "${E2E_TIMEOUT:-40m}" ./test/e2e/ -v
# The install suite (test/install) brings up its own environment in chart
# mode (a Karmada host cluster, no stateshift process), builds the images
# (make images) and installs stateshift with helm.
phase images-background wait_images_prepared
phase install go test -tags e2e -count=1 -timeout "${INSTALL_TIMEOUT:-60m}" ./test/install/ -v

log "summary:"
printf '  %s\n' "${summary[@]}" >&2
exit "${failed}"
