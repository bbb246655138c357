mod common;

use common::*;
use std::path::Path;
use talos::store::{secrets_path, Identities, Recipients, SecretsStore};
use talos::SecretsBundle;

fn keypair() -> (String, String) {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let secret = SecretsStore::identity_to_string(&id).to_string();
    (public, secret)
}

/// Every file under `dir` (modified since `since`, up to depth 4) must not
/// contain any secret of `b` (raw, base64, or a line of a PEM key body).
fn assert_no_plaintext(dir: &Path, b: &SecretsBundle, since: std::time::SystemTime) -> usize {
    use base64::Engine as _;
    let mut needles: Vec<String> = Vec::new();
    for v in b.secret_values() {
        needles.push(v.to_string());
        needles.push(base64::engine::general_purpose::STANDARD.encode(v.as_bytes()));
        if let Some(line) = v.lines().nth(1) {
            needles.push(line.to_string());
        }
    }
    let mut stack = vec![(dir.to_path_buf(), 0)];
    let mut files = 0;
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                if depth < 4 {
                    stack.push((p, depth + 1));
                }
                continue;
            }
            if !md.is_file()
                || md.len() > 8 << 20
                || md.modified().map(|m| m < since).unwrap_or(true)
            {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            files += 1;
            let text = String::from_utf8_lossy(&bytes);
            for n in &needles {
                assert!(
                    !text.contains(n.as_str()),
                    "secret material found in plaintext in {}",
                    p.display()
                );
            }
        }
    }
    files
}

#[test]
fn path_is_under_infra_clusters() {
    assert_eq!(
        secrets_path(Path::new("repo"), "shop"),
        Path::new("repo/infra/clusters/shop/talos-secrets.age")
    );
}

#[test]
fn roundtrip_and_no_plaintext_on_disk() {
    let start = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (pubk, seck) = keypair();
    let (pubk2, seck2) = keypair();
    let store = SecretsStore::new(root.path(), "shop");
    let recips = Recipients::parse(&[pubk.clone(), pubk2], "test", store.path()).unwrap();
    let b = secrets(11);
    store.save(&b, &recips).unwrap();
    let bytes = std::fs::read(store.path()).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    // Both recipients can decrypt.
    for k in [&seck, &seck2] {
        let ids = Identities::parse(k, "test", store.path()).unwrap();
        assert_eq!(store.load(&ids).unwrap(), b);
    }
    // An identity file works too (comments ignored).
    let idf = tmp.path().join("key.txt");
    std::fs::write(
        &idf,
        format!("# created: now\n# public key: {pubk}\n{seck}\n"),
    )
    .unwrap();
    assert_eq!(
        store
            .load(&Identities::from_file(&idf, store.path()).unwrap())
            .unwrap(),
        b
    );
    // No temp files left beside it, and no plaintext anywhere we wrote.
    let names: Vec<_> = std::fs::read_dir(store.path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("talos-secrets.age")]);
    let scanned = assert_no_plaintext(root.path(), &b, start);
    assert!(scanned >= 1, "the scan must see the written file");
    let t = assert_no_plaintext(&std::env::temp_dir(), &b, start);
    println!("plaintext scan: {scanned} file(s) in the output dir, {t} recent file(s) in the temp dir: clean");
}

