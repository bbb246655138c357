//! The WAF benchmark's requests, shared by `benches/waf.rs` and
//! `examples/waf_profile.rs` so both measure the same work.

/// The headers of a typical storefront browser request, plus `extra`.
pub fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
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
pub fn json_64k() -> Vec<u8> {
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

/// The URI of the typical storefront GET (a product search).
pub const STOREFRONT_GET_URI: &str = "/store/products?q=women%27s%20%22slim%20fit%22%20jeans&limit=12&offset=0&region_id=reg_01HQ8X&fields=*variants.calculated_price";
