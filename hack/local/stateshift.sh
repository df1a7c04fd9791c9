# stateshift's own parts in a local environment: CRDs and RBAC applied with
# kubectl as a user would, the interpreter webhook beside Karmada, and one
# checkpoint agent per simulated node. Source after nodes.sh and registry.sh.

start_stateshift() {
  apply_stateshift_apis
  start_interpreter_webhook
  start_agents
  start_pod_restore_webhooks
}

apply_stateshift_apis() {
  local c
  # Checkpoints are created in Karmada and propagated to members: the CRD
  # is needed in all three API servers.
  for c in karmada "${MEMBERS[@]}"; do
    kubectl_for "${c}" apply --server-side --force-conflicts -f "${ROOT_DIR}/artifacts/crds" > /dev/null
  done
  log "stateshift CRDs applied to karmada, ${MEMBERS[*]}"
}

# write_sa_kubeconfig CLUSTER NAMESPACE SA DIR: a kubeconfig that acts as
# ServiceAccount SA, as the component would in a pod: a token minted with
# `kubectl create token` into DIR/token (0600, re-minted on every local-up;
# client-go re-reads tokenFile) and DIR/kubeconfig pointing at it.
write_sa_kubeconfig() {
  local c="$1" ns="$2" sa="$3" dir="$4" port
  if [[ "${c}" == karmada ]]; then port="${KARMADA_APISERVER_PORT}"; else port="${MEMBER_APISERVER_PORT[${c}]}"; fi
  mkdir -p "${dir}"
  chmod 700 "${dir}"
  (umask 077 && kubectl_for "${c}" -n "${ns}" create token "${sa}" --duration 24h > "${dir}/token.new") &&
    mv -f "${dir}/token.new" "${dir}/token"
  (umask 077 && cat > "${dir}/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ${c}
  cluster:
    server: https://127.0.0.1:${port}
    certificate-authority-data: $(base64 -w0 < "${PKI_DIR}/ca.crt")
users:
- name: ${sa}
  user:
    tokenFile: ${dir}/token
contexts:
- name: ${c}
  context: {cluster: ${c}, user: ${sa}}
current-context: ${c}
EOF
  )
}

# The interpreter webhook beside Karmada on https://127.0.0.1:9443/interpreter,
# as the stateshift-interpreter-webhook ServiceAccount of
# artifacts/interpreter/rbac.yaml. hack/apply-interpreter-config.sh makes
# its certificates (RUN_DIR/interpreter-webhook/certs) and applies the
# ResourceInterpreterWebhookConfiguration with that URL, as a user would.
INTERPRETER_SA=stateshift-interpreter-webhook
INTERPRETER_HEALTH_PORT=19000
INTERPRETER_METRICS_PORT=19080
# Go's profiles of the controller (CPU, heap) for the benchmarks; loopback.
INTERPRETER_PPROF_PORT=19081

# STATESHIFT_CHECKPOINT_DELIVERY: how Checkpoints reach members
# (--checkpoint-delivery: proxy, the default, or propagation).
# artifacts/controller holds the RBAC of the chart's default (proxy); for
# the other the chart is rendered into the run folder.
CHECKPOINT_DELIVERY="${STATESHIFT_CHECKPOINT_DELIVERY:-proxy}"

# controller_artifacts prints the folder of the controller's RBAC files
# for CHECKPOINT_DELIVERY.
controller_artifacts() {
  if [[ "${CHECKPOINT_DELIVERY}" == proxy ]]; then
    echo "${ROOT_DIR}/artifacts/controller"
    return
  fi
  local out="${RUN_DIR}/controller-artifacts"
  if [[ ! -f "${out}/artifacts/controller/rbac.yaml" ]]; then
    "${HACK_DIR}/build-deps.sh" helm > /dev/null
    (cd "${ROOT_DIR}" && go run ./test/chart/genartifacts -targets controller \
      -set "controller.checkpointDelivery=${CHECKPOINT_DELIVERY}" -out "${out}") >&2 ||
      die "rendering the controller's RBAC for --checkpoint-delivery=${CHECKPOINT_DELIVERY} failed"
  fi
  echo "${out}/artifacts/controller"
}

