mod common;

use common::*;
use talos::pki::{issue_leaf, CaKind, KeyAlg, LeafSpec};
use talos::secrets::is_token;
use talos::{admin_kubeconfig, TalosClientCreds};
use x509_parser::prelude::*;

fn der(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    assert_eq!(p.label, "CERTIFICATE");
    p.contents
}

fn b64d(s: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

#[test]
fn secrets_are_deterministic_per_seed_and_differ_between_seeds() {
    let a = secrets(7);
    let b = secrets(7);
    let c = secrets(8);
    assert_eq!(a, b, "same seed must give the same bundle");
    assert_ne!(a.os_ca, c.os_ca);
    assert_ne!(a.cluster_secret, c.cluster_secret);
    assert_ne!(a.bootstrap_token, c.bootstrap_token);
}

#[test]
fn secrets_have_the_talos_shapes() {
    use base64::Engine as _;
    let s = secrets(1);
    assert!(is_token(&s.bootstrap_token), "{}", s.bootstrap_token.len());
    assert!(is_token(&s.trustd_token));
    assert_ne!(s.bootstrap_token, s.trustd_token);
    for v in [
        &s.cluster_id,
        &s.cluster_secret,
        &s.secretbox_encryption_secret,
    ] {
        let raw = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
        assert_eq!(raw.len(), 32);
    }
    assert!(s.os_ca.key.contains("BEGIN ED25519 PRIVATE KEY"));
    for k in [
        &s.k8s_ca.key,
        &s.k8s_aggregator_ca.key,
        &s.etcd_ca.key,
        &s.service_account_key,
    ] {
        assert!(k.contains("BEGIN EC PRIVATE KEY"), "P-256 keys in SEC1 PEM");
    }
    s.check().unwrap();
    assert!(!is_token("abcdef.0123456789abcde"));
    assert!(!is_token("ABCDEF.0123456789abcdef"));
    // Debug never shows secret material.
    let dbg = format!("{s:?}");
    for v in s.secret_values() {
        assert!(!dbg.contains(v));
    }
}

#[test]
fn cas_are_self_signed_cas_with_the_right_algorithms_and_validity() {
    let s = secrets(3);
    let now = fixed_now();
    for (kind, ca) in [
        (CaKind::Os, &s.os_ca),
        (CaKind::Kubernetes, &s.k8s_ca),
        (CaKind::Aggregator, &s.k8s_aggregator_ca),
        (CaKind::Etcd, &s.etcd_ca),
    ] {
        let d = der(&ca.crt);
        let (_, c) = parse_x509_certificate(&d).unwrap();
        c.verify_signature(None)
            .unwrap_or_else(|e| panic!("{kind:?} self-signature: {e}"));
        assert_eq!(c.subject(), c.issuer());
        let bc = c
            .basic_constraints()
            .unwrap()
            .expect("basicConstraints")
            .value;
        assert!(bc.ca, "{kind:?} must be a CA");
        let ku = c.key_usage().unwrap().expect("keyUsage").value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
        let alg = c.public_key().algorithm.algorithm.to_id_string();
        match kind {
            CaKind::Os => assert_eq!(alg, "1.3.101.112", "Ed25519"),
            _ => assert_eq!(alg, "1.2.840.10045.2.1", "EC public key"),
        }
        let nb = c.validity().not_before.timestamp();
        let na = c.validity().not_after.timestamp();
        assert!(nb <= now.unix_timestamp() && nb > now.unix_timestamp() - 3600);
        let years = (na - nb) as f64 / (365.0 * 86400.0);
        assert!((9.9..10.1).contains(&years), "{kind:?}: {years} years");
    }
}

fn verify_leaf(ca_pem: &str, leaf_pem: &str) -> (Vec<String>, Vec<String>, bool, bool) {
    let ca_der = der(ca_pem);
    let (_, ca) = parse_x509_certificate(&ca_der).unwrap();
    let leaf_der = der(leaf_pem);
    let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();
    leaf.verify_signature(Some(ca.public_key()))
        .expect("leaf must be signed by its CA");
    assert_eq!(leaf.issuer(), ca.subject());
    assert!(leaf.validity().is_valid(), "leaf must be valid now");
    let bc = leaf
        .basic_constraints()
        .unwrap()
        .map(|b| b.value.ca)
        .unwrap_or(false);
    assert!(!bc, "leaf must not be a CA");
    // Authority key id matches the CA's subject key id.
    let aki = leaf
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
            _ => None,
        })
        .expect("AKI");
    let ski = ca
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.clone()),
            _ => None,
        })
        .expect("SKI");
    assert_eq!(aki.0, ski.0);
    let ku = leaf.key_usage().unwrap().expect("keyUsage").value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().expect("EKU").value;
    let orgs = leaf
        .subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    let sans = leaf
        .subject_alternative_name()
        .unwrap()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|g| match g {
                    GeneralName::DNSName(d) => d.to_string(),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                        16 => {
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()
                        }
                        _ => panic!("bad IP SAN"),
                    },
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    (orgs, sans, eku.server_auth, eku.client_auth)
}

