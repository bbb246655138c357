//! Edge WAF: the worker's web application firewall, pure Rust, no I/O.
//!
//! ```
//! use edge_waf::{Waf, WafConfig, RequestView};
//! let waf = Waf::new(WafConfig::default()).unwrap();
//! let headers = vec![("host".to_string(), "shop.example".to_string())];
//! let req = RequestView {
//!     method: "GET", uri: "/store/products?q=1%27%20OR%201=1--", headers: &headers,
//!     body: None, body_len: None, client_ip: None, country: None, asn: None,
//! };
//! let d = waf.inspect(&req);
//! assert!(d.is_blocked());
//! println!("{}", d.log_line("req-1"));
//! ```
//!
//! Pipeline of [`Waf::inspect`]: access rules (IP/CIDR, country, ASN) →
//! protocol checks (method, `Content-Length` + `Transfer-Encoding`, sizes
//! per route, content type and charset, restricted headers and
//! extensions, malformed encodings) → field extraction (path, query, form,
//! JSON, multipart, cookies, selected headers) → bounded normalisation →
//! detectors (SQLi, XSS, LFI, RFI, RCE, PHP, Java, generic/Node, SSRF,
//! scanners, session fixation) → anomaly scoring against the threshold,
//! with rule groups in `block` or `log-only` mode and per-route, per-field
//! exclusions.
//!
//! The Cloudflare Access JWT check is asynchronous in the worker
//! (WebCrypto), so it is separate: [`Waf::requires_access_jwt`] tells
//! whether a request needs one, [`access_jwt::validate_claims`] checks the
//! claims and [`access_jwt::UnverifiedJwt`] exposes what WebCrypto verifies.

pub mod access;
pub mod access_jwt;
pub mod config;
pub mod decision;
pub mod extract;
pub mod normalize;
pub mod rules;

use std::net::IpAddr;

pub use config::{AccessConfig, AccessJwtConfig, Exclusion, Limits, Mode, RouteLimit, WafConfig};
pub use decision::{Action, Decision, Reason, RuleMatch};
pub use rules::Family;

use access::{AccessRules, AccessVerdict};
use std::borrow::Cow;

use extract::{BodyIssues, BodyKind, Field, Fields, Loc, Name, Raw};
use rules::{Engine, Forms, RuleDef};

/// What the WAF sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// `path?query` as received.
    pub uri: &'a str,
    /// Header names in any case.
    pub headers: &'a [(String, String)],
    /// The first bytes of the body (up to `limits.max_inspect_bytes` are
    /// inspected); `None` if not read.
    pub body: Option<&'a [u8]>,
    /// Full body length when known (`Content-Length`).
    pub body_len: Option<u64>,
    pub client_ip: Option<IpAddr>,
    /// `request.cf.country`.
    pub country: Option<&'a str>,
    /// `request.cf.asn`.
    pub asn: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum WafConfigError {
    #[error("waf.paranoia must be 1..=4, got {0}")]
    Paranoia(u8),
    #[error("waf.threshold must be at least 1")]
    Threshold,
    #[error("waf.access: {0}")]
    Access(#[from] access::CidrError),
    #[error("waf rules: {0}")]
    Rules(#[from] rules::EngineError),
    #[error("waf.exclusions[{0}].path must start with `/` (got `{1}`)")]
    ExclusionPath(usize, String),
}

pub struct Waf {
    cfg: WafConfig,
    engine: Engine,
    access: AccessRules,
    /// Skip full normalisation of plain values no rule can match (on by
    /// default; tests turn it off to check that it changes no decision).
    fast_path: bool,
}

/// Rule ids of the protocol checks done in code.
mod proto_ids {
    pub const METHOD: u32 = 911100;
    pub const CL_NOT_NUMERIC: u32 = 920160;
    pub const GET_WITH_BODY: u32 = 920170;
    pub const CL_AND_TE: u32 = 920181;
    pub const BAD_PERCENT: u32 = 920220;
    pub const INVALID_UTF8: u32 = 920250;
    pub const NUL: u32 = 920270;
    pub const NO_HOST: u32 = 920280;
    pub const HOST_IS_IP: u32 = 920350;
    pub const URI_TOO_LONG: u32 = 920380;
    pub const HEADER_TOO_LONG: u32 = 920390;
    pub const BODY_TOO_LARGE: u32 = 920400;
    pub const TOO_MANY_HEADERS: u32 = 920410;
    pub const TOO_MANY_ARGS: u32 = 920385;
    pub const CONTENT_TYPE: u32 = 920420;
    pub const PROTOCOL_VERSION: u32 = 920430;
    pub const EXTENSION: u32 = 920440;
    pub const RESTRICTED_HEADER: u32 = 920450;
    pub const CHARSET: u32 = 920480;
    pub const CONTENT_TYPE_FORMAT: u32 = 920470;
    pub const BAD_TE: u32 = 920171;
    pub const RANGE: u32 = 920200;
    pub const BODY_UNPARSABLE: u32 = 920600;
    pub const MULTIPART: u32 = 922100;
    pub const CRLF_HEADER_INJECTION: u32 = 921140;
    pub const RESPONSE_SPLITTING: u32 = 921120;
    pub const SMUGGLING: u32 = 921110;
}

/// Headers whose values are not inspected by the attack detectors (they
/// are checked by protocol rules or carry opaque tokens).
const UNINSPECTED_HEADERS: &[&str] = &[
    "host",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "content-type",
    "content-length",
    "connection",
    "cache-control",
    "pragma",
    "upgrade-insecure-requests",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "authorization",
    "cf-access-jwt-assertion",
    "cf-access-client-id",
    "cf-access-client-secret",
    "cookie",
    "dnt",
    "priority",
    "x-request-id",
    "traceparent",
    "tracestate",
    "stripe-signature",
    "origin",
    "range",
    "upgrade",
    "expect",
    "cf-connecting-ip",
    "cf-ipcountry",
    "cf-ray",
    "cf-visitor",
    "cdn-loop",
    "x-real-ip",
    "true-client-ip",
    "content-encoding",
    "x-medusa-publishable-key",
    "x-publishable-api-key",
    "next-router-state-tree",
    "rsc",
    "next-action",
    "next-router-prefetch",
    "purpose",
    "sec-purpose",
    "x-nextjs-data",
    "baggage",
    "sentry-trace",
];

struct Acc<'a> {
    cfg: &'a WafConfig,
    matches: Vec<RuleMatch>,
    score: u32,
    log_score: u32,
}

impl Acc<'_> {
    fn add(&mut self, id: u32, family: Family, score: u8, location: String) {
        let mode = self
            .cfg
            .groups
            .get(&family)
            .copied()
            .unwrap_or(self.cfg.default_mode);
        if mode == Mode::Off {
            return;
        }
        if self
            .matches
            .iter()
            .any(|m| m.id == id && m.location == location)
        {
            return;
        }
        // One family scores once per rule id (many fields hitting the same
        // rule do not pile up beyond one hit per location kind).
        let already = self.matches.iter().any(|m| m.id == id);
        let s = if already { 0 } else { u32::from(score) };
        match mode {
            Mode::Block => self.score += s,
            Mode::LogOnly => self.log_score += s,
            Mode::Off => {}
        }
        if self.matches.len() < 64 {
            self.matches.push(RuleMatch {
                id,
                family,
                score: u32::from(score),
                location,
                mode,
            });
        }
    }
}

