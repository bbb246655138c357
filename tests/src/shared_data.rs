//! Access to `../shared/` (data kept beside the repository, not in it).
//!
//! A user's clone has no `../shared`: checks that need it call [`shared_dir`]
//! and skip with a printed notice when it returns `None`.

use std::path::PathBuf;

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `../shared/<sub>` from the repository root, if present. Prints a skip notice
/// naming `what` when it is missing, so a skipped check is visible in the output.
pub fn shared_dir(sub: &str, what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SHOPEDGE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared"))
        .join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "notice: skipping {what}: {} not found (../shared is only present in the project's workplace)",
            dir.display()
        );
        None
    }
}
