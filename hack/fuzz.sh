#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in *_test.go) for $FUZZ_TIME each.
# make test runs them briefly; make fuzz longer. Each package's seed corpus
# lives in its testdata/fuzz folder.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "${ROOT_DIR}"
FUZZ_TIME="${FUZZ_TIME:-10s}"
found=0
while IFS=: read -r file _ line; do
  target="$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"${line}")"
  pkg="./$(dirname "${file}")"
  found=1
  log "fuzz ${pkg} ${target} for ${FUZZ_TIME}"
  go test -run='^$' -fuzz="^${target}\$" -fuzztime="${FUZZ_TIME}" "${pkg}"
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' cmd pkg test 2>/dev/null || true)
((found)) || log "no fuzz targets found"
