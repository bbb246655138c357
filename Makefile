# The README's two commands: `make dev` and `make test`. Everything a fresh
# machine needs is installed by scripts/setup.sh (idempotent, fast when present).
SHELL := /bin/bash
.DEFAULT_GOAL := help

export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false

.PHONY: help setup build-worker dev test test-host test-e2e bench-edge fmt clippy

help:
	@echo "make dev         run the edge worker under wrangler dev (127.0.0.1:8787) in front of local sample origins"
	@echo "make test        run every test (host unit tests, integration tests, end-to-end tests in workerd)"
	@echo "make bench-edge  edge worker throughput, latency and size"
	@grep -h '^## ' mk/*.mk 2>/dev/null | sed 's/^## /make /' || true

setup:
	@bash scripts/setup.sh

build-worker: setup
	@bash scripts/build-worker.sh

dev: setup
	@bash scripts/dev.sh

test: setup
	@bash scripts/test.sh

bench-edge: build-worker
	@cargo run --quiet --release -p shopedge-origins --bin bench-edge

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets

-include $(wildcard mk/*.mk)
