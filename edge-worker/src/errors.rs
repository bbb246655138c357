//! Error responses made by the worker: JSON for API routes, HTML for pages,
//! always with the request id.

use crate::config::RouteClass;
use crate::http::Synthetic;

/// Why the worker answers instead of the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeError {
    /// No route matched (404).
    NoRoute,
    /// The origin could not be reached (502).
    OriginUnreachable,
    /// The origin did not answer in time (504).
    OriginTimeout,
    /// The upstream is not configured in this environment (502).
    UpstreamNotConfigured,
    /// The request could not be understood (400).
    BadRequest,
    /// The worker failed unexpectedly (500).
    Internal,
}

impl EdgeError {
    /// HTTP status.
    pub fn status(self) -> u16 {
        match self {
            EdgeError::NoRoute => 404,
            EdgeError::OriginUnreachable | EdgeError::UpstreamNotConfigured => 502,
            EdgeError::OriginTimeout => 504,
            EdgeError::BadRequest => 400,
            EdgeError::Internal => 500,
        }
    }

    /// Stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            EdgeError::NoRoute => "not_found",
            EdgeError::OriginUnreachable => "origin_unreachable",
            EdgeError::OriginTimeout => "origin_timeout",
            EdgeError::UpstreamNotConfigured => "upstream_not_configured",
            EdgeError::BadRequest => "bad_request",
            EdgeError::Internal => "internal_error",
        }
    }

    /// Short human text.
    pub fn title(self) -> &'static str {
        match self {
            EdgeError::NoRoute => "Not found",
            EdgeError::OriginUnreachable => "The shop's server could not be reached",
            EdgeError::OriginTimeout => "The shop's server took too long to answer",
            EdgeError::UpstreamNotConfigured => "This part of the shop is not configured",
            EdgeError::BadRequest => "Bad request",
            EdgeError::Internal => "Something went wrong",
        }
    }
}

/// Renders the error for the route class.
pub fn render(err: EdgeError, class: RouteClass, request_id: &str) -> Synthetic {
    let mut resp = match class {
        RouteClass::Api => {
            let body = serde_json::json!({
                "type": err.code(),
                "message": err.title(),
                "status": err.status(),
                "request_id": request_id,
            });
            Synthetic::new(err.status(), "application/json", body.to_string())
        }
        RouteClass::Page => {
            let title = html_escape(err.title());
            let id = html_escape(request_id);
            let body = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head>\
<body><main><h1>{title}</h1><p>Please try again in a moment.</p>\
<p><small>Error {status} &middot; request id <code>{id}</code></small></p></main></body></html>",
                status = err.status()
            );
            Synthetic::new(err.status(), "text/html; charset=utf-8", body)
        }
    };
    resp.head.headers.set("cache-control", "no-store");
    resp
}

/// The response to a request the WAF blocked.
pub fn render_blocked(status: u16, class: RouteClass, request_id: &str) -> Synthetic {
    let (code, title) = match status {
        400 => ("bad_request", "Bad request"),
        405 => ("method_not_allowed", "Method not allowed"),
        413 => ("payload_too_large", "Request too large"),
        429 => (
            "rate_limited",
            "Too many requests, please try again shortly",
        ),
        _ => ("forbidden", "This request was blocked"),
    };
    let mut resp = match class {
        RouteClass::Api => Synthetic::new(
            status,
            "application/json",
            serde_json::json!({"type": code, "message": title, "status": status, "request_id": request_id})
                .to_string(),
        ),
        RouteClass::Page => {
            let id = html_escape(request_id);
            Synthetic::new(
                status,
                "text/html; charset=utf-8",
                format!(
                    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
<body><main><h1>{title}</h1><p>If you think this is a mistake, contact us and quote the request id.</p>\
<p><small>Error {status} &middot; request id <code>{id}</code></small></p></main></body></html>"
                ),
            )
        }
    };
    resp.head.headers.set("cache-control", "no-store");
    resp
}

/// The response to a rate-limited request: 429 with `Retry-After`.
pub fn render_rate_limited(class: RouteClass, request_id: &str, retry_after: u32) -> Synthetic {
    let mut resp = render_blocked(429, class, request_id);
    resp.head
        .headers
        .set("retry-after", retry_after.to_string());
    resp
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
