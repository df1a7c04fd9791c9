#!/usr/bin/env bash
# make verify: gofmt, go vet, go.mod tidy, and generated code (deepcopy, CRDs)
# up to date with the API types. Fails on the first stale piece.
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
cp -r pkg/apis artifacts/crds "${tmp}/"
make -s generate >/dev/null
if ! diff -r "${tmp}/apis" pkg/apis >/dev/null || ! diff -r "${tmp}/crds" artifacts/crds >/dev/null; then
  diff -r "${tmp}/apis" pkg/apis || true
  diff -r "${tmp}/crds" artifacts/crds || true
  rm -rf pkg/apis artifacts/crds && cp -r "${tmp}/apis" pkg/apis && cp -r "${tmp}/crds" artifacts/crds
  die "generated code is stale: run 'make generate' and commit the result"
fi
log "verify: ok"
