//! `make bench-waf`: WAF inspection time for a typical storefront GET and a
//! 64 KiB JSON body (targets: median <= 20 µs and <= 300 µs).

use criterion::{criterion_group, criterion_main, Criterion};
use edge_waf::{RequestView, Waf, WafConfig};
use std::hint::black_box;

#[path = "workload/mod.rs"]
mod workload;
use workload::{headers, json_64k, STOREFRONT_GET_URI};

fn bench(c: &mut Criterion) {
    let waf = Waf::new(WafConfig::default()).unwrap();
    let get_headers = headers(&[]);
    let get = RequestView {
        method: "GET",
        uri: STOREFRONT_GET_URI,
        headers: &get_headers,
        body: None,
        body_len: None,
        client_ip: None,
        country: Some("GB"),
        asn: Some(13335),
    };
    assert!(!waf.inspect(&get).is_blocked());
    c.bench_function("storefront_get", |b| {
        b.iter(|| black_box(waf.inspect(black_box(&get))))
    });

    let body = json_64k();
    let len = body.len().to_string();
    let post_headers = headers(&[
        ("Content-Type", "application/json"),
        ("Content-Length", &len),
    ]);
    let post = RequestView {
        method: "POST",
        uri: "/store/carts/cart_01J0ABC",
        headers: &post_headers,
        body: Some(&body),
        body_len: Some(body.len() as u64),
        client_ip: None,
        country: Some("GB"),
        asn: None,
    };
    assert!(!waf.inspect(&post).is_blocked(), "{:?}", waf.inspect(&post));
    c.bench_function("json_body_64k", |b| {
        b.iter(|| black_box(waf.inspect(black_box(&post))))
    });

    let attack = RequestView {
        uri: "/store/products?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        ..get
    };
    assert!(waf.inspect(&attack).is_blocked());
    c.bench_function("attack_get", |b| {
        b.iter(|| black_box(waf.inspect(black_box(&attack))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
