# stateshift: make help lists every target.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REGISTRY ?= ghcr.io/stateshift
BIN := bin
CACHE_ENV = . hack/lib.sh
GO_LDFLAGS := -s -w -X github.com/stateshift/stateshift/pkg/version.Version=$(VERSION)
# Tests need root (buildah, loopback node addresses) and the binaries cached by hack/build-deps.sh.
TEST_TIMEOUT ?= 60m
FUZZ_TIME ?= 10s
FUZZ_TIME_LONG ?= 5m

help: ## List the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z0-9_-]+:.*## /{printf "  %-26s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Install Debian packages and build/cache etcd, Kubernetes, Karmada and controller-gen
	hack/install-debs.sh
	hack/build-deps.sh all

build: ## Build stateshift's binaries into bin/
	go build -trimpath -ldflags '$(GO_LDFLAGS)' -o $(BIN)/ ./cmd/... ./test/nodesim/cmd/...

generate: ## Generate deepcopy code and CRD YAML with controller-gen
	hack/build-deps.sh tools
	$(CACHE_ENV) && $$TOOLS_BIN/controller-gen-$$CONTROLLER_GEN_VERSION object:headerFile=hack/boilerplate.go.txt paths=./pkg/apis/...
	$(CACHE_ENV) && $$TOOLS_BIN/controller-gen-$$CONTROLLER_GEN_VERSION crd paths=./pkg/apis/... output:crd:artifacts:config=artifacts/crds
	$(MAKE) -s artifacts

artifacts: ## Copy the CRDs and artifacts/security into charts/stateshift and render artifacts/interpreter, agent and controller from the chart
	hack/build-deps.sh helm
	rm -f charts/stateshift/files/crds/*.yaml && cp artifacts/crds/*.yaml charts/stateshift/files/crds/
	rm -f charts/stateshift/files/security/*.yaml && cp artifacts/security/*.yaml charts/stateshift/files/security/
	go run ./test/chart/genartifacts

helm: ## Build and cache the helm CLI (HELM_VERSION in hack/versions.env)
	hack/build-deps.sh helm

chart-lint: ## helm lint --strict charts/stateshift with the default and every ci/*-values.yaml
	hack/build-deps.sh helm
	$(CACHE_ENV) && for v in "" charts/stateshift/ci/*-values.yaml; do \
	  $$TOOLS_BIN/helm-$$HELM_VERSION lint --strict charts/stateshift --namespace stateshift-system $${v:+-f $$v}; done

chart-test: ## Lint and render the chart with several values and check the objects (test/chart)
	go test ./test/chart/...

verify: ## gofmt, go vet, and generated code up to date
	hack/verify.sh

test: ## Run every test: unit, integration, fuzz (briefly) and end-to-end
	hack/test.sh

test-install: ## Install stateshift with its Helm chart on a local Karmada with a host cluster, from images built here, and move a workload (test/install; part of make test)
	PATH="$$(. hack/lib.sh && echo $$KUBE_BIN:$$KARMADA_BIN):$$PATH" go test -tags e2e -count=1 -timeout 60m ./test/install/ -v

fuzz: ## Run the fuzz targets longer (FUZZ_TIME_LONG=5m each)
	FUZZ_TIME=$(FUZZ_TIME_LONG) hack/fuzz.sh

bench: ## Run the benchmarks and print the BENCH lines
	hack/bench.sh

bench-scale: ## Run the scale benchmark alone (1,000 protected workloads, a failover storm; ~20 min; ARGS="-workloads 200" for a smaller run)
	go run ./test/bench/scale $(ARGS)

demo: ## Run stateshift locally on a fresh Debian machine and show a checkpoint and restore
	hack/demo.sh

apply-interpreter-config: ## Make certificates, fill caBundle and apply the interpreter configuration (KUBECONFIG=karmada-apiserver, ARGS="--url https://host:port/interpreter --cert-dir DIR" or "--service NS/NAME"); ARGS="--webhook pod-restore ..." with a member's KUBECONFIG registers its pod-restore webhook
	hack/apply-interpreter-config.sh $(ARGS)

local-up: ## Start Karmada, two member clusters with simulated and real nodes, a registry and stateshift on loopback (STATESHIFT_LOCAL_MODE=chart: a host cluster instead of stateshift)
	hack/local-up.sh

local-down: ## Stop what local-up started and remove its run folder
	hack/local-down.sh

images: ## Build the agent, webhook and kubectl images here with buildah from Debian packages (IMAGES_OUT=DIR also writes OCI archives)
	hack/images.sh $(REGISTRY) $(VERSION)

.PHONY: help deps build generate artifacts helm chart-lint chart-test verify test test-install fuzz bench bench-scale demo images apply-interpreter-config local-up local-down
