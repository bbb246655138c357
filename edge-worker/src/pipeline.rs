//! The request pipeline: an ordered list of layers, each implementing
//! [`Layer`]. Requests pass through the layers in order, responses in reverse
//! order. A layer can answer by itself ([`Flow::Respond`]), which skips the
//! origin and the later layers' request phase.
//!
//! The pipeline decides; the worker binding performs the I/O (fetching the
//! upstream, streaming bodies) between the request and response phases.

use crate::active::ActiveConfig;
use crate::config::{Phase, RouteClass};
use crate::errors::{self, EdgeError};
use crate::forwarding::{self, AccessToken};
use crate::http::{Headers, RequestHead, ResponseHead, Synthetic};
use crate::redirect;
use crate::router::{self, scope_matches};

/// What the worker must send upstream, decided by the routing layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// The upstream's name in the config.
    pub upstream: String,
    /// Service binding to use if bound.
    pub service: Option<String>,
    /// Var holding the base URL.
    pub url_var: Option<String>,
    /// `path[?query]` to append to the base URL.
    pub path_and_query: String,
    /// Headers to send.
    pub headers: Headers,
    /// Response-header timeout.
    pub timeout_ms: u32,
    /// Whether this is a WebSocket upgrade to pass through.
    pub websocket: bool,
}

/// Per-request state shared by the layers.
#[derive(Debug)]
pub struct Context {
    /// The configuration in force.
    pub active: std::rc::Rc<ActiveConfig>,
    /// The request id (also sent as `x-request-id`).
    pub request_id: String,
    /// The route's class, for error rendering; `Page` until routed.
    pub class: RouteClass,
    /// The matched route's name.
    pub route: Option<String>,
    /// What to send upstream, once routed.
    pub upstream: Option<UpstreamRequest>,
    /// The Access service token, if the secrets are set.
    pub access_token: Option<AccessToken>,
    /// Version string for the health endpoint.
    pub version: &'static str,
    /// What the binding read for inspection (body sample, cf fields).
    pub inspection: Inspection,
    /// Structured log lines produced by layers (the binding prints them).
    pub logs: Vec<String>,
    /// A Cloudflare Access JWT whose claims passed and whose signature the
    /// binding must verify (WebCrypto) before forwarding.
    pub access_jwt: Option<edge_waf::access_jwt::UnverifiedJwt>,
}

/// Inputs of the WAF that are not in the request head.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// The body, when it was small enough to read before forwarding.
    pub body: Option<Vec<u8>>,
    /// `Content-Length`, when known.
    pub body_len: Option<u64>,
    /// `request.cf.country`.
    pub country: Option<String>,
    /// `request.cf.asn`.
    pub asn: Option<u32>,
    /// The current time (Unix seconds), for token lifetimes.
    pub now_unix: i64,
    /// The Access application to check JWTs against when the config has
    /// none (`waf.access.jwt`): set by the binding from Worker vars.
    pub access_app: Option<std::rc::Rc<edge_waf::AccessJwtConfig>>,
}

/// The WAF: inspects every routed request, logs each decision as one JSON
/// line, and answers blocked requests itself (403 with the request id, JSON
/// on API routes, HTML on pages; 400/405/413 for protocol violations).
pub struct WafLayer;

impl Layer for WafLayer {
    fn name(&self) -> &'static str {
        "waf"
    }
    fn on_request(&self, cx: &mut Context, req: &RequestHead) -> Flow {
        if !cx.active.config.waf.enabled {
            return Flow::Continue;
        }
        let uri = req.path_and_query();
        let view = edge_waf::RequestView {
            method: &req.method,
            uri: &uri,
            headers: req.headers.as_pairs(),
            body: cx.inspection.body.as_deref(),
            body_len: cx.inspection.body_len,
            client_ip: req.client_ip,
            country: cx.inspection.country.as_deref(),
            asn: cx.inspection.asn,
        };
        let decision = cx.active.waf.inspect(&view);
        if !decision.matches.is_empty() || decision.is_blocked() {
            cx.logs.push(decision.log_line(&cx.request_id));
        }
        if let Some(status) = decision.status() {
            return Flow::Respond(errors::render_blocked(status, cx.class, &cx.request_id));
        }
        access_jwt_gate(cx, req)
    }
}

