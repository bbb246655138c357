//! Machine configs as server `user_data`.
//!
//! [`UserDataSource`] is the boundary the Talos side plugs into: today the spec's
//! `machine_config.files` names one file per role (bring your own config, e.g. from
//! `talosctl gen config`); `machine_config.generated` renders them natively with the
//! `talos` crate ([`GeneratedUserData`]).

use crate::spec::{ClusterSpec, GeneratedSource, MachineConfigSource};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use talos::store::{IDENTITY_ENV, IDENTITY_FILE_ENV, RECIPIENTS_ENV};
use talos::{Identities, Recipients, SecretsBundle, SecretsStore, TalosError};

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
    #[error("generated machine configs (machine_config.generated): {0}")]
    Talos(#[from] TalosError),
}

/// Produces the user data for a node.
pub trait UserDataSource: Send + Sync {
    fn user_data_for(&self, node: &Node) -> Result<String, UserDataError>;
    /// The generated Talos side (secrets, cluster input), if this source has one.
    fn generated(&self) -> Option<&GeneratedUserData> {
        None
    }
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

/// What a user-data source may read from the process environment.
#[derive(Debug, Clone, Copy)]
pub struct SourceEnv<'a> {
    /// Environment variables (age identity and recipients).
    pub vars: &'a BTreeMap<String, String>,
    /// Save a newly generated secrets bundle. `false` (read-only commands such as
    /// `plan`): a missing bundle is generated in memory only and discarded.
    pub persist: bool,
}

/// The source the spec asks for. `spec_dir` resolves relative paths. Every config is
/// read or rendered (and validated) here, before anything is sent to Hetzner.
pub fn source_for(
    spec: &ClusterSpec,
    spec_dir: &Path,
    env: &SourceEnv<'_>,
) -> Result<Box<dyn UserDataSource>, UserDataError> {
    match &spec.machine_config {
        MachineConfigSource::Files(f) => Ok(Box::new(FilesUserData::load(
            spec_dir,
            &f.control_plane,
            &f.worker,
        )?)),
        MachineConfigSource::Generated(g) => {
            Ok(Box::new(GeneratedUserData::load(spec, g, spec_dir, env)?))
        }
    }
}

/// Natively generated Talos configs: the cluster's secrets bundle (age-encrypted at
/// `<root>/infra/clusters/<name>/talos-secrets.age`) and one rendered, schema-validated
/// config for the control plane and for each worker pool (its labels and taints).
pub struct GeneratedUserData {
    /// The cluster-wide render input (endpoint, versions, subnets).
    pub cluster: talos::ClusterInput,
    /// The encrypted secrets file.
    pub secrets_path: PathBuf,
    /// Whether the bundle was generated by this run.
    pub created: bool,
    /// Whether the bundle is saved (false: generated in memory by a read-only command).
    pub persisted: bool,
    secrets: SecretsBundle,
    controlplane: String,
    workers: BTreeMap<String, String>,
}

impl std::fmt::Debug for GeneratedUserData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedUserData")
            .field("cluster", &self.cluster.cluster_name)
            .field("secrets_path", &self.secrets_path)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// The age identity from `SHOPEDGE_AGE_IDENTITY`, else the file named by
/// `SHOPEDGE_AGE_IDENTITY_FILE` (relative to `base`).
pub fn identities(
    vars: &BTreeMap<String, String>,
    base: &Path,
    secrets: &Path,
) -> Result<Identities, TalosError> {
    if let Some(v) = vars.get(IDENTITY_ENV).filter(|v| !v.trim().is_empty()) {
        return Identities::parse(v, IDENTITY_ENV, secrets);
    }
    if let Some(f) = vars.get(IDENTITY_FILE_ENV).filter(|v| !v.trim().is_empty()) {
        return Identities::from_file(&base.join(f), secrets);
    }
    Err(TalosError::Secrets {
        path: secrets.to_path_buf(),
        detail: "no age identity to decrypt it with".into(),
        fix: format!("set {IDENTITY_ENV} to the AGE-SECRET-KEY-1... key, or {IDENTITY_FILE_ENV} to the file holding it"),
    })
}

fn recipients(
    spec: &[String],
    vars: &BTreeMap<String, String>,
    secrets: &Path,
) -> Result<Recipients, TalosError> {
    if spec.iter().any(|s| !s.trim().is_empty()) {
        return Recipients::parse(spec, "the cluster spec (age_recipients)", secrets);
    }
    let env = vars.get(RECIPIENTS_ENV).cloned().unwrap_or_default();
    let keys: Vec<&str> = env
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|k| !k.is_empty())
        .collect();
    Recipients::parse(&keys, RECIPIENTS_ENV, secrets)
}

/// `key=value:Effect` (or `key:Effect`) as Talos's `nodeTaints` entry.
fn taint_entry(t: &str) -> (String, String) {
    let (kv, effect) = t.rsplit_once(':').unwrap_or((t, ""));
    match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), format!("{v}:{effect}")),
        None => (kv.to_string(), format!(":{effect}")),
    }
}

