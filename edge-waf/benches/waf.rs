//! `make bench-waf`: WAF inspection time for a typical storefront GET and a
//! 64 KiB JSON body (targets: median <= 20 µs and <= 300 µs).

use criterion::{criterion_group, criterion_main, Criterion};
use edge_waf::{RequestView, Waf, WafConfig};
use std::hint::black_box;

fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = [
        ("Host", "shop.example.com"),
        ("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Accept-Language", "en-GB,en;q=0.9"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Referer", "https://shop.example.com/gb/store?sortBy=price_asc"),
        ("Cookie", "NEXT_LOCALE=en-GB; _medusa_cart_id=cart_01J0ABCDEF; _ga=GA1.1.123456789.1717171717"),
        ("X-Forwarded-For", "2001:db8::1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    h
}

/// A cart-like JSON document of about 64 KiB.
fn json_64k() -> Vec<u8> {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        items.push(serde_json::json!({
            "id": format!("item_01J0{i:06}"),
            "title": format!("Women's \"Slim Fit\" Jeans — size {i}"),
            "variant_id": format!("variant_01J0{i:06}"),
            "quantity": i % 5 + 1,
            "unit_price": 4599 + i,
            "metadata": {"engraving": "For Mum & Dad", "gift": i % 2 == 0, "note": "Leave at door #2; don't ring after 9pm"},
            "thumbnail": format!("https://cdn.example.com/products/{i}/front.jpg?w=640&q=75"),
        }));
        i += 1;
        let doc = serde_json::json!({"cart": {"id": "cart_01J0ABC", "email": "o'brien@example.ie", "items": items}});
        let s = serde_json::to_vec(&doc).unwrap();
        if s.len() >= 64 * 1024 {
            return s;
        }
    }
}

fn bench(c: &mut Criterion) {
    let waf = Waf::new(WafConfig::default()).unwrap();
    let get_headers = headers(&[]);
    let uri = "/store/products?q=women%27s%20%22slim%20fit%22%20jeans&limit=12&offset=0&region_id=reg_01HQ8X&fields=*variants.calculated_price";
    let get = RequestView {
        method: "GET",
        uri,
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
