//! End-to-end tests of the edge worker: the compiled wasm in workerd
//! (Miniflare) in front of real local origins on 127.0.0.1.

use futures::{SinkExt, StreamExt};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shopedge_tests::origins::edge_harness::{Edge, EdgeOptions};
use shopedge_tests::origins::pattern_sha256;
use std::collections::BTreeMap;

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const SECRET: &str = "s3cr3t-access-value-7f1c";

fn with_access() -> EdgeOptions {
    EdgeOptions {
        secrets: map(&[
            ("ACCESS_CLIENT_ID", "edge.access"),
            ("ACCESS_CLIENT_SECRET", SECRET),
        ]),
        storefront_binding: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn every_route_class_reaches_its_origin() {
    let edge = Edge::start(with_access()).await.expect("edge");
    let c = client();
    for path in [
        "/store/products",
        "/admin/products",
        "/auth/customer/emailpass",
        "/hooks/payment/stripe",
        "/app/login",
    ] {
        let r = c.get(edge.at(path)).send().await.expect("request");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["x-origin"], "medusa", "{path}");
        assert!(r.headers().contains_key("x-request-id"));
    }
    let products: Value = c
        .get(edge.at("/store/products"))
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(products["count"], 2);
    for path in ["/", "/products/linen-shirt", "/_next/static/chunks/main.js"] {
        let r = c.get(edge.at(path)).send().await.expect("request");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["x-origin"], "storefront", "{path}");
    }
    // The storefront was reached through the STOREFRONT service binding.
    let sf = edge.storefront.requests();
    assert_eq!(sf.len(), 3);
    assert!(sf
        .iter()
        .all(|r| r.header("x-via-service-binding") == Some("STOREFRONT")));
    assert_eq!(edge.medusa.requests().len(), 6);
    edge.shutdown().await;
}

