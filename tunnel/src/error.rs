//! Errors of the tunnel crate. Each names the problem and the fix.

use crate::api::ApiError;
use crate::secrets::SecretsError;

/// The permissions an API token needs for `provisioner tunnel up` and
/// `provisioner secrets push`, as the Cloudflare dashboard names them.
pub const REQUIRED_PERMISSIONS: &str = "Account: Cloudflare Tunnel Edit, Access: Apps and Policies Edit, Access: Service Tokens Edit, Zone: DNS Edit, Zone: Zone Read, Account: Workers Scripts Edit (and Hyperdrive Edit / Workers KV Storage Edit when used, Account: Connectivity Directory Admin for worker_binding = \"workers_vpc\")";

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// A required environment variable is missing or empty.
    #[error("{var} is not set: {hint}")]
    MissingEnv { var: &'static str, hint: String },

    /// The spec file is wrong.
    #[error("invalid tunnel spec: {0}")]
    Spec(String),

    /// Reading or writing a local file failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The API token lacks a permission (found by a read before any change).
    #[error("the Cloudflare API token in CLOUDFLARE_API_TOKEN is not allowed to {action} (HTTP {status}, code {code}); create a token with: {REQUIRED_PERMISSIONS}; the missing one is \"{permission}\"")]
    Permission {
        action: String,
        permission: &'static str,
        status: u16,
        code: i64,
    },

    /// The API token is not accepted at all.
    #[error("the Cloudflare API token in CLOUDFLARE_API_TOKEN was rejected ({0}); create an API token (not a Global API key) with: {REQUIRED_PERMISSIONS}")]
    BadToken(String),

    /// The zone does not exist in the account.
    #[error("zone {zone:?} was not found in account CLOUDFLARE_ACCOUNT_ID={account}; add the zone to Cloudflare or fix `zone` in the spec")]
    ZoneNotFound { zone: String, account: String },

    /// A DNS record with one of our hostnames exists and is not ours.
    #[error("DNS record {name} ({kind} {content}, id {id}) exists and is not managed by shopedge (no ownership comment); left untouched: delete it or pick another hostname")]
    ForeignDnsRecord {
        name: String,
        kind: String,
        content: String,
        id: String,
    },

    /// Another object (tunnel, Access application, service token) of our name
    /// or on our hostname exists and is not ours.
    #[error("{0}; left untouched")]
    Foreign(String),

    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),

    /// The secrets store failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),

    /// Rendering or writing manifests failed.
    #[error("manifests: {0}")]
    Manifest(String),

    /// A broken internal invariant (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}
