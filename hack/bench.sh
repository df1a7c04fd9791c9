#!/usr/bin/env bash
# make bench: the benchmarks behind the README's performance section. Each
# prints one or more "BENCH ..." lines; speed and memory targets are checked
# here, not by timed tests. Go micro-benchmarks (ns/op, allocs/op) run too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "${ROOT_DIR}"
[[ $(id -u) == 0 ]] || die "benchmarks need root (buildah)"
hack/install-debs.sh
hack/build-deps.sh all

out="$(mktemp)"; trap 'rm -f "${out}"' EXIT
run() { log "bench: $*"; "$@" 2>&1 | tee -a "${out}"; }

run go run ./test/bench/imagepush
if [[ -d test/bench/interpreter ]]; then
  run go run ./test/bench/interpreter
fi
if [[ -d test/bench/migration ]]; then
  run go run ./test/bench/migration
fi
if [[ -d test/bench/realmigration ]]; then
  run go run ./test/bench/realmigration
fi
# The scale benchmark: 1,000 protected workloads, a steady interval and a
# failover storm on simulated nodes (~20 minutes; make bench-scale runs it
# alone). It starts its own environment with room for the pods.
run go run ./test/bench/scale
run go test -run '^$' -bench . -benchmem ./pkg/interpreter/... ./pkg/restore/...
# The controller soak: 50 scheduled rounds with rollouts and moves against a
# real API server and registry; prints BENCH controller-soak.
run go test -run '^$' -bench ControllerSoak -benchtime 1x -timeout 20m ./pkg/migration/

echo
echo "Summary:"
grep '^BENCH ' "${out}" || die "no BENCH line was printed"
