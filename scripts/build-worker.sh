#!/usr/bin/env bash
# Builds the edge worker offline: Rust -> wasm32 -> wasm-bindgen glue -> build/worker/.
# Used by `make`, the tests and wrangler's [build] command.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$root/target/tools.env" ] || bash "$root/scripts/setup.sh"
# shellcheck disable=SC1091
. "$root/target/tools.env"

out="$root/build/worker"
profile=${EDGE_PROFILE:-release}
export CARGO_TARGET_DIR="$root/target/wasm"
cargo_args=(build --quiet --manifest-path "$root/Cargo.toml" -p edge-worker --lib --target wasm32-unknown-unknown)
[ "$profile" = release ] && cargo_args+=(--release)

if [ "$SHOPEDGE_WASM_MODE" = debian ]; then
  # Debian's rustc-web has the wasm32 target but no prebuilt std: build it.
  PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 cargo "${cargo_args[@]}" -Zbuild-std=std,panic_abort
else
  cargo "${cargo_args[@]}"
fi

wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/edge_worker.wasm"
tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
"$SHOPEDGE_WASM_BINDGEN" "$wasm" --out-dir "$tmp" --out-name edge_worker --target module \
  --experimental-reset-state-function --no-typescript
# workerd and wrangler import a .wasm file as a compiled WebAssembly.Module;
# the glue's source-phase import means the same thing.
sed -i 's|^import source wasmModule from "\./edge_worker_bg\.wasm";|import wasmModule from "./edge_worker_bg.wasm";|' "$tmp/edge_worker.js"
grep -q '^import wasmModule from "./edge_worker_bg.wasm";' "$tmp/edge_worker.js" || {
  echo "build-worker: unexpected wasm-bindgen glue (no wasm import found)" >&2; exit 1; }
if [ "${EDGE_WASM_OPT:-1}" = 1 ] && [ -x "$root/node_modules/.bin/wasm-opt" ]; then
  PATH="$(dirname "$SHOPEDGE_NODE"):$PATH" "$root/node_modules/.bin/wasm-opt" -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-reference-types --enable-sign-ext --enable-mutable-globals --enable-multivalue \
    "$tmp/edge_worker_bg.wasm" -o "$tmp/edge_worker_bg.wasm"
fi
cp "$root/edge-worker/js/entry.mjs" "$tmp/entry.mjs"
# Replace the output only when it changed: the build is deterministic, and
# tests running the worker from build/worker/ must not see it vanish.
if [ -d "$out" ] && diff -rq "$tmp" "$out" >/dev/null 2>&1; then
  rm -rf "$tmp"
else
  rm -rf "$out.old"
  [ -d "$out" ] && mv "$out" "$out.old"
  mv "$tmp" "$out"
  rm -rf "$out.old"
fi
