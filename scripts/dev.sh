#!/usr/bin/env bash
# `make dev`: the edge worker under `wrangler dev` on 127.0.0.1:8787 in front of
# the local sample origins (Medusa-like API on :9000, storefront pages on :3000).
# Ctrl-C stops everything this script started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
. target/tools.env

MEDUSA_PORT=${MEDUSA_PORT:-9000}
STOREFRONT_PORT=${STOREFRONT_PORT:-3000}
EDGE_PORT=${EDGE_PORT:-8787}
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

echo "dev: building the sample origins"
cargo build --quiet -p shopedge-origins --bin dev-origins
echo "dev: building the edge worker"
bash scripts/build-worker.sh

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "dev: stopped"
}
trap cleanup INT TERM EXIT

MEDUSA_PORT=$MEDUSA_PORT STOREFRONT_PORT=$STOREFRONT_PORT target/debug/dev-origins &
pids+=($!)

"$SHOPEDGE_NODE" node_modules/wrangler/bin/wrangler.js dev \
  --ip 127.0.0.1 --port "$EDGE_PORT" --local \
  --var "MEDUSA_ORIGIN:http://127.0.0.1:$MEDUSA_PORT" \
  --var "STOREFRONT_ORIGIN:http://127.0.0.1:$STOREFRONT_PORT" \
  --show-interactive-dev-session=false &
pids+=($!)

for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$EDGE_PORT/__edge/health" >/dev/null 2>&1 && break
  sleep 0.5
done
cat <<MSG

dev: the edge worker is running on http://127.0.0.1:$EDGE_PORT
  curl -i http://127.0.0.1:$EDGE_PORT/__edge/health          # version and config hash
  curl -i http://127.0.0.1:$EDGE_PORT/                        # storefront page (HTML, security headers)
  curl -i http://127.0.0.1:$EDGE_PORT/store/products          # Medusa API (JSON)
  curl -i http://127.0.0.1:$EDGE_PORT/store/echo              # what Medusa received (X-Forwarded-*)
  curl -i -H 'Host: www.shop.example.com' http://127.0.0.1:$EDGE_PORT/x   # redirect rules
Press Ctrl-C to stop.
MSG
wait
