# Simulated nodes: one test/nodesim process per member cluster plays the
# kubelet and container runtime (registers a Ready Node, runs the pods bound
# to it, serves the kubelet checkpoint API on NODE_IP:10250). It signs in with
# a node client certificate (system:node:<name>, group system:nodes), so the
# Node authorizer and RBAC treat it as a kubelet. Source after lib.sh/pki.sh.

NODESIM_PKG=./test/nodesim/cmd/nodesim

node_name() { echo "$1-node"; }

# build_go_binary NAME PKG: go build PKG into RUN_DIR/bin/NAME; false (with a
# "skipping" line) when the package does not exist yet or does not build.
build_go_binary() {
  local name="$1" pkg="$2"
  if ! compgen -G "${ROOT_DIR}/${pkg#./}/*.go" > /dev/null; then
    log "skipping: ${name} not built yet (no Go package at ${pkg})"
    return 1
  fi
  mkdir -p "${RUN_DIR}/bin"
  if ! (cd "${ROOT_DIR}" && go build -o "${RUN_DIR}/bin/${name}.new" "${pkg}") > "${LOG_DIR}/build-${name}.log" 2>&1; then
    log "skipping: ${name} does not build yet (see ${LOG_DIR}/build-${name}.log):"
    tail -n 10 "${LOG_DIR}/build-${name}.log" >&2
    return 1
  fi
  # A running process keeps its (replaced) binary; a new start uses the new one.
  if is_running "${name}" || compgen -G "${PID_DIR}/${name}-*.pid" > /dev/null; then
    if cmp -s "${RUN_DIR}/bin/${name}.new" "${RUN_DIR}/bin/${name}"; then
      rm -f "${RUN_DIR}/bin/${name}.new"
      return 0
    fi
  fi
  mv -f "${RUN_DIR}/bin/${name}.new" "${RUN_DIR}/bin/${name}"
}

node_ready() {
  [[ "$(kubectl_for "$1" get node "$2" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

start_nodes() {
  build_go_binary nodesim "${NODESIM_PKG}" || return 0
  local m node dir
  for m in "${MEMBERS[@]}"; do
    node="$(node_name "${m}")"
    dir="${RUN_DIR}/${m}/${node}"
    mkdir -p "${dir}/checkpoints" "${dir}/data"
    new_cert ca "${PKI_DIR}/node-${node}" "/O=system:nodes/CN=system:node:${node}"
    write_kubeconfig "${dir}/kubeconfig" "https://127.0.0.1:${MEMBER_APISERVER_PORT[${m}]}" \
      "${PKI_DIR}/node-${node}" "system:node:${node}"
    start_proc "nodesim-${m}" "${RUN_DIR}/bin/nodesim" \
      --kubeconfig "${dir}/kubeconfig" --node-name "${node}" \
      --ip "${MEMBER_NODE_IP[${m}]}" --port "${NODE_PORT}" \
      --checkpoint-dir "${dir}/checkpoints" --data-dir "${dir}/data" \
      --registries "${REGISTRY_HOST}"
  done
  for m in "${MEMBERS[@]}"; do
    wait_for "nodesim-${m}" "${TIMEOUT}" node_ready "${m}" "$(node_name "${m}")"
    log "${m}: node $(node_name "${m}") Ready"
  done
}
