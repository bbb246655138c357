//! Host tests of the cache policy: keys, bypass rules, storability, freshness.

use edge_worker::active::ActiveConfig;
use edge_worker::cache::{self, BypassReason, Freshness, Generations, Lookup};
use edge_worker::config::CacheConfig;
use edge_worker::http::{Headers, RequestHead, ResponseHead};

fn cfg() -> CacheConfig {
    ActiveConfig::builtin().expect("builtin").config.cache
}

fn req(method: &str, url: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead::from_url(
        method,
        url,
        Headers::from_pairs(headers.iter().map(|(k, v)| (*k, *v))),
    )
    .expect("url")
}

fn key(c: &CacheConfig, r: &RequestHead) -> String {
    match cache::lookup(c, r, "medusa", 0) {
        Lookup::Cache { key, .. } => key,
        other => panic!("expected a cache lookup, got {other:?}"),
    }
}

#[test]
fn keys_are_normalised() {
    let c = cfg();
    let a = key(
        &c,
        &req(
            "GET",
            "https://Shop.Example.com/store/products?b=2&a=1&utm_source=x&UTM_medium=y",
            &[],
        ),
    );
    let b = key(
        &c,
        &req(
            "GET",
            "https://shop.example.com/store/products?a=1&b=2&gclid=z&fbclid=q",
            &[],
        ),
    );
    assert_eq!(a, b);
    assert!(
        a.contains("/g0/medusa/shop.example.com/store/products?a=1&b=2"),
        "{a}"
    );
    let other = key(
        &c,
        &req(
            "GET",
            "https://shop.example.com/store/products?a=1&b=3",
            &[],
        ),
    );
    assert_ne!(a, other);
    // HEAD shares the GET entry.
    assert_eq!(
        a,
        key(
            &c,
            &req(
                "HEAD",
                "https://shop.example.com/store/products?b=2&a=1",
                &[]
            )
        )
    );
}

#[test]
fn keys_vary_on_publishable_key_and_region_cookies_only() {
    let c = cfg();
    let base = key(&c, &req("GET", "https://s.com/store/products", &[]));
    let pk = key(
        &c,
        &req(
            "GET",
            "https://s.com/store/products",
            &[("x-publishable-api-key", "pk_1")],
        ),
    );
    let region = key(
        &c,
        &req(
            "GET",
            "https://s.com/store/products",
            &[("cookie", "region=eu; theme=dark")],
        ),
    );
    let theme = key(
        &c,
        &req(
            "GET",
            "https://s.com/store/products",
            &[("cookie", "theme=dark")],
        ),
    );
    let xfh = key(
        &c,
        &req(
            "GET",
            "https://s.com/store/products",
            &[("x-forwarded-host", "evil"), ("x-original-url", "/admin")],
        ),
    );
    assert_ne!(base, pk);
    assert_ne!(base, region);
    assert_eq!(base, theme, "unrelated cookies are not part of the key");
    assert_eq!(base, xfh, "unkeyed headers do not change the key");
    // A vary value cannot smuggle key separators.
    let tricky = key(
        &c,
        &req(
            "GET",
            "https://s.com/store/products",
            &[("x-publishable-api-key", "a;c.region=eu")],
        ),
    );
    assert!(!tricky.contains(";c.region"), "{tricky}");
}

#[test]
fn generation_and_upstream_are_part_of_the_key() {
    let c = cfg();
    let r = req("GET", "https://s.com/store/products", &[]);
    let k0 = match cache::lookup(&c, &r, "medusa", 0) {
        Lookup::Cache { key, .. } => key,
        o => panic!("{o:?}"),
    };
    let k1 = match cache::lookup(&c, &r, "medusa", 1) {
        Lookup::Cache { key, .. } => key,
        o => panic!("{o:?}"),
    };
    let ks = match cache::lookup(&c, &r, "storefront", 0) {
        Lookup::Cache { key, .. } => key,
        o => panic!("{o:?}"),
    };
    assert_ne!(k0, k1);
    assert_ne!(k0, ks);
    let mut g = Generations::default();
    g.bump(Some("/store/products"));
    assert_eq!(cache::generation_for(&g, "/store/products/prod_1"), 1);
    assert_eq!(cache::generation_for(&g, "/products/a"), 0);
    g.bump(None);
    assert_eq!(cache::generation_for(&g, "/products/a"), 1);
    assert_eq!(cache::generation_for(&g, "/store/products"), 2);
}

/// Method, path, request headers, and the expected reason.
type BypassCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], BypassReason);

