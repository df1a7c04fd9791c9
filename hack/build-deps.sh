#!/usr/bin/env bash
# Builds, from Go modules, every program stateshift's tests and local-up run
# beside it: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl and the kubelet (hack/tools/kube), Karmada's control plane and karmadactl (built in
# Karmada's own module with its own go.sum), controller-gen, and the real
# node's runtime: CRIU from Debian's source package and CRI-O with pinns from
# Go modules (runc, conmon and the CNI plugins are Debian packages,
# hack/install-debs.sh).
# Binaries are cached by version under $STATESHIFT_CACHE; a stamp over the
# inputs makes a second run take seconds.
#
# The helm CLI (the chart's lint, template and install) is built from the Go
# module proxy as a tool, outside stateshift's go.mod.
#
# Usage: hack/build-deps.sh [kube|karmada|tools|helm|promtool|criu|crio|node|all]...   (default: all)
# node = criu + crio; all runs the C build of CRIU beside the Go builds.
# Each component builds under its own lock (STATESHIFT_CACHE/.locks): two
# runs at once (make test's background builds and a test that needs one
# of them now) build it once, the second waits for the first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

goversion="$(go env GOVERSION)"

# stamp_of INPUTS...: the hash of the Go version and the given files;
# stamp_of_values VALUES...: the same over values (one component's versions,
# so a new pin of another component does not rebuild this one).
stamp_of() { { echo "${goversion}"; cat "$@"; } | sha256sum | cut -d' ' -f1; }
stamp_of_values() { printf '%s\n' "${goversion}" "$@" | sha256sum | cut -d' ' -f1; }
stamp_matches() { [[ -f "$1/.stamp" && "$(cat "$1/.stamp")" == "$2" ]]; }

build_kube() {
  local mod="${HACK_DIR}/tools/kube" stamp
  stamp="$(stamp_of "${mod}/go.mod" "${mod}/go.sum" "${mod}"/*/main.go <(echo "${KUBE_VERSION} ${ETCD_VERSION}"))"
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
    ./kube-apiserver ./kube-controller-manager ./kube-scheduler ./kubectl ./kubelet ./etcd)
  echo "${stamp}" > "${KUBE_BIN}/.stamp"
  log "kubernetes: done"
}

