mod common;

use common::*;
use std::collections::BTreeMap;
use talos::patch::{apply_patch, Patch};
use talos::render::{base_documents, split_docs};
use talos::{
    check_user_data_size, render_node_config, validate_config, ClusterInput, NodeConfigInput, Role,
    TalosError, TalosSchema, DEFAULT_TALOS_VERSION, USER_DATA_LIMIT,
};

const ENDPOINT: &str = "https://[2a01:4f8:c012:abcd::1]:6443";
/// The v1.14 release the schema in ../shared comes from.
const V1_14: &str = "v1.14.0-rc.1";

fn cluster() -> ClusterInput {
    cluster_v(DEFAULT_TALOS_VERSION)
}

fn cluster_v(version: &str) -> ClusterInput {
    let mut c = ClusterInput::new("shop", ENDPOINT);
    c.cert_sans = vec!["api.shop.example".into()];
    c.talos_version = version.into();
    c
}

fn input(role: Role) -> NodeConfigInput {
    NodeConfigInput::new(cluster(), role)
}

fn worker_pool_input() -> NodeConfigInput {
    worker_pool_input_v(DEFAULT_TALOS_VERSION)
}

fn worker_pool_input_v(version: &str) -> NodeConfigInput {
    let mut i = NodeConfigInput::new(cluster_v(version), Role::Worker);
    i.node_labels
        .insert("shopedge.io/pool".into(), "general".into());
    i.node_taints
        .insert("dedicated".into(), "db:NoSchedule".into());
    i
}

fn schema() -> Option<TalosSchema> {
    Some(TalosSchema::load(&schema_dir()?, DEFAULT_TALOS_VERSION).unwrap())
}

fn schema_v(version: &str) -> Option<TalosSchema> {
    Some(TalosSchema::load(&schema_dir()?, version).unwrap())
}

fn default_patches(role: Role) -> Vec<Patch> {
    Patch::load_dir(&patch_dir(), role).unwrap()
}

fn patches_v(role: Role, version: &str) -> Vec<Patch> {
    Patch::load_for_version(&patch_dir(), role, version).unwrap()
}

fn v1alpha1(yaml: &str) -> serde_yaml::Value {
    split_docs(yaml).unwrap().remove(0)
}

#[test]
fn every_generated_config_validates_and_fits_in_user_data() {
    for version in [DEFAULT_TALOS_VERSION, V1_14] {
        let Some(schema) = schema_v(version) else {
            return;
        };
        let s = secrets(42);
        let mut mirrors = cluster_v(version);
        mirrors.nameservers.clear();
        mirrors.registry_mirrors = BTreeMap::from([
            (
                "ghcr.io".to_string(),
                vec!["https://ghcr-mirror.shop.example".to_string()],
            ),
            (
                "registry.k8s.io".to_string(),
                vec!["https://k8s-mirror.shop.example".to_string()],
            ),
        ]);
        mirrors.kubernetes_version = Some("v1.35.0".into());
        let cases = [
            (
                "controlplane",
                NodeConfigInput::new(cluster_v(version), Role::ControlPlane),
            ),
            (
                "worker",
                NodeConfigInput::new(cluster_v(version), Role::Worker),
            ),
            ("worker pool (labels, taints)", worker_pool_input_v(version)),
            (
                "controlplane with mirrors",
                NodeConfigInput::new(mirrors.clone(), Role::ControlPlane),
            ),
            (
                "worker with mirrors",
                NodeConfigInput::new(mirrors, Role::Worker),
            ),
        ];
        for (name, inp) in cases {
            for with_patches in [false, true] {
                let patches = if with_patches {
                    patches_v(inp.role, version)
                } else {
                    vec![]
                };
                let yaml = render_node_config(&inp, &s, &patches, &schema).unwrap();
                // Independent re-validation of every document of the text that
                // goes into user_data, against the schema of its own version.
                validate_config(&yaml, version, &schema_dir().unwrap()).unwrap();
                let n = check_user_data_size(inp.role, &yaml).unwrap();
                assert!(n < USER_DATA_LIMIT);
                assert!(!yaml.contains('#'), "no comments in user data");
                println!(
                    "user-data size: Talos {version} {name}{}: {n} bytes ({:.1}% of 32 KiB), {} documents",
                    if with_patches {
                        " + infra/talos patches"
                    } else {
                        ""
                    },
                    n as f64 * 100.0 / USER_DATA_LIMIT as f64,
                    split_docs(&yaml).unwrap().len()
                );
            }
        }
    }
}