/// `/admin/*`, `/app/*` (the configured protected paths) need an allowlisted
/// address or a Cloudflare Access JWT. Here the token's presence and claims
/// are checked; its signature is left to the binding (`cx.access_jwt`).
fn access_jwt_gate(cx: &mut Context, req: &RequestHead) -> Flow {
    let waf = &cx.active.waf;
    if !waf.requires_access_jwt(&req.path, req.client_ip) {
        return Flow::Continue;
    }
    let token = req.headers.get(edge_waf::access_jwt::HEADER);
    let app = waf
        .config()
        .access
        .jwt
        .as_ref()
        .or(cx.inspection.access_app.as_deref());
    let result = match (app, token) {
        (None, _) => Err(
            "protected path but no Access application is configured: set the Worker vars ACCESS_TEAM_DOMAIN and ACCESS_AUD (or waf.access.jwt in the edge config)"
                .to_string(),
        ),
        (Some(_), None) => Err(format!("missing {} header", edge_waf::access_jwt::HEADER)),
        (Some(cfg), Some(t)) => edge_waf::access_jwt::validate_claims(t, cfg, cx.inspection.now_unix)
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(jwt) => {
            cx.access_jwt = Some(jwt);
            Flow::Continue
        }
        Err(reason) => {
            cx.logs
                .push(access_denied_log(&cx.request_id, &req.path, &reason));
            Flow::Respond(errors::render_blocked(403, cx.class, &cx.request_id))
        }
    }
}

/// The structured log line for a request denied by the Access JWT check
/// (the token itself is never logged).
pub fn access_denied_log(request_id: &str, path: &str, reason: &str) -> String {
    serde_json::json!({
        "event": "access",
        "request_id": request_id,
        "action": "block",
        "status": 403,
        "path": path,
        "reason": reason,
    })
    .to_string()
}

/// What a layer's request phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next layer.
    Continue,
    /// Answer with this response.
    Respond(Synthetic),
}

/// One concern of the edge.
pub trait Layer {
    /// Name used in logs.
    fn name(&self) -> &'static str;
    /// Request phase.
    fn on_request(&self, _cx: &mut Context, _req: &RequestHead) -> Flow {
        Flow::Continue
    }
    /// Response phase (origin responses and the worker's own alike).
    fn on_response(&self, _cx: &Context, _req: &RequestHead, _resp: &mut ResponseHead) {}
}

/// Sets `x-request-id` on every response.
pub struct RequestIdLayer;

impl Layer for RequestIdLayer {
    fn name(&self) -> &'static str {
        "request-id"
    }
    fn on_response(&self, cx: &Context, _req: &RequestHead, resp: &mut ResponseHead) {
        resp.headers.set("x-request-id", cx.request_id.clone());
    }
}

/// The request id: Cloudflare's `cf-ray` when present, else the fallback
/// (random, supplied by the runtime).
pub fn request_id(req: &RequestHead, fallback: impl FnOnce() -> String) -> String {
    req.headers
        .get("cf-ray")
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(fallback)
}

