//! cloudflared Kubernetes manifests, rendered from the spec (pure), written
//! to `infra/apps/cloudflared/` for the platform step / Argo CD to apply.
//!
//! The namespace, its default-deny policy and the Prometheus ingress rule
//! belong to the platform (`infra/platform/namespaces/`); here: the
//! ServiceAccount, Deployment, PodDisruptionBudget and the egress policy
//! (DNS, Cloudflare's edge on 7844 UDP/TCP and 443, the origins only).

use std::path::Path;

use serde_json::{json, Value};

use crate::error::TunnelError;
use crate::spec::TunnelSpec;

/// Pinned cloudflared image.
pub const IMAGE: &str = "docker.io/cloudflare/cloudflared:2025.4.0";
/// Pinned cloudflared image under `worker_binding = "workers_vpc"`: Workers
/// VPC needs at least [`crate::spec::WORKERS_VPC_MIN_CLOUDFLARED`].
pub const IMAGE_WORKERS_VPC: &str = "docker.io/cloudflare/cloudflared:2025.7.0";

/// The image for a spec.
pub fn image(spec: &TunnelSpec) -> &'static str {
    if spec.uses_vpc() {
        IMAGE_WORKERS_VPC
    } else {
        IMAGE
    }
}
/// Namespace.
pub const NAMESPACE: &str = "cloudflared";
/// Name of the Secret holding the tunnel token (key `token`); created by the
/// platform step from [`crate::reconcile::Reconciler::tunnel_token`], never in Git.
pub const TOKEN_SECRET: &str = "cloudflared-token";
/// Metrics / readiness port.
pub const METRICS_PORT: u16 = 2000;
/// Uid of the image's nonroot user.
pub const RUN_AS_USER: u32 = 65532;
/// Cloudflare's published IPv6 ranges (the nodes are IPv6-only; cloudflared
/// runs with `TUNNEL_EDGE_IP_VERSION=6`).
pub const CLOUDFLARE_IPV6: &[&str] = &[
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

const LABELS_NAME: &str = "cloudflared";

fn labels() -> Value {
    json!({"app.kubernetes.io/name": LABELS_NAME, "app.kubernetes.io/part-of": "shopedge"})
}

fn selector() -> Value {
    json!({"app.kubernetes.io/name": LABELS_NAME})
}

/// The rendered files: (file name, YAML text), in a stable order.
pub fn render(spec: &TunnelSpec) -> Result<Vec<(String, String)>, TunnelError> {
    let docs: Vec<(&str, Value)> = vec![
        ("serviceaccount.yaml", service_account()),
        ("deployment.yaml", deployment(spec)),
        ("pdb.yaml", pdb()),
        ("networkpolicy.yaml", network_policy(spec)),
    ];
    let mut files = Vec::new();
    let mut resources = Vec::new();
    for (name, doc) in docs {
        let yaml = serde_yaml::to_string(&doc).map_err(|e| TunnelError::Manifest(e.to_string()))?;
        files.push((name.to_string(), format!("{HEADER}{yaml}")));
        resources.push(name);
    }
    let kust = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": resources,
    });
    let yaml = serde_yaml::to_string(&kust).map_err(|e| TunnelError::Manifest(e.to_string()))?;
    files.push(("kustomization.yaml".into(), format!("{HEADER}{yaml}")));
    Ok(files)
}

const HEADER: &str = "# Rendered by `provisioner tunnel render-manifests` from infra/apps/cloudflared/tunnel.toml.\n# Do not edit by hand: change the spec or tunnel/src/manifests.rs and re-render.\n";

/// Writes the rendered files into `dir`.
pub fn write(spec: &TunnelSpec, dir: &Path) -> Result<Vec<String>, TunnelError> {
    std::fs::create_dir_all(dir).map_err(|source| TunnelError::Io {
        what: "create",
        path: dir.display().to_string(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, text) in render(spec)? {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|source| TunnelError::Io {
            what: "write",
            path: path.display().to_string(),
            source,
        })?;
        written.push(name);
    }
    Ok(written)
}

/// Files in `dir` that differ from a fresh render (empty when up to date).
pub fn stale(spec: &TunnelSpec, dir: &Path) -> Result<Vec<String>, TunnelError> {
    let mut out = Vec::new();
    for (name, text) in render(spec)? {
        match std::fs::read_to_string(dir.join(&name)) {
            Ok(on_disk) if on_disk == text => {}
            _ => out.push(name),
        }
    }
    Ok(out)
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": NAMESPACE, "labels": labels()})
}

fn service_account() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta("cloudflared"),
        "automountServiceAccountToken": false,
    })
}

