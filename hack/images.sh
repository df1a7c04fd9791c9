#!/usr/bin/env bash
# make images: builds the checkpoint-agent and interpreter-webhook images on
# this machine with buildah and nothing from a container registry:
#   - the binaries: static Go builds (CGO off, -trimpath) with the pinned
#     toolchain IMAGES_GO_TOOLCHAIN (GOTOOLCHAIN fetches it from the module
#     proxy when the installed go differs);
#   - the bases: root file systems made by mmdebstrap from Debian packages of
#     IMAGES_DEBIAN_SUITE (+ its -updates and -security suites) on the
#     configured mirror, cached under $STATESHIFT_CACHE/images by a hash of
#     their recipe; every package and version goes into the image at
#     /usr/share/stateshift/packages.txt and its digest into a label;
#   - the image: buildah from scratch, add the root file system and the
#     binary, config (user, entrypoint, labels), commit in OCI format.
# Then it checks each image without the network: its config, and that the
# binaries run inside it (buildah run --network none).
#
# webhook: base-files + netbase only (the files of distroless/static), the
#   binary at /interpreter-webhook, user 65532:65532.
# shell: static plus busybox-static (one static binary: sh, awk, sed,
# base64), for the chart's Job that applies objects to the Karmada API
# with kubectl.
recipe_shell() {
  printf '%s\n' --variant=extract --include=base-files,netbase,busybox-static --skip=output/dev,output/mknod \
    --skip=cleanup/apt/cache
}
finish_shell() {
  finish_static_with "$1" "$2" base-files netbase busybox-static
}

# agent: Debian's essential set + buildah, fuse-overlayfs, ca-certificates
#   (the agent runs buildah inside its own image and pushes over TLS), a
#   nonroot user 65532 with its own storage.conf (the DaemonSet runs it as
#   root for the kubelet's root-only archives).
#
# kubectl: busybox-static + kubectl of KUBE_VERSION (tagged KUBE_VERSION):
#   the chart's Jobs apply and delete stateshift's objects in the Karmada
#   API with it, as Karmada's own chart does with a kubectl image.
#
# Usage: hack/images.sh REGISTRY VERSION [agent|webhook|kubectl|all]
#        hack/images.sh --prepare: only what the builds cache (the bases, the
#        static kubectl, the pinned toolchain's compile of the binaries), for
#        make test to build in the background before its install phase.
# Env: IMAGES_OUT=DIR also writes <name>-<version>.oci.tar (oci-archive) there;
#      REFRESH_BASES=1 rebuilds the cached root file systems (new security
#      updates) even when their recipe has not changed.
# Push with: buildah push --authfile FILE <image>.
# For a registry-based build instead: Dockerfile.agent, Dockerfile.webhook.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "${ROOT_DIR}"
if [[ "${1:-}" == --prepare ]]; then
  registry="" version="" which_images=prepare
else
  registry="${1:?registry, e.g. ghcr.io/stateshift}"
  version="${2:?version, e.g. v0.1.0}"
  which_images="${3:-all}"
fi
out_dir="${IMAGES_OUT:-}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
IMAGES_CACHE="${STATESHIFT_CACHE}/images"
NONROOT_UID=65532

for tool in buildah mmdebstrap go; do
  command -v "${tool}" >/dev/null || die "${tool} not found (hack/install-debs.sh installs buildah and mmdebstrap)"
done
[[ $(id -u) == 0 ]] || die "images: run as root (mmdebstrap and buildah build root file systems)"

# Every source line: the suite, its updates and its security fixes.
debian_sources=(
  "deb ${DEBIAN_MIRROR} ${IMAGES_DEBIAN_SUITE} main"
  "deb ${DEBIAN_MIRROR} ${IMAGES_DEBIAN_SUITE}-updates main"
  "deb ${DEBIAN_SECURITY_MIRROR} ${IMAGES_DEBIAN_SUITE}-security main"
)