start_interpreter_webhook() {
  build_go_binary interpreter-webhook ./cmd/interpreter-webhook || return 0
  local dir="${RUN_DIR}/interpreter-webhook" rbac
  rbac="$(controller_artifacts)"
  # The binary also runs the migration controller (it has a kubeconfig):
  # its RBAC in the Karmada API comes from artifacts/controller.
  kubectl_for karmada apply -f "${ROOT_DIR}/artifacts/interpreter/namespace.yaml" \
    -f "${ROOT_DIR}/artifacts/interpreter/rbac.yaml" -f "${rbac}/rbac.yaml" > /dev/null
  write_sa_kubeconfig karmada "${STATESHIFT_NAMESPACE}" "${INTERPRETER_SA}" "${dir}"
  KUBECONFIG="${RUN_DIR}/karmada.kubeconfig" "${HACK_DIR}/apply-interpreter-config.sh" \
    --url "https://127.0.0.1:${INTERPRETER_WEBHOOK_PORT}/interpreter" --cert-dir "${dir}/certs" \
    > "${LOG_DIR}/apply-interpreter-config.log" 2>&1 ||
    { cat "${LOG_DIR}/apply-interpreter-config.log" >&2; die "hack/apply-interpreter-config.sh failed"; }
  # STATESHIFT_CONTROLLER_ARGS: more flags for the controller, for the
  # benchmarks' experiments (e.g. --scheduled-checkpoint-deferral=5m).
  local -a extra=()
  read -r -a extra <<< "${STATESHIFT_CONTROLLER_ARGS:-}"
  start_proc interpreter-webhook "${RUN_DIR}/bin/interpreter-webhook" "${extra[@]}" \
    --checkpoint-delivery "${CHECKPOINT_DELIVERY}" \
    --kubeconfig "${dir}/kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "${INTERPRETER_WEBHOOK_PORT}" --cert-dir "${dir}/certs" \
    --health-probe-bind-address "127.0.0.1:${INTERPRETER_HEALTH_PORT}" \
    --metrics-bind-address "127.0.0.1:${INTERPRETER_METRICS_PORT}" \
    --pprof-bind-address "127.0.0.1:${INTERPRETER_PPROF_PORT}"
  wait_for interpreter-webhook "${TIMEOUT}" http_ok "http://127.0.0.1:${INTERPRETER_HEALTH_PORT}/readyz"
  log "interpreter-webhook: ready; ResourceInterpreterWebhookConfiguration points at it"
}

# One checkpoint agent per node (simulated and real), run as a process (no container
# runtime here) with the identity its DaemonSet would have: the
# stateshift-checkpoint-agent ServiceAccount of artifacts/agent/rbac.yaml
# (RUN_DIR/<member>/agent/{token,kubeconfig}). Each agent has its own buildah
# storage and work folder under the run folder. Eight attempts (the default
# is five): with the default backoff they span two minutes, longer than the
# ~20 s local-up needs to bring back a registry an e2e test stopped.
AGENT_SA=stateshift-checkpoint-agent
declare -A AGENT_HEALTH_PORT=([member1]=19466 [member2]=19476)
declare -A AGENT_METRICS_PORT=([member1]=19465 [member2]=19475)
declare -A REAL_AGENT_HEALTH_PORT=([member1]=19486 [member2]=19496)
declare -A REAL_AGENT_METRICS_PORT=([member1]=19485 [member2]=19495)

