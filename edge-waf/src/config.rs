//! WAF configuration: the `[waf]` section of the edge config.
//!
//! Every struct denies unknown keys and has defaults, so an empty `[waf]`
//! section gives a working WAF at paranoia level 1 with threshold 5.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::rules::Family;

/// Whether a rule group's matches count towards blocking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Matches add to the blocking score.
    Block,
    /// Matches are logged (and scored separately) but never block.
    LogOnly,
    /// The group does not run.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WafConfig {
    /// Master switch; `false` allows everything without inspection.
    pub enabled: bool,
    /// Paranoia level 1..=4: rules above it do not run.
    pub paranoia: u8,
    /// Inbound anomaly score at or above which a request is blocked.
    pub threshold: u32,
    /// Mode of every rule group not listed in `groups`.
    pub default_mode: Mode,
    /// Per-family mode, e.g. `groups = { xss = "log-only" }`.
    pub groups: BTreeMap<Family, Mode>,
    /// Per-route, per-field exclusions.
    pub exclusions: Vec<Exclusion>,
    pub limits: Limits,
    /// Per-route overrides of the size limits (first match wins).
    pub route_limits: Vec<RouteLimit>,
    /// Methods allowed at all (uppercase).
    pub allowed_methods: Vec<String>,
    /// Request body content types allowed (media type only, lowercase).
    pub allowed_content_types: Vec<String>,
    /// Charsets allowed in `Content-Type`.
    pub allowed_charsets: Vec<String>,
    /// File extensions that may not be requested (path ends with one).
    pub restricted_extensions: Vec<String>,
    /// Request headers that may not be sent (lowercase names).
    pub restricted_headers: Vec<String>,
    pub access: AccessConfig,
}

