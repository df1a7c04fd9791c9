# Shared pieces of hack/local-up.sh and hack/local-down.sh: where the run
# folder is, which loopback ports each component uses, and how processes are
# started, recorded, checked and stopped. Source it after hack/lib.sh.
#
# Everything a local environment owns lives in one run folder
# ($STATESHIFT_RUN_DIR, default /tmp/stateshift-local):
#   pids/<name>.pid   "PID EXE" of every process local-up started
#   logs/<name>.log   its output
#   pki/              CA, serving and client certificates, service-account keys
#   etcd/             the one etcd's data (each API server has its own --etcd-prefix)
#   bin/              stateshift and node-simulator binaries built for this run
#   *.kubeconfig      karmada, member1, member2 (admin)
# local-down stops exactly the PIDs recorded there, then removes the folder.

RUN_DIR="${STATESHIFT_RUN_DIR:-/tmp/stateshift-local}"
PID_DIR="${RUN_DIR}/pids"
# One local-up or local-down at a time: two at once start every component
# twice and record the wrong PIDs. The lock lives beside the run folder,
# which local-down removes.
LOCK_FILE="${RUN_DIR}.lock"
lock_run_dir() {
  exec 9>"${LOCK_FILE}"
  if ! flock -n 9; then
    log "another local-up or local-down holds ${LOCK_FILE}; waiting for it"
    flock 9
  fi
}
LOG_DIR="${RUN_DIR}/logs"
PKI_DIR="${RUN_DIR}/pki"

# Loopback ports. One place so the e2e harness and the docs agree.
ETCD_CLIENT_PORT=32379
ETCD_PEER_PORT=32380
KARMADA_APISERVER_PORT=5443
AGGREGATED_APISERVER_PORT=7443
KARMADA_WEBHOOK_PORT=8443
KARMADA_WEBHOOK_HEALTH_PORT=18000
KARMADA_WEBHOOK_METRICS_PORT=18080
KARMADA_CM_HEALTH_PORT=10357
KARMADA_CM_METRICS_PORT=18081
KARMADA_SCHEDULER_HEALTH_PORT=10351
KARMADA_SCHEDULER_METRICS_PORT=18082
KARMADA_KCM_PORT=10257
REGISTRY_PORT="${STATESHIFT_REGISTRY_PORT:-5000}"
INTERPRETER_WEBHOOK_PORT=9443
MEMBERS=(member1 member2)
# What runs stateshift in the environment (STATESHIFT_LOCAL_MODE):
#   processes  stateshift's components run as processes beside Karmada
#              (hack/local/stateshift.sh), the default;
#   chart      nothing of stateshift is started: a Karmada host cluster
#              (karmada-host, with a real node) is added, where stateshift is
#              installed with its Helm chart from locally built images, as an
#              operator installs it (test/install).
LOCAL_MODE="${STATESHIFT_LOCAL_MODE:-processes}"
HOST_CLUSTER=karmada-host
# Clusters with an API server, controllers and a real node of their own.
NODE_CLUSTERS=("${MEMBERS[@]}")
[[ "${LOCAL_MODE}" == chart ]] && NODE_CLUSTERS+=("${HOST_CLUSTER}")
declare -A MEMBER_APISERVER_PORT=([member1]=6443 [member2]=6444 [karmada-host]=6445)
declare -A MEMBER_KCM_PORT=([member1]=10267 [member2]=10277 [karmada-host]=10287)
declare -A MEMBER_SCHEDULER_PORT=([member1]=10259 [member2]=10269 [karmada-host]=10279)
declare -A MEMBER_NODE_IP=([member1]=127.0.0.11 [member2]=127.0.0.12)
NODE_PORT=10250
AGENT_PORT=10350

KARMADA_FEATURE_GATES="Failover=true,GracefulEviction=true,StatefulFailoverInjection=true"

# ---------------------------------------------------------------- processes

# pid_of NAME: prints the recorded PID when that process is still the program
# local-up started (the PID is alive and runs the recorded executable), so a
# PID reused by something else is never mistaken for ours.
pid_of() {
  local f="${PID_DIR}/$1.pid" pid exe
  [[ -f "${f}" ]] || return 1
  read -r pid exe < "${f}" || return 1
  [[ -n "${pid}" ]] && proc_alive "${pid}" || return 1
  # A rebuilt binary (hack/build-deps.sh replaced it) shows as "EXE (deleted)".
  local now
  now="$(readlink "/proc/${pid}/exe" 2>/dev/null)" || return 1
  [[ "${now}" == "${exe}" || "${now}" == "${exe} (deleted)" ]] || return 1
  echo "${pid}"
}

