//! Replaying YAML corpora in the CRS regression-test format through the WAF.
//!
//! Shared by the `waf-report` binary and the corpus test (included with
//! `#[path]`, so the library itself needs no YAML parser).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use edge_waf::{RequestView, Waf};

/// What a corpus request is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `expect_ids` present: an attack or violation, should be blocked.
    Attack,
    /// only `no_expect_ids`: a benign fixture, should pass.
    Benign,
    /// neither (e.g. only a status): not counted.
    Other,
}

#[derive(Debug, Clone)]
pub struct CorpusRequest {
    /// Report group: the directory (relative to the corpus root) or the file stem.
    pub group: String,
    pub file: String,
    pub test_id: String,
    pub kind: Kind,
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl CorpusRequest {
    /// What the WAF sees of this request (no client address or `cf` data).
    pub fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body: self.body.as_deref(),
            body_len: None,
            client_ip: None,
            country: None,
            asn: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("reading {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is not a directory of YAML files")]
    NotADir(PathBuf),
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CorpusError> {
    let rd = std::fs::read_dir(dir).map_err(|e| CorpusError::Io(dir.to_path_buf(), e))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    Ok(())
}

fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn ids_present(log: Option<&serde_yaml::Value>, key: &str) -> bool {
    log.and_then(|l| l.get(key))
        .and_then(|v| v.as_sequence())
        .is_some_and(|s| !s.is_empty())
}

/// Parse a raw HTTP/1.x request (from `encoded_request`).
/// Method, URI, headers and body of a raw request.
type RawRequest = (String, String, Vec<(String, String)>, Option<Vec<u8>>);

fn parse_raw(raw: &[u8]) -> Option<RawRequest> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
    let (head, body) = match split {
        Some((p, n)) => (&raw[..p], Some(raw[p + n..].to_vec())),
        None => (raw, None),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let line = lines.next()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let uri = parts.next().unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Some((method, uri, headers, body.filter(|b| !b.is_empty())))
}

/// Load every request of every YAML file under `root`.
pub fn load(root: &Path) -> Result<(Vec<CorpusRequest>, Vec<String>), CorpusError> {
    if !root.is_dir() {
        return Err(CorpusError::NotADir(root.to_path_buf()));
    }
    let mut files = Vec::new();
    yaml_files(root, &mut files)?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| CorpusError::Io(f.clone(), e))?;
        let rel = f.strip_prefix(root).unwrap_or(&f);
        let group = match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => p.to_string_lossy().into_owned(),
            None => rel
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let file = rel.to_string_lossy().into_owned();
        let doc: serde_yaml::Value = match serde_yaml::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{file}: {e}"));
                continue;
            }
        };
        let Some(tests) = doc.get("tests").and_then(|t| t.as_sequence()) else {
            if !doc.is_null() {
                problems.push(format!("{file}: no `tests` list"));
            }
            continue;
        };
        for t in tests {
            let test_id = t.get("test_id").and_then(scalar).unwrap_or_default();
            let Some(stages) = t.get("stages").and_then(|s| s.as_sequence()) else {
                continue;
            };
            for st in stages {
                let st = st.get("stage").unwrap_or(st);
                let (Some(input), Some(output)) = (st.get("input"), st.get("output")) else {
                    continue;
                };
                let log = output.get("log");
                let kind = if ids_present(log, "expect_ids") {
                    Kind::Attack
                } else if ids_present(log, "no_expect_ids") {
                    Kind::Benign
                } else {
                    Kind::Other
                };
                let mut req = CorpusRequest {
                    group: group.clone(),
                    file: file.clone(),
                    test_id: test_id.clone(),
                    kind,
                    method: input
                        .get("method")
                        .and_then(scalar)
                        .unwrap_or_else(|| "GET".into()),
                    uri: input
                        .get("uri")
                        .and_then(scalar)
                        .unwrap_or_else(|| "/".into()),
                    headers: vec![],
                    body: input.get("data").and_then(|d| match d {
                        serde_yaml::Value::Sequence(lines) => Some(
                            lines
                                .iter()
                                .filter_map(scalar)
                                .collect::<Vec<_>>()
                                .join("\r\n")
                                .into_bytes(),
                        ),
                        other => scalar(other).map(String::into_bytes),
                    }),
                };
                if let Some(h) = input.get("headers").and_then(|h| h.as_mapping()) {
                    for (k, v) in h {
                        if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                            req.headers.push((k, v));
                        }
                    }
                }
                if let Some(enc) = input.get("encoded_request").and_then(scalar) {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(enc.trim())
                        .unwrap_or_default();
                    if let Some((m, u, h, b)) = parse_raw(&raw) {
                        req.method = m;
                        req.uri = u;
                        req.headers = h;
                        req.body = b;
                    }
                }
                out.push(req);
            }
        }
    }
    Ok((out, problems))
}

