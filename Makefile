# e2b-operator: run `make help` for the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHART := manifests/helm/e2b-operator

.DEFAULT_GOAL := help
.PHONY: help install system-deps crds manifests kube-binaries helm-binary gitops-health cluster cluster-down dev test lint bench-local bench chaos

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv with the project and dev tools (idempotent)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

SYSTEM_TOOLS := crun nft ip
SYSTEM_PACKAGES := crun nftables iproute2

system-deps: ## Install e2b-local's host tools (crun, nftables, iproute2) from Debian if missing
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(SYSTEM_PACKAGES) (e2b-local runs sandboxes with crun)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	fi

cluster: $(STAMP) ## Start the local control plane (etcd, kube-apiserver, controller-manager); writes .dev/kubeconfig
	$(BIN)/e2b-operator-cluster up --workdir .dev

cluster-down: ## Stop the local control plane started by `make cluster`
	@test ! -x $(BIN)/e2b-operator-cluster || $(BIN)/e2b-operator-cluster down --workdir .dev

dev: $(STAMP) system-deps ## Run the main job: local cluster, e2b-local, the operator, templates and a deployment (Ctrl-C stops)
	$(BIN)/python -m e2b_operator.devenv $(DEV_ARGS)

kube-binaries: $(STAMP) ## Build (once per version) or find kube-apiserver, controller-manager, kubectl, etcd
	$(BIN)/e2b-operator-cluster binaries

helm-binary: $(STAMP) ## Build (once per version) helm from the Go module proxy into ~/.cache/e2b-operator/helm/
	$(BIN)/python -m e2b_operator.controlplane.helm

gitops-health: $(STAMP) ## Build (once per version) tools/gitops-health: kstatus, Flux CEL, Argo CD's Lua, for the GitOps tests
	$(BIN)/python -m e2b_operator.controlplane.gitops_health

test: lint kube-binaries helm-binary gitops-health system-deps ## Run every test (real kube-apiserver, e2b SDK and e2b-local)
	$(BIN)/pytest

crds: $(STAMP) ## Generate CRD YAML in crds/ and the Helm chart's crds/ from the pydantic models
	$(BIN)/python -m e2b_operator.api.crds crds $(CHART)/crds

manifests: $(STAMP) ## Generate manifests/templates/ (the seed's template collection) from the toolkit
	$(BIN)/python -m e2b_operator.toolkit.collection manifests/templates

lint: $(STAMP) ## Lint with ruff and type-check with mypy (pydantic plugin)
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy

bench-local: $(STAMP) system-deps ## Benchmark e2b-local (create, run, files, kill, 50 concurrent)
	$(BIN)/python bench/bench_local.py

bench-runtimes: $(STAMP) system-deps ## Compare crun, runc and gVisor (runsc) on this host: create/exec latency, what works inside
	$(BIN)/python bench/bench_runtimes.py

bench: $(STAMP) system-deps ## Benchmark the operator (apply-to-Ready, slow app, killed sandbox, 100 replicas, 100 and 1000 deployments, RSS, idle, REST gateway)
	$(BIN)/python bench/bench_operator.py

chaos: $(STAMP) kube-binaries system-deps ## Chaos suite (~10 min): operator/leader/e2b-local kills, apiserver and etcd restarts, 30 % faults, rate limits while 20 deployments scale
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)