#[test]
fn ipv6_only_details_are_in_the_controlplane_config() {
    let Some(schema) = schema() else { return };
    let s = secrets(42);
    let yaml = render_node_config(&input(Role::ControlPlane), &s, &[], &schema).unwrap();
    let docs = split_docs(&yaml).unwrap();
    let d = &docs[0];
    let m = &d["machine"];
    let c = &d["cluster"];
    assert_eq!(m["type"], "controlplane");
    assert_eq!(c["network"]["cni"]["name"], "none");
    assert_eq!(c["proxy"]["disabled"], true);
    assert_eq!(c["network"]["podSubnets"][0], "fd00:10:244::/56");
    assert_eq!(c["network"]["serviceSubnets"][0], "fd00:10:96::/112");
    assert_eq!(m["kubelet"]["nodeIP"]["validSubnets"][0], "2000::/3");
    assert_eq!(c["etcd"]["advertisedSubnets"][0], "2000::/3");
    assert_eq!(c["externalCloudProvider"]["enabled"], true);
    assert_eq!(c["allowSchedulingOnControlPlanes"], false);
    assert_eq!(
        m["nodeTaints"]["node-role.kubernetes.io/control-plane"],
        ":NoSchedule"
    );
    assert_eq!(c["controlPlane"]["endpoint"], ENDPOINT);
    assert_eq!(m["features"]["kubePrism"]["enabled"], true);
    assert_eq!(m["features"]["kubePrism"]["port"], 7445);
    assert_eq!(m["sysctls"]["net.core.rmem_max"], "7500000");
    assert_eq!(m["sysctls"]["net.core.wmem_max"], "7500000");
    assert_eq!(c["token"], s.bootstrap_token.as_str());
    assert_eq!(m["token"], s.trustd_token.as_str());
    assert_eq!(
        c["secretboxEncryptionSecret"],
        s.secretbox_encryption_secret.as_str()
    );
    let sans: Vec<_> = m["certSANs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(sans, ["2a01:4f8:c012:abcd::1", "api.shop.example"]);
    assert_eq!(c["apiServer"]["certSANs"], m["certSANs"]);
    let resolver = docs
        .iter()
        .find(|d| d["kind"] == "ResolverConfig")
        .expect("ResolverConfig");
    let ns: Vec<_> = resolver["nameservers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|n| n["address"].as_str().unwrap())
        .collect();
    assert_eq!(ns, talos::render::DEFAULT_DNS64_NAMESERVERS);
}

#[test]
fn worker_config_carries_no_ca_keys_or_control_plane_secrets() {
    let Some(schema) = schema() else { return };
    let s = secrets(42);
    let yaml = render_node_config(&worker_pool_input(), &s, &[], &schema).unwrap();
    let d = v1alpha1(&yaml);
    assert_eq!(d["machine"]["type"], "worker");
    assert!(d["machine"]["ca"].get("key").is_none());
    assert!(d["cluster"]["ca"].get("key").is_none());
    for k in [
        "aggregatorCA",
        "serviceAccount",
        "etcd",
        "secretboxEncryptionSecret",
        "apiServer",
    ] {
        assert!(
            d["cluster"].get(k).is_none(),
            "{k} must not be in a worker config"
        );
    }
    for secret in [
        &s.os_ca.key,
        &s.k8s_ca.key,
        &s.etcd_ca.key,
        &s.k8s_aggregator_ca.key,
        &s.service_account_key,
        &s.secretbox_encryption_secret,
    ] {
        use base64::Engine as _;
        assert!(
            !yaml.contains(&base64::engine::general_purpose::STANDARD.encode(secret.as_bytes()))
        );
        assert!(!yaml.contains(secret.as_str()));
    }
    assert_eq!(d["machine"]["nodeLabels"]["shopedge.io/pool"], "general");
    assert_eq!(d["machine"]["nodeTaints"]["dedicated"], "db:NoSchedule");
    assert!(d["machine"]["nodeTaints"]
        .get("node-role.kubernetes.io/control-plane")
        .is_none());
}

#[test]
fn mirrors_become_registry_mirror_documents() {
    let Some(schema) = schema() else { return };
    let mut c = cluster();
    c.registry_mirrors
        .insert("ghcr.io".into(), vec!["https://m.example".into()]);
    let yaml = render_node_config(
        &NodeConfigInput::new(c, Role::Worker),
        &secrets(1),
        &[],
        &schema,
    )
    .unwrap();
    let docs = split_docs(&yaml).unwrap();
    let m = docs
        .iter()
        .find(|d| d["kind"] == "RegistryMirrorConfig")
        .unwrap();
    assert_eq!(m["name"], "ghcr.io");
    assert_eq!(m["endpoints"][0]["url"], "https://m.example");
}

#[test]
fn snapshots_are_deterministic_for_a_fixed_seed() {
    let Some(schema) = schema() else { return };
    let s = secrets(42);
    let cp = render_node_config(
        &input(Role::ControlPlane),
        &s,
        &default_patches(Role::ControlPlane),
        &schema,
    )
    .unwrap();
    let wk = render_node_config(
        &worker_pool_input(),
        &s,
        &default_patches(Role::Worker),
        &schema,
    )
    .unwrap();
    // Re-generation from the same seed is byte-identical.
    let s2 = secrets(42);
    assert_eq!(
        cp,
        render_node_config(
            &input(Role::ControlPlane),
            &s2,
            &default_patches(Role::ControlPlane),
            &schema
        )
        .unwrap()
    );
    insta::assert_snapshot!("controlplane_seed42", cp);
    insta::assert_snapshot!("worker_seed42", wk);
}

#[test]
fn base_documents_need_no_schema_and_are_deterministic() {
    let a = talos::render::to_yaml(&base_documents(&input(Role::Worker), &secrets(2))).unwrap();
    let b = talos::render::to_yaml(&base_documents(&input(Role::Worker), &secrets(2))).unwrap();
    assert_eq!(a, b);
}

// ---- patches ----

fn docs() -> Vec<serde_yaml::Value> {
    base_documents(&input(Role::ControlPlane), &secrets(1))
}

#[test]
fn patch_maps_merge_lists_append_and_subnets_replace() {
    let mut d = docs();
    let p = Patch::parse(
        "p.yaml",
        "machine:\n  certSANs: [extra.example]\n  kubelet:\n    extraArgs:\n      v: \"2\"\n    nodeIP:\n      validSubnets: [\"2a01:4f8::/32\"]\ncluster:\n  network:\n    podSubnets: [\"fd00:1::/56\"]\n",
    )
    .unwrap();
    apply_patch(&mut d, &p).unwrap();
    let m = &d[0]["machine"];
    let sans = m["certSANs"].as_sequence().unwrap();
    assert_eq!(sans.len(), 3, "lists append");
    assert_eq!(sans[2], "extra.example");
    assert_eq!(m["kubelet"]["extraArgs"]["v"], "2");
    assert_eq!(
        m["kubelet"]["defaultRuntimeSeccompProfileEnabled"], true,
        "maps merge"
    );
    assert_eq!(
        m["kubelet"]["nodeIP"]["validSubnets"]
            .as_sequence()
            .unwrap()
            .len(),
        1,
        "replace list"
    );
    assert_eq!(d[0]["cluster"]["network"]["podSubnets"][0], "fd00:1::/56");
    assert_eq!(
        d[0]["cluster"]["network"]["podSubnets"]
            .as_sequence()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn patch_delete_and_documents() {
    let mut d = docs();
    let p = Patch::parse(
        "p.yaml",
        "machine:\n  features:\n    hostDNS:\n      $patch: delete\n---\napiVersion: v1alpha1\nkind: ResolverConfig\n$patch: delete\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n",
    )
    .unwrap();
    apply_patch(&mut d, &p).unwrap();
    assert!(d[0]["machine"]["features"].get("hostDNS").is_none());
    assert!(!d.iter().any(|x| x["kind"] == "ResolverConfig"));
    assert!(d
        .iter()
        .any(|x| x["kind"] == "HostnameConfig" && x["auto"] == "stable"));
    // Deleting something absent is an error naming the file and the path.
    let p = Patch::parse(
        "infra/talos/x.yaml",
        "machine:\n  nope:\n    $patch: delete\n",
    )
    .unwrap();
    let e = apply_patch(&mut d, &p).unwrap_err().to_string();
    assert!(
        e.contains("infra/talos/x.yaml") && e.contains("machine.nope") && e.contains("fix:"),
        "{e}"
    );
}

#[test]
fn patch_type_mismatch_and_json6902_are_rejected_with_the_file_name() {
    let mut d = docs();
    let p = Patch::parse("bad.yaml", "machine:\n  certSANs:\n    a: b\n").unwrap();
    let e = apply_patch(&mut d, &p).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml") && e.contains("machine.certSANs") && e.contains("a list"),
        "{e}"
    );
    let e = Patch::parse("j.yaml", "- op: add\n  path: /machine/x\n  value: 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("j.yaml") && e.contains("JSON 6902"), "{e}");
    let e = Patch::parse("y.yaml", "machine: [\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("y.yaml") && e.contains("YAML"), "{e}");
}

#[test]
fn patch_with_an_unknown_field_names_the_file_and_the_field() {
    let Some(schema) = schema() else { return };
    let p = Patch::parse(
        "infra/talos/20-typo.yaml",
        "machine:\n  kubelet:\n    nodeIp:\n      validSubnets: [\"::/0\"]\n",
    )
    .unwrap();
    let e = render_node_config(&input(Role::Worker), &secrets(1), &[p], &schema).unwrap_err();
    assert!(matches!(e, TalosError::Patch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("infra/talos/20-typo.yaml"), "{msg}");
    assert!(msg.contains("nodeIp"), "{msg}");
    assert!(msg.contains("/machine/kubelet"), "{msg}");
    assert!(msg.contains("fix:"), "{msg}");
    // A wrong type in a known field, and an unknown document kind.
    let p = Patch::parse(
        "t.yaml",
        "machine:\n  features:\n    kubePrism:\n      port: \"x\"\n",
    )
    .unwrap();
    let msg = render_node_config(&input(Role::Worker), &secrets(1), &[p], &schema)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("t.yaml") && msg.contains("port"), "{msg}");
    let p = Patch::parse("k.yaml", "apiVersion: v1alpha1\nkind: NoSuchConfig\n").unwrap();
    let msg = render_node_config(&input(Role::Worker), &secrets(1), &[p], &schema)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("k.yaml") && msg.contains("NoSuchConfig"),
        "{msg}"
    );
}

#[test]
fn default_patch_dir_loads_per_role() {
    let cp: Vec<_> = default_patches(Role::ControlPlane)
        .into_iter()
        .map(|p| p.source)
        .collect();
    let wk: Vec<_> = default_patches(Role::Worker)
        .into_iter()
        .map(|p| p.source)
        .collect();
    assert!(
        cp.iter()
            .any(|s| s.ends_with("controlplane/10-etcd-metrics.yaml")),
        "{cp:?}"
    );
    assert!(!cp.iter().any(|s| s.contains("/worker/")));
    assert!(
        wk.iter().any(|s| s.ends_with("worker/10-kubelet.yaml")),
        "{wk:?}"
    );
    assert!(
        Patch::load_dir(std::path::Path::new("/nonexistent-dir"), Role::Worker)
            .unwrap()
            .is_empty()
    );
}

// ---- schema / input errors ----

#[test]
fn a_talos_version_without_schema_is_a_clear_error() {
    let Some(dir) = schema_dir() else { return };
    let e = TalosSchema::load(&dir, "v1.99.0").unwrap_err().to_string();
    assert!(
        e.contains("v1.99.0") && e.contains("v1.13") && e.contains("v1.14"),
        "{e}"
    );
    assert!(e.contains(&dir.display().to_string()), "{e}");
    let e = validate_config("version: v1alpha1\n", "v1.99.0", &dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no Talos config schema"), "{e}");
    let e = TalosSchema::load(&dir, "latest").unwrap_err().to_string();
    assert!(e.contains("latest") && e.contains("v1.13.9"), "{e}");
}

#[test]
fn configs_of_one_layout_do_not_pass_the_other_schema() {
    let Some(dir) = schema_dir() else { return };
    // The check is real: a v1.13 config is not a valid v1.14 config and vice versa.
    let v13 = render_node_config(
        &input(Role::Worker),
        &secrets(1),
        &[],
        &TalosSchema::load(&dir, DEFAULT_TALOS_VERSION).unwrap(),
    )
    .unwrap();
    let e = validate_config(&v13, V1_14, &dir).unwrap_err().to_string();
    assert!(e.contains("v1.14") && e.contains("kubelet"), "{e}");
    let v14 = render_node_config(
        &worker_pool_input_v(V1_14),
        &secrets(1),
        &[],
        &TalosSchema::load(&dir, V1_14).unwrap(),
    )
    .unwrap();
    let e = validate_config(&v14, DEFAULT_TALOS_VERSION, &dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("v1.13"), "{e}");
}

#[test]
fn schema_validation_rejects_invalid_documents() {
    let Some(dir) = schema_dir() else { return };
    let e = validate_config(
        "version: v1alpha1\nmachine:\n  type: router\n",
        "v1.13.9",
        &dir,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/machine/type"), "{e}");
    let e = validate_config(
        "apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers:\n  - address: dns.google\n",
        "v1.13.9",
        &dir,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ResolverConfig") && e.contains("address"), "{e}");
    validate_config("apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers:\n  - address: 2001:4860:4860::6464\n", "v1.13.9", &dir).unwrap();
}

#[test]
fn bad_input_is_rejected_before_rendering() {
    let Some(schema) = schema() else { return };
    let s = secrets(1);
    type Edit = Box<dyn Fn(&mut ClusterInput)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| c.pod_subnets = vec!["10.244.0.0/16".into()]),
            "IPv6",
        ),
        (Box::new(|c| c.service_subnets = vec![]), "service subnet"),
        (
            Box::new(|c| c.endpoint = "http://x:6443".into()),
            "https://",
        ),
        (Box::new(|c| c.cluster_name = "Shop_1".into()), "DNS-safe"),
        (
            Box::new(|c| c.nameservers = vec!["dns.google".into()]),
            "nameserver",
        ),
        (
            Box::new(|c| {
                c.nameservers.clear();
                c.registry_mirrors.clear();
            }),
            "DNS64",
        ),
        (
            Box::new(|c| {
                c.registry_mirrors
                    .insert("ghcr.io".into(), vec!["ftp://x".into()]);
            }),
            "mirror",
        ),
        (
            Box::new(|c| c.talos_version = "v1.14.0".into()),
            "schema passed",
        ),
    ];
    for (f, want) in cases {
        let mut c = cluster();
        f(&mut c);
        let e = render_node_config(&NodeConfigInput::new(c, Role::Worker), &s, &[], &schema)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "expected `{want}` in: {e}");
    }
}

#[test]
fn oversized_user_data_is_reported() {
    let big = "x".repeat(USER_DATA_LIMIT);
    let e = check_user_data_size(Role::Worker, &big)
        .unwrap_err()
        .to_string();
    assert!(e.contains("32 KiB") && e.contains("infra/talos"), "{e}");
}

#[test]
fn render_role_configs_renders_both_roles_with_default_patches() {
    let Some(dir) = schema_dir() else { return };
    let s = secrets(42);
    let r = talos::render_role_configs(&cluster(), &s, &patch_dir(), &dir).unwrap();
    assert_eq!(v1alpha1(&r.controlplane)["machine"]["type"], "controlplane");
    assert_eq!(v1alpha1(&r.worker)["machine"]["type"], "worker");
    assert!(
        r.controlplane.contains("listen-metrics-urls"),
        "controlplane patch applied"
    );
    assert!(
        r.worker.contains("shutdownGracePeriod"),
        "worker patch applied"
    );
    assert!(!format!("{r:?}").contains(&s.bootstrap_token));
    // A version without a schema fails before anything is rendered.
    let mut c = cluster();
    c.talos_version = "v1.12.0".into();
    let e = talos::render_role_configs(&c, &s, &patch_dir(), &dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("v1.12.0") && e.contains("available versions"),
        "{e}"
    );
}
