//! Malformed input gets a clear refusal (never a panic): invalid UTF-8 in
//! the URL's escapes and in JSON bodies.

use edge_waf::{RequestView, Waf, WafConfig};

fn inspect(method: &str, uri: &str, ct: Option<&str>, body: Option<&[u8]>) -> edge_waf::Decision {
    let waf = Waf::new(WafConfig::default()).expect("default config");
    let mut headers = vec![
        ("host".to_string(), "shop.example.com".to_string()),
        ("user-agent".to_string(), "Mozilla/5.0".to_string()),
        ("accept".to_string(), "*/*".to_string()),
    ];
    if let Some(ct) = ct {
        headers.push(("content-type".into(), ct.into()));
    }
    if let Some(b) = body {
        headers.push(("content-length".into(), b.len().to_string()));
    }
    waf.inspect(&RequestView {
        method,
        uri,
        headers: &headers,
        body,
        body_len: body.map(|b| b.len() as u64),
        client_ip: None,
        country: None,
        asn: None,
    })
}

#[test]
fn escapes_that_decode_to_invalid_utf8_are_refused() {
    for uri in [
        "/store/products?q=%ff%fe",
        "/store/products?q=%c0%af", // overlong '/'
        "/store/products/%c3%28",
    ] {
        let d = inspect("GET", uri, None, None);
        assert!(d.is_blocked(), "{uri}: {:?}", d.matches);
        assert!(d.matches.iter().any(|m| m.id == 920250), "{uri}");
    }
    // Valid UTF-8 passes, multi-byte included.
    for uri in [
        "/store/products?q=caf%C3%A9",
        "/store/products?q=%E2%82%AC+10",
    ] {
        let d = inspect("GET", uri, None, None);
        assert!(!d.is_blocked(), "{uri}: {:?}", d.matches);
    }
}

#[test]
fn json_bodies_must_be_utf8() {
    let d = inspect(
        "POST",
        "/store/carts",
        Some("application/json"),
        Some(b"{\"\xff\xfe\":1}"),
    );
    assert!(d.is_blocked(), "{:?}", d.matches);
    let d = inspect(
        "POST",
        "/store/carts",
        Some("application/json"),
        Some("{\"email\":\"zo\u{eb}@example.com\"}".as_bytes()),
    );
    assert!(!d.is_blocked(), "{:?}", d.matches);
}
