//! What the proxy does to headers: hop-by-hop removal, `X-Forwarded-*` from
//! the client connection, the Access service-token headers, security headers.

use crate::config::SecurityHeaders;
use crate::http::{Headers, RequestHead, ResponseHead};

/// Hop-by-hop headers (RFC 9110 section 7.6.1) plus common non-standard ones.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Client-supplied headers that only the edge may set (forwarding
/// information, the Access service-token credentials), and override headers
/// some frameworks honour, which would let a client change what a cached URL
/// returns (cache poisoning).
pub const UNTRUSTED_FROM_CLIENT: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
    "cf-access-client-id",
    "cf-access-client-secret",
];

/// The Cloudflare Access service token sent to upstreams that need it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessToken {
    /// `CF-Access-Client-Id`.
    pub client_id: String,
    /// `CF-Access-Client-Secret`.
    pub client_secret: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Names listed in a `Connection` header, which are hop-by-hop too.
fn connection_listed(headers: &Headers) -> Vec<String> {
    headers
        .get("connection")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the headers sent to the upstream.
///
/// `websocket` keeps the `Upgrade`/`Connection` pair of a WebSocket upgrade;
/// `access` adds the Access service-token headers (only for the Medusa origin).
pub fn upstream_request_headers(
    req: &RequestHead,
    websocket: bool,
    access: Option<&AccessToken>,
) -> Headers {
    let listed = connection_listed(&req.headers);
    let mut out = Headers::new();
    for (name, value) in req.headers.iter() {
        if HOP_BY_HOP.contains(&name)
            || UNTRUSTED_FROM_CLIENT.contains(&name)
            || listed.iter().any(|l| l == name)
            || name == "host"
        {
            continue;
        }
        out.append(name, value);
    }
    if websocket {
        out.set("upgrade", "websocket");
        out.set("connection", "Upgrade");
    }
    if let Some(ip) = req.client_ip {
        out.set("x-forwarded-for", ip.to_string());
    }
    out.set("x-forwarded-proto", req.scheme.clone());
    out.set("x-forwarded-host", req.authority());
    if let Some(token) = access {
        out.set("cf-access-client-id", token.client_id.clone());
        out.set("cf-access-client-secret", token.client_secret.clone());
    }
    out
}

/// Removes hop-by-hop headers and anything that must never reach the client.
pub fn sanitize_response(resp: &mut ResponseHead) {
    if resp.status == 101 {
        // The upgrade handshake needs its Connection/Upgrade pair.
        return;
    }
    let listed = connection_listed(&resp.headers);
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        resp.headers.remove(name);
    }
    resp.headers.remove("cf-access-client-id");
    resp.headers.remove("cf-access-client-secret");
}

/// Adds security headers to an HTML response, keeping any the origin set.
pub fn add_security_headers(cfg: &SecurityHeaders, resp: &mut ResponseHead) {
    if !resp.is_html() {
        return;
    }
    let mut set_default = |name: &str, value: String| {
        if !value.is_empty() && !resp.headers.contains(name) {
            resp.headers.set(name, value);
        }
    };
    set_default("strict-transport-security", cfg.hsts.clone());
    set_default("x-content-type-options", "nosniff".to_string());
    set_default("referrer-policy", cfg.referrer_policy.clone());
    match resp
        .headers
        .get("content-security-policy")
        .map(str::to_string)
    {
        Some(csp) if !csp.to_ascii_lowercase().contains("frame-ancestors") => {
            resp.headers.set(
                "content-security-policy",
                format!("{csp}; frame-ancestors {}", cfg.frame_ancestors),
            );
        }
        Some(_) => {}
        None => resp.headers.set(
            "content-security-policy",
            format!("frame-ancestors {}", cfg.frame_ancestors),
        ),
    }
}