start_agents() {
  local m node nodedir rbac
  rbac="$(controller_artifacts)"
  for m in "${MEMBERS[@]}"; do
    kubectl_for "${m}" apply -f "${ROOT_DIR}/artifacts/agent/namespace.yaml" \
      -f "${ROOT_DIR}/artifacts/agent/rbac.yaml" > /dev/null
    # The migration controller lists pods through Karmada's cluster proxy:
    # the member must let the impersonator act as its ServiceAccount groups.
    kubectl_for "${m}" apply -f "${rbac}/member-rbac.yaml" > /dev/null
  done
  log "agent namespace and RBAC (artifacts/agent), controller member RBAC (artifacts/controller/member-rbac.yaml) applied to ${MEMBERS[*]}"
  build_go_binary checkpoint-agent ./cmd/checkpoint-agent || return 0
  if [[ ! -x "${RUN_DIR}/bin/nodesim" ]]; then
    log "skipping: checkpoint-agent needs a simulated node (its kubelet), and nodesim is not built yet"
    return 0
  fi
  for m in "${MEMBERS[@]}"; do
    node="$(node_name "${m}")"
    nodedir="${RUN_DIR}/${m}/${node}"
    start_agent "checkpoint-agent-${m}" "${m}" "${node}" "${RUN_DIR}/${m}/agent" \
      "${nodedir}/data/pki/ca.crt" "${nodedir}/checkpoints" "${AGENT_METRICS_PORT[${m}]}" "${AGENT_HEALTH_PORT[${m}]}"
    if [[ -n "${REAL_NODE_IP[${m}]:-}" ]] && is_running "kubelet-${m}"; then
      # The real node's agent: the kubelet's serving certificate is signed by
      # the local CA; its archives land in the kubelet's root dir.
      node="$(real_node_name "${m}")"
      mkdir -p -m 0700 "$(real_node_dir "${m}")/kubelet/checkpoints"
      start_agent "checkpoint-agent-${m}-real" "${m}" "${node}" "${RUN_DIR}/${m}/agent-real" \
        "${PKI_DIR}/ca.crt" "$(real_node_dir "${m}")/kubelet/checkpoints" \
        "${REAL_AGENT_METRICS_PORT[${m}]}" "${REAL_AGENT_HEALTH_PORT[${m}]}"
    fi
  done
  for m in "${MEMBERS[@]}"; do
    wait_for "checkpoint-agent-${m}" "${TIMEOUT}" http_ok "http://127.0.0.1:${AGENT_HEALTH_PORT[${m}]}/readyz"
    log "checkpoint-agent-${m}: ready"
    if is_running "checkpoint-agent-${m}-real"; then
      wait_for "checkpoint-agent-${m}-real" "${TIMEOUT}" http_ok "http://127.0.0.1:${REAL_AGENT_HEALTH_PORT[${m}]}/readyz"
      log "checkpoint-agent-${m}-real: ready"
    fi
  done
}

# start_agent NAME MEMBER NODE DIR KUBELET_CA CHECKPOINT_DIR METRICS_PORT HEALTH_PORT
# AGENT_MAX_CONCURRENT and AGENT_KUBE_API_QPS (unset: the agent's defaults)
# are each agent's --max-concurrent and --kube-api-qps (burst twice that).
# The scale benchmark raises them: one simulated node holds a whole
# member's pods there, and its agent stands in for the agents of the
# several nodes such a member has.
start_agent() {
  local name="$1" m="$2" node="$3" dir="$4" ca="$5" archives="$6" metrics="$7" health="$8"
  mkdir -p "${dir}/buildah/storage" "${dir}/buildah/run" "${dir}/work"
  # A running agent keeps its token (client-go re-reads the file); only a
  # new start needs one.
  is_running "${name}" || write_sa_kubeconfig "${m}" "${STATESHIFT_NAMESPACE}" "${AGENT_SA}" "${dir}"
  start_proc "${name}" "${RUN_DIR}/bin/checkpoint-agent" \
    --node-name "${node}" --namespace "${STATESHIFT_NAMESPACE}" --kubeconfig "${dir}/kubeconfig" \
    --kubelet-ca "${ca}" --token-file "${dir}/token" \
    --checkpoint-dir "${archives}" --work-dir "${dir}/work" \
    --buildah-root "${dir}/buildah/storage" --buildah-runroot "${dir}/buildah/run" \
    --insecure-registries "${REGISTRY_HOST}" \
    --max-attempts 8 ${AGENT_MAX_CONCURRENT:+--max-concurrent "${AGENT_MAX_CONCURRENT}"} \
    ${AGENT_KUBE_API_QPS:+--kube-api-qps "${AGENT_KUBE_API_QPS}" --kube-api-burst "$((AGENT_KUBE_API_QPS * 2))"} \
    --metrics-bind-address "127.0.0.1:${metrics}" \
    --health-probe-bind-address "127.0.0.1:${health}"
}

