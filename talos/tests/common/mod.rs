#![allow(dead_code)]
use std::path::PathBuf;
use talos::{generate_secrets, seeded_rng, SecretsBundle};

/// Fixed creation time for deterministic output.
pub fn fixed_now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap() // 2026-01-01T00:00:00Z
}

pub fn secrets(seed: u64) -> SecretsBundle {
    generate_secrets(&mut seeded_rng(seed), fixed_now()).unwrap()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/talos-config-schema`, or None with a printed notice.
pub fn schema_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SHOPEDGE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared"))
        .join("talos-config-schema");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "notice: skipping Talos schema checks: {} not found (../shared is only present in the project's workplace)",
            dir.display()
        );
        None
    }
}

pub fn patch_dir() -> PathBuf {
    repo_root().join("infra").join("talos")
}
