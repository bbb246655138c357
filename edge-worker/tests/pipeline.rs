//! Host tests of the edge worker's pure logic: config validation, routing,
//! redirects, forwarding headers, security headers and the layer pipeline.

use edge_worker::active::{ActiveConfig, ConfigSource};
use edge_worker::config::{path_matches, EdgeConfig, RouteClass};
use edge_worker::errors::EdgeError;
use edge_worker::forwarding::AccessToken;
use edge_worker::http::{Headers, RequestHead, ResponseHead};
use edge_worker::pipeline::{Context, Outcome, Pipeline};

fn builtin() -> ActiveConfig {
    ActiveConfig::builtin().expect("builtin config")
}

fn req(method: &str, url: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead::from_url(
        method,
        url,
        Headers::from_pairs(headers.iter().map(|(k, v)| (*k, *v))),
    )
    .expect("valid url")
}

fn cx(active: &ActiveConfig, token: Option<AccessToken>) -> Context {
    Context {
        active: std::rc::Rc::new(active.clone()),
        request_id: "rid-1".into(),
        class: RouteClass::Page,
        route: None,
        upstream: None,
        access_token: token,
        version: "test",
        inspection: Default::default(),
        logs: Vec::new(),
        access_jwt: None,
    }
}

const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://shopedge.cloudflareaccess.com";

fn access_app() -> edge_waf::AccessJwtConfig {
    edge_waf::AccessJwtConfig {
        issuer: ISSUER.into(),
        audience: vec!["aud-1".into()],
        leeway_secs: 0,
        certs_url: None,
    }
}

/// A token with these claims and a placeholder signature: the pipeline checks
/// claims only; the binding verifies the signature with WebCrypto.
fn claims_token(claims: serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let header = serde_json::json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode([7u8; 256])
    )
}

fn token() -> AccessToken {
    AccessToken {
        client_id: "id.access".into(),
        client_secret: "s3cret-value".into(),
    }
}

#[test]
fn routes_every_medusa_prefix_to_medusa_and_the_rest_to_the_storefront() {
    let active = builtin();
    let p = Pipeline::standard();
    for path in [
        "/store/products",
        "/admin/orders",
        "/auth/customer/emailpass",
        "/hooks/payment/stripe",
        "/app/login",
        "/store",
    ] {
        let mut c = cx(&active, None);
        // /admin and /app need an Access JWT (claims checked here).
        c.inspection.access_app = Some(std::rc::Rc::new(access_app()));
        c.inspection.now_unix = NOW;
        let jwt =
            claims_token(serde_json::json!({"aud": ["aud-1"], "iss": ISSUER, "exp": NOW + 60}));
        match p.request(
            &mut c,
            &req(
                "GET",
                &format!("http://127.0.0.1:8787{path}"),
                &[("cf-access-jwt-assertion", &jwt)],
            ),
        ) {
            Outcome::Forward(up) => {
                assert_eq!(up.upstream, "medusa", "{path}");
                assert_eq!(up.url_var.as_deref(), Some("MEDUSA_ORIGIN"));
            }
            other => panic!("{path}: {other:?}"),
        }
        assert_eq!(c.class, RouteClass::Api);
    }
    for path in [
        "/",
        "/products/shirt",
        "/storefront",
        "/_next/static/x.js",
        "/administrator",
    ] {
        let mut c = cx(&active, None);
        match p.request(
            &mut c,
            &req("GET", &format!("http://127.0.0.1:8787{path}"), &[]),
        ) {
            Outcome::Forward(up) => {
                assert_eq!(up.upstream, "storefront", "{path}");
                assert_eq!(up.service.as_deref(), Some("STOREFRONT"));
            }
            other => panic!("{path}: {other:?}"),
        }
        assert_eq!(c.class, RouteClass::Page);
    }
}

