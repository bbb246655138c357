//! The Talos side of `provisioner up`: native secrets, machine configs, secrets
//! at rest, admin client configs and bootstrap over the Talos API.
//!
//! Defaults target Talos [`DEFAULT_TALOS_VERSION`] (`v1.13.9`, schema
//! `../shared/talos-config-schema/v1.13.schema.json`). Talos v1.14 (schema from
//! v1.14.0-rc.1) is rendered in its multi-document layout ([`render::multidoc`]:
//! kubelet, node labels/taints, sysctls, install and the Kubernetes components in
//! documents of their own kinds), validated against its schema like v1.13; the
//! default stays on v1.13 while v1.14 is a release candidate. A version without
//! a schema is refused before anything is rendered.
//!
//! # API for the provisioner
//!
//! ```text
//! // 1. secrets: load or create, age-encrypted at <root>/infra/clusters/<name>/talos-secrets.age
//! let store = SecretsStore::new(repo_root, &name);
//! let recipients = Recipients::from_spec_or_env(&spec.age_recipients, store.path())?;
//! let ids = Identities::from_env(store.path()).ok();         // needed when the file exists
//! let (secrets, created) = store.load_or_create(ids.as_ref(), &recipients,
//!     || generate_secrets(&mut rand::rngs::OsRng, time::OffsetDateTime::now_utc()))?;
//!
//! // 2. configs (validated against the schema; nothing is sent before this succeeds)
//! //    both roles at once (schema + infra/talos patches + 32 KiB check):
//! let cfgs = render_role_configs(&cluster, &secrets, &repo_root.join("infra/talos"), &schema_dir)?;
//! //    or per node/pool (labels, taints):
//! let schema = TalosSchema::load(&schema_dir, &cluster.talos_version)?;  // NoSchema error names dir + fix
//! let input = NodeConfigInput::new(ClusterInput::new(&name, "https://[2a01:..]:6443"), Role::ControlPlane);
//! let patches = Patch::load_for_version(&repo_root.join("infra/talos"), Role::ControlPlane,
//!     &cluster.talos_version)?;                                  // infra/talos/v1.14/ for v1.14
//! let user_data = render_node_config(&input, &secrets, &patches, &schema)?;
//! check_user_data_size(Role::ControlPlane, &user_data)?;          // < 32 KiB
//!
//! // 3. client configs (mode 0600 files, or print)
//! let kubeconfig = admin_kubeconfig(&secrets, &name, &endpoint, &mut OsRng, now)?;
//! let creds = TalosClientCreds::issue_admin(&secrets, &mut OsRng, now)?;
//! let tc = talosconfig(&creds, &name, &endpoints, &nodes)?;
//! write_private_file(path, &kubeconfig)?;
//!
//! // 4. bootstrap via the first control-plane node ([ipv6]:50000)
//! let k8s = KubeApiReadiness::from_kubeconfig(&kubeconfig)?;
//! let report = bootstrap(addr, &creds, &k8s, &BootstrapOptions { expected_nodes: n, ..Default::default() }).await?;
//! ```
//!
//! Secret material is never logged: `Debug` of [`SecretsBundle`], [`pki::CertKey`],
//! [`TalosClientCreds`] and [`store::Identities`] is redacted, and plaintext is only
//! held in memory ([`zeroize::Zeroizing`] buffers).
//!
//! # Rotating secrets
//!
//! * age layer: `SecretsStore::rekey(&old_identities, &new_recipients)` re-encrypts
//!   the bundle to new recipients (e.g. when a team member leaves); commit the file.
//! * cluster secrets: a new bundle means new CAs, which running nodes do not trust.
//!   Either rebuild the cluster (`provisioner down`, delete the `.age` file, `up`),
//!   or rotate in place with Talos's own CA rotation (`talosctl rotate-ca`) and then
//!   store the new material with [`SecretsStore::save`].

pub mod api;
pub mod bootstrap;
pub mod clientcfg;
pub mod error;
pub mod patch;
pub mod pki;
pub mod render;
pub mod schema;
pub mod secrets;
pub mod store;
pub mod version;

pub use api::client::TalosClient;
pub use api::TALOS_API_PORT;
pub use bootstrap::{
    bootstrap, BootstrapOptions, BootstrapOutcome, BootstrapReport, BootstrapStage, K8sReadiness,
    KubeApiReadiness,
};
pub use clientcfg::{admin_kubeconfig, talosconfig, write_private_file, TalosClientCreds};
pub use error::TalosError;
pub use patch::Patch;
pub use render::{
    check_user_data_size, render_node_config, render_role_configs, ClusterInput, Layout,
    NodeConfigInput, RenderedConfigs, Role, DEFAULT_KUBERNETES_VERSION, DEFAULT_TALOS_VERSION,
    USER_DATA_LIMIT,
};
pub use schema::{validate_config, TalosSchema};
pub use secrets::{generate_secrets, SecretsBundle};
pub use store::{Identities, Recipients, SecretsStore};
pub use version::TalosVersion;
pub use zeroize;

/// A deterministic RNG for a seed (tests and reproducible fixtures only;
/// production uses `rand::rngs::OsRng`).
pub fn seeded_rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    use rand::SeedableRng as _;
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}
