//! The Talos v1.14 (multi-document) layout: every document validates against
//! the v1.14 schema, the IPv6-only settings land in the right document kinds,
//! workers carry no CA keys, v1.13-layout patches get a precise error, and the
//! per-version patch overlay is used.

mod common;

use common::*;
use serde_yaml::Value;
use talos::patch::Patch;
use talos::render::split_docs;
use talos::{
    render_node_config, validate_config, ClusterInput, Layout, NodeConfigInput, Role, TalosError,
    TalosSchema, DEFAULT_KUBERNETES_VERSION,
};

const ENDPOINT: &str = "https://[2a01:4f8:c012:abcd::1]:6443";
const V1_14: &str = "v1.14.0-rc.1";

fn cluster() -> ClusterInput {
    let mut c = ClusterInput::new("shop", ENDPOINT);
    c.cert_sans = vec!["api.shop.example".into()];
    c.talos_version = V1_14.into();
    c
}

fn pool_input() -> NodeConfigInput {
    let mut i = NodeConfigInput::new(cluster(), Role::Worker);
    i.node_labels
        .insert("shopedge.io/pool".into(), "general".into());
    i.node_taints
        .insert("dedicated".into(), "db:NoSchedule".into());
    i
}

fn schema() -> Option<TalosSchema> {
    Some(TalosSchema::load(&schema_dir()?, V1_14).unwrap())
}

fn render(input: &NodeConfigInput, patches: &[Patch]) -> Option<String> {
    Some(render_node_config(input, &secrets(42), patches, &schema()?).unwrap())
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| match d["kind"].as_str() {
            Some(k) => k.to_string(),
            None => "v1alpha1".to_string(),
        })
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} document"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn layout_follows_the_version() {
    assert_eq!(Layout::for_version("v1.13.9"), Some(Layout::V1Alpha1));
    assert_eq!(Layout::for_version("v1.12.0"), Some(Layout::V1Alpha1));
    assert_eq!(Layout::for_version(V1_14), Some(Layout::MultiDoc));
    assert_eq!(Layout::for_version("v1.15.2"), Some(Layout::MultiDoc));
    assert_eq!(Layout::for_version("latest"), None);
}

