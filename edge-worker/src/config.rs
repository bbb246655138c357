//! The declarative edge configuration: upstreams, routes, redirects, header
//! rules and security headers.
//!
//! The human-edited source is `edge-worker/edge.toml`. `build.rs` includes this
//! module, parses and validates that file at build time (a bad entry fails the
//! build with a message naming it) and embeds the validated configuration as
//! JSON. At run time the same types parse an optional JSON override read from
//! KV; an invalid override is rejected by [`EdgeConfig::validate`] and the
//! built-in configuration is used instead.
//!
//! This module depends on `serde` and `edge-waf` only, so that `build.rs` can
//! include it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The whole edge configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, Upstream>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
    /// Redirect rules, evaluated in order before routing.
    #[serde(default)]
    pub redirects: Vec<Redirect>,
    /// Request and response header rules.
    #[serde(default)]
    pub headers: Vec<HeaderRule>,
    /// Security headers added to HTML responses.
    #[serde(default)]
    pub security_headers: SecurityHeaders,
    /// The cache layer.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The WAF layer (see the `edge-waf` crate).
    #[serde(default)]
    pub waf: edge_waf::WafConfig,
    /// Rate limits per client address and route class, counted by Workers
    /// Rate Limiting bindings; the first matching rule applies.
    #[serde(default = "default_rate_limits")]
    pub rate_limits: Vec<RateLimitRule>,
}

/// A rate-limited set of paths. The limit itself (requests per period) is the
/// binding's, set in `wrangler.toml` under `[[ratelimits]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Name used in logs and in the counting key.
    pub name: String,
    /// Path patterns (matched case-insensitively, as Medusa's router does).
    pub paths: Vec<String>,
    /// The Rate Limiting binding that counts these requests.
    pub binding: String,
    /// The binding's period in seconds (10 or 60, as in `wrangler.toml`):
    /// sent as `Retry-After` when the limit is hit.
    pub period_seconds: u32,
    /// Methods counted (uppercase); empty means every method.
    #[serde(default)]
    pub methods: Vec<String>,
}

fn default_rate_limits() -> Vec<RateLimitRule> {
    let rule = |name: &str, paths: &[&str], binding: &str| RateLimitRule {
        name: name.into(),
        paths: strings(paths),
        binding: binding.into(),
        period_seconds: 60,
        methods: Vec::new(),
    };
    vec![
        rule("auth", &["/auth/*"], "RATE_LIMIT_AUTH"),
        rule("customers", &["/store/customers*"], "RATE_LIMIT_CUSTOMERS"),
        rule("carts", &["/store/carts*"], "RATE_LIMIT_CARTS"),
    ]
}

/// Where requests are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Name of the Worker var holding the origin's base URL (for example the
    /// Cloudflare Tunnel hostname of Medusa).
    #[serde(default)]
    pub url_var: Option<String>,
    /// Name of a service binding to call instead of a URL, when bound.
    #[serde(default)]
    pub service: Option<String>,
    /// Time to wait for the origin's response headers, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Add the Cloudflare Access service-token headers (from Worker secrets
    /// `ACCESS_CLIENT_ID` / `ACCESS_CLIENT_SECRET`) to requests to this upstream.
    #[serde(default)]
    pub access_service_token: bool,
}

fn default_timeout_ms() -> u32 {
    15_000
}

/// How errors on a route are rendered for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteClass {
    /// JSON API (Medusa): errors as JSON.
    Api,
    /// Storefront pages: errors as HTML.
    Page,
}

/// A route: host and path patterns mapped to an upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name used in logs and errors.
    pub name: String,
    /// Host patterns: `*`, `*.example.com` or an exact host. Default: any host.
    #[serde(default = "any_host")]
    pub hosts: Vec<String>,
    /// Path patterns: `/exact`, `/prefix/*` (also matches `/prefix`) or `/*`.
    pub paths: Vec<String>,
    /// Name of the upstream in `upstreams`.
    pub upstream: String,
    /// How errors on this route are rendered.
    pub class: RouteClass,
    /// Pass WebSocket upgrades through to the upstream.
    #[serde(default)]
    pub websocket: bool,
}

fn any_host() -> Vec<String> {
    vec!["*".to_string()]
}

/// A redirect rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// Name used in logs and errors.
    pub name: String,
    /// What the rule does: `https`, `canonical_host` or `trailing_slash`.
    pub kind: RedirectKind,
    /// For `canonical_host`: the canonical host.
    #[serde(default)]
    pub to: Option<String>,
    /// For `trailing_slash`: `remove` or `add`.
    #[serde(default)]
    pub action: Option<SlashAction>,
    /// Host patterns the rule applies to.
    #[serde(default = "any_host")]
    pub hosts: Vec<String>,
    /// Path patterns the rule applies to. Default: every path.
    #[serde(default = "any_path")]
    pub paths: Vec<String>,
    /// 301, 302, 307 or 308.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn any_path() -> Vec<String> {
    vec!["/*".to_string()]
}