/// Counters for one report group.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub attacks: usize,
    pub attacks_blocked: usize,
    pub benign: usize,
    pub benign_blocked: usize,
    /// Benign requests identical (method, URI, headers, body) to an attack
    /// request of the same corpus: no WAF can block the one and pass the other.
    pub benign_twins: usize,
    pub benign_twins_blocked: usize,
    pub other: usize,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.attacks += o.attacks;
        self.attacks_blocked += o.attacks_blocked;
        self.benign += o.benign;
        self.benign_blocked += o.benign_blocked;
        self.benign_twins += o.benign_twins;
        self.benign_twins_blocked += o.benign_twins_blocked;
        self.other += o.other;
    }
    pub fn tp_rate(&self) -> Option<f64> {
        (self.attacks > 0).then(|| self.attacks_blocked as f64 * 100.0 / self.attacks as f64)
    }
    pub fn fp_rate(&self) -> Option<f64> {
        (self.benign > 0).then(|| self.benign_blocked as f64 * 100.0 / self.benign as f64)
    }
    /// The false-positive rate over the benign requests that have no
    /// identical attack twin (a breakdown, not the headline rate).
    pub fn fp_rate_without_twins(&self) -> Option<f64> {
        let n = self.benign - self.benign_twins;
        (n > 0).then(|| (self.benign_blocked - self.benign_twins_blocked) as f64 * 100.0 / n as f64)
    }
}

/// The outcome of one replayed request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub group: String,
    /// `file#test_id`.
    pub key: String,
    pub kind: Kind,
    /// Benign request identical to an attack request of the corpus.
    pub twin: bool,
    pub blocked: bool,
    pub status: Option<u16>,
    pub score: u32,
    /// `(rule id, score, location)` of every match.
    pub matches: Vec<(u32, u32, String)>,
}

/// Method, URI, sorted lowercase headers and body.
type Fingerprint = (String, String, Vec<(String, String)>, Option<Vec<u8>>);

/// What the WAF sees of a request, for finding identical requests.
fn fingerprint(r: &CorpusRequest) -> Fingerprint {
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    h.sort();
    (r.method.clone(), r.uri.clone(), h, r.body.clone())
}

pub struct Report {
    pub groups: BTreeMap<String, Counts>,
    pub outcomes: Vec<Outcome>,
    /// Benign requests that were blocked, and attacks that passed: `file#test`.
    pub false_positives: Vec<String>,
    pub false_negatives: Vec<String>,
}

