//! Local sample origins: a small Medusa-like JSON API and a storefront page
//! server. Real HTTP servers on 127.0.0.1, used by the end-to-end tests, the
//! benchmark and `make dev` (through the `dev-origins` binary).
//!
//! Both record every request they receive (method, path, headers), so tests
//! can assert what reached which origin.

pub mod access;
pub mod edge_harness;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

type Body = BoxBody<Bytes, std::io::Error>;

/// Which sample origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Medusa-like JSON API.
    Medusa,
    /// The storefront page server.
    Storefront,
    /// Stands in for the Cloudflare Access team domain: publishes the
    /// signing keys of the test Access application (see [`access`]).
    Access,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Medusa => "medusa",
            Kind::Storefront => "storefront",
            Kind::Access => "access",
        }
    }
}

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, lowercase names.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running origin. Dropping it stops the server.
pub struct Origin {
    /// Its address.
    pub addr: SocketAddr,
    /// What it received.
    pub log: Arc<Mutex<Vec<Recorded>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Origin {
    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of the request log.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests whose URI starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.uri.starts_with(prefix))
            .collect()
    }

    /// Stops accepting connections.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts an origin on `addr` (port 0 picks a free one).
pub async fn start(kind: Kind, addr: SocketAddr) -> std::io::Result<Origin> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = oneshot::channel();
    // Stopping also drops open (keep-alive) connections, like a dead origin.
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(false);
    let server_log = log.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut rx => {
                    let _ = closed_tx.send(true);
                    break;
                }
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let log = server_log.clone();
                    let mut closed = closed_rx.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(kind, log.clone(), req));
                        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        tokio::select! {
                            _ = conn => {}
                            _ = closed.changed() => {}
                        }
                    });
                }
            }
        }
    });
    Ok(Origin {
        addr,
        log,
        stop: Some(tx),
    })
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

fn query_param(uri: &hyper::Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.to_string())
    })
}

/// Deterministic pseudo-random bytes for the download test: the same `seed`
/// gives the same stream, so the client can check what it received.
pub fn pattern_chunk(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 (hex) of `total` bytes of the pattern stream.
pub fn pattern_sha256(total: usize) -> String {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut hasher = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(64 * 1024);
        hasher.update(pattern_chunk(&mut seed, n));
        left -= n;
    }
    hex::encode(hasher.finalize())
}

fn download(total: usize) -> Response<Body> {
    let stream = futures::stream::unfold(
        (0usize, 0x9E37_79B9_7F4A_7C15u64),
        move |(sent, mut seed)| async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(64 * 1024);
            let chunk = pattern_chunk(&mut seed, n);
            Some((
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk))),
                (sent + n, seed),
            ))
        },
    );
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

async fn upload(body: Incoming) -> Response<Body> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(data) = f.data_ref() {
                    bytes += data.len() as u64;
                    hasher.update(data);
                }
            }
            Err(e) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": e.to_string()}),
                )
            }
        }
    }
    json(
        StatusCode::OK,
        serde_json::json!({"bytes": bytes, "sha256": hex::encode(hasher.finalize())}),
    )
}

fn websocket(req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "missing sec-websocket-key"}),
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(msg)) = rx.next().await {
                if msg.is_text() || msg.is_binary() {
                    let reply = match msg {
                        tokio_tungstenite::tungstenite::Message::Text(t) => {
                            tokio_tungstenite::tungstenite::Message::Text(format!("echo: {t}"))
                        }
                        other => other,
                    };
                    if tx.send(reply).await.is_err() {
                        break;
                    }
                } else if msg.is_close() {
                    break;
                }
            }
        }
    });
    let mut resp = Response::new(
        Full::new(Bytes::new())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = accept.parse() {
        h.insert("sec-websocket-accept", v);
    }
    resp
}

fn echo(kind: Kind, rec: &Recorded) -> Response<Body> {
    let headers: serde_json::Map<String, serde_json::Value> = rec
        .headers
        .iter()
        .map(|(k, v)| {
            // Like a real backend, never echo a credential back.
            let v = if k == "cf-access-client-secret" || k == "authorization" {
                "<redacted>"
            } else {
                v.as_str()
            };
            (k.clone(), serde_json::Value::String(v.to_string()))
        })
        .collect();
    json(
        StatusCode::OK,
        serde_json::json!({
            "origin": kind.name(),
            "method": rec.method,
            "uri": rec.uri,
            "headers": headers,
        }),
    )
}

fn products() -> serde_json::Value {
    serde_json::json!({
        "products": [
            {"id": "prod_01", "handle": "linen-shirt", "title": "Linen shirt", "variants": [{"id": "variant_01", "prices": [{"amount": 4900, "currency_code": "eur"}]}]},
            {"id": "prod_02", "handle": "wool-socks", "title": "Wool socks", "variants": [{"id": "variant_02", "prices": [{"amount": 1500, "currency_code": "eur"}]}]},
        ],
        "count": 2, "offset": 0, "limit": 50
    })
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
<script src=\"/_next/static/chunks/main.js\"></script></head><body><h1>{title}</h1>{body}</body></html>"
    )
}