# base_rootfs NAME: prints the folder holding the cached root file system
# (rootfs.tar) and package list (packages.txt) of a base, building it when
# its recipe, the suite or the mirrors changed.
base_rootfs() {
  local name="$1" key dir
  local -a argv
  mapfile -t argv < <("recipe_${name}")
  key="$(printf '%s\n' "${IMAGES_DEBIAN_SUITE}" "${debian_sources[@]}" "${argv[@]}" "$(declare -f "finish_${name}" finish_static_with finish_tar)" \
    "$(mmdebstrap --version)" | sha256sum | cut -c1-16)"
  dir="${IMAGES_CACHE}/rootfs-${name}-${IMAGES_DEBIAN_SUITE}-${key}"
  if [[ -f "${dir}/rootfs.tar" && -s "${dir}/packages.txt" && -z "${REFRESH_BASES:-}" ]]; then
    log "base ${name}: cached (${dir})"; echo "${dir}"; return
  fi
  log "base ${name}: mmdebstrap ${IMAGES_DEBIAN_SUITE} into ${dir}"
  rm -rf "${dir}.tmp"; mkdir -p "${dir}.tmp"
  SOURCE_DATE_EPOCH="${IMAGES_SOURCE_DATE_EPOCH}" mmdebstrap --mode=root --format=directory "${argv[@]}" \
    "${IMAGES_DEBIAN_SUITE}" "${dir}.tmp/tree" "${debian_sources[@]}" > "${dir}.tmp/mmdebstrap.log" 2>&1 ||
    { tail -n 30 "${dir}.tmp/mmdebstrap.log" >&2; die "base ${name}: mmdebstrap failed (log: ${dir}.tmp/mmdebstrap.log)"; }
  "finish_${name}" "${dir}.tmp/tree" "${dir}.tmp" || die "base ${name}: finishing the root file system failed"
  [[ -s "${dir}.tmp/packages.txt" && -f "${dir}.tmp/rootfs.tar" ]] || die "base ${name}: no package list or tarball"
  rm -rf "${dir}.tmp/tree" "${dir}"; mv "${dir}.tmp" "${dir}"
  # Older recipes of this base are never used again.
  find "${IMAGES_CACHE}" -maxdepth 1 -name "rootfs-${name}-*" ! -name "$(basename "${dir}")" -exec rm -rf {} +
  log "base ${name}: $(wc -l < "${dir}/packages.txt") packages: $(paste -sd, "${dir}/packages.txt" | cut -c1-200)"
  echo "${dir}"
}

# finish_tar TREE OUT: a reproducible tarball of TREE, with the package list
# inside at /usr/share/stateshift/packages.txt.
finish_tar() {
  mkdir -p "$1/usr/share/stateshift"
  cp "$2/packages.txt" "$1/usr/share/stateshift/packages.txt"
  tar --sort=name --mtime="@${IMAGES_SOURCE_DATE_EPOCH}" --numeric-owner --xattrs -C "$1" -cf "$2/rootfs.tar" .
}

# recipe_<name>: the mmdebstrap arguments, one a line; finish_<name> TREE
# OUT: what the base keeps of mmdebstrap's tree. Both are the cache key.
#
# static: base-files and netbase only, the files of distroless/static
# (/etc/os-release, /etc/services, /etc/protocols, the FHS folders). The
# extract variant downloads them with their pre-dependencies (mawk, libc):
# those are not unpacked into the image, which has no shell and no libc.
recipe_static() {
  printf '%s\n' --variant=extract --include=base-files,netbase --skip=output/dev,output/mknod \
    --skip=cleanup/apt/cache
}
finish_static() {
  finish_static_with "$1" "$2" base-files netbase
}
# finish_static_with TREE OUT PACKAGE...: unpacks only the given packages.
finish_static_with() {
  local tree="$1" out="$2" root="$2/static" pkg deb
  shift 2
  rm -rf "${root}"; mkdir -p "${root}"
  : > "${out}/packages.txt"
  for pkg in "$@"; do
    deb="$(compgen -G "${tree}/var/cache/apt/archives/${pkg}_*.deb" | head -n 1)" || true
    [[ -f "${deb}" ]] || { log "static: ${pkg}'s .deb missing"; return 1; }
    dpkg-deb -x "${deb}" "${root}"
    dpkg-deb --showformat='${Package} ${Version}\n' -W "${deb}" >> "${out}/packages.txt"
  done
  # busybox's applets as links (busybox is static: it runs in the chroot).
  if [[ -x "${root}/bin/busybox" ]]; then
    chroot "${root}" /bin/busybox --install -s /bin
  fi
  mkdir -p "${root}/tmp" "${root}/home/nonroot"
  chmod 1777 "${root}/tmp"
  chown "${NONROOT_UID}:${NONROOT_UID}" "${root}/home/nonroot"
  printf '%s\n' "root:x:0:0:root:/root:/usr/sbin/nologin" \
    "nonroot:x:${NONROOT_UID}:${NONROOT_UID}:nonroot:/home/nonroot:/usr/sbin/nologin" > "${root}/etc/passwd"
  printf '%s\n' "root:x:0:" "nonroot:x:${NONROOT_UID}:" > "${root}/etc/group"
  finish_tar "${root}" "${out}"
  rm -rf "${root}"
}