#[test]
fn controlplane_documents_carry_the_ipv6_only_settings() {
    let Some(yaml) = render(&NodeConfigInput::new(cluster(), Role::ControlPlane), &[]) else {
        return;
    };
    let s = secrets(42);
    let docs = split_docs(&yaml).unwrap();
    assert_eq!(
        kinds(&docs),
        [
            "v1alpha1",
            "DiscoveryServiceConfig",
            "DiscoveryIdentityConfig",
            "UnattendedInstall",
            "ResolverConfig",
            "SysctlConfig",
            "KubeClusterConfig",
            "KubeNodeConfig",
            "KubeletConfig",
            "KubeNetworkConfig",
            "KubeAPIServerCAConfig",
            "KubePrismConfig",
            "KubeAggregatorCAConfig",
            "KubeAdmissionControlConfig",
            "KubeAuditPolicyConfig",
            "KubeAuthenticationConfig",
            "KubeAuthorizerConfig",
            "KubeAuthorizerConfig",
            "KubeEtcdEncryptionConfig",
            "KubeServiceAccountConfig",
            "KubeAPIServerConfig",
            "KubeControllerManagerConfig",
            "KubeSchedulerConfig",
            "KubeProxyConfig",
            "KubeCoreDNSConfig",
        ]
    );
    // What stays in the v1alpha1 document.
    let d = &docs[0];
    let (m, c) = (&d["machine"], &d["cluster"]);
    assert_eq!(m["type"], "controlplane");
    assert_eq!(m["token"], s.trustd_token.as_str());
    assert_eq!(
        strs(&m["certSANs"]),
        ["2a01:4f8:c012:abcd::1", "api.shop.example"]
    );
    assert_eq!(c["token"], s.bootstrap_token.as_str());
    assert_eq!(strs(&c["etcd"]["advertisedSubnets"]), ["2000::/3"]);
    assert_eq!(c["externalCloudProvider"]["enabled"], true);
    for moved in ["kubelet", "sysctls", "install", "nodeTaints"] {
        assert!(m.get(moved).is_none(), "machine.{moved} moved in v1.14");
    }
    // No CNI: no Flannel document, and kube-proxy disabled (Cilium replaces both).
    assert!(!kinds(&docs).iter().any(|k| k == "KubeFlannelCNIConfig"));
    assert_eq!(find(&docs, "KubeProxyConfig")["enabled"], false);
    let net = find(&docs, "KubeNetworkConfig");
    assert_eq!(strs(&net["podSubnets"]), ["fd00:10:244::/56"]);
    assert_eq!(strs(&net["serviceSubnets"]), ["fd00:10:96::/112"]);
    let node = find(&docs, "KubeNodeConfig");
    assert_eq!(strs(&node["nodeIP"]["validSubnets"]), ["2000::/3"]);
    assert_eq!(
        node["taints"]["node-role.kubernetes.io/control-plane"],
        ":NoSchedule"
    );
    assert_eq!(node["labels"]["node-role.kubernetes.io/control-plane"], "");
    let cl = find(&docs, "KubeClusterConfig");
    assert_eq!(
        (cl["clusterName"].as_str(), cl["endpoint"].as_str()),
        (Some("shop"), Some(ENDPOINT))
    );
    assert_eq!(find(&docs, "KubePrismConfig")["port"], 7445);
    let sys = find(&docs, "SysctlConfig");
    assert_eq!(sys["params"]["net.core.rmem_max"], "7500000");
    assert_eq!(sys["params"]["net.core.wmem_max"], "7500000");
    let res = find(&docs, "ResolverConfig");
    let ns: Vec<_> = res["nameservers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|n| n["address"].as_str().unwrap())
        .collect();
    assert_eq!(ns, talos::render::DEFAULT_DNS64_NAMESERVERS);
    assert_eq!(res["hostDNS"]["enabled"], true);
    assert_eq!(res["hostDNS"]["forwardKubeDNSToHost"], true);
    let inst = find(&docs, "UnattendedInstall");
    assert_eq!(
        inst["installer"]["image"],
        "ghcr.io/siderolabs/installer:v1.14.0-rc.1"
    );
    assert_eq!(
        inst["provisioning"]["diskSelector"]["match"],
        "disk.dev_path == \"/dev/sda\""
    );
    assert_eq!(inst["provisioning"]["wipe"], false);
    let id = find(&docs, "DiscoveryIdentityConfig");
    assert_eq!(id["clusterID"], s.cluster_id.as_str());
    assert_eq!(id["clusterSecret"], s.cluster_secret.as_str());
    // Kubernetes material: plain PEM, the right keys in the right documents.
    let ca = find(&docs, "KubeAPIServerCAConfig");
    assert_eq!(ca["issuingCA"]["cert"], s.k8s_ca.crt.as_str());
    assert_eq!(ca["issuingCA"]["key"], s.k8s_ca.key.as_str());
    let agg = find(&docs, "KubeAggregatorCAConfig");
    assert_eq!(agg["issuingCA"]["cert"], s.k8s_aggregator_ca.crt.as_str());
    let sa = find(&docs, "KubeServiceAccountConfig");
    assert_eq!(sa["issuer"]["privateKey"], s.service_account_key.as_str());
    assert_eq!(sa["issuer"]["issuerURL"], ENDPOINT);
    let enc = find(&docs, "KubeEtcdEncryptionConfig");
    let key = &enc["config"]["resources"][0]["providers"][0]["secretbox"]["keys"][0];
    assert_eq!(key["name"], "key2");
    assert_eq!(key["secret"], s.secretbox_encryption_secret.as_str());
    let authz: Vec<_> = docs
        .iter()
        .filter(|d| d["kind"] == "KubeAuthorizerConfig")
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(authz, ["Node", "RBAC"]);
    let api = find(&docs, "KubeAPIServerConfig");
    assert_eq!(api["certExtraSANs"], m["certSANs"]);
    // Component images default to the pinned Kubernetes version.
    for (kind, repo) in [
        ("KubeletConfig", "ghcr.io/siderolabs/kubelet"),
        ("KubeAPIServerConfig", "registry.k8s.io/kube-apiserver"),
        (
            "KubeControllerManagerConfig",
            "registry.k8s.io/kube-controller-manager",
        ),
        ("KubeSchedulerConfig", "registry.k8s.io/kube-scheduler"),
        ("KubeProxyConfig", "registry.k8s.io/kube-proxy"),
    ] {
        assert_eq!(
            find(&docs, kind)["image"],
            format!("{repo}:{DEFAULT_KUBERNETES_VERSION}").as_str()
        );
    }
}

#[test]
fn the_spec_kubernetes_version_sets_every_image() {
    let mut c = cluster();
    c.kubernetes_version = Some("v1.35.0".into());
    let Some(yaml) = render(&NodeConfigInput::new(c, Role::ControlPlane), &[]) else {
        return;
    };
    let docs = split_docs(&yaml).unwrap();
    assert_eq!(
        find(&docs, "KubeletConfig")["image"],
        "ghcr.io/siderolabs/kubelet:v1.35.0"
    );
    assert_eq!(
        find(&docs, "KubeSchedulerConfig")["image"],
        "registry.k8s.io/kube-scheduler:v1.35.0"
    );
    assert!(!yaml.contains(DEFAULT_KUBERNETES_VERSION));
}

#[test]
fn worker_documents_carry_no_ca_keys_or_control_plane_secrets() {
    let Some(yaml) = render(&pool_input(), &[]) else {
        return;
    };
    let s = secrets(42);
    let docs = split_docs(&yaml).unwrap();
    assert_eq!(
        kinds(&docs),
        [
            "v1alpha1",
            "DiscoveryServiceConfig",
            "DiscoveryIdentityConfig",
            "UnattendedInstall",
            "ResolverConfig",
            "SysctlConfig",
            "KubeClusterConfig",
            "KubeNodeConfig",
            "KubeletConfig",
            "KubeNetworkConfig",
            "KubeAPIServerCAConfig",
            "KubePrismConfig",
        ]
    );
    let d = &docs[0];
    assert_eq!(d["machine"]["type"], "worker");
    assert!(d["machine"]["ca"].get("key").is_none());
    assert!(d["cluster"].get("etcd").is_none());
    let ca = find(&docs, "KubeAPIServerCAConfig");
    assert!(ca.get("issuingCA").is_none());
    assert_eq!(strs(&ca["acceptedCAs"]), [s.k8s_ca.crt.as_str()]);
    let node = find(&docs, "KubeNodeConfig");
    assert_eq!(node["labels"]["shopedge.io/pool"], "general");
    assert!(node["labels"]
        .get("node-role.kubernetes.io/control-plane")
        .is_none());
    assert_eq!(node["taints"]["dedicated"], "db:NoSchedule");
    assert!(node["taints"]
        .get("node-role.kubernetes.io/control-plane")
        .is_none());
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
}

#[test]
fn snapshots_are_deterministic_for_a_fixed_seed() {
    let cp_in = NodeConfigInput::new(cluster(), Role::ControlPlane);
    let cp_patches = Patch::load_for_version(&patch_dir(), Role::ControlPlane, V1_14).unwrap();
    let wk_patches = Patch::load_for_version(&patch_dir(), Role::Worker, V1_14).unwrap();
    let Some(cp) = render(&cp_in, &cp_patches) else {
        return;
    };
    let wk = render(&pool_input(), &wk_patches).unwrap();
    assert_eq!(cp, render(&cp_in, &cp_patches).unwrap());
    insta::assert_snapshot!("controlplane_v1_14_seed42", cp);
    insta::assert_snapshot!("worker_v1_14_seed42", wk);
}

#[test]
fn the_version_overlay_replaces_the_base_patches() {
    let dir = patch_dir();
    let names = |v: &str, role: Role| -> Vec<String> {
        Patch::load_for_version(&dir, role, v)
            .unwrap()
            .into_iter()
            .map(|p| p.source)
            .collect()
    };
    let v14 = names(V1_14, Role::Worker);
    assert!(
        v14.iter()
            .any(|s| s.ends_with("v1.14/worker/10-kubelet.yaml")),
        "{v14:?}"
    );
    assert!(v14.iter().all(|s| s.contains("/v1.14/")), "{v14:?}");
    let v13 = names("v1.13.9", Role::Worker);
    assert!(
        v13.iter().any(|s| s.ends_with("worker/10-kubelet.yaml")),
        "{v13:?}"
    );
    assert!(!v13.iter().any(|s| s.contains("v1.14")), "{v13:?}");
    // The overlay's patches are applied (and validated) for v1.14.
    let Some(yaml) = render(
        &pool_input(),
        &Patch::load_for_version(&dir, Role::Worker, V1_14).unwrap(),
    ) else {
        return;
    };
    let docs = split_docs(&yaml).unwrap();
    let kubelet = find(&docs, "KubeletConfig");
    assert_eq!(kubelet["config"]["shutdownGracePeriod"], "30s");
    assert!(
        kubelet["image"].as_str().is_some(),
        "patch merged, image kept"
    );
    assert!(docs.iter().any(|d| d["kind"] == "TimeSyncConfig"));
}

#[test]
fn a_v1_13_layout_patch_names_where_its_fields_moved() {
    let Some(schema) = schema() else { return };
    let p = Patch::parse(
        "infra/talos/worker/10-kubelet.yaml",
        "machine:\n  kubelet:\n    extraConfig:\n      shutdownGracePeriod: 30s\n  sysctls:\n    vm.max_map_count: \"262144\"\n",
    )
    .unwrap();
    let e = render_node_config(&pool_input(), &secrets(1), &[p], &schema).unwrap_err();
    assert!(matches!(e, TalosError::Patch { .. }), "{e:?}");
    let msg = e.to_string();
    for want in [
        "infra/talos/worker/10-kubelet.yaml",
        "v1.14",
        "`machine.kubelet.extraConfig` -> KubeletConfig `config`",
        "`machine.sysctls` -> SysctlConfig `params`",
        "v1.14/",
    ] {
        assert!(msg.contains(want), "expected `{want}` in: {msg}");
    }
    // A v1.14-style patch with a typo gets the plain fix.
    let p = Patch::parse(
        "t.yaml",
        "apiVersion: v1alpha1\nkind: KubeletConfig\nextraConfig:\n  a: b\n",
    )
    .unwrap();
    let msg = render_node_config(&pool_input(), &secrets(1), &[p], &schema)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("t.yaml") && msg.contains("extraConfig") && !msg.contains("moved"),
        "{msg}"
    );
}