#[test]
fn access_headers_only_for_medusa_and_client_copies_dropped() {
    let active = builtin();
    let p = Pipeline::standard();
    let spoof = [
        ("cf-access-client-id", "evil"),
        ("cf-access-client-secret", "evil"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=6.6.6.6"),
        ("cf-connecting-ip", "2001:db8::7"),
        ("connection", "keep-alive, x-custom-hop"),
        ("x-custom-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("accept", "application/json"),
    ];
    let mut c = cx(&active, Some(token()));
    let Outcome::Forward(up) = p.request(
        &mut c,
        &req("POST", "https://shop.example.com/store/carts?x=1", &spoof),
    ) else {
        panic!("expected forward")
    };
    assert_eq!(up.path_and_query, "/store/carts?x=1");
    assert_eq!(up.headers.get("cf-access-client-id"), Some("id.access"));
    assert_eq!(
        up.headers.get("cf-access-client-secret"),
        Some("s3cret-value")
    );
    assert_eq!(up.headers.get("x-forwarded-for"), Some("2001:db8::7"));
    assert_eq!(up.headers.get("x-forwarded-proto"), Some("https"));
    assert_eq!(up.headers.get("x-forwarded-host"), Some("shop.example.com"));
    assert_eq!(up.headers.get("forwarded"), None);
    assert_eq!(up.headers.get("connection"), None);
    assert_eq!(up.headers.get("keep-alive"), None);
    assert_eq!(up.headers.get("x-custom-hop"), None);
    assert_eq!(up.headers.get("accept"), Some("application/json"));

    let mut c = cx(&active, Some(token()));
    let Outcome::Forward(up) = p.request(
        &mut c,
        &req("GET", "https://shop.example.com/products/a", &spoof),
    ) else {
        panic!("expected forward")
    };
    assert_eq!(up.upstream, "storefront");
    assert_eq!(up.headers.get("cf-access-client-id"), None);
    assert_eq!(up.headers.get("cf-access-client-secret"), None);
}

#[test]
fn websocket_upgrade_kept_only_on_websocket_routes() {
    let active = builtin();
    let p = Pipeline::standard();
    let h = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "k"),
    ];
    let mut c = cx(&active, None);
    let Outcome::Forward(up) = p.request(&mut c, &req("GET", "http://127.0.0.1/store/ws", &h))
    else {
        panic!()
    };
    assert!(up.websocket);
    assert_eq!(up.headers.get("upgrade"), Some("websocket"));
    assert_eq!(up.headers.get("sec-websocket-key"), Some("k"));
    let mut c = cx(&active, None);
    let Outcome::Forward(up) = p.request(&mut c, &req("GET", "http://127.0.0.1/page", &h)) else {
        panic!()
    };
    assert!(!up.websocket);
    assert_eq!(up.headers.get("upgrade"), None);
}