# shell: static plus busybox-static (one static binary: sh, awk, sed,
# base64), for the chart's Job that applies objects to the Karmada API
# with kubectl.
recipe_shell() {
  printf '%s\n' --variant=extract --include=base-files,netbase,busybox-static --skip=output/dev,output/mknod \
    --skip=cleanup/apt/cache
}
finish_shell() {
  finish_static_with "$1" "$2" base-files netbase busybox-static
}

# agent: Debian's essential set (dpkg, coreutils, a shell for debugging)
# with buildah and what it needs beside the binary, without documentation.
recipe_agent() {
  printf '%s\n' --variant=essential --include=buildah,fuse-overlayfs,ca-certificates,uidmap,passwd \
    '--dpkgopt=path-exclude=/usr/share/doc/*' '--dpkgopt=path-include=/usr/share/doc/*/copyright' \
    '--dpkgopt=path-exclude=/usr/share/man/*' '--dpkgopt=path-exclude=/usr/share/locale/*' \
    '--dpkgopt=path-exclude=/usr/share/info/*'
}
finish_agent() {
  local tree="$1" out="$2"
  chroot "${tree}" dpkg-query -W -f '${Package} ${Version}\n' | sort > "${out}/packages.txt"
  chroot "${tree}" groupadd -g "${NONROOT_UID}" nonroot
  chroot "${tree}" useradd -u "${NONROOT_UID}" -g nonroot -d /home/nonroot -m -s /usr/sbin/nologin nonroot
  # buildah's own storage for rootless use of the image.
  mkdir -p "${tree}/home/nonroot/.config/containers" "${tree}/home/nonroot/.local/share/containers"
  printf '%s\n' '[storage]' 'driver = "overlay"' > "${tree}/home/nonroot/.config/containers/storage.conf"
  chown -R "${NONROOT_UID}:${NONROOT_UID}" "${tree}/home/nonroot"
  rm -rf "${tree}"/var/lib/apt/lists/* "${tree}"/var/cache/apt/* "${tree}"/var/cache/ldconfig/aux-cache \
    "${tree}"/var/log/* "${tree}"/etc/machine-id "${tree}"/etc/hostname "${tree}"/etc/resolv.conf
  finish_tar "${tree}" "${out}"
}

# build_kubectl OUT: a static kubectl of KUBE_VERSION from hack/tools/kube
# (the cached one of build-deps.sh links libc), cached by version.
build_kubectl() {
  local dir="${IMAGES_CACHE}/kubectl-${KUBE_VERSION}-${IMAGES_GO_TOOLCHAIN}"
  if [[ ! -x "${dir}/kubectl" ]]; then
    local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}"
    ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
    ld+=" -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
    log "go build kubectl ${KUBE_VERSION} static (cold: ~5 min on two cores)"
    mkdir -p "${dir}"
    (cd "${HACK_DIR}/tools/kube" && GOTOOLCHAIN="${IMAGES_GO_TOOLCHAIN}" CGO_ENABLED=0 go build -trimpath \
      -ldflags "${ld}" -o "${dir}/kubectl.tmp" ./kubectl) && mv "${dir}/kubectl.tmp" "${dir}/kubectl"
  fi
  cp "${dir}/kubectl" "$1"
}

# go_build_static ARGS...: go build as the images' binaries are built (the
# pinned toolchain, static, trimmed); --prepare warms the same cache.
go_build_static() {
  GOTOOLCHAIN="${IMAGES_GO_TOOLCHAIN}" CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath "$@"
}

# build_binary PKG OUT: the static binary, with the pinned toolchain.
build_binary() {
  log "go build ./cmd/$1 (${IMAGES_GO_TOOLCHAIN})"
  go_build_static \
    -ldflags "-s -w -X github.com/stateshift/stateshift/pkg/version.Version=${version}" -o "$2" "./cmd/$1"
}

# assemble IMAGE BASE_DIR BINARY DEST USER: from scratch, commit, and label
# with what it was made of.
assemble() {
  local image="$1" base="$2" binary="$3" dest="$4" user="$5" ctr revision created
  revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  created="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
  ctr="$(buildah from --format oci scratch)"
  # Remove the working container also when a step fails.
  trap "buildah rm '${ctr}' >/dev/null 2>&1 || true; trap - RETURN" RETURN
  buildah add --quiet "${ctr}" "${base}/rootfs.tar" / > /dev/null
  buildah copy --quiet --chmod 0755 "${ctr}" "${binary}" "${dest}" > /dev/null
  buildah config --user "${user}" --entrypoint "[\"${dest}\"]" --cmd '' --workingdir / \
    --env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    --label "org.opencontainers.image.title=$(basename "${dest}")" \
    --label "org.opencontainers.image.source=https://github.com/stateshift/stateshift" \
    --label "org.opencontainers.image.version=${version}" \
    --label "org.opencontainers.image.revision=${revision}" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    --label "io.stateshift.debian-suite=${IMAGES_DEBIAN_SUITE}" \
    --label "io.stateshift.debian-packages-sha256=$(sha256sum < "${base}/packages.txt" | cut -d' ' -f1)" \
    --label "io.stateshift.go-toolchain=${IMAGES_GO_TOOLCHAIN}" \
    "${ctr}"
  local previous
  previous="$(buildah images --quiet --no-trunc "${image}" 2>/dev/null || true)"
  buildah commit --quiet --format oci --identity-label=false --squash --timestamp "${created}" "${ctr}" "${image}" > /dev/null
  # The tag moved: the image it named before is nobody's now.
  if [[ -n "${previous}" && "${previous}" != "$(buildah images --quiet --no-trunc "${image}")" ]]; then
    buildah rmi "${previous}" > /dev/null 2>&1 || true
  fi
  if [[ -n "${out_dir}" ]]; then
    mkdir -p "${out_dir}"
    rm -f "${out_dir}/$(basename "${dest}")-${version}.oci.tar"
    buildah push --quiet "${image}" "oci-archive:${out_dir}/$(basename "${dest}")-${version}.oci.tar:${image}" > /dev/null
  fi
  log "built ${image}"
}

# check IMAGE DEST USER CMD...: the config as the charts expect it, and the
# command run inside the image without network.
check() {
  local image="$1" dest="$2" user="$3"; shift 3
  local got ctr
  got="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}' "${image}")"
  [[ "${got}" == "${user}|[${dest}]|${version}" ]] || die "${image}: config user|entrypoint|version = ${got}, want ${user}|[${dest}]|${version}"
  ctr="$(buildah from --pull-never "${image}")"
  trap "buildah rm '${ctr}' >/dev/null 2>&1 || true; trap - RETURN" RETURN
  local cmd
  for cmd in "$@"; do
    # shellcheck disable=SC2086 # each check is a command line
    out="$(buildah run --network none --user "${user}" "${ctr}" -- ${cmd} 2>&1)" || die "${image}: '${cmd}' failed: ${out}"
    log "${image}: ${cmd}: $(head -n 1 <<<"${out}")"
  done
}

# check_agent_builds IMAGE: the agent's own use of buildah works inside its
# image (as the DaemonSet runs it, as root): from scratch, add, config
# --annotation, commit, push, here to an OCI archive with vfs storage.
check_agent_builds() {
  local ctr out
  ctr="$(buildah from --pull-never "$1")"
  trap "buildah rm '${ctr}' >/dev/null 2>&1 || true; trap - RETURN" RETURN
  out="$(timeout 300 buildah run --network none --user 0:0 "${ctr}" -- /bin/sh -ec '
    cd /tmp && echo checkpoint > archive && b="buildah --storage-driver vfs --root /tmp/s --runroot /tmp/r"
    c=$($b from scratch); $b add "$c" archive /archive; $b config --annotation io.stateshift.check=1 "$c"
    $b commit --quiet --format oci "$c" localhost/check:1; $b push --quiet localhost/check:1 oci-archive:/tmp/check.tar
    test -s /tmp/check.tar && echo "buildah builds and pushes inside the image"' 2>&1)" ||
    die "$1: buildah does not build inside the image: ${out}"
  log "$1: $(tail -n 1 <<<"${out}")"
}

# check_webhook_serves IMAGE: the webhook serves from its image as the
# nonroot user: its root file system chrooted in a network namespace of
# its own (loopback only), a serving certificate made here, /readyz
# answers and the interpreter port completes a TLS handshake verified
# against the CA.
check_webhook_serves() {
  local ctr mnt certs out
  ctr="$(buildah from --pull-never "$1")"
  trap "buildah umount '${ctr}' >/dev/null 2>&1; buildah rm '${ctr}' >/dev/null 2>&1 || true; trap - RETURN" RETURN
  mnt="$(buildah mount "${ctr}")"
  certs="${mnt}/tmp/certs"
  mkdir -p "${certs}"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=check-ca \
    -keyout "${work}/ca.key" -out "${work}/ca.crt" 2> /dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "${certs}/tls.key" -out "${work}/tls.csr" 2> /dev/null
  openssl x509 -req -in "${work}/tls.csr" -CA "${work}/ca.crt" -CAkey "${work}/ca.key" -CAcreateserial -days 1 \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') -out "${certs}/tls.crt" 2> /dev/null
  chown -R "${NONROOT_UID}:${NONROOT_UID}" "${certs}"; chmod 0500 "${certs}"; chmod 0400 "${certs}"/*
  out="$(timeout 60 unshare --net bash -ec '
    ip link set lo up
    chroot --userspec='"${NONROOT_UID}:${NONROOT_UID}"' "$1" /interpreter-webhook --bind-address=127.0.0.1 --secure-port=8443 \
      --cert-dir=/tmp/certs --metrics-bind-address=0 --health-probe-bind-address=127.0.0.1:8000 > "$2/webhook.log" 2>&1 &
    trap "kill $! 2>/dev/null || true" EXIT
    for i in $(seq 1 50); do curl -fsS --max-time 2 http://127.0.0.1:8000/readyz > /dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS --max-time 2 http://127.0.0.1:8000/readyz > /dev/null || { cat "$2/webhook.log"; exit 1; }
    code="$(curl -sS --max-time 5 --cacert "$2/ca.crt" -o /dev/null -w "%{http_code}" https://127.0.0.1:8443/interpreter)"
    echo "serves as ${0:-nonroot}: /readyz ok, https://127.0.0.1:8443/interpreter verified TLS, HTTP ${code}"' \
    nonroot "${mnt}" "${work}" 2>&1)" || die "$1: the webhook does not serve from its image: ${out}"
  log "$1: ${out}"
}

work="$(mktemp -d)"; trap 'rm -rf "${work}"' EXIT
if [[ "${which_images}" == prepare ]]; then
  started=${SECONDS}
  for name in static agent shell; do base_rootfs "${name}" > /dev/null; done
  build_kubectl "${work}/kubectl"
  # The binaries' packages, compiled as build_binary compiles them (the
  # link is cheap and depends on the version, so it is left to the build).
  log "go build (compile only) ./cmd/interpreter-webhook ./cmd/checkpoint-agent (${IMAGES_GO_TOOLCHAIN})"
  go_build_static ./cmd/interpreter-webhook ./cmd/checkpoint-agent
  log "images: prepared in $((SECONDS - started))s"
  exit 0
fi
if [[ "${which_images}" == all || "${which_images}" == webhook ]]; then
  base="$(base_rootfs static)"
  build_binary interpreter-webhook "${work}/interpreter-webhook"
  image="${registry}/interpreter-webhook:${version}"
  assemble "${image}" "${base}" "${work}/interpreter-webhook" /interpreter-webhook "${NONROOT_UID}:${NONROOT_UID}"
  check "${image}" /interpreter-webhook "${NONROOT_UID}:${NONROOT_UID}" "/interpreter-webhook --help"
  check_webhook_serves "${image}"
fi
if [[ "${which_images}" == all || "${which_images}" == agent ]]; then
  base="$(base_rootfs agent)"
  build_binary checkpoint-agent "${work}/checkpoint-agent"
  image="${registry}/checkpoint-agent:${version}"
  assemble "${image}" "${base}" "${work}/checkpoint-agent" /usr/local/bin/checkpoint-agent "${NONROOT_UID}:${NONROOT_UID}"
  check "${image}" /usr/local/bin/checkpoint-agent "${NONROOT_UID}:${NONROOT_UID}" \
    "/usr/local/bin/checkpoint-agent version" "buildah --version" "fuse-overlayfs --version"
  check_agent_builds "${image}"
fi
if [[ "${which_images}" == all || "${which_images}" == kubectl ]]; then
  base="$(base_rootfs shell)"
  build_kubectl "${work}/kubectl"
  image="${registry}/kubectl:${KUBE_VERSION}"
  version="${KUBE_VERSION}" assemble "${image}" "${base}" "${work}/kubectl" /usr/local/bin/kubectl "${NONROOT_UID}:${NONROOT_UID}"
  version="${KUBE_VERSION}" check "${image}" /usr/local/bin/kubectl "${NONROOT_UID}:${NONROOT_UID}" \
    "/usr/local/bin/kubectl version --client" "/bin/sh -c true" "awk BEGIN{exit}" "base64 -w0 /etc/os-release" "timeout 1 true" "sed -n 1p /etc/os-release"
fi
case "${which_images}" in all|agent|webhook|kubectl) ;; *) die "unknown image set ${which_images} (agent|webhook|kubectl|all)" ;; esac
log "images: done"
