//! The Talos v1.14 layout. The `v1alpha1` document keeps only the machine
//! identity (type, trustd token, Talos API CA, certificate SANs, disk quota),
//! the bootstrap token, etcd and the external cloud provider; everything else
//! lives in documents of its own kind:
//!
//! | v1.13 (`v1alpha1` document)                          | v1.14 document                         |
//! |------------------------------------------------------|----------------------------------------|
//! | `cluster.id`, `cluster.secret`                       | `DiscoveryIdentityConfig`              |
//! | `cluster.discovery`                                  | `DiscoveryServiceConfig`               |
//! | `machine.install`                                    | `UnattendedInstall`                    |
//! | `machine.features.hostDNS`                           | `ResolverConfig.hostDNS`               |
//! | `machine.sysctls`                                    | `SysctlConfig.params`                  |
//! | `cluster.clusterName`, `cluster.controlPlane`        | `KubeClusterConfig`                    |
//! | `machine.nodeLabels`/`nodeTaints`, `kubelet.nodeIP`  | `KubeNodeConfig`                       |
//! | `machine.kubelet` (image, seccomp default)           | `KubeletConfig`                        |
//! | `cluster.network` (subnets, DNS domain; CNI)         | `KubeNetworkConfig` (no CNI document = no CNI) |
//! | `cluster.ca`                                         | `KubeAPIServerCAConfig`                |
//! | `machine.features.kubePrism`                         | `KubePrismConfig`                      |
//! | `cluster.aggregatorCA`                               | `KubeAggregatorCAConfig`               |
//! | `cluster.secretboxEncryptionSecret`                  | `KubeEtcdEncryptionConfig`             |
//! | `cluster.serviceAccount`                             | `KubeServiceAccountConfig`             |
//! | `cluster.apiServer`, `controllerManager`, `scheduler`, `proxy`, `coreDNS` | `KubeAPIServerConfig`, `KubeControllerManagerConfig`, `KubeSchedulerConfig`, `KubeProxyConfig`, `KubeCoreDNSConfig` |
//! | (defaults Talos injected for the legacy layout)     | `KubeAdmissionControlConfig`, `KubeAuditPolicyConfig`, `KubeAuthenticationConfig`, `KubeAuthorizerConfig` ×2 |
//!
//! The document set follows what `talosctl gen config` produces for the v1.14
//! version contract (checked against the generator at tag v1.14.0-rc.1), with
//! this cluster's choices: no Flannel document (Cilium is installed later),
//! kube-proxy disabled, IPv6 subnets, DNS64 resolvers, the QUIC sysctls. In
//! this layout Talos no longer injects defaults for a missing document (no
//! authorizer documents would mean a kube-apiserver without Node/RBAC
//! authorization), so the control-plane defaults are spelled out here. The
//! PEM material of the Kubernetes documents is plain PEM, not base64.

use super::{
    b64, base_taints, cert_sans, install_image, list, m, registry_mirror_docs,
    resolver_nameservers, s, smap, NodeConfigInput, Role, DEFAULT_KUBERNETES_VERSION,
    DISCOVERY_SERVICE_ENDPOINT, KUBEPRISM_PORT, QUIC_SOCKET_BUFFER,
};
use crate::secrets::SecretsBundle;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

/// The label Talos v1.13 added to control-plane nodes itself; v1.14 takes the
/// `KubeNodeConfig` labels as given.
pub const CONTROL_PLANE_ROLE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// A `v1alpha1` document of `kind` with `fields` (null fields left out).
fn doc<const N: usize>(kind: &str, fields: [(&str, Value); N]) -> Value {
    let mut map = Mapping::new();
    map.insert(s("apiVersion"), s("v1alpha1"));
    map.insert(s("kind"), s(kind));
    if let Value::Mapping(f) = m(fields) {
        map.extend(f);
    }
    Value::Mapping(map)
}

fn pem(v: &str) -> Value {
    s(v)
}

