# Simulated nodes: one test/nodesim process per member cluster plays the
# kubelet and container runtime (registers a Ready Node, runs the pods bound
# to it, serves the kubelet checkpoint API on NODE_IP:10250). It signs in with
# a node client certificate (system:node:<name>, group system:nodes), so the
# Node authorizer and RBAC treat it as a kubelet. Source after lib.sh/pki.sh.

NODESIM_PKG=./test/nodesim/cmd/nodesim

node_name() { echo "$1-node"; }

# build_go_binary NAME PKG: go build PKG into RUN_DIR/bin/NAME; false (with a
# "skipping" line) when the package does not exist yet or does not build.
# Once per local-up run; not at all with STATESHIFT_LOCAL_REUSE_BINARIES=1
# when the binary is there (the e2e suite restarting what a test stopped:
# the code has not changed, and each link costs seconds).
declare -A BUILT_GO_BINARIES=()
build_go_binary() {
  local name="$1" pkg="$2"
  [[ -z "${BUILT_GO_BINARIES[${name}]:-}" ]] || return 0
  if [[ "${STATESHIFT_LOCAL_REUSE_BINARIES:-}" == 1 && -x "${RUN_DIR}/bin/${name}" ]]; then
    log "${name}: reusing ${RUN_DIR}/bin/${name}"
    BUILT_GO_BINARIES[${name}]=1
    return 0
  fi
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
      BUILT_GO_BINARIES[${name}]=1
      return 0
    fi
  fi
  mv -f "${RUN_DIR}/bin/${name}.new" "${RUN_DIR}/bin/${name}"
  BUILT_GO_BINARIES[${name}]=1
}

node_ready() {
  [[ "$(kubectl_for "$1" get node "$2" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

start_nodes() {
  if [[ -n "${NODESIM_BIN:-}" ]]; then
    # A node simulator built elsewhere (NODESIM_BIN=path), e.g. to try a change.
    mkdir -p "${RUN_DIR}/bin"
    is_running "nodesim-${MEMBERS[0]}" || cp -f "${NODESIM_BIN}" "${RUN_DIR}/bin/nodesim"
  else
    build_go_binary nodesim "${NODESIM_PKG}" || return 0
  fi
  local m
  for m in "${MEMBERS[@]}"; do start_node "${m}"; done
  for m in "${MEMBERS[@]}"; do wait_node "${m}"; done
}

# NODESIM_PODS sets the simulated nodes' pod capacity (a kubelet's
# maxPods, 110 by default); the scale benchmark runs a thousand pods.
start_node() {
  local m="$1" node dir auth=()
  node="$(node_name "${m}")"
  dir="${RUN_DIR}/${m}/${node}"
  # With REGISTRY_AUTH=1 the simulated runtime pulls with the same credentials.
  [[ -f "${RUN_DIR}/registry/auth.json" ]] && auth=(--registry-auth-file "${RUN_DIR}/registry/auth.json")
  mkdir -p "${dir}/checkpoints" "${dir}/data"
  new_cert ca "${PKI_DIR}/node-${node}" "/O=system:nodes/CN=system:node:${node}"
  write_kubeconfig "${dir}/kubeconfig" "https://127.0.0.1:${MEMBER_APISERVER_PORT[${m}]}" \
    "${PKI_DIR}/node-${node}" "system:node:${node}"
  start_proc "nodesim-${m}" "${RUN_DIR}/bin/nodesim" \
    --kubeconfig "${dir}/kubeconfig" --node-name "${node}" \
    --ip "${MEMBER_NODE_IP[${m}]}" --port "${NODE_PORT}" \
    --checkpoint-dir "${dir}/checkpoints" --data-dir "${dir}/data" \
    --registry "${REGISTRY_HOST}" --pods "${NODESIM_PODS:-110}" "${auth[@]}"
}

# wait_node MEMBER: waits for the Node to be Ready. A kubelet that exits
# while starting is restarted by its supervisor (systemd); local-up does the
# same, at most twice, and says so with the reason from the log.
wait_node() {
  local m="$1" node attempt
  node="$(node_name "${m}")"
  for attempt in 1 2 3; do
    if (wait_for "nodesim-${m}" "${TIMEOUT}" node_ready "${m}" "${node}") 2> "${LOG_DIR}/wait-nodesim-${m}.err"; then
      log "${m}: node ${node} Ready"
      return 0
    fi
    if is_running "nodesim-${m}" || ((attempt == 3)); then
      cat "${LOG_DIR}/wait-nodesim-${m}.err" >&2
      die "nodesim-${m}: node ${node} not Ready"
    fi
    log "nodesim-${m} exited while starting ($(tail -n 1 "${LOG_DIR}/nodesim-${m}.log")); restarting it (attempt $((attempt + 1)) of 3)"
    start_node "${m}"
  done
}
