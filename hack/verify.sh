#!/usr/bin/env bash
# make verify: gofmt, go vet, go.mod tidy, generated code (deepcopy, CRDs)
# up to date with the API types, the chart's copy of the CRDs and the
# artifacts rendered from the chart up to date, and helm lint. Fails on the
# first stale piece.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "${ROOT_DIR}"

log "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go'))"
[[ -z "${unformatted}" ]] || die "gofmt needed on: ${unformatted}"

log "go vet"
go vet ./...
go vet -tags e2e ./test/e2e/...

log "go.mod tidy"
go mod tidy -diff || die "go.mod or go.sum is not tidy: run 'go mod tidy' and commit the result"

log "generated code"
tmp="$(mktemp -d)"; trap 'rm -rf "${tmp}"' EXIT
# Each generated folder and its copy (make generate rewrites them all).
generated=(pkg/apis artifacts/crds charts/stateshift/files/crds charts/stateshift/files/security artifacts/interpreter artifacts/agent artifacts/controller)
for d in "${generated[@]}"; do mkdir -p "${tmp}/$(dirname "${d}")"; cp -r "${d}" "${tmp}/${d}"; done
make -s generate >/dev/null
stale=()
for d in "${generated[@]}"; do
  diff -r "${tmp}/${d}" "${d}" >/dev/null || { diff -r "${tmp}/${d}" "${d}" || true; stale+=("${d}"); }
done
if ((${#stale[@]} > 0)); then
  for d in "${generated[@]}"; do rm -rf "${d}" && cp -r "${tmp}/${d}" "${d}"; done
  die "generated files are stale (${stale[*]}): run 'make generate' and commit the result"
fi

log "helm lint"
lint="$(make -s chart-lint 2>&1)" || { echo "${lint}" >&2; die "helm lint failed"; }
log "verify: ok"
