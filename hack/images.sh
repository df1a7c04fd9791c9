#!/usr/bin/env bash
# make images: builds the checkpoint-agent and interpreter-webhook images from
# Dockerfile.agent and Dockerfile.webhook with buildah bud (or docker build),
# tagged <registry>/<name>:<version>, as the product's build-and-push script
# did. Push with: buildah push <image> (credentials via --authfile).
# Needs network access to the base images (golang, alpine, distroless).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "${ROOT_DIR}"
registry="${1:?registry, e.g. ghcr.io/stateshift}"
version="${2:?version, e.g. v0.1.0}"

if command -v buildah >/dev/null; then
  build() { buildah bud --format oci --layers --build-arg "VERSION=${version}" -f "$1" -t "$2" .; }
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  build() { docker build --build-arg "VERSION=${version}" -f "$1" -t "$2" .; }
else
  die "neither buildah nor a running docker engine found (hack/install-debs.sh installs buildah)"
fi
build Dockerfile.agent "${registry}/checkpoint-agent:${version}"
build Dockerfile.webhook "${registry}/interpreter-webhook:${version}"
log "built ${registry}/checkpoint-agent:${version} and ${registry}/interpreter-webhook:${version}"
