# The OCI registry of a local environment: Debian's docker-registry
# (distribution 2.8) with its own config on 127.0.0.1:$REGISTRY_PORT, storage
# in RUN_DIR/registry/data, delete enabled. REGISTRY_AUTH=1 turns on htpasswd
# auth: a random password (RUN_DIR/registry/password, 0600), a
# dockerconfigjson auth file (RUN_DIR/registry/auth.json, 0600) and the Secret
# stateshift-system/checkpoint-registry (the name the README and
# artifacts/examples use) made from it in every cluster.
# Source after hack/local/lib.sh.

REGISTRY_HOST="127.0.0.1:${REGISTRY_PORT}"
REGISTRY_USER=stateshift
REGISTRY_SECRET=checkpoint-registry
STATESHIFT_NAMESPACE=stateshift-system

write_registry_auth() {
  local dir="$1"
  if [[ ! -f "${dir}/password" ]]; then
    (umask 077 && openssl rand -hex 16 > "${dir}/password")
  fi
  if [[ ! -f "${dir}/htpasswd" ]]; then
    (cd "${ROOT_DIR}" && go build -o "${RUN_DIR}/bin/htpasswd" ./hack/local/htpasswd)
    (umask 077 && "${RUN_DIR}/bin/htpasswd" "${REGISTRY_USER}" < "${dir}/password" > "${dir}/htpasswd")
  fi
  local basic
  basic="$(printf '%s:%s' "${REGISTRY_USER}" "$(cat "${dir}/password")" | base64 -w0)"
  (umask 077 && printf '{"auths":{"%s":{"auth":"%s"}}}\n' "${REGISTRY_HOST}" "${basic}" > "${dir}/auth.json")
}

start_registry() {
  local dir="${RUN_DIR}/registry" auth=""
  mkdir -p "${dir}/data" "${RUN_DIR}/bin"
  local want_auth=0 has_auth=0
  [[ "${REGISTRY_AUTH:-0}" == 1 ]] && want_auth=1
  grep -q '^auth:' "${dir}/config.yml" 2>/dev/null && has_auth=1
  if is_running registry && ((want_auth != has_auth)); then
    die "registry already runs with htpasswd auth $( ((has_auth)) && echo on || echo off); REGISTRY_AUTH=${REGISTRY_AUTH:-0} asks otherwise: run hack/local-down.sh first"
  fi
  if ((want_auth)); then
    write_registry_auth "${dir}"
    auth="auth:
  htpasswd:
    realm: stateshift-local
    path: ${dir}/htpasswd"
  fi
  if ! is_running registry; then
    (umask 077 && cat > "${dir}/config.yml" <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${dir}/data
  delete:
    enabled: true
http:
  addr: ${REGISTRY_HOST}
  secret: $(openssl rand -hex 16)
${auth}
CFG
    )
  fi
  # docker-registry reads REGISTRY_* environment variables as config
  # overrides (REGISTRY_AUTH=1 would become its `auth` section): start it
  # without them.
  (
    for v in $(compgen -e | grep '^REGISTRY_' || true); do unset "${v}"; done
    start_proc registry "$(command -v docker-registry)" serve "${dir}/config.yml"
  )
  wait_for registry 30 http_up "http://${REGISTRY_HOST}/v2/"
  # In chart mode the registry Secret is the operator's to make (the
  # install test makes it as the README says).
  if [[ -f "${dir}/auth.json" && "${LOCAL_MODE}" != chart ]]; then
    local c
    for c in karmada "${MEMBERS[@]}"; do
      kubectl_for "${c}" create namespace "${STATESHIFT_NAMESPACE}" --dry-run=client -o yaml |
        kubectl_for "${c}" apply -f - > /dev/null
      kubectl_for "${c}" -n "${STATESHIFT_NAMESPACE}" create secret generic "${REGISTRY_SECRET}" \
        --type kubernetes.io/dockerconfigjson --from-file ".dockerconfigjson=${dir}/auth.json" \
        --dry-run=client -o yaml | kubectl_for "${c}" apply -f - > /dev/null
    done
    log "registry: htpasswd auth on; Secret ${STATESHIFT_NAMESPACE}/${REGISTRY_SECRET} in karmada, ${MEMBERS[*]}"
  fi
}