#[test]
fn v1_14_patches_replace_subnets_and_configuration_files() {
    let Some(schema) = schema() else { return };
    let p = Patch::parse(
        "p.yaml",
        "apiVersion: v1alpha1\nkind: KubeNetworkConfig\npodSubnets: [\"fd00:1::/56\"]\n---\napiVersion: v1alpha1\nkind: KubeNodeConfig\nlabels:\n  extra: \"yes\"\n",
    )
    .unwrap();
    let yaml = render_node_config(&pool_input(), &secrets(1), &[p], &schema).unwrap();
    let docs = split_docs(&yaml).unwrap();
    assert_eq!(
        strs(&find(&docs, "KubeNetworkConfig")["podSubnets"]),
        ["fd00:1::/56"]
    );
    let labels = &find(&docs, "KubeNodeConfig")["labels"];
    assert_eq!(labels["extra"], "yes");
    assert_eq!(labels["shopedge.io/pool"], "general", "maps merge");
    // The audit policy is a whole file: a patch replaces it.
    let p = Patch::parse(
        "audit.yaml",
        "apiVersion: v1alpha1\nkind: KubeAuditPolicyConfig\nconfiguration:\n  apiVersion: audit.k8s.io/v1\n  kind: Policy\n  omitStages: [RequestReceived]\n  rules:\n    - level: None\n",
    )
    .unwrap();
    let yaml = render_node_config(
        &NodeConfigInput::new(cluster(), Role::ControlPlane),
        &secrets(1),
        &[p],
        &schema,
    )
    .unwrap();
    let docs = split_docs(&yaml).unwrap();
    let rules = find(&docs, "KubeAuditPolicyConfig")["configuration"]["rules"]
        .as_sequence()
        .unwrap()
        .clone();
    assert_eq!(rules.len(), 1, "replaced, not appended");
    assert_eq!(rules[0]["level"], "None");
}