async fn handle(
    kind: Kind,
    log: Arc<Mutex<Vec<Recorded>>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let rec = Recorded {
        method: req.method().to_string(),
        uri: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    if let Ok(mut l) = log.lock() {
        l.push(rec.clone());
    }
    let path = req.uri().path().to_string();
    if let Some(ms) = query_param(req.uri(), "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(120_000))).await;
    }
    let resp = match (kind, path.as_str()) {
        (_, "/__echo") | (Kind::Medusa, "/store/echo") => echo(kind, &rec),
        (_, "/__download") | (Kind::Medusa, "/store/download") => {
            let n = query_param(req.uri(), "bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1024);
            download(n)
        }
        (_, "/__upload") | (Kind::Medusa, "/store/upload") => upload(req.into_body()).await,
        (Kind::Medusa, "/store/ws") => websocket(req),
        (Kind::Medusa, "/store/redirect") => {
            let mut r = json(
                StatusCode::FOUND,
                serde_json::json!({"redirect": "/store/products"}),
            );
            r.headers_mut().insert(
                hyper::header::LOCATION,
                hyper::header::HeaderValue::from_static("/store/products"),
            );
            r
        }
        (Kind::Medusa, "/store/products") => {
            // Validators, so the edge can revalidate with If-None-Match.
            let etag = "\"products-v1\"";
            if rec.header("if-none-match") == Some(etag) {
                let mut r = full(StatusCode::NOT_MODIFIED, "application/json", Bytes::new());
                r.headers_mut().insert(
                    hyper::header::ETAG,
                    hyper::header::HeaderValue::from_static("\"products-v1\""),
                );
                r
            } else {
                let mut r = json(StatusCode::OK, products());
                r.headers_mut().insert(
                    hyper::header::ETAG,
                    hyper::header::HeaderValue::from_static("\"products-v1\""),
                );
                r
            }
        }
        (Kind::Medusa, "/store/regions") => {
            // Cacheable echo with knobs: status, set_cookie, cache_control.
            let n = log
                .lock()
                .map(|l| {
                    l.iter()
                        .filter(|r| r.uri.starts_with("/store/regions"))
                        .count()
                })
                .unwrap_or(0);
            let status = query_param(req.uri(), "status")
                .and_then(|v| v.parse::<u16>().ok())
                .and_then(|v| StatusCode::from_u16(v).ok())
                .unwrap_or(StatusCode::OK);
            let body = serde_json::json!({
                "served": n,
                "method": rec.method,
                "uri": rec.uri,
                "headers": rec.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>(),
            });
            let mut r = json(status, body);
            if query_param(req.uri(), "set_cookie").is_some() {
                r.headers_mut().insert(
                    hyper::header::SET_COOKIE,
                    hyper::header::HeaderValue::from_static("session=abc; HttpOnly"),
                );
            }
            if let Some(cc) = query_param(req.uri(), "cache_control")
                .and_then(|v| hyper::header::HeaderValue::from_str(&v.replace("%20", " ")).ok())
            {
                r.headers_mut().insert(hyper::header::CACHE_CONTROL, cc);
            }
            r
        }
        (Kind::Medusa, "/store/carts") if rec.method == "POST" => json(
            StatusCode::OK,
            serde_json::json!({"cart": {"id": "cart_01", "items": [], "currency_code": "eur"}}),
        ),
        (Kind::Medusa, p)
            if p.starts_with("/store/")
                || p.starts_with("/admin/")
                || p.starts_with("/auth/")
                || p.starts_with("/hooks/")
                || p.starts_with("/app") =>
        {
            echo(kind, &rec)
        }
        (Kind::Medusa, _) => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"type": "not_found", "message": "no such route"}),
        ),
        (Kind::Storefront, "/") => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page(
                "Sample shop",
                "<p>Welcome. <a href=\"/products/linen-shirt\">Linen shirt</a></p>",
            ),
        ),
        (Kind::Storefront, p) if p.starts_with("/products/") => full(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page(
                &format!("Product {}", &p["/products/".len()..]),
                "<p>In stock.</p>",
            ),
        ),
        (Kind::Storefront, p) if p.starts_with("/_next/static/") => {
            let mut r = full(
                StatusCode::OK,
                "application/javascript",
                "console.log('storefront');",
            );
            r.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-cache"),
            );
            r
        }
        (Kind::Access, access::CERTS_PATH) => json(StatusCode::OK, access::jwks()),
        (Kind::Access, _) => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        ),
        (Kind::Storefront, _) => full(
            StatusCode::NOT_FOUND,
            "text/html; charset=utf-8",
            page("Not found", ""),
        ),
    };
    let mut resp = resp;
    resp.headers_mut().insert(
        "x-origin",
        hyper::header::HeaderValue::from_static(kind.name()),
    );
    resp.headers_mut().insert(
        "x-powered-by",
        hyper::header::HeaderValue::from_static("sample-origin"),
    );
    Ok(resp)
}
