//! Runs the benchmark requests in a loop, for profilers (callgrind gives
//! stable instruction counts on a shared machine):
//! `valgrind --tool=callgrind target/release/examples/waf_profile get 200`.

use edge_waf::{RequestView, Waf, WafConfig};
use std::hint::black_box;

#[path = "../benches/workload/mod.rs"]
mod workload;
use workload::{headers, json_64k, STOREFRONT_GET_URI};

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
        uri: STOREFRONT_GET_URI,
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
    let array = |f: &dyn Fn(usize) -> String| {
        serde_json::to_vec(&(0..800).map(f).collect::<Vec<_>>()).unwrap_or_default()
    };
    let variant: Option<Vec<u8>> = match which.as_str() {
        "ids" => Some(array(&|i| format!("item_01J0{i:06}"))),
        "urls" => Some(array(&|i| {
            format!("https://cdn.example.com/products/{i}/front.jpg?w=640&q=75")
        })),
        "titles" => Some(array(&|i| format!("Women's \"Slim Fit\" Jeans — size {i}"))),
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