build_karmada() {
  local stamp dir
  stamp="$(stamp_of_values "${KARMADA_VERSION}")"
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

# helm, installed from the module proxy into a folder of its own and renamed
# helm-<version> like controller-gen: a new pin builds beside the old one.
build_helm() {
  local bin="${TOOLS_BIN}/helm-${HELM_VERSION}"
  # The .k8s-version marker is written only after a complete build.
  if [[ -x "${bin}" && -f "${bin}.k8s-version" ]] && "${bin}" version --short 2>/dev/null | grep -qx "${HELM_VERSION}"; then
    log "helm ${HELM_VERSION}: cached"; return
  fi
  local major="${HELM_VERSION%%.*}" dir kminor
  log "helm ${HELM_VERSION}: installing into ${TOOLS_BIN} (cold: ~4 min on two cores)"
  # helm's Makefile sets the Kubernetes version `helm template` and `helm
  # lint` assume from its client-go (v0.35.x: 1.35); without it they assume
  # 1.20 and refuse charts that need newer.
  dir="$(go mod download -json "helm.sh/helm/${major}@${HELM_VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  kminor="$(sed -n 's/^\s*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "${dir}/go.mod")"
  [[ -n "${kminor}" ]] || die "helm: no k8s.io/client-go version in ${dir}/go.mod"
  local ld="-s -w -X helm.sh/helm/${major}/internal/version.version=${HELM_VERSION}"
  ld+=" -X helm.sh/helm/${major}/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/${major}/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/${major}/pkg/lint/rules.k8sVersionMinor=${kminor}"
  ld+=" -X helm.sh/helm/${major}/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/${major}/pkg/chartutil.k8sVersionMinor=${kminor}"
  mkdir -p "${TOOLS_BIN}/.tmp-helm"
  GOBIN="${TOOLS_BIN}/.tmp-helm" CGO_ENABLED=0 go install -trimpath -ldflags "${ld}" "helm.sh/helm/${major}/cmd/helm@${HELM_VERSION}"
  mv "${TOOLS_BIN}/.tmp-helm/helm" "${bin}"
  rmdir "${TOOLS_BIN}/.tmp-helm"
  echo "1.${kminor}" > "${bin}.k8s-version"
  "${bin}" version --short | grep -qx "${HELM_VERSION}" || die "helm: the built binary does not report ${HELM_VERSION}"
  log "helm: done ($("${bin}" version --short))"
}

# CRIU from Debian's source package for CRIU_DEBIAN_SUITE, fetched with a
# private apt configuration (the machine's own sources stay as they are); apt
# checks the tarball against the signed Sources index, and we check it
# against the pinned digest. Only the upstream tarball is needed: Debian's
# packaging part is not. hack/patches/criu-<version>-*.patch are applied on
# top (what this kernel needs that the release lacks). Build deps are Debian
# packages (install-debs.sh).
build_criu() {
  local stamp
  local patches=("${HACK_DIR}"/patches/criu-"${CRIU_VERSION}"-*.patch)
  stamp="$(stamp_of_values "${CRIU_VERSION}" "${CRIU_ORIG_SHA256}" "$(cat "${patches[@]}" 2>/dev/null)")"
  if stamp_matches "${CRIU_BIN}" "${stamp}" && "${CRIU_BIN}/criu" --version > /dev/null 2>&1; then
    log "criu ${CRIU_VERSION}: cached in ${CRIU_BIN}"; return
  fi
  local work="${STATESHIFT_CACHE}/criu-${CRIU_VERSION}/work" tarball="criu_${CRIU_VERSION}.orig.tar.xz"
  rm -rf "${work}"; mkdir -p "${work}/apt/lists/partial" "${work}/src"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${CRIU_DEBIAN_SUITE} main" \
    > "${work}/apt/sources.list"
  local apt=(apt-get -q -o "Dir::Etc::sourcelist=${work}/apt/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=${work}/apt/lists" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
  log "criu ${CRIU_VERSION}: fetching ${tarball} through Debian ${CRIU_DEBIAN_SUITE}'s source index"
  "${apt[@]}" update > "${work}/apt.log" 2>&1 || { cat "${work}/apt.log" >&2; die "criu: apt-get update (${CRIU_DEBIAN_SUITE} sources) failed"; }
  # The .dsc and .debian.tar.xz parts are refused by the mirror here; the
  # download of the upstream tarball is what counts.
  (cd "${work}/src" && "${apt[@]}" source --download-only "criu=${CRIU_VERSION}-1") >> "${work}/apt.log" 2>&1 || true
  [[ -f "${work}/src/${tarball}" ]] || { cat "${work}/apt.log" >&2; die "criu: ${tarball} did not download"; }
  echo "${CRIU_ORIG_SHA256}  ${work}/src/${tarball}" | sha256sum -c --quiet - || die "criu: ${tarball} does not match CRIU_ORIG_SHA256"
  tar -C "${work}" -xJf "${work}/src/${tarball}"
  local p
  for p in "${patches[@]}"; do
    [[ -f "${p}" ]] || continue
    log "criu ${CRIU_VERSION}: applying $(basename "${p}")"
    patch -d "${work}/criu-${CRIU_VERSION}" -p1 --quiet < "${p}" || die "criu: ${p} does not apply"
  done
  log "criu ${CRIU_VERSION}: make criu (cold: ~3 min on two cores)"
  make -C "${work}/criu-${CRIU_VERSION}" -j"$(nproc)" criu > "${work}/make.log" 2>&1 ||
    { tail -n 30 "${work}/make.log" >&2; die "criu: make failed (log: ${work}/make.log)"; }
  mkdir -p "${CRIU_BIN}"
  install -m 0755 "${work}/criu-${CRIU_VERSION}/criu/criu" "${CRIU_BIN}/criu"
  "${CRIU_BIN}/criu" --version > /dev/null || die "criu: the built binary does not run"
  rm -rf "${work}"
  echo "${stamp}" > "${CRIU_BIN}/.stamp"
  log "criu: done ($("${CRIU_BIN}/criu" --version | head -n 1))"
}

# CRI-O and pinns, built inside CRI-O's own module (its go.sum decides every
# dependency, as for Karmada) with the build tags its Makefile picks on a
# Debian host without btrfs; pinns is C in the same module.
build_crio() {
  local stamp dir
  stamp="$(stamp_of_values "${CRIO_VERSION}" "${CRIO_BUILDTAGS}")"
  if stamp_matches "${CRIO_BIN}" "${stamp}"; then
    log "cri-o ${CRIO_VERSION}: cached in ${CRIO_BIN}"; return
  fi
  dir="$(go mod download -json "github.com/cri-o/cri-o@${CRIO_VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -d "${dir}" ]] || die "cri-o ${CRIO_VERSION} did not download"
  mkdir -p "${CRIO_BIN}"
  log "cri-o ${CRIO_VERSION}: building crio and pinns into ${CRIO_BIN} (cold: ~5 min on two cores)"
  (cd "${dir}" && CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags "${CRIO_BUILDTAGS}" \
    -ldflags "-s -w -X github.com/cri-o/cri-o/internal/version.buildDate=1970-01-01T00:00:00Z" \
    -o "${CRIO_BIN}/crio" ./cmd/crio)
  # pinns' Makefile writes ../bin/pinns: build a copy in a folder of its own.
  local work="${STATESHIFT_CACHE}/cri-o-${CRIO_VERSION}/work"
  rm -rf "${work}"; mkdir -p "${work}"; cp -r "${dir}/pinns" "${work}/pinns"; chmod -R u+w "${work}"
  make -C "${work}/pinns" > "${work}/make.log" 2>&1 || { cat "${work}/make.log" >&2; die "pinns: make failed"; }
  install -m 0755 "${work}/bin/pinns" "${CRIO_BIN}/pinns"
  rm -rf "${work}"
  echo "${stamp}" > "${CRIO_BIN}/.stamp"
  log "cri-o: done ($("${CRIO_BIN}/crio" --version 2>/dev/null | head -n 1))"
}

# promtool (the chart's alert rules: `promtool check rules` and `promtool
# test rules` over series scraped from a running stateshift) comes from
# Debian's prometheus package, downloaded and unpacked, not installed (no
# service, none of its web assets). Built from the Go module proxy it cost
# a cold CI run 7 minutes of CPU on its longest path, for one test; the
# rule language and test format it checks are the same.
# TOOLS_BIN/promtool is the binary, TOOLS_BIN/.promtool.version the
# package version it came from.
build_promtool() {
  local version work
  version="$(apt-cache policy "${PROMTOOL_DEBIAN_PACKAGE}" | awk '/Candidate:/ {print $2}')"
  [[ -n "${version}" && "${version}" != "(none)" ]] ||
    die "promtool: Debian has no ${PROMTOOL_DEBIAN_PACKAGE} package here (apt-get update?)"
  if [[ -x "${TOOLS_BIN}/promtool" && "$(cat "${TOOLS_BIN}/.promtool.version" 2>/dev/null)" == "${version}" ]]; then
    log "promtool (${PROMTOOL_DEBIAN_PACKAGE} ${version}): cached"; return
  fi
  log "promtool: unpacking Debian's ${PROMTOOL_DEBIAN_PACKAGE} ${version} into ${TOOLS_BIN}"
  mkdir -p "${TOOLS_BIN}"
  work="$(mktemp -d)"
  chmod 755 "${work}" # apt-get download runs as _apt where it can
  (cd "${work}" && apt-get download -qq "${PROMTOOL_DEBIAN_PACKAGE}=${version}" 2>&1 | grep -v "couldn't be accessed by user '_apt'" >&2 || true)
  local deb
  deb="$(ls "${work}"/*.deb 2>/dev/null | head -n 1)"
  [[ -n "${deb}" ]] || { rm -rf "${work}"; die "promtool: apt-get download ${PROMTOOL_DEBIAN_PACKAGE}=${version} failed"; }
  dpkg-deb -x "${deb}" "${work}/root"
  install -m 0755 "${work}/root/usr/bin/promtool" "${TOOLS_BIN}/.promtool.tmp"
  rm -rf "${work}"
  "${TOOLS_BIN}/.promtool.tmp" --version > /dev/null || die "promtool: the unpacked binary does not run"
  mv -f "${TOOLS_BIN}/.promtool.tmp" "${TOOLS_BIN}/promtool"
  echo "${version}" > "${TOOLS_BIN}/.promtool.version"
  log "promtool: done ($("${TOOLS_BIN}/promtool" --version 2>&1 | head -n 1))"
}

# locked NAME: runs build_NAME holding NAME's lock, waiting at most
# BUILD_LOCK_TIMEOUT seconds for another run's build of it (a cold
# Kubernetes build takes ~15 minutes on two cores).
locked() {
  local name="$1" lock
  mkdir -p "${STATESHIFT_CACHE}/.locks"
  lock="${STATESHIFT_CACHE}/.locks/${name}.lock"
  (
    flock -w "${BUILD_LOCK_TIMEOUT:-3600}" 8 || die "${name}: another build held ${lock} for ${BUILD_LOCK_TIMEOUT:-3600}s"
    "build_${name}"
  ) 8> "${lock}"
}

build_one() {
  case "$1" in
    kube | karmada | tools | helm | promtool | criu | crio) locked "$1" ;;
    node) locked criu; locked crio ;;
    all)
      # CRIU is a C build: it runs beside the Go builds, whose own
      # parallelism leaves a core idle while they link.
      mkdir -p "${STATESHIFT_CACHE}"
      locked criu > "${STATESHIFT_CACHE}/criu-build.log" 2>&1 &
      local criu_pid=$!
      locked tools; locked helm; locked promtool; locked kube; locked karmada; locked crio
      wait "${criu_pid}" || { cat "${STATESHIFT_CACHE}/criu-build.log" >&2; die "criu build failed"; }
      cat "${STATESHIFT_CACHE}/criu-build.log" >&2 ;;
    *) die "unknown target $1 (kube|karmada|tools|helm|promtool|criu|crio|node|all)" ;;
  esac
}

for what in "${@:-all}"; do
  build_one "${what}"
done
