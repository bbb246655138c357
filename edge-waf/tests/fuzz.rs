//! Property tests (bounded number of cases) of the normaliser, the field
//! parsers and the whole inspection: no panics, bounded output.

use edge_waf::normalize::{normalize, normalize_path};
use edge_waf::{RequestView, Waf, WafConfig};
use proptest::prelude::*;

/// One WAF for all cases (building it compiles every rule).
fn waf() -> &'static Waf {
    static WAF: std::sync::OnceLock<Waf> = std::sync::OnceLock::new();
    WAF.get_or_init(|| Waf::new(WafConfig::default()).unwrap())
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One WAF without the plain-value fast path, to compare against [`waf`].
fn slow_waf() -> &'static Waf {
    static WAF: std::sync::OnceLock<Waf> = std::sync::OnceLock::new();
    WAF.get_or_init(|| Waf::new(WafConfig::default()).unwrap().without_fast_path())
}

/// Values that are mostly plain tokens (what the fast path takes) with
/// rule keywords and the punctuation that plain values may contain.
fn plainish() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        "[a-zA-Z0-9]{1,8}",
        Just("select".to_string()),
        Just("UNION".to_string()),
        Just("or".to_string()),
        Just("sleep".to_string()),
        Just("etc/passwd".to_string()),
        Just("cmd".to_string()),
        Just("wget".to_string()),
        Just("system".to_string()),
        Just("eval".to_string()),
        Just("php".to_string()),
        Just("jndi".to_string()),
        Just("javascript".to_string()),
        Just("onerror".to_string()),
        Just("script".to_string()),
        Just("169.254.169.254".to_string()),
        Just("localhost".to_string()),
        Just("file".to_string()),
        Just("http".to_string()),
        "[-_.,;/()=!|@#~{}?]",
    ];
    prop::collection::vec(atoms, 0..12).prop_map(|v| v.concat())
}

fn encodedish() -> impl Strategy<Value = Vec<u8>> {
    // Bias towards the characters the decoders care about.
    let atoms = prop_oneof![
        Just(b"%".to_vec()),
        Just(b"%25".to_vec()),
        Just(b"%u".to_vec()),
        Just(b"&#".to_vec()),
        Just(b"&#x".to_vec()),
        Just(b"&lt;".to_vec()),
        Just(b";".to_vec()),
        Just(b"+".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"/*".to_vec()),
        Just(b"*/".to_vec()),
        Just(b"../".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"${".to_vec()),
        Just(b"}".to_vec()),
        Just(b"'".to_vec()),
        Just(b"<".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
        "[0-9a-fA-F]{1,4}".prop_map(|s| s.into_bytes()),
        "[a-z ]{1,6}".prop_map(|s| s.into_bytes()),
    ];
    prop::collection::vec(atoms, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn normalise_never_grows_or_panics(input in encodedish(), plus in any::<bool>()) {
        let n = normalize(&input, plus, 4096, 3);
        // decoding never lengthens a value (U+FFFD for a bad byte is 3 bytes: bound by 3x)
        prop_assert!(n.text.len() <= input.len() * 3 + 3);
        prop_assert!(n.compact.len() <= n.text.len());
        prop_assert!(!n.text.contains('\0'));
        let p = normalize_path(&String::from_utf8_lossy(&input), 4096, 3);
        prop_assert!(p.path.starts_with('/'));
        prop_assert!(!p.path.contains("/../"));
    }

    #[test]
    fn max_len_bounds_the_work(input in prop::collection::vec(any::<u8>(), 0..2000)) {
        let n = normalize(&input, true, 100, 3);
        prop_assert!(n.text.len() <= 300);
    }

    #[test]
    fn inspect_never_panics(
        method in "[A-Z]{1,8}",
        path in encodedish(),
        query in encodedish(),
        body in encodedish(),
        ct in prop_oneof![Just("application/json"), Just("application/x-www-form-urlencoded"), Just("multipart/form-data; boundary=XX"), Just("text/xml"), Just(""), Just("text/plain; charset=evil")],
        hv in encodedish(),
    ) {
        let waf = waf();
        let uri = format!("/{}?{}", String::from_utf8_lossy(&path), String::from_utf8_lossy(&query));
        let headers = vec![
            ("Host".to_string(), "shop.example.com".to_string()),
            ("Content-Type".to_string(), ct.to_string()),
            ("User-Agent".to_string(), String::from_utf8_lossy(&hv).into_owned()),
            ("Cookie".to_string(), String::from_utf8_lossy(&hv).into_owned()),
        ];
        let d = waf.inspect(&RequestView { method: &method, uri: &uri, headers: &headers, body: Some(&body), body_len: None, client_ip: None, country: None, asn: None });
        prop_assert!(d.matches.len() <= 64);
        let line = d.log_line("r");
        prop_assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok());
        prop_assert!(!line.contains('\n'));
    }

    #[test]
    fn json_bodies_of_any_shape(depth in 0usize..200, width in 0usize..50, s in "[ -~]{0,20}") {
        let waf = waf();
        let mut body = String::new();
        for _ in 0..depth { body.push_str("{\"k\":["); }
        for i in 0..width { if i > 0 { body.push(','); } body.push_str(&serde_json::to_string(&s).unwrap()); }
        for _ in 0..depth { body.push_str("]}"); }
        let headers = vec![("Host".to_string(), "shop.example.com".to_string()), ("Content-Type".to_string(), "application/json".to_string())];
        let d = waf.inspect(&RequestView { method: "POST", uri: "/store/carts", headers: &headers, body: Some(body.as_bytes()), body_len: None, client_ip: None, country: None, asn: None });
        if depth > 40 { prop_assert!(d.is_blocked()); }
    }

    #[test]
    fn fast_path_agrees_with_full_inspection(
        path in plainish(),
        k1 in plainish(),
        v1 in plainish(),
        v2 in plainish(),
        json in plainish(),
        ua in plainish(),
    ) {
        let uri = format!("/store/{path}?{k1}={v1}&q={v2}");
        let body = serde_json::json!({ "a": json, "b": [v1, v2] }).to_string();
        let headers = vec![
            ("Host".to_string(), "shop.example.com".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
            ("User-Agent".to_string(), ua.clone()),
            ("Referer".to_string(), format!("https://shop.example.com/{ua}")),
            ("Cookie".to_string(), format!("{k1}={v2}")),
        ];
        let view = RequestView { method: "POST", uri: &uri, headers: &headers, body: Some(body.as_bytes()), body_len: None, client_ip: None, country: None, asn: None };
        prop_assert_eq!(waf().inspect(&view), slow_waf().inspect(&view));
    }
}