fn default_redirect_status() -> u16 {
    301
}

/// The kinds of redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectKind {
    /// `http://` to `https://`.
    Https,
    /// Any matching host to the canonical `to` host.
    CanonicalHost,
    /// Remove (or add) a trailing slash on matching paths; `/` is never changed.
    TrailingSlash,
}

/// Whether the trailing-slash rule removes or adds the slash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlashAction {
    /// `/a/` to `/a`.
    Remove,
    /// `/a` to `/a/`.
    Add,
}

/// Which side of the proxy a header rule edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The request sent to the upstream.
    Request,
    /// The response sent to the client.
    Response,
}

/// Set or remove headers on matching requests or responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    /// Name used in logs and errors.
    pub name: String,
    /// Request or response.
    pub phase: Phase,
    /// Host patterns.
    #[serde(default = "any_host")]
    pub hosts: Vec<String>,
    /// Path patterns.
    #[serde(default = "any_path")]
    pub paths: Vec<String>,
    /// Headers to set (replacing any existing value).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Security headers added to HTML responses that do not set them already.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security` value; empty disables it.
    #[serde(default = "default_hsts")]
    pub hsts: String,
    /// `Referrer-Policy` value.
    #[serde(default = "default_referrer_policy")]
    pub referrer_policy: String,
    /// CSP `frame-ancestors` sources.
    #[serde(default = "default_frame_ancestors")]
    pub frame_ancestors: String,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        SecurityHeaders {
            hsts: default_hsts(),
            referrer_policy: default_referrer_policy(),
            frame_ancestors: default_frame_ancestors(),
        }
    }
}

fn default_hsts() -> String {
    "max-age=31536000; includeSubDomains".to_string()
}

fn default_referrer_policy() -> String {
    "strict-origin-when-cross-origin".to_string()
}

fn default_frame_ancestors() -> String {
    "'self'".to_string()
}

/// The `[cache]` section of the edge config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Master switch.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Query parameters dropped from the key (`utm_*` is a prefix pattern).
    #[serde(default = "default_tracking")]
    pub drop_params: Vec<String>,
    /// Requests carrying any of these cookies are never cached (sessions).
    #[serde(default = "default_session_cookies")]
    pub bypass_cookies: Vec<String>,
    /// Request headers the key varies on (e.g. Medusa's publishable key).
    #[serde(default = "default_vary_headers")]
    pub vary_headers: Vec<String>,
    /// Cookies the key varies on (region, currency, locale).
    #[serde(default = "default_vary_cookies")]
    pub vary_cookies: Vec<String>,
    /// Paths never cached, whatever the rules say.
    #[serde(default = "default_never")]
    pub never: Vec<String>,
    /// Seconds to keep a 404 (0: never store 404s).
    #[serde(default = "default_negative_ttl")]
    pub not_found_ttl: u32,
    /// Seconds to keep a 301 (0: never store redirects).
    #[serde(default = "default_redirect_ttl")]
    pub redirect_ttl: u32,
    /// Cacheable routes, first match wins.
    #[serde(default)]
    pub rules: Vec<CacheRule>,
}

/// A cacheable set of paths with its lifetimes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// Name used in logs and errors.
    pub name: String,
    /// Path patterns.
    pub paths: Vec<String>,
    /// Seconds a stored response is fresh.
    pub ttl: u32,
    /// Seconds after that during which the stale copy is served while it is
    /// refreshed in the background.
    #[serde(default)]
    pub stale_while_revalidate: u32,
    /// Seconds after expiry during which the stale copy is served when the
    /// origin fails.
    #[serde(default)]
    pub stale_if_error: u32,
}

fn yes() -> bool {
    true
}
fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
fn default_tracking() -> Vec<String> {
    strings(&["utm_*", "fbclid", "gclid", "msclkid", "mc_eid", "_ga"])
}
fn default_session_cookies() -> Vec<String> {
    strings(&["connect.sid", "_medusa_jwt"])
}
fn default_vary_headers() -> Vec<String> {
    strings(&["x-publishable-api-key"])
}
fn default_vary_cookies() -> Vec<String> {
    strings(&["region", "currency", "locale"])
}
fn default_never() -> Vec<String> {
    strings(&[
        "/store/carts*",
        "/store/customers*",
        "/store/orders*",
        "/store/payment*",
        "/store/payment-collections*",
        "/auth/*",
        "/admin/*",
        "/hooks/*",
        "/app/*",
        "/__edge/*",
    ])
}
fn default_negative_ttl() -> u32 {
    30
}
fn default_redirect_ttl() -> u32 {
    300
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            drop_params: default_tracking(),
            bypass_cookies: default_session_cookies(),
            vary_headers: default_vary_headers(),
            vary_cookies: default_vary_cookies(),
            never: default_never(),
            not_found_ttl: default_negative_ttl(),
            redirect_ttl: default_redirect_ttl(),
            rules: Vec::new(),
        }
    }
}