impl Waf {
    pub fn new(cfg: WafConfig) -> Result<Waf, WafConfigError> {
        if !(1..=4).contains(&cfg.paranoia) {
            return Err(WafConfigError::Paranoia(cfg.paranoia));
        }
        if cfg.threshold == 0 {
            return Err(WafConfigError::Threshold);
        }
        for (i, e) in cfg.exclusions.iter().enumerate() {
            if !e.path.starts_with('/') {
                return Err(WafConfigError::ExclusionPath(i, e.path.clone()));
            }
        }
        let groups = cfg.groups.clone();
        let default_mode = cfg.default_mode;
        let engine = Engine::new(cfg.paranoia, |d: &RuleDef| {
            groups.get(&d.family).copied().unwrap_or(default_mode) != Mode::Off
        })?;
        let access = AccessRules::new(&cfg.access)?;
        Ok(Waf {
            cfg,
            engine,
            access,
            fast_path: true,
        })
    }

    /// The same WAF without the plain-value fast path: every field goes
    /// through full normalisation. For equivalence tests only.
    #[doc(hidden)]
    pub fn without_fast_path(mut self) -> Waf {
        self.fast_path = false;
        self
    }

    pub fn config(&self) -> &WafConfig {
        &self.cfg
    }

    /// Does this request need a valid Cloudflare Access JWT (a protected
    /// path and an address that is not allowlisted)?
    pub fn requires_access_jwt(&self, path: &str, client_ip: Option<IpAddr>) -> bool {
        let p = normalize::normalize_path(
            path,
            self.cfg.limits.max_uri_len,
            self.cfg.limits.max_decode_passes,
        );
        (self.access.is_protected(path) || self.access.is_protected(&p.path))
            && !self.access.is_allowlisted(client_ip)
    }

