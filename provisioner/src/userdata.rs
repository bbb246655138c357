//! Machine configs as server `user_data`.
//!
//! [`UserDataSource`] is the boundary the Talos side plugs into: today the spec's
//! `machine_config.files` names one file per role (bring your own config, e.g. from
//! `talosctl gen config`); a generated source implements the same trait.

use crate::spec::{ClusterSpec, MachineConfigSource};
use std::path::{Path, PathBuf};

/// Hetzner's limit on `user_data`.
pub const MAX_USER_DATA: usize = 32 * 1024;

/// Which kind of node a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

/// One node as the user-data source sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    pub name: String,
    pub role: Role,
    /// Worker pool name (`None` for the control plane).
    pub pool: Option<String>,
    /// 1-based index within its pool.
    pub index: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    #[error("cannot read machine config {path} (machine_config.files in the spec): {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("machine config for {node} is {size} bytes: Hetzner limits user_data to 32 KiB ({MAX_USER_DATA} bytes); strip comments and examples (talosctl gen config --with-docs=false --with-examples=false)")]
    TooLarge { node: String, size: usize },
    #[error("machine config for {node} is not valid UTF-8 text")]
    NotText { node: String },
    #[error("machine config for {node}: {message}")]
    Other { node: String, message: String },
}

/// Produces the user data for a node.
pub trait UserDataSource: Send + Sync {
    fn user_data_for(&self, node: &Node) -> Result<String, UserDataError>;
}

/// Bring-your-own configs, one file per role, read once.
#[derive(Debug, Clone)]
pub struct FilesUserData {
    control_plane: String,
    worker: String,
}

impl FilesUserData {
    /// Reads both files; relative paths are relative to `base` (the spec's directory).
    pub fn load(base: &Path, control_plane: &Path, worker: &Path) -> Result<Self, UserDataError> {
        let read = |p: &Path| {
            let path = base.join(p);
            std::fs::read(&path)
                .map_err(|source| UserDataError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|b| {
                    String::from_utf8(b).map_err(|_| UserDataError::NotText {
                        node: path.display().to_string(),
                    })
                })
        };
        Ok(Self {
            control_plane: read(control_plane)?,
            worker: read(worker)?,
        })
    }

    pub fn from_strings(control_plane: String, worker: String) -> Self {
        Self {
            control_plane,
            worker,
        }
    }
}

impl UserDataSource for FilesUserData {
    fn user_data_for(&self, node: &Node) -> Result<String, UserDataError> {
        let data = match node.role {
            Role::ControlPlane => &self.control_plane,
            Role::Worker => &self.worker,
        };
        check_size(&node.name, data)?;
        Ok(data.clone())
    }
}

/// Rejects user data over Hetzner's 32 KiB limit.
pub fn check_size(node: &str, data: &str) -> Result<(), UserDataError> {
    if data.len() > MAX_USER_DATA {
        return Err(UserDataError::TooLarge {
            node: node.to_string(),
            size: data.len(),
        });
    }
    Ok(())
}

/// The source the spec asks for. `spec_dir` resolves relative paths.
pub fn source_for(
    spec: &ClusterSpec,
    spec_dir: &Path,
) -> Result<Box<dyn UserDataSource>, UserDataError> {
    match &spec.machine_config {
        MachineConfigSource::Files(f) => Ok(Box::new(FilesUserData::load(
            spec_dir,
            &f.control_plane,
            &f.worker,
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_rejected_with_the_limit() {
        let src = FilesUserData::from_strings("x".repeat(MAX_USER_DATA + 1), "ok".into());
        let node = Node {
            name: "c-cp-1".into(),
            role: Role::ControlPlane,
            pool: None,
            index: 1,
        };
        let e = src.user_data_for(&node).unwrap_err().to_string();
        assert!(e.contains("c-cp-1") && e.contains("32 KiB"), "{e}");
        let w = Node {
            role: Role::Worker,
            ..node
        };
        assert_eq!(src.user_data_for(&w).unwrap(), "ok");
    }

    #[test]
    fn missing_file_names_path() {
        let e = FilesUserData::load(
            Path::new("/nonexistent-dir"),
            Path::new("cp.yaml"),
            Path::new("w.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cp.yaml") && e.contains("machine_config.files"),
            "{e}"
        );
    }
}