fn deployment(spec: &TunnelSpec) -> Value {
    let probe = |initial: u32, period: u32, failure: u32| {
        json!({
            "httpGet": {"path": "/ready", "port": METRICS_PORT},
            "initialDelaySeconds": initial,
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failure,
        })
    };
    let mut env = vec![
        json!({"name": "TUNNEL_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": TOKEN_SECRET, "key": "token"}}}),
        json!({"name": "TUNNEL_EDGE_IP_VERSION", "value": "6"}),
    ];
    if spec.uses_vpc() {
        // Workers VPC traffic needs QUIC; with `auto`, a blocked UDP 7844
        // would fall back to http2 and fail only at request time.
        env.push(json!({"name": "TUNNEL_TRANSPORT_PROTOCOL", "value": "quic"}));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("cloudflared"),
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "serviceAccountName": "cloudflared",
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "affinity": {"podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [{
                            "labelSelector": {"matchLabels": selector()},
                            "topologyKey": "kubernetes.io/hostname",
                        }],
                    }},
                    "containers": [{
                        "name": "cloudflared",
                        "image": image(spec),
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["tunnel", "--no-autoupdate", "--metrics",
                                 format!("0.0.0.0:{METRICS_PORT}"), "run"],
                        "env": env,
                        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                        "readinessProbe": probe(5, 10, 3),
                        "livenessProbe": probe(10, 10, 6),
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"cpu": "500m", "memory": "256Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "privileged": false,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

fn pdb() -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta("cloudflared"),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector()}},
    })
}

fn network_policy(spec: &TunnelSpec) -> Value {
    let cf: Vec<Value> = CLOUDFLARE_IPV6
        .iter()
        .map(|c| json!({"ipBlock": {"cidr": c}}))
        .collect();
    let mut egress = vec![
        json!({
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }),
        json!({
            "to": cf,
            "ports": [{"protocol": "UDP", "port": 7844}, {"protocol": "TCP", "port": 7844},
                      {"protocol": "TCP", "port": 443}],
        }),
    ];
    for (_, o) in spec.origins() {
        let mut peer = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": o.namespace}}});
        if !o.pod_labels.is_empty() {
            peer["podSelector"] = json!({"matchLabels": o.pod_labels});
        }
        egress.push(json!({
            "to": [peer],
            "ports": [{"protocol": "TCP", "port": o.port}],
        }));
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("cloudflared-egress"),
        "spec": {
            "podSelector": {"matchLabels": selector()},
            "policyTypes": ["Egress"],
            "egress": egress,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_five_files_with_pinned_image() {
        let spec = TunnelSpec::from_toml(
            "cluster=\"c\"\nzone=\"example.com\"\n[medusa]\nhostname=\"m.example.com\"\nnamespace=\"medusa\"\nservice=\"medusa\"\nport=9000\n",
        )
        .unwrap();
        let files = render(&spec).unwrap();
        assert_eq!(files.len(), 5);
        let dep = &files.iter().find(|f| f.0 == "deployment.yaml").unwrap().1;
        assert!(dep.contains(IMAGE) && !IMAGE.ends_with(":latest"));
        assert!(dep.contains("TUNNEL_EDGE_IP_VERSION"));
        assert!(!dep.contains("TUNNEL_TRANSPORT_PROTOCOL"));
    }

    fn version(image: &str) -> Vec<u32> {
        let tag = image.rsplit(':').next().unwrap();
        tag.split('.').map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn workers_vpc_pins_a_recent_enough_cloudflared_on_quic() {
        let spec = TunnelSpec::from_toml(
            "cluster=\"c\"\nzone=\"example.com\"\nworker_binding=\"workers_vpc\"\n[medusa]\nnamespace=\"medusa\"\nservice=\"medusa\"\nport=9000\n",
        )
        .unwrap();
        let min = version(&format!("x:{}", crate::spec::WORKERS_VPC_MIN_CLOUDFLARED));
        assert!(version(image(&spec)) >= min, "{}", image(&spec));
        let files = render(&spec).unwrap();
        let dep = &files.iter().find(|f| f.0 == "deployment.yaml").unwrap().1;
        assert!(dep.contains(IMAGE_WORKERS_VPC), "{dep}");
        assert!(dep.contains("TUNNEL_TRANSPORT_PROTOCOL"), "{dep}");
        // cloudflared still reaches Medusa's pods (the VPC service's target).
        let np = &files
            .iter()
            .find(|f| f.0 == "networkpolicy.yaml")
            .unwrap()
            .1;
        assert!(np.contains("port: 9000"), "{np}");
    }
}
