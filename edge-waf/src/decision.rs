//! The outcome of inspecting a request and its log line.

use serde::Serialize;

use crate::config::Mode;
use crate::rules::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Action {
    Allow,
    /// Block with this HTTP status: 403 for attacks and access rules, 400
    /// for protocol violations, 405 for methods, 413 for oversized requests.
    Block {
        status: u16,
    },
}

/// Why a request was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    AccessDenied,
    ProtocolViolation,
    MethodNotAllowed,
    TooLarge,
    AnomalyScore,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    pub id: u32,
    pub family: Family,
    pub score: u32,
    /// Where it matched, e.g. `args:q`, `headers:user-agent`, `path`.
    pub location: String,
    pub mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    /// Anomaly score of the rules in `block` mode.
    pub score: u32,
    /// Anomaly score of the rules in `log-only` mode.
    pub log_only_score: u32,
    pub threshold: u32,
    pub reason: Option<Reason>,
    pub matches: Vec<RuleMatch>,
}

impl Decision {
    pub fn allow(threshold: u32) -> Decision {
        Decision {
            action: Action::Allow,
            score: 0,
            log_only_score: 0,
            threshold,
            reason: None,
            matches: vec![],
        }
    }

    pub fn is_blocked(&self) -> bool {
        matches!(self.action, Action::Block { .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self.action {
            Action::Allow => None,
            Action::Block { status } => Some(status),
        }
    }

    /// Distinct families that matched (any mode).
    pub fn families(&self) -> Vec<Family> {
        let mut f: Vec<Family> = self.matches.iter().map(|m| m.family).collect();
        f.sort();
        f.dedup();
        f
    }

    /// One structured JSON log line naming the matched rules. It carries
    /// no request data beyond field names, so secrets in values never
    /// reach logs.
    pub fn log_line(&self, request_id: &str) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            event: &'static str,
            request_id: &'a str,
            action: &'static str,
            status: Option<u16>,
            reason: Option<Reason>,
            score: u32,
            log_only_score: u32,
            threshold: u32,
            families: Vec<Family>,
            rules: &'a [RuleMatch],
        }
        let line = Line {
            event: "waf",
            request_id,
            action: if self.is_blocked() { "block" } else { "allow" },
            status: self.status(),
            reason: self.reason,
            score: self.score,
            log_only_score: self.log_only_score,
            threshold: self.threshold,
            families: self.families(),
            rules: &self.matches,
        };
        serde_json::to_string(&line).unwrap_or_else(|_| {
            format!("{{\"event\":\"waf\",\"request_id\":{request_id:?},\"error\":\"serialise\"}}")
        })
    }
}