#[tokio::test]
async fn storefront_url_fallback_without_binding() {
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let r = client()
        .get(edge.at("/products/a"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let sf = edge.storefront.requests();
    assert_eq!(sf.len(), 1);
    assert_eq!(sf[0].header("x-via-service-binding"), None);
    edge.shutdown().await;
}

#[tokio::test]
async fn access_headers_reach_only_medusa_and_never_the_client() {
    let edge = Edge::start(with_access()).await.expect("edge");
    let c = client();
    for path in ["/store/echo", "/products/x", "/"] {
        let r = c
            .get(edge.at(path))
            .header("CF-Access-Client-Id", "forged")
            .header("CF-Access-Client-Secret", "forged")
            .send()
            .await
            .expect("request");
        assert!(r.headers().get("cf-access-client-id").is_none());
        assert!(r.headers().get("cf-access-client-secret").is_none());
        let body = r.text().await.expect("body");
        assert!(
            !body.contains(SECRET),
            "{path}: secret leaked into the response body"
        );
    }
    let m = edge.medusa.requests_to("/store/echo");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].header("cf-access-client-id"), Some("edge.access"));
    assert_eq!(m[0].header("cf-access-client-secret"), Some(SECRET));
    for r in edge.storefront.requests() {
        assert_eq!(r.header("cf-access-client-id"), None, "{}", r.uri);
        assert_eq!(r.header("cf-access-client-secret"), None, "{}", r.uri);
    }
    assert!(
        !edge.worker_logs().contains(SECRET),
        "secret in worker logs"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn forwarding_headers_come_from_the_connection_and_hop_by_hop_are_dropped() {
    let edge = Edge::start(with_access()).await.expect("edge");
    let r = client()
        .get(edge.at("/store/echo?a=1"))
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "gopher")
        .header("Forwarded", "for=6.6.6.6")
        .header("X-Real-IP", "6.6.6.6")
        .header("Keep-Alive", "timeout=5")
        .header("Connection", "keep-alive, x-drop-me")
        .header("X-Drop-Me", "1")
        .header("X-Custom", "kept")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let seen = &edge.medusa.requests_to("/store/echo")[0];
    assert_eq!(seen.uri, "/store/echo?a=1");
    // Miniflare sets CF-Connecting-IP to the client's address, as Cloudflare does.
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let host = edge.url.trim_start_matches("http://").trim_end_matches('/');
    assert_eq!(seen.header("x-forwarded-host"), Some(host));
    assert_eq!(seen.header("forwarded"), None);
    assert_eq!(seen.header("x-real-ip"), None);
    assert_eq!(seen.header("keep-alive"), None);
    assert_eq!(seen.header("x-drop-me"), None);
    assert_eq!(seen.header("x-custom"), Some("kept"));
    edge.shutdown().await;
}

#[tokio::test]
async fn response_headers_security_and_rules() {
    let edge = Edge::start(with_access()).await.expect("edge");
    let c = client();
    let page = c.get(edge.at("/products/a")).send().await.expect("request");
    let h = page.headers();
    assert_eq!(
        h["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert_eq!(h["content-security-policy"], "frame-ancestors 'self'");
    assert!(
        h.get("x-powered-by").is_none(),
        "x-powered-by should be removed"
    );
    let api = c
        .get(edge.at("/store/products"))
        .send()
        .await
        .expect("request");
    assert!(
        api.headers().get("strict-transport-security").is_none(),
        "HSTS only on HTML"
    );
    let js = c
        .get(edge.at("/_next/static/chunks/main.js"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        js.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn redirect_rules_and_origin_redirects_pass_through() {
    let edge = Edge::start(with_access()).await.expect("edge");
    let c = client();
    let cases = [
        (
            "shop.example.com",
            "/products/a",
            301,
            "https://shop.example.com/products/a",
        ),
        (
            "www.shop.example.com",
            "/x?y=1",
            301,
            "https://shop.example.com/x?y=1",
        ),
        ("127.0.0.1", "/products/a/", 308, "/products/a"),
    ];
    for (host, path, status, location) in cases {
        let r = c
            .get(edge.at(path))
            .header("host", host)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), status, "{host}{path}");
        let loc = r.headers()["location"].to_str().expect("ascii");
        assert!(loc.ends_with(location), "{host}{path}: {loc}");
    }
    assert!(
        edge.storefront.requests().is_empty(),
        "redirects must not reach the origin"
    );
    // The origin's own redirect is passed to the client, not followed.
    let r = c
        .get(edge.at("/store/redirect"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"], "/store/products");
    assert_eq!(edge.medusa.requests_to("/store/products").len(), 0);
    edge.shutdown().await;
}

#[tokio::test]
async fn all_methods_are_proxied() {
    let edge = Edge::start(with_access()).await.expect("edge");
    let c = client();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).expect("method");
        let mut rb = c.request(method, edge.at("/store/echo"));
        if m != "GET" && m != "OPTIONS" {
            rb = rb
                .body(r#"{"x":1}"#)
                .header("content-type", "application/json");
        }
        let r = rb.send().await.expect("request");
        assert_eq!(r.status(), StatusCode::OK, "{m}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["method"], m);
    }
    let head = c
        .head(edge.at("/store/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(head.status(), StatusCode::OK);
    edge.shutdown().await;
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    const SIZE: usize = 50 * 1024 * 1024;
    let edge = Edge::start(with_access()).await.expect("edge");
    let c = client();
    // Upload 50 MiB as a stream of chunks.
    let mut seed = 42u64;
    let mut hasher = Sha256::new();
    let mut chunks = Vec::new();
    for _ in 0..(SIZE / (1024 * 1024)) {
        let chunk = shopedge_tests::origins::pattern_chunk(&mut seed, 1024 * 1024);
        hasher.update(&chunk);
        chunks.push(Ok::<_, std::io::Error>(chunk));
    }
    let want = hex::encode(hasher.finalize());
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = c
        .post(edge.at("/store/upload"))
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["bytes"], SIZE as u64);
    assert_eq!(v["sha256"], want.as_str());
    // Download 50 MiB and check every byte.
    let r = c
        .get(edge.at(&format!("/store/download?bytes={SIZE}")))
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut hasher = Sha256::new();
    let mut n = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        n += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(n, SIZE);
    assert_eq!(hex::encode(hasher.finalize()), pattern_sha256(SIZE));
    edge.shutdown().await;
}

#[tokio::test]
async fn origin_down_gives_502_json_for_api_and_html_for_pages() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let opts = EdgeOptions {
        vars: map(&[("STOREFRONT_ORIGIN", dead.as_str())]),
        medusa_url_override: Some(dead.clone()),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    let c = client();
    let r = c
        .get(edge.at("/store/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let v: Value = r.json().await.expect("json body");
    assert_eq!(v["type"], "origin_unreachable");
    assert_eq!(v["request_id"], rid.as_str());
    let r = c.get(edge.at("/products/a")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let body = r.text().await.expect("body");
    assert!(body.contains(&rid), "HTML error page names the request id");
    edge.shutdown().await;
}

fn override_with_timeout(ms: u32) -> String {
    let active = edge_worker::active::ActiveConfig::builtin().expect("builtin");
    let mut cfg = active.config;
    for up in cfg.upstreams.values_mut() {
        up.timeout_ms = ms;
    }
    serde_json::to_string(&cfg).expect("json")
}

#[tokio::test]
async fn slow_origin_gives_504_with_request_id() {
    let opts = EdgeOptions {
        kv: map(&[("config", &override_with_timeout(400))]),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    let c = client();
    let r = c
        .get(edge.at("/store/products?delay_ms=3000"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "origin_timeout");
    let r = c
        .get(edge.at("/products/a?delay_ms=3000"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(r.text().await.expect("body").contains("took too long"));
    // A fast request on the same config still works.
    let r = c
        .get(edge.at("/store/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    edge.shutdown().await;
}

#[tokio::test]
async fn a_panic_does_not_take_the_worker_down() {
    let opts = EdgeOptions {
        vars: map(&[("EDGE_DEBUG_PANIC_PATH", "/__edge/test-panic")]),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    let c = client();
    let ok = c
        .get(edge.at("/store/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), StatusCode::OK);
    for round in 0..3 {
        let r = c
            .get(edge.at("/__edge/test-panic"))
            .send()
            .await
            .expect("request");
        assert_eq!(
            r.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "round {round}"
        );
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["type"], "internal_error");
        // The very next request is served normally by a fresh instance.
        let r = c
            .get(edge.at("/store/products"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK, "round {round}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["count"], 2);
        let h: Value = c
            .get(edge.at("/__edge/health"))
            .send()
            .await
            .expect("req")
            .json()
            .await
            .expect("json");
        assert_eq!(h["status"], "ok");
    }
    assert!(edge.worker_logs().contains("deliberate panic"));
    edge.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrades_pass_through_to_medusa() {
    let edge = Edge::start(with_access()).await.expect("edge");
    let ws_url = edge.at("/store/ws").replacen("http://", "ws://", 1);
    let (mut ws, resp) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket handshake");
    assert_eq!(resp.status().as_u16(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "hello".into(),
    ))
    .await
    .expect("send");
    let reply = ws.next().await.expect("reply").expect("frame");
    assert_eq!(reply.into_text().expect("text"), "echo: hello");
    let _ = ws.close(None).await;
    let seen = &edge.medusa.requests_to("/store/ws")[0];
    assert_eq!(
        seen.header("upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("websocket")
    );
    assert_eq!(seen.header("cf-access-client-id"), Some("edge.access"));
    edge.shutdown().await;
}

#[tokio::test]
async fn config_override_from_kv_and_fallback_on_a_bad_one() {
    let mut edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    let health = |v: Value| {
        (
            v["config_source"].as_str().unwrap_or("").to_string(),
            v["config_hash"].as_str().unwrap_or("").to_string(),
        )
    };
    let (src, builtin_hash) = health(
        c.get(edge.at("/__edge/health"))
            .send()
            .await
            .expect("r")
            .json()
            .await
            .expect("j"),
    );
    assert_eq!(src, "builtin");

    // A valid override: everything goes to the storefront, even /store/*.
    let mut cfg = edge_worker::active::ActiveConfig::builtin()
        .expect("builtin")
        .config;
    cfg.routes.retain(|r| r.name == "storefront");
    edge.kv_put("config", &serde_json::to_string(&cfg).expect("json"))
        .await
        .expect("kv");
    let (src, hash) = health(
        c.get(edge.at("/__edge/health"))
            .send()
            .await
            .expect("r")
            .json()
            .await
            .expect("j"),
    );
    assert_eq!(src, "override");
    assert_ne!(hash, builtin_hash);
    let r = c
        .get(edge.at("/store/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.headers()["x-origin"], "storefront");

    // An invalid override (unknown upstream) is ignored, with a logged reason.
    let bad = serde_json::to_string(&cfg)
        .expect("json")
        .replace("\"upstream\":\"storefront\"", "\"upstream\":\"nowhere\"");
    edge.kv_put("config", &bad).await.expect("kv");
    let (src, hash) = health(
        c.get(edge.at("/__edge/health"))
            .send()
            .await
            .expect("r")
            .json()
            .await
            .expect("j"),
    );
    assert_eq!(src, "builtin");
    assert_eq!(hash, builtin_hash);
    let r = c
        .get(edge.at("/store/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.headers()["x-origin"], "medusa");
    let logs = edge.worker_logs();
    assert!(
        logs.contains("config_override_rejected")
            && logs.contains("\\\"nowhere\\\" is not defined"),
        "{logs}"
    );

    // Not JSON at all: also ignored.
    edge.kv_put("config", "{ this is not json")
        .await
        .expect("kv");
    let (src, _) = health(
        c.get(edge.at("/__edge/health"))
            .send()
            .await
            .expect("r")
            .json()
            .await
            .expect("j"),
    );
    assert_eq!(src, "builtin");
    edge.shutdown().await;
}

#[test]
fn wrangler_deploy_dry_run_passes_offline() {
    let node = shopedge_tests::origins::edge_harness::tool("SHOPEDGE_NODE").expect("node");
    let root = shopedge_tests::shared_data::repo_root();
    for env in [None, Some("staging"), Some("production")] {
        let out_dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = std::process::Command::new(&node);
        cmd.arg(root.join("node_modules/wrangler/bin/wrangler.js"))
            .args(["deploy", "--dry-run", "--outdir"])
            .arg(out_dir.path())
            .current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env_remove("CLOUDFLARE_API_TOKEN");
        if let Some(e) = env {
            cmd.args(["--env", e]);
        }
        let out = cmd.output().expect("run wrangler");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "wrangler deploy --dry-run {env:?} failed:\n{text}"
        );
        assert!(text.contains("--dry-run: exiting now."), "{text}");
        let files: Vec<String> = std::fs::read_dir(out_dir.path())
            .expect("outdir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert!(files.iter().any(|f| f.ends_with(".wasm")), "{files:?}");
        assert!(files.iter().any(|f| f == "entry.js"), "{files:?}");
        if env == Some("production") {
            assert!(
                text.contains("env.STOREFRONT (shopedge-storefront)"),
                "{text}"
            );
        }
    }
}