/// A configuration entry that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Which entry, for example `routes[2] "medusa"`.
    pub entry: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(entry: String, message: impl Into<String>) -> ConfigError {
    ConfigError {
        entry,
        message: message.into(),
    }
}

/// Checks a host pattern: `*`, `*.suffix` or a lowercase DNS name (with optional port).
fn check_host_pattern(entry: &str, pattern: &str) -> Result<(), ConfigError> {
    let body = pattern.strip_prefix("*.").unwrap_or(pattern);
    let valid = pattern == "*"
        || (!body.is_empty()
            && body.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' || c == ':'
            }));
    if valid {
        Ok(())
    } else {
        Err(err(
            entry.to_string(),
            format!("host pattern {pattern:?} is invalid: use \"*\", \"*.example.com\" or a lowercase host name"),
        ))
    }
}

/// Checks a path pattern: starts with `/`, `*` only as the final `/*`.
fn check_path_pattern(entry: &str, pattern: &str) -> Result<(), ConfigError> {
    let star_ok = match pattern.find('*') {
        None => true,
        Some(i) => i == pattern.len() - 1,
    };
    if pattern.starts_with('/') && star_ok {
        Ok(())
    } else {
        Err(err(
            entry.to_string(),
            format!("path pattern {pattern:?} is invalid: use \"/exact\", \"/prefix/*\" or \"/prefix*\" (a single trailing \"*\")"),
        ))
    }
}

fn check_header_name(entry: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(err(
            entry.to_string(),
            format!("{name:?} is not a valid header name"),
        ))
    }
}

/// Headers a rule may never set or remove: the Access credentials are added by
/// the worker itself, and hop-by-hop headers are managed by the proxy.
const PROTECTED_HEADERS: &[&str] = &[
    "cf-access-client-id",
    "cf-access-client-secret",
    "connection",
    "upgrade",
    "transfer-encoding",
    "content-length",
];