/// Request ids for requests without `cf-ray`, UUID-shaped (the version 4
/// layout): a random per-isolate seed and a counter, mixed by splitmix64 (a
/// bijection, so ids never repeat within an isolate; seeds differ between
/// isolates). They only need to be unique, not secret.
#[derive(Debug, Clone)]
pub struct RequestIds {
    k0: u64,
    k1: u64,
    counter: u64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RequestIds {
    /// Seeded from the hex digits of `seed` (e.g. a random UUID).
    pub fn new(seed: &str) -> Self {
        let (mut k0, mut k1) = (0u64, 0u64);
        for (i, d) in seed.chars().filter_map(|c| c.to_digit(16)).enumerate() {
            if i < 16 {
                k0 = (k0 << 4) | u64::from(d);
            } else {
                k1 = (k1 << 4) | u64::from(d);
            }
        }
        Self { k0, k1, counter: 0 }
    }

    /// The next id: `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
    pub fn next_id(&mut self) -> String {
        self.counter = self.counter.wrapping_add(1);
        let a = splitmix64(self.k0.wrapping_add(self.counter));
        let b = splitmix64(self.k1 ^ a);
        let hi = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let lo = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(36);
        for (i, n) in (0..32).map(|i| {
            let word = if i < 16 { hi } else { lo };
            (i, ((word >> (60 - 4 * (i % 16))) & 0xF) as usize)
        }) {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push('-');
            }
            out.push(HEX[n] as char);
        }
        out
    }
}

/// `/__edge/health`: version and config hash.
pub struct HealthLayer;

/// The health endpoint's path.
pub const HEALTH_PATH: &str = "/__edge/health";

impl Layer for HealthLayer {
    fn name(&self) -> &'static str {
        "health"
    }
    fn on_request(&self, cx: &mut Context, req: &RequestHead) -> Flow {
        if req.path != HEALTH_PATH {
            return Flow::Continue;
        }
        cx.class = RouteClass::Api;
        let body = serde_json::json!({
            "status": "ok",
            "version": cx.version,
            "config_hash": cx.active.hash,
            "config_source": cx.active.source.as_str(),
        });
        let mut resp = Synthetic::new(200, "application/json", body.to_string());
        resp.head.headers.set("cache-control", "no-store");
        Flow::Respond(resp)
    }
}

/// Redirect rules.
pub struct RedirectLayer;

impl Layer for RedirectLayer {
    fn name(&self) -> &'static str {
        "redirect"
    }
    fn on_request(&self, cx: &mut Context, req: &RequestHead) -> Flow {
        match redirect::evaluate(&cx.active.config.redirects, req) {
            Some(to) => {
                let mut resp =
                    Synthetic::new(to.status, "text/plain; charset=utf-8", String::new());
                resp.head.headers.set("location", to.location);
                Flow::Respond(resp)
            }
            None => Flow::Continue,
        }
    }
}

/// Routing and forwarding: picks the upstream and builds the upstream
/// request's headers; sanitises responses.
pub struct RoutingLayer;

impl Layer for RoutingLayer {
    fn name(&self) -> &'static str {
        "routing"
    }
    fn on_request(&self, cx: &mut Context, req: &RequestHead) -> Flow {
        let Some(m) = router::match_route(&cx.active.config, &req.host, &req.path) else {
            return Flow::Respond(errors::render(EdgeError::NoRoute, cx.class, &cx.request_id));
        };
        cx.class = m.route.class;
        cx.route = Some(m.route.name.clone());
        let websocket = m.route.websocket && req.is_websocket_upgrade();
        let access = if m.upstream.access_service_token {
            cx.access_token.as_ref()
        } else {
            None
        };
        let headers = forwarding::upstream_request_headers(req, websocket, access);
        cx.upstream = Some(UpstreamRequest {
            upstream: m.route.upstream.clone(),
            service: m.upstream.service.clone(),
            url_var: m.upstream.url_var.clone(),
            path_and_query: req.path_and_query(),
            headers,
            timeout_ms: m.upstream.timeout_ms,
            websocket,
        });
        Flow::Continue
    }
    fn on_response(&self, _cx: &Context, _req: &RequestHead, resp: &mut ResponseHead) {
        forwarding::sanitize_response(resp);
    }
}

/// Configured request and response header rules.
pub struct HeaderRulesLayer;

