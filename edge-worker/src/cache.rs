//! Caching policy (pure): which requests may use the cache, the cache key,
//! which responses may be stored and for how long, and how fresh a stored
//! response is. The worker binding does the Cache API I/O.

use crate::config::path_matches;
pub use crate::config::{CacheConfig, CacheRule};
use crate::http::{Headers, RequestHead, ResponseHead};
use serde::{Deserialize, Serialize};

/// Why a request does not use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// Caching is off.
    Disabled,
    /// Not GET or HEAD.
    Method,
    /// A `Range` request.
    Range,
    /// `Authorization` present.
    Authorization,
    /// A session cookie present.
    SessionCookie,
    /// A never-cached route.
    NeverCached,
    /// No cache rule matches.
    NoRule,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<'a> {
    /// Go straight to the origin (`x-edge-cache: BYPASS`).
    Bypass(BypassReason),
    /// Use the cache with this key under this rule.
    Cache {
        /// The cache key (an absolute URL, as the Cache API needs).
        key: String,
        /// The matching rule.
        rule: &'a CacheRule,
    },
}

/// Cookie pairs of a `Cookie` header.
fn cookies(headers: &Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| *k == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn param_dropped(patterns: &[String], name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => lower.starts_with(&prefix.to_ascii_lowercase()),
        None => lower == p.to_ascii_lowercase(),
    })
}

/// Percent-encodes a key component so separators cannot be smuggled in.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decides whether and how the request uses the cache. `upstream` (the
/// routed upstream's name) and `generation` (the purge generation in force for
/// this path) are part of every key, so a routing change or a purge never
/// serves an old copy.
pub fn lookup<'a>(
    cfg: &'a CacheConfig,
    req: &RequestHead,
    upstream: &str,
    generation: u64,
) -> Lookup<'a> {
    match lookup_with(cfg, req, upstream, || Some(generation)) {
        Some(l) => l,
        // (the generation is always given)
        None => Lookup::Bypass(BypassReason::NoRule),
    }
}

/// [`lookup`] with the purge generation asked for only once the request
/// turned out cacheable (before the key is built); `None` when it was and
/// `generation` had none to give. `lookup_with(.., || None).is_none()` is
/// thus a cheap "is this cacheable" test.
pub fn lookup_with<'a>(
    cfg: &'a CacheConfig,
    req: &RequestHead,
    upstream: &str,
    generation: impl FnOnce() -> Option<u64>,
) -> Option<Lookup<'a>> {
    let bypass = |why| Some(Lookup::Bypass(why));
    if !cfg.enabled {
        return bypass(BypassReason::Disabled);
    }
    if req.method != "GET" && req.method != "HEAD" {
        return bypass(BypassReason::Method);
    }
    if req.headers.contains("range") {
        return bypass(BypassReason::Range);
    }
    if req.headers.contains("authorization") {
        return bypass(BypassReason::Authorization);
    }
    let jar = cookies(&req.headers);
    if jar
        .iter()
        .any(|(k, _)| cfg.bypass_cookies.iter().any(|c| c == k))
    {
        return bypass(BypassReason::SessionCookie);
    }
    if cfg.never.iter().any(|p| path_matches(p, &req.path)) {
        return bypass(BypassReason::NeverCached);
    }
    let Some(rule) = cfg
        .rules
        .iter()
        .find(|r| r.paths.iter().any(|p| path_matches(p, &req.path)))
    else {
        return bypass(BypassReason::NoRule);
    };
    let generation = generation()?;
    // Sorted query without tracking parameters; empty names dropped.
    let mut params: Vec<(&str, &str)> = req
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .filter(|(k, _)| !k.is_empty() && !param_dropped(&cfg.drop_params, k))
        .collect();
    params.sort();
    let mut key = format!(
        "https://edge-cache.invalid/g{generation}/{}/{}{}",
        enc(upstream),
        req.host.to_ascii_lowercase(),
        req.path
    );
    let mut sep = '?';
    for (k, v) in params {
        key.push(sep);
        key.push_str(k);
        key.push('=');
        key.push_str(v);
        sep = '&';
    }
    // Varying parts go after a marker no real query contains unencoded.
    let mut vary = String::new();
    for h in &cfg.vary_headers {
        if let Some(v) = req.headers.get(h) {
            vary.push_str(&format!("h.{}={};", enc(&h.to_ascii_lowercase()), enc(v)));
        }
    }
    for c in &cfg.vary_cookies {
        if let Some((_, v)) = jar.iter().find(|(k, _)| k == c) {
            vary.push_str(&format!("c.{}={};", enc(c), enc(v)));
        }
    }
    if !vary.is_empty() {
        key.push(sep);
        key.push_str("__edge_vary=");
        key.push_str(&enc(&vary));
    }
    Some(Lookup::Cache { key, rule })
}