is_running() { pid_of "$1" > /dev/null; }

# start_proc NAME BINARY ARGS...: starts BINARY in its own session (it
# outlives this script), output appended to logs/NAME.log, PID recorded.
# Does nothing when NAME already runs.
start_proc() {
  local name="$1"; shift
  local bin="$1" pid
  if pid="$(pid_of "${name}")"; then
    log "${name}: already running (pid ${pid})"
    return 0
  fi
  [[ -x "${bin}" ]] || die "${name}: ${bin} is not an executable"
  mkdir -p "${PID_DIR}" "${LOG_DIR}"
  printf '\n===== %s starting: %s\n' "$(date -u +%FT%TZ)" "$*" >> "${LOG_DIR}/${name}.log"
  # Not a process-group leader (no job control here), so setsid calls
  # setsid(2) and execs: $! is the program itself.
  # 3>&- ... 9>&-: the long-lived process must not inherit a lock, neither
  # local-up's own (fd 9) nor one its caller holds (`flock FILE make ...`
  # passes it as fd 3): a daemon holding it would keep the lock for as
  # long as the environment runs.
  setsid "$@" >> "${LOG_DIR}/${name}.log" 2>&1 < /dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  pid=$!
  echo "${pid} $(readlink -f "${bin}")" > "${PID_DIR}/${name}.pid"
  log "${name}: started (pid ${pid}, log ${LOG_DIR}/${name}.log)"
}

# proc_alive PID: the process exists and is not a zombie waiting for its
# (re-parented) parent to reap it.
proc_alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "${state}" && "${state}" != Z ]]
}

# stop_proc NAME: TERM, up to 15 s, then KILL; only the recorded PID.
stop_proc() {
  local name="$1" pid i
  if ! pid="$(pid_of "${name}")"; then
    rm -f "${PID_DIR}/${name}.pid"
    return 0
  fi
  kill -TERM "${pid}" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    proc_alive "${pid}" || break
    sleep 0.1
  done
  if proc_alive "${pid}"; then
    log "${name}: did not stop in 15s, killing pid ${pid}"
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${PID_DIR}/${name}.pid"
  log "${name}: stopped (pid ${pid})"
}

# show_log NAME: the last lines of a component's log, for failure messages.
show_log() {
  local f="${LOG_DIR}/$1.log"
  if [[ -f "${f}" ]]; then
    echo "----- last 40 lines of ${f}" >&2
    tail -n 40 "${f}" >&2
    echo "-----" >&2
  fi
}

# wait_for NAME TIMEOUT_SECONDS CMD...: retries CMD until it succeeds; on
# timeout (or when NAME's process died) prints NAME's log tail and fails.
wait_for() {
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    if [[ -f "${PID_DIR}/${name}.pid" ]] && ! is_running "${name}"; then
      show_log "${name}"
      die "${name}: exited while waiting for it to become healthy"
    fi
    if ((SECONDS >= deadline)); then
      show_log "${name}"
      die "${name}: not healthy after ${timeout}s (check: $*)"
    fi
    sleep 0.5
  done
}

# http_ok URL [CURL ARGS...]: true on an HTTP 200.
http_ok() {
  local url="$1"; shift
  [[ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 3 "$@" "${url}")" == 200 ]]
}

# http_up URL: true on any HTTP answer (a registry with auth answers 401).
http_up() {
  local code
  code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 3 "$1")" || return 1
  [[ "${code}" != 000 ]]
}

# ---------------------------------------------------------------- memory

# rss_total_kb: the sum of VmRSS of every recorded, still-running process.
rss_total_kb() {
  local f name pid total=0 kb
  for f in "${PID_DIR}"/*.pid; do
    [[ -e "${f}" ]] || continue
    name="$(basename "${f}" .pid)"
    pid="$(pid_of "${name}")" || continue
    kb="$(awk '/^VmRSS:/ {print $2}' "/proc/${pid}/status" 2>/dev/null)" || kb=0
    total=$((total + ${kb:-0}))
  done
  echo "${total}"
}

# ---------------------------------------------------------------- kubectl

kubectl_for() { local c="$1"; shift; "${KUBE_BIN}/kubectl" --kubeconfig "${RUN_DIR}/${c}.kubeconfig" "$@"; }
