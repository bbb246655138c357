//! Runs the benchmark requests in a loop, for profilers (callgrind gives
//! stable instruction counts on a shared machine):
//! `valgrind --tool=callgrind target/release/examples/waf_profile get 200`.

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
        let s = serde_json::to_vec(&doc).unwrap_or_default();
        if s.len() >= 64 * 1024 {
            return s;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "get".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let Ok(waf) = Waf::new(WafConfig::default()) else {
        eprintln!("config error");
        return;
    };
    let get_headers = headers(&[]);
    let body = json_64k();
    let len = body.len().to_string();
    let post_headers = headers(&[
        ("Content-Type", "application/json"),
        ("Content-Length", &len),
    ]);
    let get = RequestView {
        method: "GET",
        uri: "/store/products?q=women%27s%20%22slim%20fit%22%20jeans&limit=12&offset=0&region_id=reg_01HQ8X&fields=*variants.calculated_price",
        headers: &get_headers,
        body: None,
        body_len: None,
        client_ip: None,
        country: Some("GB"),
        asn: Some(13335),
    };
    let post = RequestView {
        method: "POST",
        uri: "/store/carts/cart_01J0ABC",
        headers: &post_headers,
        body: Some(&body),
        body_len: Some(body.len() as u64),
        ..get
    };
    // Variants for profiling one kind of value: a JSON array of 800
    // distinct ids, URLs or product titles.
    let variant: Option<Vec<u8>> = match which.as_str() {
        "ids" => Some(
            serde_json::to_vec(
                &(0..800)
                    .map(|i| format!("item_01J0{i:06}"))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
        ),
        "urls" => Some(
            serde_json::to_vec(
                &(0..800)
                    .map(|i| format!("https://cdn.example.com/products/{i}/front.jpg?w=640&q=75"))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
        ),
        "titles" => Some(
            serde_json::to_vec(
                &(0..800)
                    .map(|i| format!("Women's \"Slim Fit\" Jeans — size {i}"))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
        ),
        _ => None,
    };
    let vbody = variant.unwrap_or_default();
    let vreq = RequestView {
        body: Some(&vbody),
        body_len: Some(vbody.len() as u64),
        ..post
    };
    let req = match which.as_str() {
        "json" => post,
        "ids" | "urls" | "titles" => vreq,
        _ => get,
    };
    if std::env::var_os("WAF_SHOW").is_some() {
        let d = waf.inspect(&req);
        println!("{}", d.log_line("x"));
    }
    let mut blocked = 0;
    for _ in 0..n {
        if black_box(waf.inspect(black_box(&req))).is_blocked() {
            blocked += 1;
        }
    }
    println!("{which}: {n} runs, {blocked} blocked");
}
