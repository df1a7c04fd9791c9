# The real node's test workloads, built on this machine (nothing is pulled)
# with buildah from scratch and pushed to the local registry:
#
#   REGISTRY_HOST/stateshift-test/memstate:v1   test/realnode/memstate (static)
#                                               + busybox; state only in memory
#   REGISTRY_HOST/stateshift-test/redis:v1      Debian's redis-server and
#                                               redis-cli with their shared
#                                               libraries + busybox
#
# buildah keeps its own storage in RUN_DIR/workload-images (vfs: plain
# folders, no mounts left behind for local-down to trip over). An image is
# rebuilt only when its inputs (binaries, libraries, this recipe) changed,
# and pushed on every call: a push of blobs the registry has is cheap, and the
# registry may have been wiped. Layers and the config are stamped with the
# epoch, so equal inputs give the same image digest in every run folder.
# After a push, RUN_DIR/workload-images/<name>.digest holds the manifest
# digest. Source after hack/lib.sh and hack/local/lib.sh.

WORKLOAD_IMAGES_DIR="${RUN_DIR}/workload-images"
WORKLOAD_IMAGES_RECIPE="$(readlink -f "${BASH_SOURCE[0]}")"
WORKLOAD_IMAGES_REPO=stateshift-test
WORKLOAD_IMAGES_TAG=v1
MEMSTATE_PKG=./test/realnode/memstate

# build_workload_images REGISTRY_HOST [AUTH_FILE]: builds (when needed) and
# pushes both images to REGISTRY_HOST (plain HTTP), with the dockerconfigjson
# AUTH_FILE when the registry wants credentials.
build_workload_images() {
  local host="${1:-}" authfile="${2:-}" started=${SECONDS}
  [[ -n "${host}" ]] || die "build_workload_images: usage: build_workload_images REGISTRY_HOST [AUTH_FILE]"
  [[ -z "${authfile}" || -r "${authfile}" ]] || die "workload images: auth file ${authfile} is not readable"
  command -v buildah > /dev/null || die "workload images: buildah is missing (hack/install-debs.sh installs it)"
  [[ -x /bin/busybox ]] || die "workload images: /bin/busybox is missing (hack/install-debs.sh installs busybox-static)"
  local b
  for b in /usr/bin/redis-server /usr/bin/redis-cli; do
    [[ -x "${b}" ]] || die "workload images: ${b} is missing (hack/install-debs.sh installs redis-server)"
  done
  mkdir -p "${WORKLOAD_IMAGES_DIR}" "${LOG_DIR}"
  # The host's /etc/containers/policy.json may be missing or strict; these
  # images are our own.
  printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' > "${WORKLOAD_IMAGES_DIR}/policy.json"

  build_pause_image "${host}"
  push_workload_image pause "${host}" "${authfile}"
  build_memstate_image "${host}"
  push_workload_image memstate "${host}" "${authfile}"
  build_redis_image "${host}"
  push_workload_image redis "${host}" "${authfile}"
  log "workload images: ready in $((SECONDS - started))s (digests in ${WORKLOAD_IMAGES_DIR}/*.digest)"
}

workload_image_ref() { echo "$2/${WORKLOAD_IMAGES_REPO}/$1:${WORKLOAD_IMAGES_TAG}"; }

# workload_storage_buildah ARGS...: buildah on our own storage.
workload_storage_buildah() {
  buildah --root "${WORKLOAD_IMAGES_DIR}/storage" --runroot "${WORKLOAD_IMAGES_DIR}/run" \
    --storage-driver vfs "$@" 9>&-
}

# workload_buildah ARGS...: the same, output appended to
# logs/workload-images.log; on failure, that log's tail and die.
workload_buildah() {
  local logf="${LOG_DIR}/workload-images.log"
  printf '+ %s buildah %s\n' "$(date +%H:%M:%S)" "$*" >> "${logf}"
  if ! workload_storage_buildah "$@" >> "${logf}" 2>&1; then
    tail -n 20 "${logf}" >&2
    die "workload images: buildah $1 failed (log: ${logf})"
  fi
}

# workload_image_current NAME HOST INPUTS: true when the image built from
# INPUTS (a text naming every input with its sha256) is in our storage.
workload_image_current() {
  local stamp="${WORKLOAD_IMAGES_DIR}/$1.inputs"
  [[ -f "${stamp}" && "$(cat "${stamp}")" == "$3" ]] || return 1
  workload_storage_buildah inspect --type image "$(workload_image_ref "$1" "$2")" > /dev/null 2>&1
}

# workload_image_inputs FILE...: "sha256  path" of every FILE and of this
# recipe: what decides whether an image must be rebuilt.
workload_image_inputs() {
  sha256sum "${WORKLOAD_IMAGES_RECIPE}" "$@" || die "workload images: cannot hash inputs $*"
}