impl Default for WafConfig {
    fn default() -> Self {
        WafConfig {
            enabled: true,
            paranoia: 1,
            threshold: 5,
            default_mode: Mode::Block,
            groups: BTreeMap::new(),
            exclusions: vec![
                // Medusa admin product descriptions are HTML/Markdown prose
                // written by authenticated staff.
                Exclusion {
                    path: "/admin/products*".into(),
                    fields: vec!["description".into()],
                    families: vec![Family::Xss, Family::Sqli, Family::Rce, Family::Rfi],
                    rules: vec![],
                },
                // Medusa's query filters use `$gte`, `$in`, `$ne`... on a SQL
                // backend: MongoDB operator injection does not apply.
                Exclusion {
                    path: "/admin/*".into(),
                    fields: vec![],
                    families: vec![],
                    rules: vec![942290],
                },
                Exclusion {
                    path: "/store/*".into(),
                    fields: vec![],
                    families: vec![],
                    rules: vec![942290],
                },
                // Passwords are arbitrary strings by design.
                Exclusion {
                    path: "/auth/*".into(),
                    fields: vec!["password".into()],
                    families: vec![],
                    rules: vec![],
                },
            ],
            limits: Limits::default(),
            route_limits: vec![RouteLimit {
                path: "/admin/uploads*".into(),
                max_body_bytes: Some(50 * 1024 * 1024),
                max_uri_len: None,
            }],
            allowed_methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            allowed_content_types: [
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "multipart/related",
                "text/xml",
                "application/xml",
                "application/soap+xml",
                "application/json",
                "application/merge-patch+json",
                "application/cloudevents+json",
                "application/cloudevents-batch+json",
                "application/csp-report",
                "text/plain",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            allowed_charsets: [
                "utf-8",
                "us-ascii",
                "iso-8859-1",
                "iso-8859-15",
                "windows-1252",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            restricted_extensions: [
                ".asa",
                ".asax",
                ".ascx",
                ".backup",
                ".bak",
                ".bat",
                ".cdx",
                ".cer",
                ".cfg",
                ".cmd",
                ".com",
                ".config",
                ".conf",
                ".cs",
                ".csproj",
                ".csr",
                ".dat",
                ".db",
                ".dbf",
                ".dll",
                ".dos",
                ".htr",
                ".htw",
                ".ida",
                ".idc",
                ".idq",
                ".inc",
                ".ini",
                ".key",
                ".licx",
                ".lnk",
                ".log",
                ".mdb",
                ".old",
                ".pass",
                ".pdb",
                ".pol",
                ".printer",
                ".pwd",
                ".rdb",
                ".resources",
                ".resx",
                ".sql",
                ".swp",
                ".sys",
                ".vb",
                ".vbs",
                ".vbproj",
                ".vsdisco",
                ".webinfo",
                ".xsd",
                ".xsx",
                ".sqlite",
                ".env",
                ".pem",
                ".p12",
                ".pfx",
                ".kdbx",
                ".tmp",
                ".orig",
                ".save",
                ".dist",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            restricted_headers: [
                "proxy",
                "lock-token",
                "content-range",
                "if",
                "x-http-method-override",
                "x-http-method",
                "x-method-override",
                "x-original-url",
                "x-rewrite-url",
                "translate",
                "x-middleware-subrequest",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            access: AccessConfig::default(),
        }
    }
}

/// Skip some detections for some fields on some routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// Path pattern: exact, or a prefix when it ends with `*`
    /// (`/admin/*` also matches `/admin`).
    pub path: String,
    /// Field names (query/form/JSON/multipart/cookie); a JSON field matches
    /// by its full dotted path or its last key. Empty or `*`: every field.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Families skipped for those fields; empty: all.
    #[serde(default)]
    pub families: Vec<Family>,
    /// Rule ids skipped for those fields (in addition to `families`).
    #[serde(default)]
    pub rules: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest accepted request URI (path and query), bytes.
    pub max_uri_len: usize,
    pub max_header_count: usize,
    /// Longest accepted single header value, bytes.
    pub max_header_len: usize,
    /// Largest accepted body (`Content-Length` / `body_len`), bytes.
    pub max_body_bytes: u64,
    /// How much of a body is inspected.
    pub max_inspect_bytes: usize,
    /// How much of one field value is inspected.
    pub max_field_len: usize,
    /// Maximum number of arguments (query + body; a JSON key path counts
    /// once); a request with more is refused (413), since the rest would
    /// go uninspected.
    pub max_args: usize,
    /// URL/entity decoding passes.
    pub max_decode_passes: usize,
    pub json_max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_len: 8192,
            max_header_count: 100,
            max_header_len: 8192,
            max_body_bytes: 10 * 1024 * 1024,
            max_inspect_bytes: 128 * 1024,
            max_field_len: 16 * 1024,
            max_args: 8192,
            max_decode_passes: 3,
            json_max_depth: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimit {
    pub path: String,
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    #[serde(default)]
    pub max_uri_len: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Addresses or CIDRs (IPv4/IPv6) always allowed through the access
    /// rules and exempt from the Access JWT requirement.
    pub allow_ips: Vec<String>,
    /// Addresses or CIDRs always denied (403).
    pub deny_ips: Vec<String>,
    /// If non-empty, only these countries (ISO 3166 alpha-2) are allowed.
    pub allow_countries: Vec<String>,
    pub deny_countries: Vec<String>,
    pub deny_asns: Vec<u32>,
    /// Paths that need an allowlisted address or a Cloudflare Access JWT.
    pub protected_paths: Vec<String>,
    /// Cloudflare Access application settings for the JWT check.
    pub jwt: Option<AccessJwtConfig>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            allow_ips: vec![],
            deny_ips: vec![],
            allow_countries: vec![],
            deny_countries: vec![],
            deny_asns: vec![],
            protected_paths: vec!["/admin/*".into(), "/app/*".into()],
            jwt: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessJwtConfig {
    /// Issuer, e.g. `https://myteam.cloudflareaccess.com`.
    pub issuer: String,
    /// Accepted audience tags (the Access application's AUD).
    pub audience: Vec<String>,
    /// Clock skew tolerated for `exp`/`nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Where to fetch the signing keys; by default the team domain's
    /// `/cdn-cgi/access/certs` (set it only to point at a mirror or a test
    /// server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certs_url: Option<String>,
}

fn default_leeway() -> u64 {
    60
}

impl AccessJwtConfig {
    /// Where the team's signing keys are published.
    pub fn certs_url(&self) -> String {
        match &self.certs_url {
            Some(u) => u.clone(),
            None => format!("{}/cdn-cgi/access/certs", self.issuer.trim_end_matches('/')),
        }
    }
}

/// Does `path` match a pattern (`exact`, `prefix*`; `/x/*` also matches `/x`)?
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        if path.starts_with(prefix) {
            return true;
        }
        if let Some(dir) = prefix.strip_suffix('/') {
            return path == dir;
        }
        false
    } else {
        pattern == path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(path_matches("/admin/*", "/admin"));
        assert!(path_matches("/admin/*", "/admin/products"));
        assert!(!path_matches("/admin/*", "/administrator"));
        assert!(path_matches("/admin/products*", "/admin/products/prod_1"));
        assert!(path_matches("/x", "/x"));
        assert!(!path_matches("/x", "/x/y"));
    }
}