#[test]
fn redirects_https_canonical_host_and_trailing_slash() {
    let active = builtin();
    let p = Pipeline::standard();
    let cases = [
        (
            "http://shop.example.com/products/a?b=1",
            301,
            "https://shop.example.com/products/a?b=1",
        ),
        (
            "https://www.shop.example.com/x",
            301,
            "https://shop.example.com/x",
        ),
        (
            "https://shop.example.com/products/a/",
            308,
            "https://shop.example.com/products/a",
        ),
        // Several rules at once give one redirect, with the first rule's status.
        (
            "http://www.shop.example.com/products/a/?q=1",
            301,
            "https://shop.example.com/products/a?q=1",
        ),
    ];
    for (url, status, location) in cases {
        let mut c = cx(&active, None);
        match p.request(&mut c, &req("GET", url, &[])) {
            Outcome::Respond(r) => {
                assert_eq!(r.head.status, status, "{url}");
                assert_eq!(r.head.headers.get("location"), Some(location), "{url}");
                assert_eq!(r.head.headers.get("x-request-id"), Some("rid-1"));
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    // Local hosts and "/" are left alone.
    for url in [
        "http://127.0.0.1:8787/products/a/",
        "https://shop.example.com/",
    ] {
        let mut c = cx(&active, None);
        let out = p.request(&mut c, &req("GET", url, &[]));
        if url.starts_with("http://127") {
            // trailing-slash applies to every host
            assert!(
                matches!(out, Outcome::Respond(ref r) if r.head.status == 308),
                "{url}: {out:?}"
            );
        } else {
            assert!(matches!(out, Outcome::Forward(_)), "{url}: {out:?}");
        }
    }
    let mut c = cx(&active, None);
    assert!(matches!(
        p.request(&mut c, &req("GET", "http://127.0.0.1:8787/cart", &[])),
        Outcome::Forward(_)
    ));
}

#[test]
fn response_phase_sets_security_headers_on_html_only_and_strips_secrets() {
    let active = builtin();
    let p = Pipeline::standard();
    let r = req("GET", "https://shop.example.com/products/a", &[]);
    let mut c = cx(&active, None);
    let Outcome::Forward(_) = p.request(&mut c, &r) else {
        panic!()
    };
    let mut html = ResponseHead {
        status: 200,
        headers: Headers::from_pairs([
            ("content-type", "text/html; charset=utf-8"),
            ("x-powered-by", "Next.js"),
            ("connection", "close"),
            ("cf-access-client-secret", "leak"),
        ]),
    };
    p.respond(&c, &r, &mut html);
    let h = &html.headers;
    assert_eq!(
        h.get("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(h.get("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        h.get("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        h.get("content-security-policy"),
        Some("frame-ancestors 'self'")
    );
    assert_eq!(h.get("x-powered-by"), None);
    assert_eq!(h.get("connection"), None);
    assert_eq!(h.get("cf-access-client-secret"), None);
    assert_eq!(h.get("x-request-id"), Some("rid-1"));

    let mut json = ResponseHead {
        status: 200,
        headers: Headers::from_pairs([("content-type", "application/json")]),
    };
    p.respond(&c, &r, &mut json);
    assert_eq!(json.headers.get("strict-transport-security"), None);
    assert_eq!(json.headers.get("x-request-id"), Some("rid-1"));

    // An origin CSP keeps its value and gains frame-ancestors.
    let mut csp = ResponseHead {
        status: 200,
        headers: Headers::from_pairs([
            ("content-type", "text/html"),
            ("content-security-policy", "default-src 'self'"),
        ]),
    };
    p.respond(&c, &r, &mut csp);
    assert_eq!(
        csp.headers.get("content-security-policy"),
        Some("default-src 'self'; frame-ancestors 'self'")
    );
}

#[test]
fn static_assets_get_immutable_cache_control() {
    let active = builtin();
    let p = Pipeline::standard();
    let r = req(
        "GET",
        "https://shop.example.com/_next/static/chunks/a.js",
        &[],
    );
    let mut c = cx(&active, None);
    let Outcome::Forward(_) = p.request(&mut c, &r) else {
        panic!()
    };
    let mut resp = ResponseHead {
        status: 200,
        headers: Headers::from_pairs([("cache-control", "no-cache")]),
    };
    p.respond(&c, &r, &mut resp);
    assert_eq!(
        resp.headers.get("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
}

#[test]
fn errors_are_json_for_api_and_html_for_pages_with_request_id() {
    let active = builtin();
    let p = Pipeline::standard();
    let r = req("GET", "http://127.0.0.1/store/products", &[]);
    let mut c = cx(&active, None);
    let _ = p.request(&mut c, &r);
    let e = p.error(&c, &r, EdgeError::OriginTimeout);
    assert_eq!(e.head.status, 504);
    let v: serde_json::Value = serde_json::from_str(&e.body).expect("json");
    assert_eq!(v["request_id"], "rid-1");
    assert_eq!(v["type"], "origin_timeout");

    let r = req("GET", "http://127.0.0.1/products/x", &[]);
    let mut c = cx(&active, None);
    let _ = p.request(&mut c, &r);
    let e = p.error(&c, &r, EdgeError::OriginUnreachable);
    assert_eq!(e.head.status, 502);
    assert!(e.body.contains("rid-1"));
    assert!(e
        .head
        .headers
        .get("content-type")
        .is_some_and(|v| v.starts_with("text/html")));
    assert_eq!(
        e.head.headers.get("x-content-type-options"),
        Some("nosniff")
    );
}

#[test]
fn health_reports_version_and_config_hash() {
    let active = builtin();
    let p = Pipeline::standard();
    let mut c = cx(&active, None);
    let Outcome::Respond(r) = p.request(&mut c, &req("GET", "http://127.0.0.1/__edge/health", &[]))
    else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["version"], "test");
    assert_eq!(v["config_hash"], active.hash.as_str());
    assert_eq!(v["config_source"], "builtin");
    assert_eq!(active.hash.len(), 16);
}

#[test]
fn override_selection_falls_back_on_invalid_json_or_config() {
    let base = builtin();
    let mut cfg = base.config.clone();
    cfg.routes.retain(|r| r.name == "storefront");
    let good = serde_json::to_string(&cfg).expect("json");
    let (a, why) = ActiveConfig::select(&base, Some(&good));
    assert!(why.is_none());
    assert_eq!(a.source, ConfigSource::Override);
    assert_ne!(a.hash, base.hash);

    let (a, why) = ActiveConfig::select(&base, Some("{not json"));
    assert_eq!(a.source, ConfigSource::Builtin);
    assert!(why.expect("reason").0.contains("does not parse"));

    let bad_ref = good.replace("\"upstream\":\"storefront\"", "\"upstream\":\"nope\"");
    let (a, why) = ActiveConfig::select(&base, Some(&bad_ref));
    assert_eq!(a.source, ConfigSource::Builtin);
    let why = why.expect("reason").0;
    assert!(
        why.contains("routes[0] \"storefront\"") && why.contains("\"nope\" is not defined"),
        "{why}"
    );

    let (_, why) = ActiveConfig::select(&base, Some(&good.replacen('{', "{\"surprise\":1,", 1)));
    assert!(why.expect("reason").0.contains("unknown field `surprise`"));
}

fn parse(toml_text: &str) -> Result<(), String> {
    let cfg: EdgeConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())
}

const MINIMAL: &str = r#"
[upstreams.a]
url_var = "A"
[[routes]]
name = "all"
paths = ["/*"]
upstream = "a"
class = "page"
"#;

#[test]
fn config_validation_names_the_bad_entry() {
    assert_eq!(parse(MINIMAL), Ok(()));
    let cases = [
        (format!("{MINIMAL}\n[bogus]\nx=1"), "unknown field `bogus`"),
        (MINIMAL.replace("upstream = \"a\"", "upstream = \"b\""), "routes[0] \"all\": upstream \"b\" is not defined; known upstreams: a"),
        (MINIMAL.replace("[\"/*\"]", "[\"/a*b\"]"), "routes[0] \"all\": path pattern \"/a*b\" is invalid"),
        (MINIMAL.replace("url_var = \"A\"", "timeout_ms = 5"), "upstreams.a: set `url_var`"),
        (MINIMAL.replace("url_var = \"A\"", "url_var = \"A\"\ncolour = 1"), "unknown field `colour`"),
        (format!("{MINIMAL}\n[[redirects]]\nname=\"r\"\nkind=\"https\"\nstatus=200"), "redirects[0] \"r\": status 200 is not a redirect"),
        (format!("{MINIMAL}\n[[redirects]]\nname=\"c\"\nkind=\"canonical_host\"\nto=\"a.com\""), "would loop"),
        (format!("{MINIMAL}\n[[headers]]\nname=\"h\"\nphase=\"request\"\nset={{\"CF-Access-Client-Secret\"=\"x\"}}"), "headers[0] \"h\": header \"CF-Access-Client-Secret\" is managed by the worker"),
        (format!("{MINIMAL}\n[[headers]]\nname=\"h\"\nphase=\"response\"\nset={{\"x\"=\"a\\nb\"}}"), "must not contain CR, LF or NUL"),
        (MINIMAL.replace("class = \"page\"", "class = \"pages\""), "unknown variant `pages`"),
        (format!("{MINIMAL}\n[[redirects]]\nname=\"c\"\nkind=\"canonical_host\"\nhosts=[\"b.com\"]"), "needs `to`"),
        (format!("{MINIMAL}\n[[redirects]]\nname=\"t\"\nkind=\"trailing_slash\""), "needs `action`"),
        (format!("{MINIMAL}\n[[redirects]]\nname=\"t\"\nkind=\"https\"\naction=\"add\""), "`action` only applies"),
    ];
    for (text, want) in cases {
        let got = parse(&text).expect_err(want);
        assert!(got.contains(want), "want {want:?}, got {got:?}");
    }
}

#[test]
fn path_patterns() {
    assert!(path_matches("/*", "/anything"));
    assert!(path_matches("/store/*", "/store"));
    assert!(path_matches("/store/*", "/store/x/y"));
    assert!(!path_matches("/store/*", "/storefront"));
    assert!(path_matches("/store/products*", "/store/products-x"));
    assert!(path_matches("/exact", "/exact"));
    assert!(!path_matches("/exact", "/exact/"));
}

#[test]
fn request_head_parses_ipv6_hosts_and_ports() {
    let r = req(
        "get",
        "http://[::1]:8787/a?b#c",
        &[("cf-connecting-ip", "192.0.2.1")],
    );
    assert_eq!(r.method, "GET");
    assert_eq!(r.host, "[::1]");
    assert_eq!(r.port, Some(8787));
    assert_eq!(r.path, "/a");
    assert_eq!(r.query.as_deref(), Some("b"));
    assert_eq!(r.client_ip, Some("192.0.2.1".parse().expect("ip")));
    assert!(RequestHead::from_url("GET", "no-scheme", Headers::new()).is_none());
    assert!(RequestHead::from_url("GET", "http://h:notaport/", Headers::new()).is_none());
}

#[test]
fn protected_paths_need_an_access_jwt_with_valid_claims() {
    let active = builtin();
    let p = Pipeline::standard();
    let good = claims_token(serde_json::json!({"aud": ["aud-1"], "iss": ISSUER, "exp": NOW + 60}));
    let expired =
        claims_token(serde_json::json!({"aud": ["aud-1"], "iss": ISSUER, "exp": NOW - 60}));
    let wrong_aud =
        claims_token(serde_json::json!({"aud": ["other"], "iss": ISSUER, "exp": NOW + 60}));
    let cases: [(&str, Option<&str>, bool, &str); 6] = [
        ("/admin/products", Some(good.as_str()), true, ""),
        ("/app/login", Some(good.as_str()), true, ""),
        (
            "/admin/products",
            None,
            false,
            "missing cf-access-jwt-assertion",
        ),
        ("/admin/products", Some(expired.as_str()), false, "expired"),
        ("/app", Some(wrong_aud.as_str()), false, "audience"),
        (
            "/admin/products",
            Some("not-a-jwt"),
            false,
            "three base64url parts",
        ),
    ];
    for (path, tok, allowed, reason) in cases {
        let mut c = cx(&active, None);
        c.inspection.access_app = Some(std::rc::Rc::new(access_app()));
        c.inspection.now_unix = NOW;
        let headers: Vec<(&str, &str)> = tok
            .map(|t| vec![("cf-access-jwt-assertion", t)])
            .unwrap_or_default();
        let out = p.request(
            &mut c,
            &req("GET", &format!("https://shop.example.com{path}"), &headers),
        );
        match (allowed, out) {
            (true, Outcome::Forward(up)) => {
                assert_eq!(up.upstream, "medusa");
                assert!(
                    c.access_jwt.is_some(),
                    "{path}: the signature is left to the binding"
                );
            }
            (false, Outcome::Respond(s)) => {
                assert_eq!(s.head.status, 403, "{path} {tok:?}");
                assert_eq!(s.head.headers.get("x-request-id"), Some("rid-1"));
                let log = c
                    .logs
                    .iter()
                    .find(|l| l.contains("\"event\":\"access\""))
                    .expect("logged");
                assert!(log.contains(reason), "{log}");
                if let Some(t) = tok {
                    assert!(!log.contains(t), "the token is never logged");
                }
            }
            (_, other) => panic!("{path} {tok:?}: {other:?}"),
        }
    }
    // Not protected: no token needed.
    let mut c = cx(&active, None);
    assert!(matches!(
        p.request(
            &mut c,
            &req("GET", "https://shop.example.com/store/products", &[])
        ),
        Outcome::Forward(_)
    ));
    assert!(c.access_jwt.is_none());
}

#[test]
fn protected_paths_are_denied_when_no_access_app_is_configured() {
    let active = builtin();
    let p = Pipeline::standard();
    let mut c = cx(&active, None);
    c.inspection.now_unix = NOW;
    let good = claims_token(serde_json::json!({"aud": ["aud-1"], "iss": ISSUER, "exp": NOW + 60}));
    match p.request(
        &mut c,
        &req(
            "GET",
            "https://shop.example.com/admin/users",
            &[("cf-access-jwt-assertion", &good)],
        ),
    ) {
        Outcome::Respond(s) => assert_eq!(s.head.status, 403),
        other => panic!("{other:?}"),
    }
    assert!(
        c.logs.iter().any(|l| l.contains("ACCESS_TEAM_DOMAIN")),
        "{:?}",
        c.logs
    );
}

#[test]
fn rate_limits_apply_per_route_class_and_client() {
    use edge_worker::ratelimit::applicable;
    let active = builtin();
    let rules = &active.config.rate_limits;
    let ip = [("cf-connecting-ip", "203.0.113.9")];
    let a = applicable(
        rules,
        &req(
            "POST",
            "https://shop.example.com/auth/customer/emailpass",
            &ip,
        ),
    )
    .expect("auth");
    assert_eq!(a.rule.name, "auth");
    assert_eq!(a.rule.binding, "RATE_LIMIT_AUTH");
    assert_eq!(a.key, "auth:203.0.113.9");
    // Case does not dodge the limit.
    let a = applicable(
        rules,
        &req("POST", "https://shop.example.com/AUTH/session", &ip),
    )
    .expect("auth");
    assert_eq!(a.rule.name, "auth");
    let c = applicable(
        rules,
        &req(
            "POST",
            "https://shop.example.com/store/carts/cart_1/line-items",
            &ip,
        ),
    )
    .expect("carts");
    assert_eq!(c.key, "carts:203.0.113.9");
    let c = applicable(
        rules,
        &req(
            "GET",
            "https://shop.example.com/store/customers/me",
            &[("cf-connecting-ip", "2001:db8::1")],
        ),
    )
    .expect("customers");
    assert_eq!(c.key, "customers:2001:db8::1");
    assert!(applicable(
        rules,
        &req("GET", "https://shop.example.com/store/products", &ip)
    )
    .is_none());
    // A rule limited to some methods ignores the others.
    let mut only_post = rules.clone();
    only_post[0].methods = vec!["POST".into()];
    assert!(applicable(
        &only_post,
        &req("GET", "https://shop.example.com/auth/session", &ip)
    )
    .is_none());
}

#[test]
fn the_429_names_retry_after_in_both_formats() {
    let api = edge_worker::errors::render_rate_limited(RouteClass::Api, "rid-9", 60);
    assert_eq!(api.head.status, 429);
    assert_eq!(api.head.headers.get("retry-after"), Some("60"));
    let v: serde_json::Value = serde_json::from_str(&api.body).expect("json");
    assert_eq!(v["type"], "rate_limited");
    assert_eq!(v["request_id"], "rid-9");
    let page = edge_worker::errors::render_rate_limited(RouteClass::Page, "rid-9", 10);
    assert_eq!(page.head.headers.get("retry-after"), Some("10"));
    assert!(page.body.contains("rid-9"));
}

#[test]
fn bad_rate_limit_entries_are_named() {
    let mut c = builtin().config;
    c.rate_limits[1].period_seconds = 30;
    let e = c.validate().expect_err("bad period");
    assert!(
        e.to_string().contains("rate_limits[1] \"customers\""),
        "{e}"
    );
    assert!(e.to_string().contains("10 or 60"), "{e}");
    let mut c = builtin().config;
    c.rate_limits[0].binding = "rate-limit".into();
    let e = c.validate().expect_err("bad binding");
    assert!(e.to_string().contains("rate_limits[0]"), "{e}");
}

#[test]
fn fallback_request_ids_are_uuid_shaped_distinct_and_seed_dependent() {
    use edge_worker::pipeline::RequestIds;
    let mut ids = RequestIds::new("3f0c9a1e-8b2d-4c7e-9a51-0e6d2b7c4f18");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let id = ids.next_id();
        assert_eq!(id.len(), 36, "{id}");
        let b = id.as_bytes();
        assert!([8, 13, 18, 23].iter().all(|&i| b[i] == b'-'), "{id}");
        assert_eq!(b[14], b'4', "version nibble: {id}");
        assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'), "variant: {id}");
        assert!(id
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(seen.insert(id), "ids repeat");
    }
    let mut other = RequestIds::new("aa0c9a1e-8b2d-4c7e-9a51-0e6d2b7c4f18");
    let mut again = RequestIds::new("3f0c9a1e-8b2d-4c7e-9a51-0e6d2b7c4f18");
    let first = again.next_id();
    assert!(seen.contains(&first), "same seed, same sequence");
    assert!(
        !seen.contains(&other.next_id()),
        "another seed, another sequence"
    );
}