# add_busybox ROOTFS: Debian's static busybox as /bin/busybox and a symlink
# in /bin for every applet, so `kubectl exec POD -- sh` works.
add_busybox() {
  local root="$1" applet
  mkdir -p "${root}/bin"
  cp /bin/busybox "${root}/bin/busybox"
  if [[ ${EUID} == 0 ]]; then
    # One process instead of ~270 forks of ln (seconds on a busy machine).
    chroot "${root}" /bin/busybox --install -s /bin 9>&- ||
      die "workload images: busybox --install in ${root} failed"
    return 0
  fi
  for applet in $(/bin/busybox --list); do
    [[ "${applet}" == busybox || -e "${root}/bin/${applet}" ]] || ln -s busybox "${root}/bin/${applet}"
  done
}

# check_rootfs ROOTFS CMD...: runs CMD chrooted in ROOTFS (root only; the
# real node needs root anyway).
check_rootfs() {
  local root="$1"; shift
  if [[ ${EUID} != 0 ]]; then
    log "workload images: not root, not checking ${root} with chroot"
    return 0
  fi
  local out
  out="$(chroot "${root}" "$@" 2>&1 9>&-)" || die "workload images: '$*' does not run in ${root}: ${out}"
}

# commit_workload_image NAME HOST ROOTFS INPUTS BUILDAH-CONFIG-ARGS...: a
# scratch image holding ROOTFS, configured, committed as NAME's reference.
commit_workload_image() {
  local name="$1" host="$2" root="$3" inputs="$4"; shift 4
  local ctr="stateshift-${name}-build"
  rm -f "${WORKLOAD_IMAGES_DIR}/${name}.inputs"
  # A build that died half-way leaves its working container behind.
  workload_storage_buildah rm "${ctr}" > /dev/null 2>&1 || true
  workload_buildah from --name "${ctr}" scratch
  workload_buildah copy "${ctr}" "${root}/" /
  workload_buildah config --env PATH=/usr/bin:/bin --workingdir / "$@" "${ctr}"
  workload_buildah commit --signature-policy "${WORKLOAD_IMAGES_DIR}/policy.json" \
    --timestamp 0 --identity-label=false --rm "${ctr}" "$(workload_image_ref "${name}" "${host}")"
  echo "${inputs}" > "${WORKLOAD_IMAGES_DIR}/${name}.inputs"
}

# The real nodes' pause image (test/realnode/pause), a static C program:
# CRI-O pulls its pause image even when it drops infra containers, and
# registry.k8s.io is out of reach (and out of bounds) here.
build_pause_image() {
  local host="$1" dir="${WORKLOAD_IMAGES_DIR}/pause" ref src="${ROOT_DIR}/test/realnode/pause/pause.c"
  ref="$(workload_image_ref pause "${host}")"
  mkdir -p "${dir}"
  local inputs
  inputs="$(workload_image_inputs "${src}")" || exit 1
  if workload_image_current pause "${host}" "${inputs}"; then
    log "workload images: ${ref} is up to date"
    return 0
  fi
  log "workload images: building ${ref}"
  local root="${dir}/rootfs"
  rm -rf "${root}"; mkdir -p "${root}"
  gcc -static -Os -Wall -Werror -o "${root}/pause" "${src}" ||
    die "workload images: cannot compile ${src} (gcc with static glibc: build-essential)"
  strip "${root}/pause"
  commit_workload_image pause "${host}" "${root}" "${inputs}" --entrypoint '["/pause"]'
}

build_memstate_image() {
  local host="$1" dir="${WORKLOAD_IMAGES_DIR}/memstate" ref
  ref="$(workload_image_ref memstate "${host}")"
  mkdir -p "${dir}"
  # Go's build cache makes this quick when nothing changed (cold: minutes).
  # A restart (STATESHIFT_LOCAL_REUSE_BINARIES=1, see build_go_binary)
  # keeps the binary it has.
  if [[ "${STATESHIFT_LOCAL_REUSE_BINARIES:-}" == 1 && -x "${dir}/memstate" ]]; then
    log "workload images: reusing ${dir}/memstate"
  else
    log "workload images: go build ${MEMSTATE_PKG}"
    if ! (cd "${ROOT_DIR}" && CGO_ENABLED=0 go build -trimpath -o "${dir}/memstate" "${MEMSTATE_PKG}") \
      > "${LOG_DIR}/build-memstate.log" 2>&1; then
      tail -n 20 "${LOG_DIR}/build-memstate.log" >&2
      die "workload images: go build ${MEMSTATE_PKG} failed (log: ${LOG_DIR}/build-memstate.log)"
    fi
  fi
  local inputs
  inputs="$(workload_image_inputs "${dir}/memstate" /bin/busybox)" || exit 1
  if workload_image_current memstate "${host}" "${inputs}"; then
    log "workload images: ${ref} is up to date"
    return 0
  fi
  log "workload images: building ${ref}"
  local root="${dir}/rootfs"
  rm -rf "${root}"
  mkdir -p "${root}/tmp"
  chmod 1777 "${root}/tmp"
  cp "${dir}/memstate" "${root}/memstate"
  add_busybox "${root}"
  ln -s ../memstate "${root}/bin/memstate"
  check_rootfs "${root}" /memstate help
  check_rootfs "${root}" /bin/sh -c 'echo ok'
  commit_workload_image memstate "${host}" "${root}" "${inputs}" \
    --entrypoint '["/memstate","serve"]' --cmd '["--mib","8"]'
}