/// Seconds to store a response under `rule`, or `None` if it must not be
/// stored.
pub fn store_ttl(cfg: &CacheConfig, rule: &CacheRule, resp: &ResponseHead) -> Option<u32> {
    if resp.headers.contains("set-cookie") {
        return None;
    }
    let cc = resp
        .headers
        .get("cache-control")
        .unwrap_or("")
        .to_ascii_lowercase();
    if cc
        .split(',')
        .map(str::trim)
        .any(|d| d == "private" || d == "no-store" || d.starts_with("private="))
    {
        return None;
    }
    if resp.headers.get("vary").is_some_and(|v| v.trim() == "*") {
        return None;
    }
    let ttl = match resp.status {
        200 => rule.ttl,
        404 => cfg.not_found_ttl,
        301 => cfg.redirect_ttl,
        _ => 0,
    };
    (ttl > 0).then_some(ttl)
}

/// Headers the worker adds to stored copies (removed before serving).
pub const STORED_AT: &str = "x-edge-stored-at";
/// Freshness lifetime of a stored copy.
pub const STORED_TTL: &str = "x-edge-ttl";

/// How a stored copy may be used at `now` (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it and refresh in the background.
    StaleWhileRevalidate,
    /// Only if the origin fails.
    StaleIfError,
    /// Useless.
    Expired,
}

/// Age in seconds of a stored copy.
pub fn age(stored: &Headers, now: u64) -> Option<u64> {
    let at: u64 = stored.get(STORED_AT)?.parse().ok()?;
    Some(now.saturating_sub(at))
}

/// Classifies a stored copy.
pub fn freshness(rule: &CacheRule, stored: &Headers, now: u64) -> Freshness {
    let Some(age) = age(stored, now) else {
        return Freshness::Expired;
    };
    let ttl: u64 = stored
        .get(STORED_TTL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::from(rule.ttl));
    if age < ttl {
        Freshness::Fresh
    } else if age < ttl + u64::from(rule.stale_while_revalidate) {
        Freshness::StaleWhileRevalidate
    } else if age < ttl + u64::from(rule.stale_if_error) {
        Freshness::StaleIfError
    } else {
        Freshness::Expired
    }
}

/// How long the Cache API should keep a copy: freshness, the longest stale
/// window, and one more `ttl` in which an expired copy with validators can
/// still be revalidated with a conditional request.
pub fn storage_seconds(rule: &CacheRule, ttl: u32) -> u32 {
    ttl.saturating_add(rule.stale_while_revalidate.max(rule.stale_if_error))
        .saturating_add(ttl)
}

/// The purge generation for `path`: the global one plus those of every
/// purged prefix the path falls under.
pub fn generation_for(gens: &Generations, path: &str) -> u64 {
    gens.global
        + gens
            .prefixes
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .map(|(_, g)| *g)
            .sum::<u64>()
}

/// Purge generations, stored in KV as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generations {
    /// Bumped by a global purge.
    #[serde(default)]
    pub global: u64,
    /// Bumped per path prefix.
    #[serde(default)]
    pub prefixes: std::collections::BTreeMap<String, u64>,
}

impl Generations {
    /// Bumps the global generation or a prefix's.
    pub fn bump(&mut self, prefix: Option<&str>) {
        match prefix {
            None | Some("") | Some("/") => self.global += 1,
            Some(p) => *self.prefixes.entry(p.to_string()).or_insert(0) += 1,
        }
    }
}

/// Constant-time comparison of a presented token with the expected one.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    if expected.is_empty() {
        return false;
    }
    // Compare digests so the length of the secret does not leak either.
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