/// A CEL string literal (`"..."`) for `v`.
fn cel_string(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for ch in v.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}

fn image(repo: &str, version: &str) -> Value {
    s(&format!("{repo}:{version}"))
}

/// The un-patched documents of one node's config in the v1.14 layout.
pub(super) fn documents(input: &NodeConfigInput, secrets: &SecretsBundle) -> Vec<Value> {
    let c = &input.cluster;
    let cp = input.role == Role::ControlPlane;
    let sans = cert_sans(c);
    let kv = c
        .kubernetes_version
        .as_deref()
        .unwrap_or(DEFAULT_KUBERNETES_VERSION);
    let cp_only = |v: Value| if cp { v } else { Value::Null };
    let os_ca = if cp {
        m([
            ("crt", b64(&secrets.os_ca.crt)),
            ("key", b64(&secrets.os_ca.key)),
        ])
    } else {
        m([("crt", b64(&secrets.os_ca.crt))])
    };
    let machine = m([
        ("type", s(input.role.as_str())),
        ("token", s(&secrets.trustd_token)),
        ("ca", os_ca),
        ("certSANs", list(&sans)),
        ("features", m([("diskQuotaSupport", Value::Bool(true))])),
    ]);
    let cluster = m([
        ("token", s(&secrets.bootstrap_token)),
        (
            "etcd",
            cp_only(m([
                (
                    "ca",
                    m([
                        ("crt", b64(&secrets.etcd_ca.crt)),
                        ("key", b64(&secrets.etcd_ca.key)),
                    ]),
                ),
                ("advertisedSubnets", list(&c.node_subnets)),
            ])),
        ),
        ("externalCloudProvider", m([("enabled", Value::Bool(true))])),
    ]);
    let mut docs = vec![m([
        ("version", s("v1alpha1")),
        ("debug", Value::Bool(false)),
        ("machine", machine),
        ("cluster", cluster),
    ])];

    // Node-level documents (both roles).
    docs.push(doc(
        "DiscoveryServiceConfig",
        [
            ("name", s("default")),
            ("endpoint", s(DISCOVERY_SERVICE_ENDPOINT)),
        ],
    ));
    docs.push(doc(
        "DiscoveryIdentityConfig",
        [
            ("clusterID", s(&secrets.cluster_id)),
            ("clusterSecret", s(&secrets.cluster_secret)),
        ],
    ));
    docs.push(doc(
        "UnattendedInstall",
        [
            ("installer", m([("image", s(&install_image(c)))])),
            (
                "provisioning",
                m([
                    (
                        "diskSelector",
                        m([(
                            "match",
                            s(&format!("disk.dev_path == {}", cel_string(&c.install_disk))),
                        )]),
                    ),
                    ("wipe", Value::Bool(false)),
                ]),
            ),
        ],
    ));
    docs.push(doc(
        "ResolverConfig",
        [
            (
                "nameservers",
                if c.nameservers.is_empty() {
                    Value::Null
                } else {
                    resolver_nameservers(c)
                },
            ),
            (
                "hostDNS",
                m([
                    ("enabled", Value::Bool(true)),
                    ("forwardKubeDNSToHost", Value::Bool(true)),
                ]),
            ),
        ],
    ));
    docs.push(doc(
        "SysctlConfig",
        [(
            "params",
            m([
                ("net.core.rmem_max", s(QUIC_SOCKET_BUFFER)),
                ("net.core.wmem_max", s(QUIC_SOCKET_BUFFER)),
            ]),
        )],
    ));
    docs.extend(registry_mirror_docs(c));

    // Kubernetes documents of every node.
    let mut labels = input.node_labels.clone();
    if cp {
        labels.entry(CONTROL_PLANE_ROLE_LABEL.into()).or_default();
    }
    docs.push(doc(
        "KubeClusterConfig",
        [
            ("clusterName", s(&c.cluster_name)),
            ("endpoint", s(&c.endpoint)),
        ],
    ));
    docs.push(doc(
        "KubeNodeConfig",
        [
            ("nodeIP", m([("validSubnets", list(&c.node_subnets))])),
            ("labels", smap(&labels)),
            ("taints", smap(&base_taints(input))),
        ],
    ));
    docs.push(doc(
        "KubeletConfig",
        [
            ("image", image("ghcr.io/siderolabs/kubelet", kv)),
            ("defaultRuntimeSeccompProfileEnabled", Value::Bool(true)),
        ],
    ));
    docs.push(doc(
        "KubeNetworkConfig",
        [
            ("dnsDomain", s("cluster.local")),
            ("podSubnets", list(&c.pod_subnets)),
            ("serviceSubnets", list(&c.service_subnets)),
        ],
    ));
    docs.push(if cp {
        doc(
            "KubeAPIServerCAConfig",
            [(
                "issuingCA",
                m([
                    ("cert", pem(&secrets.k8s_ca.crt)),
                    ("key", pem(&secrets.k8s_ca.key)),
                ]),
            )],
        )
    } else {
        doc(
            "KubeAPIServerCAConfig",
            [(
                "acceptedCAs",
                Value::Sequence(vec![pem(&secrets.k8s_ca.crt)]),
            )],
        )
    });
    docs.push(doc(
        "KubePrismConfig",
        [("port", Value::Number(KUBEPRISM_PORT.into()))],
    ));
    if cp {
        docs.extend(control_plane_documents(input, secrets, &sans, kv));
    }
    docs
}

