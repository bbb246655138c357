//! Which rate limit a request counts against, and under which key. The
//! counting itself is done by the Workers Rate Limiting binding named by the
//! rule (see the binding in `wasm`).

use crate::config::{path_matches, RateLimitRule};
use crate::http::RequestHead;

/// A rule that applies to a request, with the key to count under.
#[derive(Debug, Clone, PartialEq)]
pub struct Applicable<'a> {
    pub rule: &'a RateLimitRule,
    /// `<rule>:<client address>`: each client is counted per route class.
    pub key: String,
}

/// The first rule matching the request's method and path, if any. Paths are
/// matched case-insensitively (Medusa's router is), so `/AUTH/...` counts
/// like `/auth/...`.
pub fn applicable<'a>(rules: &'a [RateLimitRule], head: &RequestHead) -> Option<Applicable<'a>> {
    let path = head.path.to_ascii_lowercase();
    let rule = rules.iter().find(|r| {
        (r.methods.is_empty()
            || r.methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&head.method)))
            && r.paths
                .iter()
                .any(|p| path_matches(&p.to_ascii_lowercase(), &path))
    })?;
    let client = head
        .client_ip
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    Some(Applicable {
        rule,
        key: format!("{}:{client}", rule.name),
    })
}

/// The structured log line for a request over its limit.
pub fn log_line(request_id: &str, rule: &RateLimitRule) -> String {
    serde_json::json!({
        "event": "rate_limit",
        "request_id": request_id,
        "action": "block",
        "status": 429,
        "rule": rule.name,
        "binding": rule.binding,
        "retry_after": rule.period_seconds,
    })
    .to_string()
}
