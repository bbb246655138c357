//! Validates `edge.toml` at build time and embeds it as JSON.
//!
//! A bad entry fails the build with a message naming it; unknown keys are
//! errors. `EDGE_CONFIG` may point at another file (used by tests of this check).

use std::path::PathBuf;

#[allow(dead_code)]
#[path = "src/config.rs"]
mod config;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = std::env::var("EDGE_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest_dir.join("edge.toml"));
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rerun-if-changed=src/config.rs");
    println!("cargo:rerun-if-env-changed=EDGE_CONFIG");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => fail(&format!("cannot read edge config {}: {e}", path.display())),
    };
    let cfg: config::EdgeConfig = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => fail(&format!("edge config {} is invalid: {e}", path.display())),
    };
    if let Err(e) = cfg.validate() {
        fail(&format!("edge config {}: {e}", path.display()));
    }
    let json = match serde_json::to_string(&cfg) {
        Ok(j) => j,
        Err(e) => fail(&format!("cannot serialise edge config: {e}")),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("edge-config.json");
    if let Err(e) = std::fs::write(&out, json) {
        fail(&format!("cannot write {}: {e}", out.display()));
    }
}

fn fail(msg: &str) -> ! {
    // Cargo shows build-script stderr on failure; keep each line readable.
    for line in msg.lines() {
        eprintln!("error: {line}");
    }
    std::process::exit(1);
}
