//! Redirect rules: http to https, canonical host, trailing slash.
//!
//! Every matching rule is applied in order to the same target, so a request
//! needing several fixes (`http://www.shop/x/`) gets one redirect to the final
//! URL instead of a chain.

use crate::config::{Redirect, RedirectKind, SlashAction};
use crate::http::RequestHead;
use crate::router::scope_matches;

/// A redirect decided by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTo {
    /// Names of the rules that applied, in order.
    pub rules: Vec<String>,
    /// The status of the first rule that applied.
    pub status: u16,
    /// Absolute target URL.
    pub location: String,
}

struct Target {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
}

/// The redirect for this request, if any rule applies.
pub fn evaluate(rules: &[Redirect], req: &RequestHead) -> Option<RedirectTo> {
    let mut t = Target {
        scheme: req.scheme.clone(),
        host: req.host.clone(),
        port: req.port,
        path: req.path.clone(),
    };
    let mut applied = Vec::new();
    let mut status = None;
    for rule in rules {
        if !scope_matches(&rule.hosts, &rule.paths, &t.host, &t.path) || !apply(rule, &mut t) {
            continue;
        }
        applied.push(rule.name.clone());
        status.get_or_insert(rule.status);
    }
    let status = status?;
    let authority = match t.port {
        Some(p) => format!("{}:{}", t.host, p),
        None => t.host.clone(),
    };
    let mut location = format!("{}://{}{}", t.scheme, authority, t.path);
    if let Some(q) = &req.query {
        location.push('?');
        location.push_str(q);
    }
    Some(RedirectTo {
        rules: applied,
        status,
        location,
    })
}

/// Applies one rule to the target; false when it changes nothing.
fn apply(rule: &Redirect, t: &mut Target) -> bool {
    match rule.kind {
        RedirectKind::Https => {
            if t.scheme == "https" {
                return false;
            }
            t.scheme = "https".to_string();
            if t.port == Some(80) {
                t.port = None;
            }
            true
        }
        RedirectKind::CanonicalHost => match &rule.to {
            Some(to) if t.host != *to => {
                t.host = to.clone();
                true
            }
            _ => false,
        },
        RedirectKind::TrailingSlash => {
            if t.path == "/" {
                return false;
            }
            match rule.action {
                Some(SlashAction::Remove) if t.path.ends_with('/') => {
                    let trimmed = t.path.trim_end_matches('/');
                    t.path = if trimmed.is_empty() {
                        "/".to_string()
                    } else {
                        trimmed.to_string()
                    };
                    true
                }
                Some(SlashAction::Add)
                    if !t.path.ends_with('/') && !last_segment_has_dot(&t.path) =>
                {
                    t.path.push('/');
                    true
                }
                _ => false,
            }
        }
    }
}

/// `/file.txt` looks like a file; adding a slash to it would be wrong.
fn last_segment_has_dot(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|s| s.contains('.'))
}
