#!/usr/bin/env bash
# Installs the Debian packages stateshift's tests and demo need: buildah (the
# image builder the agent runs), docker-registry (a real OCI registry for tests
# and local-up), fuse-overlayfs; for the real node: runc, conmon, the CNI
# plugins, iproute2, the build dependencies of CRIU (C, protobuf, libnl, ...)
# and CRI-O (cgo with libseccomp and gpgme), busybox-static and redis-server
# (the real-runtime test workloads are built from them), mmdebstrap (the
# images' Debian root file systems, hack/images.sh) and curl (its check
# that the webhook serves from its image). Idempotent:
# installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkgs=(buildah docker-registry fuse-overlayfs ca-certificates openssl
  runc conmon containernetworking-plugins iproute2 busybox-static redis-server patch
  build-essential pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  python3-protobuf libnl-3-dev libnet1-dev libcap-dev libaio-dev libbsd-dev libgnutls28-dev
  libnftables-dev libdrm-dev uuid-dev libseccomp-dev libgpgme-dev
  mmdebstrap curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  log "debian packages: all present (${pkgs[*]})"
  exit 0
fi
[[ $(id -u) == 0 ]] || die "need root to install ${missing[*]} (run: sudo $0)"
log "debian packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts nothing here (no systemd), and its own config enables
# htpasswd on all interfaces: stateshift always runs it with its own config.
log "debian packages: done"