#[test]
fn load_or_create_is_idempotent() {
    let root = tempfile::tempdir().unwrap();
    let (pubk, seck) = keypair();
    let store = SecretsStore::new(root.path(), "shop");
    let recips = Recipients::parse(&[pubk], "test", store.path()).unwrap();
    let ids = Identities::parse(&seck, "test", store.path()).unwrap();
    let (a, created) = store
        .load_or_create(Some(&ids), &recips, || Ok(secrets(1)))
        .unwrap();
    assert!(created);
    let (b, created) = store
        .load_or_create(Some(&ids), &recips, || panic!("must not regenerate"))
        .unwrap();
    assert!(!created);
    assert_eq!(a, b);
    // Existing file without identity: clear error, no overwrite.
    let before = std::fs::read(store.path()).unwrap();
    let e = store
        .load_or_create(None, &recips, || Ok(secrets(2)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SHOPEDGE_AGE_IDENTITY") && e.contains("talos-secrets.age"),
        "{e}"
    );
    assert_eq!(before, std::fs::read(store.path()).unwrap());
}

#[test]
fn rekey_changes_recipients_not_secrets() {
    let root = tempfile::tempdir().unwrap();
    let (p1, s1) = keypair();
    let (p2, s2) = keypair();
    let store = SecretsStore::new(root.path(), "shop");
    let b = secrets(3);
    store
        .save(&b, &Recipients::parse(&[p1], "t", store.path()).unwrap())
        .unwrap();
    let id1 = Identities::parse(&s1, "t", store.path()).unwrap();
    store
        .rekey(&id1, &Recipients::parse(&[p2], "t", store.path()).unwrap())
        .unwrap();
    assert!(store.load(&id1).is_err(), "old key must no longer decrypt");
    assert_eq!(
        store
            .load(&Identities::parse(&s2, "t", store.path()).unwrap())
            .unwrap(),
        b
    );
}

#[test]
fn bad_inputs_name_the_file_and_the_fix() {
    let root = tempfile::tempdir().unwrap();
    let (pubk, _) = keypair();
    let (_, other_secret) = keypair();
    let store = SecretsStore::new(root.path(), "shop");
    let file = store.path().display().to_string();
    let b = secrets(4);
    store
        .save(&b, &Recipients::parse(&[pubk], "t", store.path()).unwrap())
        .unwrap();

    // Wrong identity.
    let e = store
        .load(&Identities::parse(&other_secret, "t", store.path()).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&file) && e.contains("not encrypted to") && e.contains("fix:"),
        "{e}"
    );
    assert!(
        !e.contains(&other_secret),
        "the identity must not be echoed"
    );

    // Malformed identity and recipients.
    let e = Identities::parse(
        "AGE-SECRET-KEY-1NOPE",
        "SHOPEDGE_AGE_IDENTITY",
        store.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&file) && e.contains("age-keygen"), "{e}");
    assert!(!e.contains("AGE-SECRET-KEY-1NOPE"));
    let e = Recipients::parse(&["age1bogus"], "the cluster spec", store.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("age1bogus") && e.contains("the cluster spec"),
        "{e}"
    );
    let e = Recipients::parse::<&str>(&[], "spec", store.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("SHOPEDGE_AGE_RECIPIENTS"), "{e}");
    let e = Identities::from_file(Path::new("/nonexistent/key.txt"), store.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/key.txt") && e.contains("SHOPEDGE_AGE_IDENTITY_FILE"),
        "{e}"
    );

    // Corrupted file (flipped payload byte) read with the right identity.
    let ids_needed = "corrupted";
    let (pk, skk) = keypair();
    store
        .save(&b, &Recipients::parse(&[pk], "t", store.path()).unwrap())
        .unwrap();
    let ids = Identities::parse(&skk, "t", store.path()).unwrap();
    let mut bad = std::fs::read(store.path()).unwrap();
    let n = bad.len();
    bad[n - 10] ^= 0x55;
    std::fs::write(store.path(), &bad).unwrap();
    let e = store.load(&ids).unwrap_err().to_string();
    assert!(
        e.contains(&file) && e.contains(ids_needed) && e.contains("Git"),
        "{e}"
    );
    std::fs::write(store.path(), b"not an age file").unwrap();
    let e = store.load(&ids).unwrap_err().to_string();
    assert!(e.contains(&file) && e.contains("corrupted"), "{e}");
    std::fs::remove_file(store.path()).unwrap();
    let e = store.load(&ids).unwrap_err().to_string();
    assert!(e.contains(&file) && e.contains("provisioner up"), "{e}");
}

#[test]
fn identity_from_env_missing_is_a_clear_error() {
    // Only this test touches these variables in this binary.
    std::env::remove_var(talos::store::IDENTITY_ENV);
    std::env::remove_var(talos::store::IDENTITY_FILE_ENV);
    let e = Identities::from_env(Path::new("infra/clusters/shop/talos-secrets.age"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("infra/clusters/shop/talos-secrets.age"), "{e}");
    assert!(
        e.contains("SHOPEDGE_AGE_IDENTITY") && e.contains("SHOPEDGE_AGE_IDENTITY_FILE"),
        "{e}"
    );
    let (pubk, seck) = keypair();
    std::env::set_var(talos::store::IDENTITY_ENV, &seck);
    let ids = Identities::from_env(Path::new("x")).unwrap();
    assert_eq!(ids.to_public(), vec![pubk.clone()]);
    assert!(!format!("{ids:?}").contains(&seck));
    std::env::remove_var(talos::store::IDENTITY_ENV);
    std::env::set_var(talos::store::RECIPIENTS_ENV, format!("{pubk}, {pubk}"));
    let r = Recipients::from_spec_or_env(&[], Path::new("x")).unwrap();
    assert_eq!(r.public_keys().len(), 2);
    std::env::remove_var(talos::store::RECIPIENTS_ENV);
}