#[test]
fn node_server_cert_chain_and_sans_cover_endpoint_and_node_addresses() {
    let s = secrets(4);
    let addrs = vec![
        "2a01:4f8:c012:abcd::1".to_string(),
        "10.0.1.2".to_string(),
        "api.shop.example".to_string(),
    ];
    let leaf = issue_leaf(
        CaKind::Os,
        &s.os_ca,
        &LeafSpec {
            common_name: "cp-1".into(),
            organizations: vec![],
            sans: addrs.clone(),
            server_auth: true,
            client_auth: false,
            alg: KeyAlg::Ed25519,
            validity: ::time::Duration::days(365),
        },
        &mut talos::seeded_rng(9),
        ::time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let (_, sans, server, client) = verify_leaf(&s.os_ca.crt, &leaf.crt);
    assert!(server && !client);
    for a in &addrs {
        assert!(sans.contains(a), "SAN {a} missing from {sans:?}");
    }
    // Not signed by another cluster's CA.
    let other = secrets(5);
    let ca_der = der(&other.os_ca.crt);
    let (_, oca) = parse_x509_certificate(&ca_der).unwrap();
    let leaf_der = der(&leaf.crt);
    let (_, l) = parse_x509_certificate(&leaf_der).unwrap();
    assert!(l.verify_signature(Some(oca.public_key())).is_err());
}

#[test]
fn admin_kubeconfig_client_cert_is_system_masters_from_the_kubernetes_ca() {
    let s = secrets(5);
    let kc = admin_kubeconfig(
        &s,
        "shop",
        "https://[2a01:4f8::1]:6443",
        &mut rand::rngs::OsRng,
        ::time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&kc).unwrap();
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Config");
    assert_eq!(v["current-context"], "admin@shop");
    assert_eq!(v["contexts"][0]["context"]["user"], "admin@shop");
    assert_eq!(v["contexts"][0]["context"]["cluster"], "shop");
    let cl = &v["clusters"][0]["cluster"];
    assert_eq!(cl["server"], "https://[2a01:4f8::1]:6443");
    assert_eq!(
        b64d(cl["certificate-authority-data"].as_str().unwrap()),
        s.k8s_ca.crt
    );
    let u = &v["users"][0]["user"];
    let crt = b64d(u["client-certificate-data"].as_str().unwrap());
    let key = b64d(u["client-key-data"].as_str().unwrap());
    assert!(key.contains("PRIVATE KEY"));
    let (orgs, _, server, client) = verify_leaf(&s.k8s_ca.crt, &crt);
    assert_eq!(orgs, vec!["system:masters".to_string()]);
    assert!(client && !server);
    // The CA key itself is not in the kubeconfig.
    assert!(!kc.contains(&s.k8s_ca.key));
}

#[test]
fn talosconfig_has_an_os_admin_cert_from_the_talos_ca() {
    let s = secrets(6);
    let creds = TalosClientCreds::issue_admin(
        &s,
        &mut rand::rngs::OsRng,
        ::time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let tc = talos::talosconfig(
        &creds,
        "shop",
        &["2a01:4f8::1".into()],
        &["2a01:4f8::1".into(), "2a01:4f8::2".into()],
    )
    .unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&tc).unwrap();
    assert_eq!(v["context"], "shop");
    let c = &v["contexts"]["shop"];
    assert_eq!(c["endpoints"][0], "2a01:4f8::1");
    assert_eq!(c["nodes"].as_sequence().unwrap().len(), 2);
    assert_eq!(b64d(c["ca"].as_str().unwrap()), s.os_ca.crt);
    assert!(b64d(c["key"].as_str().unwrap()).contains("BEGIN ED25519 PRIVATE KEY"));
    let (orgs, _, _, client) = verify_leaf(&s.os_ca.crt, &b64d(c["crt"].as_str().unwrap()));
    assert_eq!(orgs, vec!["os:admin".to_string()]);
    assert!(client);
    assert!(!format!("{creds:?}").contains(creds.key_pem.as_str()));
}

#[cfg(unix)]
#[test]
fn private_files_are_written_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub").join("kubeconfig");
    talos::write_private_file(&p, "a: b\n").unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Overwrite keeps 0600 and content; no temp files left behind.
    talos::write_private_file(&p, "c: d\n").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "c: d\n");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
}