/// Replay the requests through the WAF.
pub fn replay(waf: &Waf, reqs: &[CorpusRequest]) -> Report {
    let attacks: std::collections::HashSet<_> = reqs
        .iter()
        .filter(|r| r.kind == Kind::Attack)
        .map(fingerprint)
        .collect();
    let mut groups: BTreeMap<String, Counts> = BTreeMap::new();
    let mut false_positives = Vec::new();
    let mut false_negatives = Vec::new();
    let mut outcomes = Vec::with_capacity(reqs.len());
    for r in reqs {
        let d = waf.inspect(&r.view());
        let c = groups.entry(r.group.clone()).or_default();
        let ids: Vec<String> = d.matches.iter().map(|m| m.id.to_string()).collect();
        let key = format!("{}#{}", r.file, r.test_id);
        let twin = r.kind == Kind::Benign && attacks.contains(&fingerprint(r));
        match r.kind {
            Kind::Attack => {
                c.attacks += 1;
                if d.is_blocked() {
                    c.attacks_blocked += 1;
                } else {
                    false_negatives.push(format!("{key} [{}]", ids.join(",")));
                }
            }
            Kind::Benign => {
                c.benign += 1;
                c.benign_twins += usize::from(twin);
                if d.is_blocked() {
                    c.benign_blocked += 1;
                    c.benign_twins_blocked += usize::from(twin);
                    let note = if twin { " (twin of an attack)" } else { "" };
                    false_positives.push(format!("{key} [{}]{note}", ids.join(",")));
                }
            }
            Kind::Other => c.other += 1,
        }
        outcomes.push(Outcome {
            group: r.group.clone(),
            key,
            kind: r.kind,
            twin,
            blocked: d.is_blocked(),
            status: match d.action {
                edge_waf::Action::Block { status } => Some(status),
                edge_waf::Action::Allow => None,
            },
            score: d.score,
            matches: d
                .matches
                .iter()
                .map(|m| (m.id, m.score, m.location.clone()))
                .collect(),
        });
    }
    Report {
        groups,
        outcomes,
        false_positives,
        false_negatives,
    }
}

/// One JSON object per replayed request (for offline analysis).
pub fn outcomes_jsonl(report: &Report) -> String {
    let mut s = String::new();
    for o in &report.outcomes {
        let line = serde_json::json!({
            "group": o.group,
            "key": o.key,
            "kind": match o.kind { Kind::Attack => "attack", Kind::Benign => "benign", Kind::Other => "other" },
            "twin": o.twin,
            "blocked": o.blocked,
            "status": o.status,
            "score": o.score,
            "matches": o.matches.iter().map(|(id, score, loc)| serde_json::json!([id, score, loc])).collect::<Vec<_>>(),
        });
        s.push_str(&line.to_string());
        s.push('\n');
    }
    s
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:6.1}%"))
        .unwrap_or_else(|| "     - ".into())
}

/// Sum of the groups whose name starts with one of `prefixes`.
pub fn subtotal(report: &Report, prefixes: &[&str]) -> Counts {
    let mut t = Counts::default();
    for (g, c) in &report.groups {
        if prefixes.iter().any(|p| g.starts_with(p)) {
            t.add(c);
        }
    }
    t
}

/// The report table as text.
pub fn render(title: &str, report: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!("== {title}\n"));
    s.push_str(&format!(
        "{:<48} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}   {:>6} {:>8} {:>8}\n",
        "group",
        "attacks",
        "blocked",
        "TP",
        "benign",
        "blocked",
        "FP",
        "twins",
        "blocked",
        "FP-twins"
    ));
    let mut total = Counts::default();
    let row = |s: &mut String, name: &str, c: &Counts| {
        s.push_str(&format!(
            "{:<48} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}   {:>6} {:>8} {:>8}\n",
            name,
            c.attacks,
            c.attacks_blocked,
            pct(c.tp_rate()),
            c.benign,
            c.benign_blocked,
            pct(c.fp_rate()),
            c.benign_twins,
            c.benign_twins_blocked,
            pct(c.fp_rate_without_twins())
        ));
    };
    for (g, c) in &report.groups {
        row(&mut s, g, c);
        total.add(c);
    }
    let app = subtotal(report, &["REQUEST-93", "REQUEST-94"]);
    if app.attacks + app.benign > 0 {
        row(&mut s, "subtotal REQUEST-93x + REQUEST-94x", &app);
    }
    row(&mut s, "TOTAL", &total);
    s
}