/// The stored secrets bundle of a `machine_config.generated` cluster (for the client
/// configs); it must exist: `provisioner up` creates it.
pub fn stored_secrets(
    spec: &ClusterSpec,
    root: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<(SecretsBundle, GeneratedSource), UserDataError> {
    let MachineConfigSource::Generated(g) = &spec.machine_config else {
        return Err(UserDataError::Other {
            node: spec.name.clone(),
            message: "the spec brings its own configs (machine_config.files): admin configs come with them (talosctl gen config); switch to [machine_config.generated] to have them made here".into(),
        });
    };
    let store = SecretsStore::new(root, &spec.name);
    let path = store.path().to_path_buf();
    if !store.exists() {
        return Err(TalosError::Secrets {
            path,
            detail: "the Talos secrets bundle does not exist".into(),
            fix: "run `provisioner up` first (it generates the bundle)".into(),
        }
        .into());
    }
    Ok((store.load(&identities(vars, root, &path)?)?, g.clone()))
}

impl GeneratedUserData {
    /// Loads (or creates) the secrets bundle and renders every config.
    pub fn load(
        spec: &ClusterSpec,
        g: &GeneratedSource,
        root: &Path,
        env: &SourceEnv<'_>,
    ) -> Result<Self, UserDataError> {
        // The schema first: a Talos version without one fails before anything is written.
        let schema = talos::TalosSchema::load(&root.join(&g.schema_dir), &g.talos_version)?;
        let store = SecretsStore::new(root, &spec.name);
        let path = store.path().to_path_buf();
        let generate =
            || talos::generate_secrets(&mut rand::rngs::OsRng, time::OffsetDateTime::now_utc());
        let (secrets, created) = if store.exists() {
            (store.load(&identities(env.vars, root, &path)?)?, false)
        } else if env.persist {
            let r = recipients(&g.age_recipients, env.vars, &path)?;
            store.load_or_create(None, &r, generate)?
        } else {
            (generate()?, true)
        };
        let mut cluster = talos::ClusterInput::new(&spec.name, &g.endpoint);
        cluster.talos_version = g.talos_version.clone();
        cluster.kubernetes_version = g.kubernetes_version.clone();
        cluster.cert_sans = g.cert_sans.clone();
        let patch_dir = root.join(&g.patch_dir);
        let render = |input: talos::NodeConfigInput| -> Result<String, UserDataError> {
            let patches = talos::Patch::load_for_version(
                &patch_dir,
                input.role,
                &input.cluster.talos_version,
            )?;
            let yaml = talos::render_node_config(&input, &secrets, &patches, &schema)?;
            talos::check_user_data_size(input.role, &yaml)?;
            Ok(yaml)
        };
        let controlplane = render(talos::NodeConfigInput::new(
            cluster.clone(),
            talos::Role::ControlPlane,
        ))?;
        let mut workers = BTreeMap::new();
        for pool in &spec.worker_pools {
            let mut input = talos::NodeConfigInput::new(cluster.clone(), talos::Role::Worker);
            input.node_labels = pool.labels.clone();
            input.node_taints = pool.taints.iter().map(|t| taint_entry(t)).collect();
            workers.insert(pool.name.clone(), render(input)?);
        }
        Ok(Self {
            cluster,
            secrets_path: path,
            created,
            persisted: env.persist || !created,
            secrets,
            controlplane,
            workers,
        })
    }

    /// The cluster's secrets bundle (in memory only).
    pub fn secrets(&self) -> &SecretsBundle {
        &self.secrets
    }
}

impl UserDataSource for GeneratedUserData {
    fn user_data_for(&self, node: &Node) -> Result<String, UserDataError> {
        let data = match (&node.role, &node.pool) {
            (Role::ControlPlane, _) => &self.controlplane,
            (Role::Worker, Some(p)) => self.workers.get(p).ok_or_else(|| UserDataError::Other {
                node: node.name.clone(),
                message: format!("no config rendered for worker pool {p:?}"),
            })?,
            (Role::Worker, None) => {
                return Err(UserDataError::Other {
                    node: node.name.clone(),
                    message: "worker without a pool".into(),
                })
            }
        };
        check_size(&node.name, data)?;
        Ok(data.clone())
    }

    fn generated(&self) -> Option<&GeneratedUserData> {
        Some(self)
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
    fn taints_become_talos_node_taints() {
        assert_eq!(
            taint_entry("dedicated=edge:NoSchedule"),
            ("dedicated".into(), "edge:NoSchedule".into())
        );
        assert_eq!(
            taint_entry("gpu:NoExecute"),
            ("gpu".into(), ":NoExecute".into())
        );
    }

    #[test]
    fn generated_without_schema_names_the_directory_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let text = ClusterSpec::template("shop");
        let spec = ClusterSpec::parse(&text, Path::new("cluster.toml")).unwrap();
        let MachineConfigSource::Generated(g) = &spec.machine_config else {
            panic!("the template generates configs")
        };
        assert_eq!(g.talos_version, talos::DEFAULT_TALOS_VERSION);
        let vars = BTreeMap::new();
        let env = SourceEnv {
            vars: &vars,
            persist: true,
        };
        let Err(e) = source_for(&spec, dir.path(), &env) else {
            panic!("rendered without a schema")
        };
        let e = e.to_string();
        assert!(e.contains("talos-config-schema"), "{e}");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn files_source_has_no_admin_configs() {
        let text = ClusterSpec::template("shop").replace(
            "[machine_config.generated]",
            "[machine_config.files]\ncontrol_plane = \"cp.yaml\"\nworker = \"w.yaml\"\n[unused]",
        );
        let text = text.split("[unused]").next().unwrap().to_string();
        let spec = ClusterSpec::parse(&text, Path::new("cluster.toml")).unwrap();
        let e = stored_secrets(&spec, Path::new("."), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("machine_config.generated"), "{e}");
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