#[test]
fn bypass_rules() {
    let c = cfg();
    let cases: &[BypassCase] = &[
        ("POST", "/store/products", &[], BypassReason::Method),
        (
            "GET",
            "/store/products",
            &[("authorization", "Bearer x")],
            BypassReason::Authorization,
        ),
        (
            "GET",
            "/store/products",
            &[("cookie", "a=1; connect.sid=s%3A1")],
            BypassReason::SessionCookie,
        ),
        (
            "GET",
            "/store/products",
            &[("cookie", "_medusa_jwt=x")],
            BypassReason::SessionCookie,
        ),
        (
            "GET",
            "/store/products",
            &[("range", "bytes=0-1")],
            BypassReason::Range,
        ),
        ("GET", "/store/carts/c1", &[], BypassReason::NeverCached),
        ("GET", "/store/customers/me", &[], BypassReason::NeverCached),
        ("GET", "/admin/products", &[], BypassReason::NeverCached),
        (
            "GET",
            "/hooks/payment/stripe",
            &[],
            BypassReason::NeverCached,
        ),
        ("GET", "/cart", &[], BypassReason::NoRule),
    ];
    for (m, p, h, why) in cases {
        let r = req(m, &format!("https://s.com{p}"), h);
        assert_eq!(
            cache::lookup(&c, &r, "medusa", 0),
            Lookup::Bypass(*why),
            "{m} {p} {h:?}"
        );
    }
    let mut off = c.clone();
    off.enabled = false;
    assert_eq!(
        cache::lookup(&off, &req("GET", "https://s.com/", &[]), "x", 0),
        Lookup::Bypass(BypassReason::Disabled)
    );
}

fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
    ResponseHead {
        status,
        headers: Headers::from_pairs(headers.iter().map(|(k, v)| (*k, *v))),
    }
}

#[test]
fn storability() {
    let c = cfg();
    let rule = c
        .rules
        .iter()
        .find(|r| r.name == "catalog")
        .expect("catalog rule");
    assert_eq!(cache::store_ttl(&c, rule, &resp(200, &[])), Some(60));
    assert_eq!(
        cache::store_ttl(&c, rule, &resp(200, &[("set-cookie", "a=b")])),
        None
    );
    assert_eq!(
        cache::store_ttl(
            &c,
            rule,
            &resp(200, &[("cache-control", "private, max-age=60")])
        ),
        None
    );
    assert_eq!(
        cache::store_ttl(&c, rule, &resp(200, &[("cache-control", "No-Store")])),
        None
    );
    assert_eq!(
        cache::store_ttl(&c, rule, &resp(200, &[("vary", "*")])),
        None
    );
    assert_eq!(cache::store_ttl(&c, rule, &resp(404, &[])), Some(30));
    assert_eq!(cache::store_ttl(&c, rule, &resp(301, &[])), Some(300));
    for s in [206, 302, 304, 403, 500, 503] {
        assert_eq!(cache::store_ttl(&c, rule, &resp(s, &[])), None, "{s}");
    }
}

#[test]
fn freshness_windows() {
    let c = cfg();
    let rule = c
        .rules
        .iter()
        .find(|r| r.name == "catalog")
        .expect("catalog rule");
    let stored = |at: u64| {
        Headers::from_pairs([
            (cache::STORED_AT, at.to_string()),
            (cache::STORED_TTL, "60".to_string()),
        ])
    };
    assert_eq!(
        cache::freshness(rule, &stored(1000), 1059),
        Freshness::Fresh
    );
    assert_eq!(
        cache::freshness(rule, &stored(1000), 1060),
        Freshness::StaleWhileRevalidate
    );
    assert_eq!(
        cache::freshness(rule, &stored(1000), 1000 + 60 + 299),
        Freshness::StaleWhileRevalidate
    );
    assert_eq!(
        cache::freshness(rule, &stored(1000), 1000 + 60 + 300),
        Freshness::StaleIfError
    );
    assert_eq!(
        cache::freshness(rule, &stored(1000), 1000 + 60 + 86_400),
        Freshness::Expired
    );
    assert_eq!(
        cache::freshness(rule, &Headers::new(), 5),
        Freshness::Expired
    );
    assert_eq!(cache::storage_seconds(rule, 60), 60 + 86_400 + 60);
}

#[test]
fn purge_token_comparison() {
    assert!(cache::token_matches("t0k3n", "t0k3n"));
    assert!(!cache::token_matches("t0k3n", "t0k3m"));
    assert!(
        !cache::token_matches("", ""),
        "an unset token never matches"
    );
    assert!(!cache::token_matches("t0k3n-longer", "t0k3n"));
}
