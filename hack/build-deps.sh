#!/usr/bin/env bash
# Builds, from Go modules, every program stateshift's tests and local-up run
# beside it: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl (hack/tools/kube), Karmada's control plane and karmadactl (built in
# Karmada's own module with its own go.sum), and controller-gen.
# Binaries are cached by version under $STATESHIFT_CACHE; a stamp over the
# inputs makes a second run take seconds.
#
# Usage: hack/build-deps.sh [kube|karmada|tools|all]   (default: all)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

what="${1:-all}"
goversion="$(go env GOVERSION)"

# stamp_ok DIR INPUTS...: true when DIR/.stamp matches the hash of the inputs.
stamp_of() { { echo "${goversion}"; cat "$@"; } | sha256sum | cut -d' ' -f1; }

build_kube() {
  local mod="${HACK_DIR}/tools/kube" stamp
  stamp="$(stamp_of "${HACK_DIR}/versions.env" "${mod}/go.mod" "${mod}/go.sum" "${mod}"/*/main.go)"
  if [[ -f "${KUBE_BIN}/.stamp" && "$(cat "${KUBE_BIN}/.stamp")" == "${stamp}" ]]; then
    log "kubernetes ${KUBE_VERSION}: cached in ${KUBE_BIN}"; return
  fi
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
  log "kubernetes ${KUBE_VERSION} + etcd ${ETCD_VERSION}: building into ${KUBE_BIN} (cold: ~20 min on two cores)"
  mkdir -p "${KUBE_BIN}"
  (cd "${mod}" && go build -trimpath -ldflags "${ld}" -o "${KUBE_BIN}/" \
    ./kube-apiserver ./kube-controller-manager ./kube-scheduler ./kubectl ./etcd)
  echo "${stamp}" > "${KUBE_BIN}/.stamp"
  log "kubernetes: done"
}

build_karmada() {
  local stamp dir
  stamp="$(stamp_of "${HACK_DIR}/versions.env")"
  if [[ -f "${KARMADA_BIN}/.stamp" && "$(cat "${KARMADA_BIN}/.stamp")" == "${stamp}" ]]; then
    log "karmada ${KARMADA_VERSION}: cached in ${KARMADA_BIN}"; return
  fi
  dir="$(go mod download -json "github.com/karmada-io/karmada@${KARMADA_VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -d "${dir}" ]] || die "karmada ${KARMADA_VERSION} did not download"
  local ld="-s -w -X github.com/karmada-io/karmada/pkg/version.gitVersion=${KARMADA_VERSION}"
  ld+=" -X github.com/karmada-io/karmada/pkg/version.gitTreeState=clean"
  log "karmada ${KARMADA_VERSION}: building into ${KARMADA_BIN} (cold: ~10 min on two cores)"
  mkdir -p "${KARMADA_BIN}"
  # Built inside Karmada's own module so its go.sum decides every dependency.
  (cd "${dir}" && GOFLAGS=-mod=mod go build -trimpath -ldflags "${ld}" -o "${KARMADA_BIN}/" \
    ./cmd/controller-manager ./cmd/scheduler ./cmd/karmadactl ./cmd/webhook ./cmd/aggregated-apiserver)
  for b in controller-manager scheduler webhook aggregated-apiserver; do
    mv -f "${KARMADA_BIN}/${b}" "${KARMADA_BIN}/karmada-${b}"
  done
  # Karmada's example interpreter webhook: the baseline of the interpreter benchmark.
  (cd "${dir}" && GOFLAGS=-mod=mod go build -trimpath -o "${KARMADA_BIN}/karmada-example-interpreter" \
    ./examples/customresourceinterpreter/webhook)
  ln -sfn "${dir}" "${KARMADA_BIN}/../src"
  echo "${stamp}" > "${KARMADA_BIN}/.stamp"
  log "karmada: done"
}

build_tools() {
  if [[ -x "${TOOLS_BIN}/controller-gen-${CONTROLLER_GEN_VERSION}" ]]; then
    log "controller-gen ${CONTROLLER_GEN_VERSION}: cached"; return
  fi
  log "controller-gen ${CONTROLLER_GEN_VERSION}: installing into ${TOOLS_BIN}"
  mkdir -p "${TOOLS_BIN}"
  GOBIN="${TOOLS_BIN}/.tmp" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_GEN_VERSION}"
  mv "${TOOLS_BIN}/.tmp/controller-gen" "${TOOLS_BIN}/controller-gen-${CONTROLLER_GEN_VERSION}"
  rmdir "${TOOLS_BIN}/.tmp"
}

case "${what}" in
  kube) build_kube ;;
  karmada) build_karmada ;;
  tools) build_tools ;;
  all) build_tools; build_kube; build_karmada ;;
  *) die "unknown target ${what} (kube|karmada|tools|all)" ;;
esac