# One pod-restore webhook per member (checkpoint-agent pod-restore-webhook,
# artifacts/agent/pod-restore.yaml runs it as a Deployment), as the
# stateshift-pod-restore ServiceAccount of artifacts/agent/pod-restore-rbac.yaml,
# registered with the member's API server by
# hack/apply-interpreter-config.sh --webhook pod-restore on its local URL.
# It reads each restored image's manifest to check the checkpoint's
# namespace: with the registry's auth file when REGISTRY_AUTH=1 made one
# (missing means anonymous).
POD_RESTORE_SA=stateshift-pod-restore
declare -A POD_RESTORE_PORT=([member1]=19467 [member2]=19477)
declare -A POD_RESTORE_HEALTH_PORT=([member1]=19468 [member2]=19478)
declare -A POD_RESTORE_METRICS_PORT=([member1]=19469 [member2]=19479)

start_pod_restore_webhooks() {
  local m dir
  build_go_binary checkpoint-agent ./cmd/checkpoint-agent || return 0
  for m in "${MEMBERS[@]}"; do
    dir="${RUN_DIR}/${m}/pod-restore"
    kubectl_for "${m}" apply -f "${ROOT_DIR}/artifacts/agent/pod-restore-rbac.yaml" > /dev/null
    write_sa_kubeconfig "${m}" "${STATESHIFT_NAMESPACE}" "${POD_RESTORE_SA}" "${dir}"
    KUBECONFIG="${RUN_DIR}/${m}.kubeconfig" "${HACK_DIR}/apply-interpreter-config.sh" --webhook pod-restore \
      --url "https://127.0.0.1:${POD_RESTORE_PORT[${m}]}/mutate-pods" --cert-dir "${dir}/certs" \
      > "${LOG_DIR}/apply-pod-restore-config-${m}.log" 2>&1 ||
      { cat "${LOG_DIR}/apply-pod-restore-config-${m}.log" >&2; die "pod-restore webhook configuration on ${m} failed"; }
    start_proc "pod-restore-${m}" "${RUN_DIR}/bin/checkpoint-agent" pod-restore-webhook \
      --kubeconfig "${dir}/kubeconfig" --bind-address 127.0.0.1 --secure-port "${POD_RESTORE_PORT[${m}]}" \
      --cert-dir "${dir}/certs" \
      --insecure-registries "${REGISTRY_HOST}" --registry-auth-file "${RUN_DIR}/registry/auth.json" \
      --metrics-bind-address "127.0.0.1:${POD_RESTORE_METRICS_PORT[${m}]}" \
      --health-probe-bind-address "127.0.0.1:${POD_RESTORE_HEALTH_PORT[${m}]}"
  done
  for m in "${MEMBERS[@]}"; do
    wait_for "pod-restore-${m}" "${TIMEOUT}" http_ok "http://127.0.0.1:${POD_RESTORE_HEALTH_PORT[${m}]}/readyz"
    log "pod-restore-${m}: ready; ${m}'s MutatingWebhookConfiguration points at it"
  done
}
