//! Hetzner label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
//! `k notin (a,b)`, joined by commas (all must match).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// Splits on commas outside parentheses.
fn split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn set(s: &str) -> Option<Vec<String>> {
    let s = s.trim();
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

pub fn parse(s: &str) -> Result<Vec<Expr>, String> {
    let mut out = Vec::new();
    for part in split(s) {
        let p = part.trim();
        if p.is_empty() {
            return Err(format!("empty expression in label selector {s:?}"));
        }
        let e = if let Some(k) = p.strip_prefix('!') {
            Expr::Absent(k.trim().to_string())
        } else if let Some((k, v)) = p.split_once("!=") {
            Expr::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once("==") {
            Expr::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once('=') {
            Expr::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once(" notin ") {
            Expr::NotIn(k.trim().into(), set(v).ok_or(format!("bad set in {p:?}"))?)
        } else if let Some((k, v)) = p.split_once(" in ") {
            Expr::In(k.trim().into(), set(v).ok_or(format!("bad set in {p:?}"))?)
        } else {
            Expr::Exists(p.to_string())
        };
        let key = match &e {
            Expr::Eq(k, _)
            | Expr::Ne(k, _)
            | Expr::Exists(k)
            | Expr::Absent(k)
            | Expr::In(k, _)
            | Expr::NotIn(k, _) => k,
        };
        if !valid_key(key) {
            return Err(format!("invalid label key {key:?} in selector {s:?}"));
        }
        out.push(e);
    }
    Ok(out)
}

pub fn matches(exprs: &[Expr], labels: &BTreeMap<String, String>) -> bool {
    exprs.iter().all(|e| match e {
        Expr::Eq(k, v) => labels.get(k) == Some(v),
        Expr::Ne(k, v) => labels.get(k) != Some(v),
        Expr::Exists(k) => labels.contains_key(k),
        Expr::Absent(k) => !labels.contains_key(k),
        Expr::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
        Expr::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn all_operators() {
        let labels = l(&[("cluster", "a"), ("role", "worker")]);
        let m = |s: &str| matches(&parse(s).unwrap(), &labels);
        assert!(m("cluster=a"));
        assert!(m("cluster==a"));
        assert!(!m("cluster=b"));
        assert!(m("cluster!=b"));
        assert!(!m("cluster!=a"));
        assert!(m("role"));
        assert!(!m("pool"));
        assert!(m("!pool"));
        assert!(!m("!role"));
        assert!(m("role in (worker,control-plane)"));
        assert!(!m("role in (control-plane)"));
        assert!(m("role notin (control-plane)"));
        assert!(m("pool notin (x)"));
        assert!(m("cluster=a,role in (worker, x),!pool"));
        assert!(!m("cluster=a,role notin (worker)"));
        assert!(parse("a=b,,c").is_err());
        assert!(parse("bad key=1").is_err());
    }
}