impl Layer for HeaderRulesLayer {
    fn name(&self) -> &'static str {
        "header-rules"
    }
    fn on_request(&self, cx: &mut Context, req: &RequestHead) -> Flow {
        let rules = &cx.active.config.headers;
        if let Some(up) = cx.upstream.as_mut() {
            for rule in rules.iter().filter(|r| r.phase == Phase::Request) {
                if scope_matches(&rule.hosts, &rule.paths, &req.host, &req.path) {
                    for name in &rule.remove {
                        up.headers.remove(name);
                    }
                    for (name, value) in &rule.set {
                        up.headers.set(name, value.clone());
                    }
                }
            }
        }
        Flow::Continue
    }
    fn on_response(&self, cx: &Context, req: &RequestHead, resp: &mut ResponseHead) {
        for rule in cx
            .active
            .config
            .headers
            .iter()
            .filter(|r| r.phase == Phase::Response)
        {
            if scope_matches(&rule.hosts, &rule.paths, &req.host, &req.path) {
                for name in &rule.remove {
                    resp.headers.remove(name);
                }
                for (name, value) in &rule.set {
                    resp.headers.set(name, value.clone());
                }
            }
        }
    }
}

/// Security headers on HTML responses.
pub struct SecurityHeadersLayer;

impl Layer for SecurityHeadersLayer {
    fn name(&self) -> &'static str {
        "security-headers"
    }
    fn on_response(&self, cx: &Context, _req: &RequestHead, resp: &mut ResponseHead) {
        forwarding::add_security_headers(&cx.active.config.security_headers, resp);
    }
}

/// The edge's layers in order.
pub struct Pipeline {
    layers: Vec<Box<dyn Layer>>,
}

/// The result of the request phase.
#[derive(Debug)]
pub enum Outcome {
    /// The worker answers itself.
    Respond(Synthetic),
    /// Fetch this from the upstream, then run [`Pipeline::respond`].
    Forward(UpstreamRequest),
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::standard()
    }
}

impl Pipeline {
    /// The standard layers, in request order: request id, security headers
    /// (response phase only), health, redirects, routing, WAF, header rules.
    pub fn standard() -> Pipeline {
        Pipeline {
            layers: vec![
                Box::new(RequestIdLayer),
                Box::new(SecurityHeadersLayer),
                Box::new(HealthLayer),
                Box::new(RedirectLayer),
                Box::new(RoutingLayer),
                Box::new(WafLayer),
                Box::new(HeaderRulesLayer),
            ],
        }
    }

    /// A pipeline of the given layers.
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Pipeline {
        Pipeline { layers }
    }

    /// Layer names in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.layers.iter().map(|l| l.name()).collect()
    }

    /// Runs the request phase. A synthetic answer has already been through the
    /// response phase of every layer.
    pub fn request(&self, cx: &mut Context, req: &RequestHead) -> Outcome {
        for (i, layer) in self.layers.iter().enumerate() {
            if let Flow::Respond(mut resp) = layer.on_request(cx, req) {
                // Only the layers that saw the request see its response.
                for l in self.layers[..=i].iter().rev() {
                    l.on_response(cx, req, &mut resp.head);
                }
                return Outcome::Respond(resp);
            }
        }
        match cx.upstream.clone() {
            Some(up) => Outcome::Forward(up),
            None => Outcome::Respond(self.error(cx, req, EdgeError::NoRoute)),
        }
    }

    /// Runs the response phase on an upstream's response head.
    pub fn respond(&self, cx: &Context, req: &RequestHead, resp: &mut ResponseHead) {
        for layer in self.layers.iter().rev() {
            layer.on_response(cx, req, resp);
        }
    }

    /// An error response for this request, through the response phase.
    pub fn error(&self, cx: &Context, req: &RequestHead, err: EdgeError) -> Synthetic {
        let mut resp = errors::render(err, cx.class, &cx.request_id);
        self.respond(cx, req, &mut resp.head);
        resp
    }
}