build_redis_image() {
  local host="$1" dir="${WORKLOAD_IMAGES_DIR}/redis" ref
  ref="$(workload_image_ref redis "${host}")"
  mkdir -p "${dir}"
  local bins=(/usr/bin/redis-server /usr/bin/redis-cli) libs=() out b p
  # Every absolute path ldd prints: the libraries and the dynamic loader.
  for b in "${bins[@]}"; do
    out="$(ldd "${b}")" || die "workload images: ldd ${b} failed: ${out}"
    if grep -q 'not found' <<< "${out}"; then
      die "workload images: ${b} misses shared libraries: $(grep 'not found' <<< "${out}" | tr -s ' \t\n' ' ')"
    fi
    for p in $(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' <<< "${out}"); do
      libs+=("${p}")
    done
  done
  mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
  local inputs
  inputs="$(workload_image_inputs "${bins[@]}" "${libs[@]}" /bin/busybox)" || exit 1
  if workload_image_current redis "${host}" "${inputs}"; then
    log "workload images: ${ref} is up to date"
    return 0
  fi
  log "workload images: building ${ref} (${#libs[@]} shared libraries)"
  local root="${dir}/rootfs"
  rm -rf "${root}"
  mkdir -p "${root}/tmp" "${root}/etc" "${root}/usr/bin"
  chmod 1777 "${root}/tmp"
  for b in "${bins[@]}"; do cp "${b}" "${root}${b}"; done
  # Each at the path ldd names (/lib/x86_64-linux-gnu/..., /lib64/ld-linux-...):
  # the loader's default search path covers them without an ld.so.cache.
  for p in "${libs[@]}"; do
    mkdir -p "${root}$(dirname "${p}")"
    cp -L "${p}" "${root}${p}"
  done
  add_busybox "${root}"
  printf 'root:x:0:0:root:/root:/bin/sh\nredis:x:999:999:redis:/tmp:/bin/false\n' > "${root}/etc/passwd"
  printf 'root:x:0:\nredis:x:999:\n' > "${root}/etc/group"
  check_rootfs "${root}" /usr/bin/redis-server --version
  check_rootfs "${root}" /usr/bin/redis-cli --version
  # Working dir /tmp: redis's `dir` (where a SAVE would write) is writable
  # as root and as the redis user (runAsUser: 999).
  commit_workload_image redis "${host}" "${root}" "${inputs}" \
    --workingdir /tmp \
    --entrypoint '["/usr/bin/redis-server"]' \
    --cmd '["--save","","--appendonly","no","--bind","127.0.0.1","--port","6379","--protected-mode","no"]'
}

# push_workload_image NAME HOST AUTH_FILE: pushes NAME's image and records
# its manifest digest in NAME.digest. The registry keeps its data in the run
# folder across restarts: an image already pushed from the same inputs to
# the same host is not pushed again (a re-run of local-up after a test
# stopped components stays quick).
push_workload_image() {
  local name="$1" host="$2" authfile="$3" ref pushed
  ref="$(workload_image_ref "${name}" "${host}")"
  pushed="${WORKLOAD_IMAGES_DIR}/${name}.pushed"
  if [[ -s "${WORKLOAD_IMAGES_DIR}/${name}.digest" && -f "${pushed}" &&
    "$(cat "${pushed}")" == "${host} $(cat "${WORKLOAD_IMAGES_DIR}/${name}.inputs" 2>/dev/null)" ]]; then
    log "workload images: ${ref}@$(cat "${WORKLOAD_IMAGES_DIR}/${name}.digest") already pushed"
    return 0
  fi
  rm -f "${pushed}"
  local args=(--signature-policy "${WORKLOAD_IMAGES_DIR}/policy.json" --tls-verify=false
    --digestfile "${WORKLOAD_IMAGES_DIR}/${name}.digest")
  [[ -n "${authfile}" ]] && args+=(--authfile "${authfile}")
  workload_buildah push "${args[@]}" "${ref}" "docker://${ref}"
  echo "${host} $(cat "${WORKLOAD_IMAGES_DIR}/${name}.inputs")" > "${pushed}"
  log "workload images: pushed ${ref}@$(cat "${WORKLOAD_IMAGES_DIR}/${name}.digest")"
}
