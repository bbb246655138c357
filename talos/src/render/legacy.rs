//! The Talos v1.13 layout: one `v1alpha1` document holding the machine and
//! cluster settings (kubelet, sysctls, install, network, control-plane
//! components), plus `ResolverConfig` and `RegistryMirrorConfig` documents.

use super::{
    b64, base_taints, cert_sans, install_image, list, m, opt_image, registry_mirror_docs,
    resolver_nameservers, s, smap, NodeConfigInput, Role, KUBEPRISM_PORT, QUIC_SOCKET_BUFFER,
};
use crate::secrets::SecretsBundle;
use serde_yaml::Value;

/// The un-patched documents of one node's config in the v1.13 layout.
pub(super) fn documents(input: &NodeConfigInput, secrets: &SecretsBundle) -> Vec<Value> {
    let c = &input.cluster;
    let cp = input.role == Role::ControlPlane;
    let sans = cert_sans(c);
    let kv = &c.kubernetes_version;
    let ca = |crt: &str, key: &str| {
        if cp {
            m([("crt", b64(crt)), ("key", b64(key))])
        } else {
            m([("crt", b64(crt))])
        }
    };
    let machine = m([
        ("type", s(input.role.as_str())),
        ("token", s(&secrets.trustd_token)),
        ("ca", ca(&secrets.os_ca.crt, &secrets.os_ca.key)),
        ("certSANs", list(&sans)),
        (
            "kubelet",
            m([
                ("image", opt_image("ghcr.io/siderolabs/kubelet", kv)),
                ("defaultRuntimeSeccompProfileEnabled", Value::Bool(true)),
                ("disableManifestsDirectory", Value::Bool(true)),
                ("nodeIP", m([("validSubnets", list(&c.node_subnets))])),
            ]),
        ),
        (
            "install",
            m([
                ("disk", s(&c.install_disk)),
                ("image", s(&install_image(c))),
                ("wipe", Value::Bool(false)),
            ]),
        ),
        (
            "sysctls",
            m([
                ("net.core.rmem_max", s(QUIC_SOCKET_BUFFER)),
                ("net.core.wmem_max", s(QUIC_SOCKET_BUFFER)),
            ]),
        ),
        (
            "features",
            m([
                ("diskQuotaSupport", Value::Bool(true)),
                (
                    "kubePrism",
                    m([
                        ("enabled", Value::Bool(true)),
                        ("port", Value::Number(KUBEPRISM_PORT.into())),
                    ]),
                ),
                (
                    "hostDNS",
                    m([
                        ("enabled", Value::Bool(true)),
                        ("forwardKubeDNSToHost", Value::Bool(true)),
                    ]),
                ),
            ]),
        ),
        ("nodeLabels", smap(&input.node_labels)),
        ("nodeTaints", smap(&base_taints(input))),
    ]);
    let cp_only = |v: Value| if cp { v } else { Value::Null };
    let cluster = m([
        ("id", s(&secrets.cluster_id)),
        ("secret", s(&secrets.cluster_secret)),
        ("controlPlane", m([("endpoint", s(&c.endpoint))])),
        ("clusterName", s(&c.cluster_name)),
        (
            "network",
            m([
                ("cni", m([("name", s("none"))])),
                ("dnsDomain", s("cluster.local")),
                ("podSubnets", list(&c.pod_subnets)),
                ("serviceSubnets", list(&c.service_subnets)),
            ]),
        ),
        ("token", s(&secrets.bootstrap_token)),
        (
            "secretboxEncryptionSecret",
            cp_only(s(&secrets.secretbox_encryption_secret)),
        ),
        ("ca", ca(&secrets.k8s_ca.crt, &secrets.k8s_ca.key)),
        (
            "aggregatorCA",
            cp_only(m([
                ("crt", b64(&secrets.k8s_aggregator_ca.crt)),
                ("key", b64(&secrets.k8s_aggregator_ca.key)),
            ])),
        ),
        (
            "serviceAccount",
            cp_only(m([("key", b64(&secrets.service_account_key))])),
        ),
        (
            "apiServer",
            cp_only(m([
                ("image", opt_image("registry.k8s.io/kube-apiserver", kv)),
                ("certSANs", list(&sans)),
            ])),
        ),
        (
            "controllerManager",
            cp_only(m([(
                "image",
                opt_image("registry.k8s.io/kube-controller-manager", kv),
            )])),
        ),
        ("proxy", m([("disabled", Value::Bool(true))])),
        (
            "scheduler",
            cp_only(m([(
                "image",
                opt_image("registry.k8s.io/kube-scheduler", kv),
            )])),
        ),
        ("discovery", m([("enabled", Value::Bool(true))])),
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
        (
            "allowSchedulingOnControlPlanes",
            cp_only(Value::Bool(false)),
        ),
    ]);
    let mut docs = vec![m([
        ("version", s("v1alpha1")),
        ("debug", Value::Bool(false)),
        ("machine", machine),
        ("cluster", cluster),
    ])];
    if !c.nameservers.is_empty() {
        docs.push(m([
            ("apiVersion", s("v1alpha1")),
            ("kind", s("ResolverConfig")),
            ("nameservers", resolver_nameservers(c)),
        ]));
    }
    docs.extend(registry_mirror_docs(c));
    docs
}