    fn header<'a>(req: &'a RequestView<'_>, name: &str) -> Option<&'a str> {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn block(&self, acc: Acc<'_>, status: u16, reason: Reason) -> Decision {
        Decision {
            action: Action::Block { status },
            score: acc.score,
            log_only_score: acc.log_score,
            threshold: self.cfg.threshold,
            reason: Some(reason),
            matches: acc.matches,
        }
    }

    /// Inspect a request. Never panics; malformed input yields a decision.
    pub fn inspect(&self, req: &RequestView<'_>) -> Decision {
        if !self.cfg.enabled {
            return Decision::allow(self.cfg.threshold);
        }
        let limits = &self.cfg.limits;
        let mut acc = Acc {
            cfg: &self.cfg,
            matches: Vec::new(),
            score: 0,
            log_score: 0,
        };

        // --- access rules
        match self.access.check(req.client_ip, req.country, req.asn) {
            AccessVerdict::Denied(what) => {
                acc.matches.push(RuleMatch {
                    id: 900100,
                    family: Family::Protocol,
                    score: 0,
                    location: format!("access:{what}"),
                    mode: Mode::Block,
                });
                return self.block(acc, 403, Reason::AccessDenied);
            }
            AccessVerdict::Allowlisted | AccessVerdict::Neutral => {}
        }

        let (raw_path, query) = match req.uri.find('?') {
            Some(p) => (&req.uri[..p], Some(&req.uri[p + 1..])),
            None => (req.uri, None),
        };
        let raw_path = raw_path.split('#').next().unwrap_or(raw_path);
        let npath =
            normalize::normalize_path(raw_path, limits.max_uri_len, limits.max_decode_passes);
        let route = self
            .cfg
            .route_limits
            .iter()
            .find(|r| config::path_matches(&r.path, &npath.path));

        // --- hard protocol limits (status 413 / 405 / 400)
        let max_uri = route
            .and_then(|r| r.max_uri_len)
            .unwrap_or(limits.max_uri_len);
        if req.uri.len() > max_uri {
            acc.add(
                proto_ids::URI_TOO_LONG,
                Family::Protocol,
                rules::CRITICAL,
                "uri".into(),
            );
        }
        let max_body = route
            .and_then(|r| r.max_body_bytes)
            .unwrap_or(limits.max_body_bytes);
        let cl_header = Self::header(req, "content-length");
        let cl_parsed = cl_header.map(|v| v.trim().parse::<u64>());
        let body_len = req.body_len.or(match cl_parsed {
            Some(Ok(n)) => Some(n),
            _ => None,
        });
        if body_len.is_some_and(|n| n > max_body) {
            acc.add(
                proto_ids::BODY_TOO_LARGE,
                Family::Protocol,
                rules::CRITICAL,
                "body".into(),
            );
        }
        if req.headers.len() > limits.max_header_count {
            acc.add(
                proto_ids::TOO_MANY_HEADERS,
                Family::Protocol,
                rules::CRITICAL,
                "headers".into(),
            );
        }
        if let Some((k, _)) = req
            .headers
            .iter()
            .find(|(_, v)| v.len() > limits.max_header_len)
        {
            acc.add(
                proto_ids::HEADER_TOO_LONG,
                Family::Protocol,
                rules::CRITICAL,
                format!("headers:{}", k.to_ascii_lowercase()),
            );
        }
        let method = req.method;
        if !self.cfg.allowed_methods.iter().any(|m| m == method) {
            acc.add(
                proto_ids::METHOD,
                Family::Method,
                rules::CRITICAL,
                "method".into(),
            );
        }
        self.protocol_checks(req, &mut acc, cl_parsed.as_ref(), body_len);

        // --- fields
        let mut fields = Fields::new();
        fields.push(Field {
            loc: Loc::Path,
            name: Name::Static("path"),
            raw: Raw::bytes(raw_path.as_bytes()),
            plus: false,
        });
        let mut issues = BodyIssues::default();
        if let Some(q) = query {
            extract::parse_urlencoded(q.as_bytes(), Some(q), &mut fields, limits, &mut issues);
        }
        for (k, v) in req.headers {
            if k.eq_ignore_ascii_case("cookie") {
                extract::parse_cookies(v, &mut fields, limits);
                continue;
            }
            if uninspected_header(k) {
                continue;
            }
            // Upload helpers send the file name in a header
            // (`X-Filename`, `X-File-Name`, `X_Filename`...).
            let loc = if is_filename_header(k) {
                Loc::Filename
            } else {
                Loc::Header
            };
            fields.push(Field {
                loc,
                name: Name::Header(k),
                raw: Raw::text_capped(v, limits.max_field_len),
                plus: false,
            });
        }
        if let Some(body) = req.body.filter(|b| !b.is_empty()) {
            let truncated = body.len() > limits.max_inspect_bytes
                || body_len.is_some_and(|n| n > body.len() as u64);
            let body = &body[..body.len().min(limits.max_inspect_bytes)];
            let ct = Self::header(req, "content-type").unwrap_or("");
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match extract::body_kind(&media) {
                BodyKind::Form => {
                    extract::parse_urlencoded(body, None, &mut fields, limits, &mut issues)
                }
                BodyKind::Json => {
                    extract::parse_json(body, truncated, &mut fields, limits, &mut issues)
                }
                BodyKind::Multipart => extract::parse_multipart(
                    body,
                    extract::header_param(ct, "boundary"),
                    &mut fields,
                    limits,
                    &mut issues,
                ),
                BodyKind::Xml => extract::parse_xml(body, &mut fields, limits, &mut issues),
                BodyKind::Other if media.is_empty() => {
                    // No type: servers read it as a form.
                    extract::parse_urlencoded(body, None, &mut fields, limits, &mut issues)
                }
                BodyKind::Other => {
                    fields.push(Field {
                        loc: Loc::Body,
                        name: Name::Static("body"),
                        raw: Raw::bytes(&body[..body.len().min(limits.max_field_len * 4)]),
                        plus: false,
                    });
                }
            }
        }
        if issues.json_invalid || issues.json_too_deep {
            acc.add(
                proto_ids::BODY_UNPARSABLE,
                Family::Protocol,
                rules::CRITICAL,
                "body:json".into(),
            );
        }
        if issues.too_many_args {
            // Fields past the limit would go uninspected: refuse instead.
            acc.add(
                proto_ids::TOO_MANY_ARGS,
                Family::Protocol,
                rules::CRITICAL,
                "args".into(),
            );
        }
        if issues.multipart_invalid {
            acc.add(
                proto_ids::MULTIPART,
                Family::Multipart,
                rules::CRITICAL,
                "body:multipart".into(),
            );
        }

        // --- detectors
        let excl: Vec<&Exclusion> = self
            .cfg
            .exclusions
            .iter()
            .filter(|e| config::path_matches(&e.path, &npath.path))
            .collect();
        let mut scratch = FieldScratch::default();
        // Identical values (repeated JSON keys, array items) are inspected
        // once when no exclusion could tell them apart.
        let mut seen = SeenValues::with_capacity(fields.len());
        // (Exclusions that name fields could treat equal values differently.)
        let by_value = excl
            .iter()
            .all(|e| e.fields.is_empty() || e.fields.iter().any(|x| x == "*"));
        for (i, f) in fields.list.iter().enumerate() {
            // (Header values are not merged: rules differ by header name;
            // nor values of include-path parameters, for 931110.)
            let merged = by_value
                && !matches!(f.loc, Loc::Path | Loc::Header)
                && !seen.insert(&fields.list, i);
            let rfi_name = || {
                f.loc == Loc::ArgValue
                    && memchr::memchr(b':', &f.raw).is_some()
                    && rfi_param(&fields.last_key(f))
            };
            if merged && !rfi_name() {
                continue;
            }
            let mut proceed = || true;
            self.inspect_field(
                f,
                &fields,
                &npath,
                &excl,
                &mut scratch,
                &mut proceed,
                &mut acc,
            );
        }
        self.session_fixation(req, &fields, &excl, &mut acc);
        if npath.traversal || npath.dotdot > 0 && raw_path.contains('%') {
            acc.add(930110, Family::Lfi, rules::CRITICAL, "path".into());
        }
        if let Some(ext) = self
            .cfg
            .restricted_extensions
            .iter()
            .find(|e| npath.path.ends_with(e.as_str()))
        {
            let _ = ext;
            acc.add(
                proto_ids::EXTENSION,
                Family::Protocol,
                rules::CRITICAL,
                "path".into(),
            );
        }

        // --- decision
        let blocked = acc.score >= self.cfg.threshold;
        if !blocked {
            return Decision {
                action: Action::Allow,
                score: acc.score,
                log_only_score: acc.log_score,
                threshold: self.cfg.threshold,
                reason: None,
                matches: acc.matches,
            };
        }
        let blocking = |f: &dyn Fn(&RuleMatch) -> bool| {
            acc.matches.iter().any(|m| m.mode == Mode::Block && f(m))
        };
        let attack = blocking(&|m| {
            !matches!(
                m.family,
                Family::Protocol | Family::Method | Family::Multipart
            )
        });
        let (status, reason) = if attack {
            (403, Reason::AnomalyScore)
        } else if blocking(&|m| {
            matches!(
                m.id,
                proto_ids::BODY_TOO_LARGE
                    | proto_ids::URI_TOO_LONG
                    | proto_ids::HEADER_TOO_LONG
                    | proto_ids::TOO_MANY_HEADERS
                    | proto_ids::TOO_MANY_ARGS
            )
        }) {
            (413, Reason::TooLarge)
        } else if blocking(&|m| m.family == Family::Method) {
            (405, Reason::MethodNotAllowed)
        } else {
            (400, Reason::ProtocolViolation)
        };
        self.block(acc, status, reason)
    }

    /// A session identifier passed as an argument, with no `Referer` or
    /// one from another host: the classic session fixation set-up.
    fn session_fixation(
        &self,
        req: &RequestView<'_>,
        fields: &Fields<'_>,
        excl: &[&Exclusion],
        acc: &mut Acc<'_>,
    ) {
        // The argument name itself is the field's value for `ArgName`
        // fields (a JSON key, or a form/query name still encoded).
        let Some(f) = fields.list.iter().find(|f| {
            f.loc == Loc::ArgName
                && f.raw.len() <= 64
                // (keys nested in a JSON document are not what frameworks
                // read the session from)
                && fields.top_level(f)
                && if f.plus && f.raw.iter().any(|&c| c == b'%' || c == b'+') {
                    rules::session_param_name(&fields.name(f))
                } else {
                    std::str::from_utf8(&f.raw).is_ok_and(rules::session_param_name)
                }
        }) else {
            return;
        };
        let name = fields.name(f);
        let skipped = excl.iter().any(|e| {
            (e.fields.is_empty() || e.fields.iter().any(|x| x == "*" || *x == name))
                && ((e.families.is_empty() && e.rules.is_empty())
                    || e.families.contains(&Family::SessionFixation))
        });
        if skipped {
            return;
        }
        let host = Self::header(req, "host").map(|h| {
            let h = h.trim().to_ascii_lowercase();
            match h.rsplit_once(':') {
                Some((a, p)) if !a.ends_with(':') && p.bytes().all(|c| c.is_ascii_digit()) => {
                    a.to_string()
                }
                _ => h,
            }
        });
        let id = match Self::header(req, "referer") {
            None => 943120,
            Some(r) => match (rules::url_host(r), host) {
                (Some(rh), Some(h)) if rh == h => return,
                _ => 943110,
            },
        };
        acc.add(
            id,
            Family::SessionFixation,
            rules::CRITICAL,
            format!("{}:{}", Loc::ArgName.as_str(), name),
        );
    }

    fn protocol_checks(
        &self,
        req: &RequestView<'_>,
        acc: &mut Acc<'_>,
        cl: Option<&Result<u64, std::num::ParseIntError>>,
        body_len: Option<u64>,
    ) {
        let te = Self::header(req, "transfer-encoding");
        if let Some(Err(_)) = cl {
            acc.add(
                proto_ids::CL_NOT_NUMERIC,
                Family::Protocol,
                rules::CRITICAL,
                "headers:content-length".into(),
            );
        }
        if cl.is_some() && te.is_some() {
            acc.add(
                proto_ids::CL_AND_TE,
                Family::Protocol,
                rules::CRITICAL,
                "headers:transfer-encoding".into(),
            );
        }
        if let Some(te) = te {
            if !te.split(',').all(|t| {
                matches!(
                    t.trim().to_ascii_lowercase().as_str(),
                    "chunked" | "gzip" | "deflate" | "br" | "identity"
                )
            }) {
                acc.add(
                    proto_ids::BAD_TE,
                    Family::Protocol,
                    rules::CRITICAL,
                    "headers:transfer-encoding".into(),
                );
            }
        }
        let n_cl = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .count();
        if n_cl > 1 {
            acc.add(
                proto_ids::CL_AND_TE,
                Family::Protocol,
                rules::CRITICAL,
                "headers:content-length".into(),
            );
        }
        // A body on GET/HEAD: the declared length decides when there is
        // one (the runtime frames the body by it); otherwise any bytes.
        let get_body = match cl {
            Some(Ok(n)) => *n > 0,
            _ => body_len.is_some_and(|n| n > 0) || req.body.is_some_and(|b| !b.is_empty()),
        };
        if matches!(req.method, "GET" | "HEAD") && get_body {
            acc.add(
                proto_ids::GET_WITH_BODY,
                Family::Protocol,
                rules::CRITICAL,
                "body".into(),
            );
        }
        match Self::header(req, "host") {
            None => acc.add(
                proto_ids::NO_HOST,
                Family::Protocol,
                rules::WARNING,
                "headers:host".into(),
            ),
            Some(h) if h.trim().is_empty() => acc.add(
                proto_ids::NO_HOST,
                Family::Protocol,
                rules::WARNING,
                "headers:host".into(),
            ),
            Some(h) => {
                let host = h
                    .rsplit_once(':')
                    .filter(|(a, p)| !a.ends_with(':') && p.bytes().all(|c| c.is_ascii_digit()))
                    .map(|(a, _)| a)
                    .unwrap_or(h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.parse::<IpAddr>().is_ok() {
                    acc.add(
                        proto_ids::HOST_IS_IP,
                        Family::Protocol,
                        rules::WARNING,
                        "headers:host".into(),
                    );
                }
            }
        }
        for (k, v) in req.headers {
            let lk = k.to_ascii_lowercase();
            if self.cfg.restricted_headers.contains(&lk) {
                acc.add(
                    proto_ids::RESTRICTED_HEADER,
                    Family::Protocol,
                    rules::CRITICAL,
                    format!("headers:{lk}"),
                );
            }
            if v.contains('\n') || v.contains('\r') || k.contains(['\n', '\r', ':']) {
                acc.add(
                    proto_ids::CRLF_HEADER_INJECTION,
                    Family::Protocol,
                    rules::CRITICAL,
                    format!("headers:{lk}"),
                );
            }
            if lk == "range" || lk == "request-range" {
                // Servers ignore ranges in unknown units and invalid syntax
                // (RFC 9110 14.2); what is left to catch is byte ranges
                // ending before they start and, from paranoia 2, range
                // lists long enough to amplify a response.
                let v = v.trim().to_ascii_lowercase();
                let bad = v.strip_prefix("bytes=").is_some_and(|list| {
                    let ranges: Vec<&str> = list.split(',').collect();
                    (self.cfg.paranoia >= 2 && ranges.len() > 5)
                        || ranges.iter().any(|r| {
                            let (a, b) = r.trim().split_once('-').unwrap_or(("", ""));
                            matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if b < a)
                        })
                });
                if bad {
                    acc.add(
                        proto_ids::RANGE,
                        Family::Protocol,
                        rules::CRITICAL,
                        format!("headers:{lk}"),
                    );
                }
            }
        }
        if let Some(ct) = Self::header(req, "content-type") {
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let has_body =
                body_len.is_some_and(|n| n > 0) || req.body.is_some_and(|b| !b.is_empty());
            let well_formed = content_type_well_formed(ct);
            if !well_formed {
                acc.add(
                    proto_ids::CONTENT_TYPE_FORMAT,
                    Family::Protocol,
                    rules::CRITICAL,
                    "headers:content-type".into(),
                );
            } else if has_body && !self.cfg.allowed_content_types.contains(&media) {
                acc.add(
                    proto_ids::CONTENT_TYPE,
                    Family::Protocol,
                    rules::CRITICAL,
                    "headers:content-type".into(),
                );
            }
            if let Some(cs) = extract::header_param(ct, "charset") {
                let cs = cs.trim_matches('\'');
                if !self
                    .cfg
                    .allowed_charsets
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(cs))
                {
                    acc.add(
                        proto_ids::CHARSET,
                        Family::Protocol,
                        rules::CRITICAL,
                        "headers:content-type".into(),
                    );
                }
            }
            if ct.matches("charset").count() > 1 {
                acc.add(
                    proto_ids::CHARSET,
                    Family::Protocol,
                    rules::CRITICAL,
                    "headers:content-type".into(),
                );
            }
        }
        // Percent-encoding of the URI itself.
        let mut flags = normalize::DecodeFlags::default();
        let uri = req.uri.as_bytes();
        let (decoded, _) = normalize::percent_decode_pass(
            &uri[..uri.len().min(self.cfg.limits.max_uri_len)],
            false,
            &mut flags,
        );
        // Percent-escapes must decode to UTF-8 (overlong forms and stray
        // bytes are an old evasion); a cut at the length limit is not bad.
        if std::str::from_utf8(&decoded).is_err_and(|e| e.error_len().is_some()) {
            acc.add(
                proto_ids::INVALID_UTF8,
                Family::Protocol,
                rules::CRITICAL,
                "uri".into(),
            );
        }
        if flags.bad_percent {
            acc.add(
                proto_ids::BAD_PERCENT,
                Family::Protocol,
                rules::CRITICAL,
                "uri".into(),
            );
        }
        if flags.nul || req.uri.contains('\0') {
            acc.add(
                proto_ids::NUL,
                Family::Protocol,
                rules::CRITICAL,
                "uri".into(),
            );
        }
        if req.uri.contains(['\r', '\n']) {
            acc.add(
                proto_ids::RESPONSE_SPLITTING,
                Family::Protocol,
                rules::CRITICAL,
                "uri".into(),
            );
        }
        if !req.uri.starts_with('/')
            && req.uri != "*"
            && !req.uri.starts_with("http://")
            && !req.uri.starts_with("https://")
        {
            acc.add(
                proto_ids::PROTOCOL_VERSION,
                Family::Protocol,
                rules::CRITICAL,
                "uri".into(),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn inspect_field(
        &self,
        f: &Field<'_>,
        fields: &Fields<'_>,
        npath: &normalize::NormalizedPath,
        excl: &[&Exclusion],
        scratch: &mut FieldScratch,
        proceed: &mut dyn FnMut() -> bool,
        acc: &mut Acc<'_>,
    ) {
        let limits = &self.cfg.limits;
        let FieldScratch {
            norm,
            shell: shell_buf,
            path_text,
            rules: rule_scratch,
        } = scratch;
        // Most values are plain tokens (ids, numbers, words): when no rule
        // has a keyword or trigger byte in one, nothing else is needed.
        let raw = &f.raw[..f.raw.len().min(limits.max_field_len)];
        let info = normalize::byte_info(raw);
        if self.fast_path && f.loc != Loc::Path {
            if let Some(present) = normalize::plain(info, f.plus) {
                if self.engine.untouched(f.loc, raw, present, rule_scratch) {
                    return;
                }
            }
        }
        let (text, compact, nflags, present): (
            &str,
            &str,
            normalize::DecodeFlags,
            normalize::ByteSet,
        ) = if f.loc == Loc::Path {
            // `+` is literal in paths, but `union+select` in a path is still SQL.
            path_text.clear();
            path_text.push_str(&npath.path);
            if path_text.contains('+') {
                *path_text = path_text.replace('+', " ");
            }
            let present = normalize::byte_set(path_text.as_bytes());
            (path_text.as_str(), path_text.as_str(), npath.flags, present)
        } else {
            normalize::normalize_into(
                raw,
                f.raw.text(),
                Some(info),
                f.plus,
                limits.max_field_len,
                limits.max_decode_passes,
                norm,
            );
            let compact = if norm.compact.is_empty() {
                norm.text.as_str()
            } else {
                norm.compact.as_str()
            };
            (norm.text.as_str(), compact, norm.flags, norm.present)
        };
        let has = |c: u8| normalize::has(present, c);
        if text.is_empty() {
            return;
        }
        let location = || {
            let name = fields.name(f);
            match f.loc {
                Loc::Path | Loc::Body => f.loc.as_str().to_string(),
                _ => format!("{}:{}", f.loc.as_str(), name),
            }
        };
        // Field-level protocol findings.
        if matches!(f.loc, Loc::ArgValue | Loc::ArgName) && nflags.nul {
            acc.add(
                proto_ids::NUL,
                Family::Protocol,
                rules::CRITICAL,
                location(),
            );
        }
        if matches!(f.loc, Loc::ArgValue | Loc::ArgName | Loc::Header) && (has(b'\r') || has(b'\n'))
        {
            let header_like = text.split(['\r', '\n']).skip(1).any(|l| {
                let l = l.trim_start();
                injected_header_line(l)
                    // in a header value, any `name: value` line is injected
                    || (f.loc == Loc::Header
                        && l.split_once(':').is_some_and(|(name, _)| {
                            !name.is_empty()
                                && name.len() < 40
                                && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                        }))
            });
            if header_like {
                acc.add(
                    proto_ids::RESPONSE_SPLITTING,
                    Family::Protocol,
                    rules::CRITICAL,
                    location(),
                );
            }
        }
        if matches!(f.loc, Loc::ArgValue | Loc::Body | Loc::Header) && has(b'\n') {
            if let Some(p) = text.find(" http/1.") {
                let before = &text[..p];
                if [
                    "get ", "post ", "put ", "head ", "delete ", "options ", "patch ", "connect ",
                    "trace ",
                ]
                .iter()
                .any(|m| {
                    before
                        .rsplit(['\n', '\r'])
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with(m)
                }) {
                    acc.add(
                        proto_ids::SMUGGLING,
                        Family::Protocol,
                        rules::CRITICAL,
                        location(),
                    );
                }
            }
        }
        // Remote file inclusion through a known include-path parameter.
        if f.loc == Loc::ArgValue && has(b':') && url_value(text) && rfi_param(&fields.last_key(f))
        {
            acc.add(931110, Family::Rfi, rules::CRITICAL, location());
        }
        // The field's name matters only to exclusions that list fields.
        let name = if excl.iter().all(|e| e.fields.is_empty()) {
            Cow::Borrowed("")
        } else {
            fields.name(f)
        };
        let field_excl = || {
            excl.iter().copied().filter(|e| {
                e.fields.is_empty()
                    || e.fields.iter().any(|x| {
                        x == "*"
                            || *x == name
                            || name.rsplit('.').next() == Some(x.as_str())
                            || (f.loc == Loc::Header
                                && x.eq_ignore_ascii_case(&format!("header:{name}")))
                    })
            })
        };
        let shell: &str = if f.loc != Loc::Path && b"\\'\"^$`[<>".iter().any(|&c| has(c)) {
            rules::shell_form_into(text, shell_buf);
            if shell_buf.len() == text.len() {
                // (only removals and 1-byte rewrites: same length, same text)
                text
            } else {
                shell_buf.as_str()
            }
        } else {
            text
        };
        let cased_raw: &[u8] = if f.loc == Loc::Path {
            b""
        } else {
            &f.raw[..f.raw.len().min(limits.max_field_len)]
        };
        let forms = Forms {
            text,
            compact,
            shell,
            cased: rules::Cased::new(cased_raw, f.plus),
        };
        let user_agent = f.loc == Loc::Header
            && matches!(&f.name, Name::Header(h) if h.eq_ignore_ascii_case("user-agent"));
        let skip = |d: &RuleDef| {
            (d.family == Family::Scanner && !user_agent)
                || field_excl().any(|e| {
                    (e.families.is_empty() && e.rules.is_empty())
                        || e.families.contains(&d.family)
                        || e.rules.contains(&d.id)
                })
        };
        let mut hits: Vec<&'static RuleDef> = Vec::new();
        self.engine.scan(
            f.loc,
            &forms,
            present,
            rule_scratch,
            &skip,
            proceed,
            &mut |d| hits.push(d),
        );
        if !hits.is_empty() {
            let loc = location();
            for d in hits {
                acc.add(d.id, d.family, d.score, loc.clone());
            }
        }
    }
}

/// The set of (location, value) pairs already inspected in a request: an
/// open-addressing table of field indices with a short probe limit, so a
/// flood of colliding values costs a bounded number of comparisons per
/// field (the value is then simply inspected again).
struct SeenValues {
    slots: Vec<u32>,
    mask: usize,
}

impl SeenValues {
    const EMPTY: u32 = u32::MAX;
    const PROBES: usize = 8;

    fn with_capacity(n: usize) -> SeenValues {
        let size = (n * 2).max(16).next_power_of_two();
        SeenValues {
            slots: vec![Self::EMPTY; size],
            mask: size - 1,
        }
    }

    /// Whether field `i` is new (then remembered); `false` if an equal
    /// value at the same location kind was seen.
    fn insert(&mut self, list: &[Field<'_>], i: usize) -> bool {
        let f = &list[i];
        let h = extract::quick_hash(f.loc as u64, &f.raw) as usize;
        for p in 0..Self::PROBES {
            let slot = &mut self.slots[(h.wrapping_add(p)) & self.mask];
            if *slot == Self::EMPTY {
                *slot = u32::try_from(i).unwrap_or(Self::EMPTY);
                return true;
            }
            let g = &list[*slot as usize];
            if g.loc == f.loc && g.raw == f.raw {
                return false;
            }
        }
        true
    }
}

/// Reusable per-request buffers for [`Waf::inspect_field`].
#[derive(Default)]
struct FieldScratch {
    norm: normalize::NormBuf,
    shell: String,
    path_text: String,
    rules: rules::Scratch,
}

/// Headers whose values are not inspected by the attack detectors: they
/// are checked by protocol rules or carry opaque tokens (see
/// [`UNINSPECTED_HEADERS`]), plus `Sec-*` and `Cf-*`.
fn uninspected_header(name: &str) -> bool {
    let b = name.as_bytes();
    if b.len() > 40 {
        return false;
    }
    let mut buf = [0u8; 40];
    for (d, s) in buf.iter_mut().zip(b) {
        *d = s.to_ascii_lowercase();
    }
    let lk = std::str::from_utf8(&buf[..b.len()]).unwrap_or("");
    lk.starts_with("sec-") || lk.starts_with("cf-") || UNINSPECTED_HEADERS.contains(&lk)
}

/// A line that, injected into a response, would add a header that changes
/// what the client does (cookies, redirects, content handling, caching,
/// CORS) or start a second response.
fn injected_header_line(l: &str) -> bool {
    const NAMES: &[&str] = &[
        "set-cookie",
        "set-cookie2",
        "cookie",
        "location",
        "refresh",
        "content-type",
        "content-length",
        "content-disposition",
        "content-security-policy",
        "transfer-encoding",
        "cache-control",
        "link",
        "host",
        "via",
        "x-xss-protection",
        "x-content-type-options",
        "x-frame-options",
    ];
    if let Some(v) = l.strip_prefix("http/") {
        return v.starts_with(|c: char| c.is_ascii_digit());
    }
    let Some((name, value)) = l.split_once(':') else {
        return false;
    };
    let name = name.trim_end();
    !value.trim().is_empty()
        && (NAMES.contains(&name)
            || name.ends_with("remote-addr")
            || name.ends_with("remote-ip")
            || name.ends_with("client-ip")
            || name.ends_with("originating-ip")
            || name.ends_with("real-ip")
            || name.starts_with("access-control-")
            || name.starts_with("x-forwarded-"))
}

/// `type/subtype` followed by `; name=value` parameters, where a value
/// is a token, a quoted string, or a multipart boundary (RFC 2046 allows
/// `'()+_,-./:=?` and inner spaces there).
fn content_type_well_formed(ct: &str) -> bool {
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    let media_ok = media.split_once('/').is_some_and(|(a, b)| {
        let tok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"+-.*_!#$&^`|~".contains(&c))
        };
        tok(a) && tok(b)
    });
    if !media_ok {
        return false;
    }
    let mut n = 0;
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        n += 1;
        let Some((name, value)) = p.split_once('=') else {
            return false;
        };
        let name = name.trim();
        let value = value.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        {
            return false;
        }
        let quoted = value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')));
        let ok = quoted
            || (!value.is_empty()
                && value
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=?!#$&^`|~*% ".contains(&c)));
        if !ok {
            return false;
        }
    }
    n <= 4
}

/// Parameter names that old PHP applications pass to `include()`.
fn rfi_param(name: &str) -> bool {
    let n = name.as_bytes();
    if memchr::memchr(b'[', n).is_some()
        && n.windows(11)
            .any(|w| w.eq_ignore_ascii_case(b"_conf[path]"))
    {
        return true;
    }
    // (every name below ends in `h`, `t` or `r`)
    if !n
        .last()
        .is_some_and(|c| matches!(c.to_ascii_lowercase(), b'h' | b't' | b'r'))
    {
        return false;
    }
    let ends =
        |p: &str| n.len() >= p.len() && n[n.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes());
    [
        "mosconfig_absolute_path",
        "path_to_root",
        "gallery_basedir",
        "phpbb_root_path",
        "appserv_root",
        "base_dir",
        "basedir",
        "absolute_path",
        "class_path",
        "include_path",
        "root_path",
    ]
    .iter()
    .any(|p| ends(p))
}

/// A value that is a remote (or wrapper) URL.
fn url_value(t: &str) -> bool {
    let t = if t.starts_with(|c: char| c.is_ascii_alphabetic()) {
        t
    } else {
        t.trim_start()
    };
    [
        "http", "https", "ftp", "ftps", "php", "data", "expect", "phar",
    ]
    .iter()
    .any(|s| {
        t.strip_prefix(s)
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| r.trim_start().starts_with('/'))
    })
}

/// Header names that carry an uploaded file's name.
fn is_filename_header(name: &str) -> bool {
    if name.len() > 40 {
        return false;
    }
    let lk = name.to_ascii_lowercase();
    let n = lk.strip_prefix("x").unwrap_or(&lk);
    let n: String = n.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    n == "filename" || n == "uploadfilename" || n == "fileupload"
}