impl EdgeConfig {
    /// Validates references and patterns. The error names the first bad entry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.upstreams.is_empty() {
            return Err(err("upstreams".into(), "at least one upstream is required"));
        }
        for (name, up) in &self.upstreams {
            let entry = format!("upstreams.{name}");
            if up.url_var.is_none() && up.service.is_none() {
                return Err(err(
                    entry,
                    "set `url_var` (a Worker var with the origin URL) or `service` (a service binding), or both",
                ));
            }
            if up.timeout_ms == 0 || up.timeout_ms > 300_000 {
                return Err(err(
                    entry,
                    format!(
                        "timeout_ms = {} is out of range: use 1..=300000",
                        up.timeout_ms
                    ),
                ));
            }
        }
        if self.routes.is_empty() {
            return Err(err("routes".into(), "at least one route is required"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let entry = format!("routes[{i}] {:?}", r.name);
            if !seen.insert(r.name.as_str()) {
                return Err(err(entry, "duplicate route name"));
            }
            if !self.upstreams.contains_key(&r.upstream) {
                let known: Vec<&str> = self.upstreams.keys().map(String::as_str).collect();
                return Err(err(
                    entry,
                    format!(
                        "upstream {:?} is not defined; known upstreams: {}",
                        r.upstream,
                        known.join(", ")
                    ),
                ));
            }
            if r.paths.is_empty() {
                return Err(err(entry, "`paths` must not be empty"));
            }
            for h in &r.hosts {
                check_host_pattern(&entry, h)?;
            }
            for p in &r.paths {
                check_path_pattern(&entry, p)?;
            }
        }
        for (i, r) in self.redirects.iter().enumerate() {
            let entry = format!("redirects[{i}] {:?}", r.name);
            if ![301, 302, 307, 308].contains(&r.status) {
                return Err(err(
                    entry,
                    format!(
                        "status {} is not a redirect: use 301, 302, 307 or 308",
                        r.status
                    ),
                ));
            }
            for h in &r.hosts {
                check_host_pattern(&entry, h)?;
            }
            for p in &r.paths {
                check_path_pattern(&entry, p)?;
            }
            match (r.kind, &r.to, &r.action) {
                (RedirectKind::CanonicalHost, None, _) => {
                    return Err(err(
                        entry,
                        "kind = \"canonical_host\" needs `to` = \"<canonical host>\"",
                    ))
                }
                (RedirectKind::TrailingSlash, _, None) => {
                    return Err(err(
                        entry,
                        "kind = \"trailing_slash\" needs `action` = \"remove\" or \"add\"",
                    ))
                }
                (RedirectKind::Https | RedirectKind::TrailingSlash, Some(_), _) => {
                    return Err(err(entry, "`to` only applies to kind = \"canonical_host\""))
                }
                (RedirectKind::Https | RedirectKind::CanonicalHost, _, Some(_)) => {
                    return Err(err(
                        entry,
                        "`action` only applies to kind = \"trailing_slash\"",
                    ))
                }
                _ => {}
            }
            if let (RedirectKind::CanonicalHost, Some(to)) = (r.kind, &r.to) {
                check_host_pattern(&entry, to)?;
                if to.contains('*') {
                    return Err(err(entry, "the canonical host `to` must not be a pattern"));
                }
                if r.hosts.iter().any(|h| h == "*" || host_matches(h, to)) {
                    return Err(err(
                        entry,
                        format!("`hosts` matches the canonical host {to:?} itself, which would loop: list only the other hosts"),
                    ));
                }
            }
        }
        for (i, h) in self.headers.iter().enumerate() {
            let entry = format!("headers[{i}] {:?}", h.name);
            if h.set.is_empty() && h.remove.is_empty() {
                return Err(err(entry, "the rule neither sets nor removes a header"));
            }
            for name in h.set.keys().chain(h.remove.iter()) {
                check_header_name(&entry, name)?;
                if PROTECTED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    return Err(err(
                        entry,
                        format!("header {name:?} is managed by the worker and cannot be set or removed by a rule"),
                    ));
                }
            }
            for v in h.set.values() {
                if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(err(entry, "header values must not contain CR, LF or NUL"));
                }
            }
            for hp in &h.hosts {
                check_host_pattern(&entry, hp)?;
            }
            for p in &h.paths {
                check_path_pattern(&entry, p)?;
            }
        }
        for p in &self.cache.never {
            check_path_pattern("cache.never", p)?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.cache.rules.iter().enumerate() {
            let entry = format!("cache.rules[{i}] {:?}", r.name);
            if !names.insert(r.name.as_str()) {
                return Err(err(entry, "duplicate cache rule name"));
            }
            if r.paths.is_empty() {
                return Err(err(entry, "`paths` must not be empty"));
            }
            for p in &r.paths {
                check_path_pattern(&entry, p)?;
            }
            if r.ttl == 0 {
                return Err(err(
                    entry,
                    "ttl must be at least 1 second (remove the rule to not cache)",
                ));
            }
        }
        for h in &self.cache.vary_headers {
            check_header_name("cache.vary_headers", h)?;
        }
        edge_waf::Waf::new(self.waf.clone()).map_err(|e| err("waf".into(), e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.rate_limits.iter().enumerate() {
            let entry = format!("rate_limits[{i}] {:?}", r.name);
            if r.name.is_empty() || !seen.insert(r.name.as_str()) {
                return Err(err(entry, "each rate limit needs a unique, non-empty name"));
            }
            if r.paths.is_empty() {
                return Err(err(entry, "`paths` must not be empty"));
            }
            for p in &r.paths {
                check_path_pattern(&entry, p)?;
            }
            let ident = !r.binding.is_empty()
                && !r.binding.starts_with(|c: char| c.is_ascii_digit())
                && r.binding
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(err(
                    entry,
                    format!(
                        "binding {:?} is not a binding name: use letters, digits and `_`, as in wrangler.toml's [[ratelimits]] name",
                        r.binding
                    ),
                ));
            }
            if r.period_seconds != 10 && r.period_seconds != 60 {
                return Err(err(
                    entry,
                    format!(
                        "period_seconds = {} is not supported: Workers Rate Limiting periods are 10 or 60 seconds",
                        r.period_seconds
                    ),
                ));
            }
            if let Some(m) = r
                .methods
                .iter()
                .find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(err(
                    entry,
                    format!("method {m:?} must be an uppercase HTTP method such as \"POST\""),
                ));
            }
        }
        Ok(())
    }
}

/// Host pattern matching, shared with the router (kept here so `build.rs`
/// validation and run-time matching agree).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.';
    }
    pattern == host
}

/// Path pattern matching: `/*` matches all, `/p/*` matches `/p` and `/p/...`,
/// `/p*` matches every path starting with `/p`, otherwise exact.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return prefix.is_empty()
            || path == prefix
            || (path.len() > prefix.len()
                && path.starts_with(prefix)
                && path.as_bytes()[prefix.len()] == b'/');
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}
