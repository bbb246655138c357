#!/usr/bin/env bash
# `make test`: every test of the project.
#   1. builds the edge worker to wasm (the end-to-end tests run it in workerd);
#   2. runs all cargo tests of the workspace: host unit tests, the
#      integration tests in tests/ (fake Hetzner/Cloudflare/Talos/Kubernetes
#      APIs) and the end-to-end suite (tests/tests/edge.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
for s in scripts/setup-*.sh; do [ -f "$s" ] && bash "$s"; done
echo "test: building the edge worker (wasm32)"
bash scripts/build-worker.sh
echo "test: cargo test --workspace"
cargo test --workspace --no-fail-fast