#[test]
fn a_schema_that_does_not_match_its_version_is_refused() {
    let Some(dir) = schema_dir() else { return };
    // A v1.13 schema saved under the v1.14 name (in a temporary directory).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("v1.13.schema.json"),
        tmp.path().join("v1.14.schema.json"),
    )
    .unwrap();
    let schema = TalosSchema::load(tmp.path(), V1_14).unwrap();
    let e = render_node_config(&pool_input(), &secrets(1), &[], &schema)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not match") && e.contains("KubeletConfig"),
        "{e}"
    );
}

#[test]
fn every_document_validates_independently() {
    let Some(dir) = schema_dir() else { return };
    for input in [
        NodeConfigInput::new(cluster(), Role::ControlPlane),
        pool_input(),
    ] {
        let yaml = render(&input, &[]).unwrap();
        validate_config(&yaml, V1_14, &dir).unwrap();
        // And each document on its own (kind lookup + schema), so a document the
        // renderer forgot to validate would still be caught here.
        let schema = TalosSchema::load(&dir, V1_14).unwrap();
        for d in split_docs(&yaml).unwrap() {
            let json = serde_json::to_value(&d).unwrap();
            let errs = schema.validate_doc(&json).unwrap();
            assert!(errs.is_empty(), "{:?}: {errs:?}", d["kind"]);
        }
    }
}
