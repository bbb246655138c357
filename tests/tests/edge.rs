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
        // /admin and /app need a Cloudflare Access JWT (tested below).
        let r = c
            .get(edge.at(path))
            .header("cf-access-jwt-assertion", edge.access_jwt())
            .send()
            .await
            .expect("request");
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
    // Six requests to Medusa paths; the second /store/products was a cache hit.
    assert_eq!(edge.medusa.requests().len(), 5);
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
    json_error_id(r, Some("origin_unreachable")).await;
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

#[test]
fn a_bad_edge_config_fails_the_build_naming_the_entry() {
    let root = shopedge_tests::shared_data::repo_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(root.join("edge-worker/edge.toml")).expect("edge.toml");
    let cases = [
        (
            good.replace("upstream = \"medusa\"", "upstream = \"medusa2\""),
            "routes[0] \"medusa\": upstream \"medusa2\" is not defined",
        ),
        (
            good.replace("[security_headers]", "[security_headers]\ncolour = \"red\""),
            "unknown field `colour`",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("edge-{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let out = std::process::Command::new(env!("CARGO"))
            .args(["check", "--quiet", "-p", "edge-worker", "--lib"])
            .current_dir(&root)
            .env("EDGE_CONFIG", &path)
            .env("CARGO_TARGET_DIR", root.join("target/config-check"))
            .output()
            .expect("cargo check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "build should fail for case {i}");
        assert!(
            stderr.contains(want),
            "case {i}: want {want:?} in:\n{stderr}"
        );
    }
}

// ---- cache layer -----------------------------------------------------------

/// An override of the built-in config with short cache lifetimes for tests.
fn short_cache_config(ttl: u32, swr: u32, sie: u32) -> String {
    let mut cfg = edge_worker::active::ActiveConfig::builtin()
        .expect("builtin")
        .config;
    for rule in cfg.cache.rules.iter_mut() {
        rule.ttl = ttl;
        rule.stale_while_revalidate = swr;
        rule.stale_if_error = sie;
    }
    serde_json::to_string(&cfg).expect("json")
}

fn cache_state(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-edge-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string()
}

async fn get(
    c: &Client,
    url: String,
    headers: &[(&str, &str)],
) -> (String, StatusCode, String, Option<String>) {
    let mut rb = c.get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("request");
    let state = cache_state(&r);
    let age = r
        .headers()
        .get("age")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = r.status();
    (state, status, r.text().await.expect("body"), age)
}

#[tokio::test]
async fn cache_hit_miss_and_key_normalisation() {
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    let (s, st, body1, _) = get(&c, edge.at("/store/products?b=2&a=1&utm_source=news"), &[]).await;
    assert_eq!((s.as_str(), st), ("MISS", StatusCode::OK));
    // Same key: sorted query, tracking parameters dropped, host case folded.
    let (s, _, body2, age) = get(&c, edge.at("/store/products?a=1&fbclid=x&b=2"), &[]).await;
    assert_eq!(s, "HIT");
    assert_eq!(body1, body2);
    assert!(age.is_some(), "Age header on hits");
    assert_eq!(edge.medusa.requests_to("/store/products").len(), 1);
    // Varying on the publishable key and the region cookie makes new entries.
    let (s, ..) = get(
        &c,
        edge.at("/store/products?a=1&b=2"),
        &[("x-publishable-api-key", "pk_1")],
    )
    .await;
    assert_eq!(s, "MISS");
    let (s, ..) = get(
        &c,
        edge.at("/store/products?a=1&b=2"),
        &[("x-publishable-api-key", "pk_1")],
    )
    .await;
    assert_eq!(s, "HIT");
    let (s, ..) = get(
        &c,
        edge.at("/store/products?a=1&b=2"),
        &[("cookie", "region=eu")],
    )
    .await;
    assert_eq!(s, "MISS");
    let (s, ..) = get(
        &c,
        edge.at("/store/products?a=1&b=2"),
        &[("cookie", "theme=dark; region=eu")],
    )
    .await;
    assert_eq!(s, "HIT");
    assert_eq!(edge.medusa.requests_to("/store/products").len(), 3);
    // Storefront pages and static assets are cached too.
    for path in ["/products/linen-shirt", "/_next/static/chunks/main.js"] {
        assert_eq!(get(&c, edge.at(path), &[]).await.0, "MISS");
        assert_eq!(get(&c, edge.at(path), &[]).await.0, "HIT");
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn cache_bypass_for_credentials_sessions_and_private_routes() {
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    for headers in [
        vec![("authorization", "Bearer x")],
        vec![("cookie", "connect.sid=s%3Aabc")],
        vec![("cookie", "_medusa_jwt=eyJ")],
        vec![("range", "bytes=0-10")],
    ] {
        for _ in 0..2 {
            let (s, ..) = get(&c, edge.at("/store/products"), &headers).await;
            assert_eq!(s, "BYPASS", "{headers:?}");
        }
    }
    for path in [
        "/store/carts/cart_01",
        "/store/customers/me",
        "/admin/products",
        "/auth/session",
        "/hooks/payment/stripe",
    ] {
        let jwt = edge.access_jwt();
        let (s, ..) = get(&c, edge.at(path), &[("cf-access-jwt-assertion", &jwt)]).await;
        assert_eq!(s, "BYPASS", "{path}");
    }
    assert_eq!(edge.medusa.requests_to("/store/products").len(), 8);
    edge.shutdown().await;
}

#[tokio::test]
async fn cache_never_stores_set_cookie_private_or_errors() {
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    for q in [
        "set_cookie=1",
        "cache_control=private",
        "cache_control=no-store",
        "status=500",
        "status=403",
    ] {
        for _ in 0..2 {
            let (s, ..) = get(&c, edge.at(&format!("/store/regions?{q}")), &[]).await;
            assert_eq!(s, "MISS", "{q}");
        }
        assert_eq!(
            edge.medusa
                .requests_to(&format!("/store/regions?{q}"))
                .len(),
            2,
            "{q} must not be stored"
        );
    }
    // Short negative caching of 404.
    let (s, st, ..) = get(&c, edge.at("/store/regions?status=404"), &[]).await;
    assert_eq!((s.as_str(), st), ("MISS", StatusCode::NOT_FOUND));
    let (s, st, ..) = get(&c, edge.at("/store/regions?status=404"), &[]).await;
    assert_eq!((s.as_str(), st), ("HIT", StatusCode::NOT_FOUND));
    edge.shutdown().await;
}

#[tokio::test]
async fn cache_stale_while_revalidate_and_conditional_revalidation() {
    // Ages are whole seconds, so lifetimes leave at least a second of slack
    // on either side of each expected state.
    let opts = EdgeOptions {
        kv: map(&[("config", &short_cache_config(3, 30, 0))]),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    let c = client();
    assert_eq!(get(&c, edge.at("/store/regions"), &[]).await.0, "MISS");
    tokio::time::sleep(std::time::Duration::from_millis(3300)).await;
    let (s, _, body, _) = get(&c, edge.at("/store/regions"), &[]).await;
    assert_eq!(s, "STALE");
    assert!(
        body.contains("\"served\":1"),
        "the stale copy is served: {body}"
    );
    // The background refresh reached the origin and stored a fresh copy.
    let mut refreshed = false;
    for _ in 0..50 {
        if edge.medusa.requests_to("/store/regions").len() == 2 {
            refreshed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        refreshed,
        "stale-while-revalidate refreshes in the background"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, _, body, _) = get(&c, edge.at("/store/regions"), &[]).await;
    assert_eq!(s, "HIT");
    assert!(body.contains("\"served\":2"), "{body}");
    edge.shutdown().await;

    // Expired beyond the stale windows, with an ETag: a conditional request
    // and a 304 from the origin give REVALIDATED.
    let opts = EdgeOptions {
        kv: map(&[("config", &short_cache_config(2, 0, 0))]),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    assert_eq!(get(&c, edge.at("/store/products"), &[]).await.0, "MISS");
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let (s, st, body, _) = get(&c, edge.at("/store/products"), &[]).await;
    assert_eq!((s.as_str(), st), ("REVALIDATED", StatusCode::OK));
    assert!(body.contains("linen-shirt"));
    let reqs = edge.medusa.requests_to("/store/products");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("if-none-match"), Some("\"products-v1\""));
    assert_eq!(get(&c, edge.at("/store/products"), &[]).await.0, "HIT");
    edge.shutdown().await;
}

#[tokio::test]
async fn cache_stale_if_error_with_the_origin_stopped() {
    let opts = EdgeOptions {
        kv: map(&[("config", &short_cache_config(1, 0, 120))]),
        ..Default::default()
    };
    let mut edge = Edge::start(opts).await.expect("edge");
    let c = client();
    let (s, _, first, _) = get(&c, edge.at("/products/linen-shirt"), &[]).await;
    assert_eq!(s, "MISS");
    edge.storefront.stop();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (s, st, body, age) = get(&c, edge.at("/products/linen-shirt"), &[]).await;
    assert_eq!((s.as_str(), st), ("STALE", StatusCode::OK));
    assert_eq!(body, first);
    assert!(age
        .and_then(|a| a.parse::<u64>().ok())
        .is_some_and(|a| a >= 1));
    // Nothing stored for this one: the failure shows.
    let (s, st, ..) = get(&c, edge.at("/products/other"), &[]).await;
    assert_eq!((s.as_str(), st), ("MISS", StatusCode::BAD_GATEWAY));
    edge.shutdown().await;
}

#[tokio::test]
async fn cache_purge_needs_the_token_and_bumps_the_generation() {
    let opts = EdgeOptions {
        secrets: map(&[("EDGE_PURGE_TOKEN", "purge-token-123")]),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    let c = client();
    for path in ["/store/products", "/products/linen-shirt"] {
        assert_eq!(get(&c, edge.at(path), &[]).await.0, "MISS");
        assert_eq!(get(&c, edge.at(path), &[]).await.0, "HIT");
    }
    for auth in [None, Some("Bearer wrong"), Some("purge-token-123")] {
        let mut rb = c.post(edge.at("/__edge/purge"));
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.expect("purge");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let r = c.get(edge.at("/__edge/purge")).send().await.expect("purge");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Purge one prefix: only it misses.
    let r = c
        .post(edge.at("/__edge/purge"))
        .header("authorization", "Bearer purge-token-123")
        .body(r#"{"prefix": "/store/products"}"#)
        .send()
        .await
        .expect("purge");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get(&c, edge.at("/store/products"), &[]).await.0, "MISS");
    assert_eq!(
        get(&c, edge.at("/products/linen-shirt"), &[]).await.0,
        "HIT"
    );
    // Purge everything.
    let r = c
        .post(edge.at("/__edge/purge"))
        .header("authorization", "Bearer purge-token-123")
        .send()
        .await
        .expect("purge");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        get(&c, edge.at("/products/linen-shirt"), &[]).await.0,
        "MISS"
    );
    let bad = c
        .post(edge.at("/__edge/purge"))
        .header("authorization", "Bearer purge-token-123")
        .body("{not json")
        .send()
        .await
        .expect("purge");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(
        !edge.worker_logs().contains("purge-token-123"),
        "the purge token is never logged"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn cache_poisoning_headers_change_nothing() {
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    // An unkeyed header on the request that fills the cache does not reach
    // the origin, so it cannot shape the stored copy.
    let (s, _, first, _) = get(
        &c,
        edge.at("/store/regions?x=1"),
        &[("x-forwarded-host", "evil.example")],
    )
    .await;
    assert_eq!(s, "MISS");
    assert!(
        !first.contains("evil.example"),
        "X-Forwarded-Host reached the origin: {first}"
    );
    // Override headers are either refused by the WAF or dropped before the
    // origin; either way they never create or change a stored copy.
    for (name, value) in [
        ("x-forwarded-host", "evil.example"),
        ("x-original-url", "/admin/users"),
        ("x-rewrite-url", "/admin/users"),
        ("x-http-method-override", "DELETE"),
    ] {
        let (s, status, body, _) = get(&c, edge.at("/store/regions?x=1"), &[(name, value)]).await;
        match status {
            StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST => {
                assert_eq!(
                    s, "none",
                    "{name}: a blocked request never touches the cache"
                )
            }
            StatusCode::OK => {
                assert_eq!(s, "HIT", "{name} must not create another cache entry");
                assert_eq!(body, first);
            }
            other => panic!("{name}: unexpected {other}"),
        }
    }
    let (s, _, clean, _) = get(&c, edge.at("/store/regions?x=1"), &[]).await;
    assert_eq!(s, "HIT");
    assert_eq!(clean, first);
    assert_eq!(edge.medusa.requests_to("/store/regions").len(), 1);
    edge.shutdown().await;

    // With the WAF's restricted-header rule relaxed, the override headers are
    // still stripped before the origin (defence in depth).
    let mut cfg = edge_worker::active::ActiveConfig::builtin()
        .expect("builtin")
        .config;
    cfg.waf.restricted_headers.clear();
    let opts = EdgeOptions {
        kv: map(&[("config", &serde_json::to_string(&cfg).expect("json"))]),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    let evil = [
        ("x-original-url", "/admin/users"),
        ("x-rewrite-url", "/admin/users"),
        ("x-http-method-override", "DELETE"),
    ];
    let (s, status, body, _) = get(&c, edge.at("/store/regions?y=1"), &evil).await;
    assert_eq!((s.as_str(), status), ("MISS", StatusCode::OK));
    for needle in ["/admin/users", "DELETE"] {
        assert!(
            !body.contains(needle),
            "{needle} reached the origin: {body}"
        );
    }
    assert_eq!(get(&c, edge.at("/store/regions?y=1"), &[]).await.0, "HIT");
    edge.shutdown().await;
}

#[tokio::test]
async fn waf_blocks_attacks_with_the_request_id_and_logs_each_decision() {
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    // SQL injection on an API route: JSON 403 with the request id.
    let r = c
        .get(edge.at("/store/products?q=1%27%20OR%201%3D1--"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let rid = json_error_id(r, Some("forbidden")).await;
    // XSS on a page: HTML 403.
    let r = c
        .get(edge.at("/products/a?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    // An attack in a JSON body.
    let r = c
        .post(edge.at("/store/carts"))
        .header("content-type", "application/json")
        .body(r#"{"email":"a@b.c","note":"x' UNION SELECT password FROM users--"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // None of them reached an origin.
    assert!(
        edge.medusa.requests().is_empty(),
        "{:?}",
        edge.medusa.requests()
    );
    assert!(edge.storefront.requests().is_empty());
    // A benign cart with apostrophes and an HTML product description pass
    // (the admin description field is excluded from XSS rules).
    let r = c
        .post(edge.at("/store/carts"))
        .header("content-type", "application/json")
        .body(r#"{"email":"o'brien@example.ie","shipping_address":{"address_1":"12 O'Connell St #4 & Co"}}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(edge.at("/admin/products"))
        .header("cf-access-jwt-assertion", edge.access_jwt())
        .header("content-type", "application/json")
        .body(r#"{"title":"Linen shirt","description":"<p>Soft <strong>linen</strong>, <em>breathable</em>.</p><ul><li>100% linen</li></ul>"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    // The forwarded body is intact.
    let seen = edge.medusa.requests_to("/store/carts");
    assert_eq!(seen.len(), 1);
    // Every blocking decision was logged as one JSON line naming the rules.
    let logs = edge.worker_logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v["event"] == "waf")
        .collect();
    let blocked: Vec<&Value> = lines.iter().filter(|v| v["action"] == "block").collect();
    assert_eq!(blocked.len(), 3, "{logs}");
    assert!(blocked
        .iter()
        .all(|v| v["rules"].as_array().is_some_and(|r| !r.is_empty())));
    assert!(blocked.iter().any(|v| v["request_id"] == rid.as_str()));
    assert!(
        !logs.contains("UNION SELECT"),
        "log lines never carry request values"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn waf_log_only_mode_from_a_config_override() {
    let mut cfg = edge_worker::active::ActiveConfig::builtin()
        .expect("builtin")
        .config;
    cfg.waf.default_mode = edge_waf::Mode::LogOnly;
    let opts = EdgeOptions {
        kv: map(&[("config", &serde_json::to_string(&cfg).expect("json"))]),
        ..Default::default()
    };
    let edge = Edge::start(opts).await.expect("edge");
    let r = client()
        .get(edge.at("/store/echo?q=1%27%20OR%201%3D1--"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK, "log-only never blocks");
    let logs = edge.worker_logs();
    assert!(
        logs.contains("\"event\":\"waf\"") && logs.contains("\"mode\":\"log-only\""),
        "{logs}"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn admin_paths_need_a_valid_access_jwt() {
    use shopedge_tests::origins::access::{SignedBy, AUDIENCE, CERTS_PATH};
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    // A good token passes, on both protected prefixes, several times: the
    // signing keys are fetched once and kept.
    for path in ["/admin/products", "/app/login", "/admin/orders"] {
        let r = c
            .get(edge.at(path))
            .header("cf-access-jwt-assertion", edge.access_jwt())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(edge.access.requests_to(CERTS_PATH).len(), 1);
    assert_eq!(edge.medusa.requests().len(), 3);
    let expired = edge.access_jwt_with(-600, SignedBy::Published, AUDIENCE);
    let wrong_audience = edge.access_jwt_with(600, SignedBy::Published, "another-app");
    let wrong_key = edge.access_jwt_with(600, SignedBy::Unpublished, AUDIENCE);
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("expired", Some(&expired), "expired"),
        ("wrong audience", Some(&wrong_audience), "audience"),
        ("wrong key", Some(&wrong_key), "signature does not verify"),
        ("garbage", Some("abc.def.ghi"), "not valid base64url JSON"),
        ("missing", None, "missing cf-access-jwt-assertion"),
    ];
    for (what, token, reason) in cases {
        let mut rb = c
            .get(edge.at("/admin/users"))
            .header("accept", "application/json");
        if let Some(t) = token {
            rb = rb.header("cf-access-jwt-assertion", t);
        }
        let r = rb.send().await.expect("request");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        let rid = json_error_id(r, Some("forbidden")).await;
        let logs = edge
            .worker_logs_when(std::time::Duration::from_secs(5), |l| {
                l.lines()
                    .any(|x| x.contains(&rid) && x.contains("\"event\":\"access\""))
            })
            .await;
        let line = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .find(|v| v["event"] == "access" && v["request_id"] == rid.as_str())
            .unwrap_or_else(|| panic!("{what}: no access log line in\n{logs}"));
        assert!(
            line["reason"].as_str().is_some_and(|r| r.contains(reason)),
            "{what}: {line}"
        );
        if let Some(t) = token {
            assert!(!logs.contains(t), "{what}: the token must never be logged");
        }
    }
    // None of the refused requests reached Medusa; the unknown key made the
    // worker look for rotated keys once (not once per request).
    assert_eq!(edge.medusa.requests().len(), 3);
    assert!(edge.access.requests_to(CERTS_PATH).len() <= 2);
    edge.shutdown().await;
}

#[tokio::test]
async fn rate_limited_routes_answer_429_with_retry_after() {
    let edge = Edge::start(EdgeOptions {
        ratelimits: [("RATE_LIMIT_AUTH".to_string(), (3, 60))]
            .into_iter()
            .collect(),
        ..Default::default()
    })
    .await
    .expect("edge");
    let c = client();
    let login = || {
        c.post(edge.at("/auth/customer/emailpass"))
            .header("content-type", "application/json")
            .body(r#"{"email":"a@example.com","password":"correct horse"}"#)
    };
    for i in 0..3 {
        let r = login().send().await.expect("request");
        assert_eq!(r.status(), StatusCode::OK, "attempt {i}");
    }
    let r = login().send().await.expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "60");
    let rid = json_error_id(r, Some("rate_limited")).await;
    // Only the allowed attempts reached Medusa; other routes are not limited.
    assert_eq!(edge.medusa.requests_to("/auth/").len(), 3);
    for _ in 0..5 {
        let r = c
            .get(edge.at("/store/regions"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let logs = edge
        .worker_logs_when(std::time::Duration::from_secs(5), |l| {
            l.lines()
                .any(|x| x.contains(&rid) && x.contains("\"event\":\"rate_limit\""))
        })
        .await;
    assert!(
        logs.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .any(|v| v["event"] == "rate_limit"
                && v["rule"] == "auth"
                && v["request_id"] == rid.as_str()),
        "{logs}"
    );
    edge.shutdown().await;
}

/// The request id of an API error response, after checking that its JSON
/// body has the `type` given and names the same id.
async fn json_error_id(r: reqwest::Response, kind: Option<&str>) -> String {
    let rid = r.headers()["x-request-id"]
        .to_str()
        .expect("x-request-id")
        .to_string();
    let v: Value = r.json().await.expect("JSON error body");
    if let Some(k) = kind {
        assert_eq!(v["type"], k, "{v}");
    }
    assert_eq!(v["request_id"], rid.as_str(), "{v}");
    rid
}

/// Sends raw bytes to the worker and returns the response's status line and
/// headers (for requests an HTTP client will not send: a declared 100 MiB
/// body that never fully arrives).
async fn raw_exchange(base: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    // The peer may answer and close before taking everything we send.
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), read).await;
    String::from_utf8_lossy(&buf).to_string()
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_never_a_500() {
    let edge = Edge::start(EdgeOptions::default()).await.expect("edge");
    let c = client();
    let long_value = "a".repeat(12 * 1024);
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let nested = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "malformed percent-encoding",
            c.get(edge.at("/store/products?q=%zz%4")),
        ),
        (
            "invalid UTF-8 in the query",
            c.get(edge.at("/store/products?q=%ff%fe%c3%28")),
        ),
        (
            "oversized URL",
            c.get(edge.at(&format!("/store/products?q={}", "x".repeat(20_000)))),
        ),
        (
            "oversized header",
            c.get(edge.at("/store/products"))
                .header("x-note", long_value.as_str()),
        ),
        ("too many headers", {
            let mut rb = c.get(edge.at("/store/products"));
            for (k, v) in &many {
                rb = rb.header(k.as_str(), v.as_str());
            }
            rb
        }),
        (
            "deeply nested JSON",
            c.post(edge.at("/store/carts"))
                .header("content-type", "application/json")
                .body(nested.clone()),
        ),
        (
            "invalid UTF-8 JSON body",
            c.post(edge.at("/store/carts"))
                .header("content-type", "application/json")
                .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, rb) in cases {
        match rb.send().await {
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if !status.is_client_error() || body.contains("internal_error") {
                    wrong.push(format!("{what}: {status} {body}"));
                }
            }
            // An HTTP client may refuse to send it at all; that is fine too.
            Err(e) if e.is_builder() => {}
            Err(e) => wrong.push(format!("{what}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Conflicting Content-Length and Transfer-Encoding (request smuggling):
    // refused, or re-framed so that what reaches the origin is unambiguous.
    let authority = edge
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let smuggle = format!(
        "POST /store/carts HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(&edge.url, smuggle.as_bytes()).await;
    let refused = answer.starts_with("HTTP/1.1 4");
    let seen = edge.medusa.requests_to("/store/carts");
    assert!(
        refused
            || seen.iter().all(|r| !(r.header("content-length").is_some()
                && r.header("transfer-encoding").is_some())),
        "{answer}\n{seen:?}"
    );
    let carts_before = seen.len();
    // A declared 100 MiB body is refused by its length, before it arrives.
    let head = format!(
        "POST /store/carts HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        edge.url.trim_start_matches("http://").trim_end_matches('/'),
        100 * 1024 * 1024
    );
    let mut req = head.into_bytes();
    req.extend(std::iter::repeat_n(b' ', 64 * 1024));
    let answer = raw_exchange(&edge.url, &req).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(edge.medusa.requests_to("/store/carts").len(), carts_before);
    // The worker is still healthy, and nothing panicked.
    let r = c
        .get(edge.at("/store/regions"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let logs = edge.worker_logs();
    assert!(
        !logs.contains("worker_failure") && !logs.contains("panicked"),
        "{logs}"
    );
    edge.shutdown().await;
}