/// The documents only control-plane nodes get (they carry CA keys and the
/// component settings).
fn control_plane_documents(
    input: &NodeConfigInput,
    secrets: &SecretsBundle,
    sans: &[String],
    kv: &str,
) -> Vec<Value> {
    let c = &input.cluster;
    let yaml_map = |pairs: Vec<(&str, Value)>| -> Value {
        Value::Mapping(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
    };
    let strs = |v: &[&str]| Value::Sequence(v.iter().map(|x| s(x)).collect());
    let mut docs = vec![doc(
        "KubeAggregatorCAConfig",
        [(
            "issuingCA",
            m([
                ("cert", pem(&secrets.k8s_aggregator_ca.crt)),
                ("key", pem(&secrets.k8s_aggregator_ca.key)),
            ]),
        )],
    )];
    // Pod Security admission: baseline enforced, restricted audited and warned,
    // kube-system exempt (the Talos default).
    let pss_defaults: BTreeMap<String, String> = [
        ("audit", "restricted"),
        ("audit-version", "latest"),
        ("enforce", "baseline"),
        ("enforce-version", "latest"),
        ("warn", "restricted"),
        ("warn-version", "latest"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    docs.push(doc(
        "KubeAdmissionControlConfig",
        [
            ("name", s("PodSecurity")),
            (
                "configuration",
                yaml_map(vec![
                    (
                        "apiVersion",
                        s("pod-security.admission.config.k8s.io/v1alpha1"),
                    ),
                    ("kind", s("PodSecurityConfiguration")),
                    ("defaults", smap(&pss_defaults)),
                    (
                        "exemptions",
                        yaml_map(vec![
                            ("namespaces", strs(&["kube-system"])),
                            ("runtimeClasses", strs(&[])),
                            ("usernames", strs(&[])),
                        ]),
                    ),
                ]),
            ),
        ],
    ));
    docs.push(doc(
        "KubeAuditPolicyConfig",
        [(
            "configuration",
            yaml_map(vec![
                ("apiVersion", s("audit.k8s.io/v1")),
                ("kind", s("Policy")),
                (
                    "rules",
                    Value::Sequence(vec![yaml_map(vec![("level", s("Metadata"))])]),
                ),
            ]),
        )],
    ));
    // Anonymous requests only for the health endpoints.
    docs.push(doc(
        "KubeAuthenticationConfig",
        [(
            "configuration",
            yaml_map(vec![
                (
                    "anonymous",
                    yaml_map(vec![
                        (
                            "conditions",
                            Value::Sequence(
                                ["/livez", "/readyz", "/healthz"]
                                    .iter()
                                    .map(|p| yaml_map(vec![("path", s(p))]))
                                    .collect(),
                            ),
                        ),
                        ("enabled", Value::Bool(true)),
                    ]),
                ),
                ("jwt", Value::Sequence(vec![])),
            ]),
        )],
    ));
    for (name, ty) in [("node", "Node"), ("rbac", "RBAC")] {
        docs.push(doc(
            "KubeAuthorizerConfig",
            [("name", s(name)), ("type", s(ty))],
        ));
    }
    // Secrets at rest in etcd: secretbox with the bundle's key, under the key
    // name Talos uses for it (`key2`), so a cluster moved between layouts keeps
    // decrypting its secrets.
    docs.push(doc(
        "KubeEtcdEncryptionConfig",
        [(
            "config",
            yaml_map(vec![(
                "resources",
                Value::Sequence(vec![yaml_map(vec![
                    (
                        "providers",
                        Value::Sequence(vec![yaml_map(vec![(
                            "secretbox",
                            yaml_map(vec![(
                                "keys",
                                Value::Sequence(vec![yaml_map(vec![
                                    ("name", s("key2")),
                                    ("secret", s(&secrets.secretbox_encryption_secret)),
                                ])]),
                            )]),
                        )])]),
                    ),
                    ("resources", strs(&["secrets"])),
                ])]),
            )]),
        )],
    ));
    docs.push(doc(
        "KubeServiceAccountConfig",
        [(
            "issuer",
            m([
                ("issuerURL", s(&c.endpoint)),
                ("privateKey", pem(&secrets.service_account_key)),
            ]),
        )],
    ));
    docs.push(doc(
        "KubeAPIServerConfig",
        [
            ("image", image("registry.k8s.io/kube-apiserver", kv)),
            ("certExtraSANs", list(sans)),
        ],
    ));
    docs.push(doc(
        "KubeControllerManagerConfig",
        [(
            "image",
            image("registry.k8s.io/kube-controller-manager", kv),
        )],
    ));
    docs.push(doc(
        "KubeSchedulerConfig",
        [("image", image("registry.k8s.io/kube-scheduler", kv))],
    ));
    // Cilium replaces kube-proxy; the schema still wants the image.
    docs.push(doc(
        "KubeProxyConfig",
        [
            ("enabled", Value::Bool(false)),
            ("image", image("registry.k8s.io/kube-proxy", kv)),
        ],
    ));
    docs.push(doc("KubeCoreDNSConfig", [("enabled", Value::Bool(true))]));
    docs
}

/// Where the v1.13 `v1alpha1` fields that v1.14 no longer accepts went, for the
/// error a legacy-layout patch gets (`machine.kubelet` -> `KubeletConfig`).
pub const MOVED_IN_V1_14: &[(&str, &str)] = &[
    ("machine.kubelet.nodeIP", "KubeNodeConfig `nodeIP`"),
    ("machine.kubelet.extraConfig", "KubeletConfig `config`"),
    (
        "machine.kubelet",
        "KubeletConfig (`image`, `extraArgs`, `config`, `clusterDNS`) and KubeNodeConfig (`nodeIP`, `registerWithFQDN`, `skipNodeRegistration`)",
    ),
    ("machine.nodeLabels", "KubeNodeConfig `labels`"),
    ("machine.nodeTaints", "KubeNodeConfig `taints`"),
    ("machine.nodeAnnotations", "KubeNodeConfig `annotations`"),
    ("machine.sysctls", "SysctlConfig `params`"),
    ("machine.sysfs", "SysfsConfig"),
    ("machine.udev", "UdevRulesConfig"),
    (
        "machine.install",
        "UnattendedInstall (`installer.image`, `provisioning.diskSelector`, `provisioning.wipe`)",
    ),
    ("machine.features.kubePrism", "KubePrismConfig `port`"),
    ("machine.features.hostDNS", "ResolverConfig `hostDNS`"),
    (
        "machine.features.kubernetesTalosAPIAccess",
        "KubeTalosAPIAccessConfig",
    ),
    ("cluster.id", "DiscoveryIdentityConfig `clusterID`"),
    ("cluster.secret", "DiscoveryIdentityConfig `clusterSecret`"),
    ("cluster.discovery", "DiscoveryServiceConfig"),
    ("cluster.clusterName", "KubeClusterConfig `clusterName`"),
    ("cluster.controlPlane", "KubeClusterConfig `endpoint`"),
    (
        "cluster.network",
        "KubeNetworkConfig (`podSubnets`, `serviceSubnets`, `dnsDomain`)",
    ),
    ("cluster.ca", "KubeAPIServerCAConfig"),
    ("cluster.aggregatorCA", "KubeAggregatorCAConfig"),
    ("cluster.serviceAccount", "KubeServiceAccountConfig"),
    (
        "cluster.secretboxEncryptionSecret",
        "KubeEtcdEncryptionConfig",
    ),
    ("cluster.apiServer", "KubeAPIServerConfig"),
    ("cluster.controllerManager", "KubeControllerManagerConfig"),
    ("cluster.scheduler", "KubeSchedulerConfig"),
    ("cluster.proxy", "KubeProxyConfig"),
    ("cluster.coreDNS", "KubeCoreDNSConfig"),
    ("cluster.inlineManifests", "KubeInlineManifestConfig"),
    ("cluster.extraManifests", "KubeExternalManifestConfig"),
    (
        "cluster.allowSchedulingOnControlPlanes",
        "KubeNodeConfig `taints` (remove the control-plane taint)",
    ),
];

/// The moved fields a `v1alpha1` patch document sets, most specific first:
/// `(field, where it lives in v1.14)`.
pub fn moved_fields(patch_doc: &Value) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for (path, target) in MOVED_IN_V1_14 {
        let mut cur = patch_doc;
        let mut found = true;
        for part in path.split('.') {
            match cur.get(part) {
                Some(v) => cur = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        // A general entry (`machine.kubelet`) only when the patch sets something
        // under it that no specific entry (`machine.kubelet.extraConfig`) named.
        let prefix = format!("{path}.");
        let covered: Vec<&str> = out
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(&prefix))
            .collect();
        let uncovered = match cur.as_mapping() {
            Some(map) if !covered.is_empty() => map
                .keys()
                .any(|k| k.as_str().is_some_and(|k| !covered.contains(&k))),
            _ => covered.is_empty(),
        };
        if uncovered {
            out.push((path.to_string(), target));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(yaml: &str) -> Vec<String> {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        moved_fields(&v).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn moved_fields_names_the_most_specific_paths() {
        assert_eq!(
            moved("machine:\n  kubelet:\n    extraConfig: {a: 1}\n"),
            ["machine.kubelet.extraConfig"]
        );
        assert_eq!(
            moved("machine:\n  kubelet:\n    extraConfig: {a: 1}\n    extraArgs: {v: '2'}\n"),
            ["machine.kubelet.extraConfig", "machine.kubelet"]
        );
        assert_eq!(
            moved("machine:\n  sysctls: {a: '1'}\n  certSANs: [x]\ncluster:\n  network: {}\n"),
            ["machine.sysctls", "cluster.network"]
        );
        assert!(moved("machine:\n  certSANs: [x]\ncluster:\n  etcd: {}\n").is_empty());
    }

    #[test]
    fn cel_strings_are_quoted_and_escaped() {
        assert_eq!(cel_string("/dev/sda"), "\"/dev/sda\"");
        assert_eq!(cel_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
