//! Cloudflare Tunnel, DNS, Access and Worker secrets for shopedge, reconciled
//! through the Cloudflare v4 API, plus the age-encrypted GitOps secrets store.
//!
//! Layout:
//! - [`spec`]: what we want (parsed and validated before any API call);
//! - [`api`]: the `cloudflare` crate's endpoints where it has them, our own
//!   implementations of its `EndpointSpec` for the rest (one type per call),
//!   and our executor over `reqwest` (envelope, pagination, retries
//!   honouring `Retry-After`, errors naming the token permission);
//! - [`plan`]: pure diff of desired vs observed state into [`plan::Action`]s;
//! - [`reconcile`]: observe, validate, plan, execute;
//! - [`manifests`]: the cloudflared Kubernetes manifests (pure rendering);
//! - [`secrets`]: the encrypted per-environment secrets file and `push`;
//! - [`workflow`]: the GitHub Actions workflow check;
//! - [`cli`]: clap command groups the `provisioner` binary embeds.

pub mod api;
pub mod cli;
pub mod error;
pub mod manifests;
pub mod plan;
pub mod reconcile;
pub mod secret;
pub mod secrets;
pub mod spec;
pub mod workflow;

pub use error::TunnelError;
pub use secret::SecretString;
