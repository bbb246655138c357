//! The cluster section of `provisioner status`: nodes, add-on rollouts,
//! Argo CD applications and cloudflared's tunnel connections. Serialisable
//! for `--output json`.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use crate::apply::{daemonset_rollout, deployment_rollout, statefulset_rollout, Rollout};
use crate::error::PlatformError;
use crate::kubeconfig::Connection;
use crate::plan::LABEL_ADDON;

/// Where to look for the things `status` reports.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub argocd_namespace: String,
    pub cloudflared_namespace: String,
    pub cloudflared_deployment: String,
    /// cloudflared's `--metrics` port.
    pub cloudflared_metrics_port: u16,
}

impl Default for StatusOptions {
    fn default() -> Self {
        Self {
            argocd_namespace: "argocd".into(),
            cloudflared_namespace: "cloudflared".into(),
            cloudflared_deployment: "cloudflared".into(),
            cloudflared_metrics_port: 2000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub ready: bool,
    pub roles: Vec<String>,
    pub kubelet_version: String,
    pub addresses: Vec<String>,
    /// The Ready condition's reason/message when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkloadStatus {
    pub addon: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub rollout: Rollout,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApplicationStatus {
    pub name: String,
    pub sync: String,
    pub health: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct CloudflaredStatus {
    pub desired: i32,
    pub ready: i32,
    /// Sum of `cloudflared_tunnel_ha_connections` over the ready pods, when
    /// their metrics could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    pub pods: Vec<CloudflaredPod>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CloudflaredPod {
    pub name: String,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClusterStatus {
    pub server: String,
    pub nodes: Vec<NodeStatus>,
    pub addons: Vec<WorkloadStatus>,
    /// `None` when Argo CD is not installed yet.
    pub applications: Option<Vec<ApplicationStatus>>,
    /// `None` when cloudflared is not deployed yet.
    pub cloudflared: Option<CloudflaredStatus>,
}

fn api_err(what: &str) -> impl Fn(kube::Error) -> PlatformError + '_ {
    move |source| PlatformError::Status {
        what: what.to_string(),
        source,
    }
}

fn is_404(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Read the cluster's state. An unreachable server is an error; a missing
/// Argo CD or cloudflared is reported as `None`.
pub async fn cluster_status(
    conn: &Connection,
    opts: &StatusOptions,
) -> Result<ClusterStatus, PlatformError> {
    crate::apply::preflight(conn).await?;
    let c = conn.client.clone();

    let nodes = Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await
        .map_err(api_err("nodes"))?;
    let nodes = nodes.items.iter().map(node_status).collect();

    let lp = ListParams::default().labels(LABEL_ADDON);
    let mut addons = Vec::new();
    let addon_of = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.labels
            .as_ref()
            .and_then(|l| l.get(LABEL_ADDON))
            .cloned()
            .unwrap_or_default()
    };
    for d in Api::<Deployment>::all(c.clone())
        .list(&lp)
        .await
        .map_err(api_err("deployments"))?
        .items
    {
        addons.push(WorkloadStatus {
            addon: addon_of(&d.metadata),
            kind: "Deployment".into(),
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            rollout: deployment_rollout(&d),
        });
    }
    for d in Api::<DaemonSet>::all(c.clone())
        .list(&lp)
        .await
        .map_err(api_err("daemonsets"))?
        .items
    {
        addons.push(WorkloadStatus {
            addon: addon_of(&d.metadata),
            kind: "DaemonSet".into(),
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            rollout: daemonset_rollout(&d),
        });
    }
    for d in Api::<StatefulSet>::all(c.clone())
        .list(&lp)
        .await
        .map_err(api_err("statefulsets"))?
        .items
    {
        addons.push(WorkloadStatus {
            addon: addon_of(&d.metadata),
            kind: "StatefulSet".into(),
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            rollout: statefulset_rollout(&d),
        });
    }
    addons
        .sort_by(|a, b| (&a.addon, &a.namespace, &a.name).cmp(&(&b.addon, &b.namespace, &b.name)));

    let ar = ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Application".into(),
        plural: "applications".into(),
    };
    let apps = match Api::<DynamicObject>::namespaced_with(c.clone(), &opts.argocd_namespace, &ar)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => Some(list.items.iter().map(app_status).collect()),
        Err(e) if is_404(&e) => None,
        Err(e) => return Err(api_err("Argo CD applications")(e)),
    };

    let cloudflared = cloudflared_status(&c, opts).await?;
    Ok(ClusterStatus {
        server: conn.server.clone(),
        nodes,
        addons,
        applications: apps,
        cloudflared,
    })
}

fn node_status(n: &Node) -> NodeStatus {
    let st = n.status.clone().unwrap_or_default();
    let ready_cond = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .cloned();
    let ready = ready_cond.as_ref().is_some_and(|c| c.status == "True");
    let mut roles: Vec<String> = n
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    roles.sort();
    NodeStatus {
        name: n.metadata.name.clone().unwrap_or_default(),
        ready,
        roles,
        kubelet_version: st
            .node_info
            .as_ref()
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default(),
        addresses: st
            .addresses
            .iter()
            .flatten()
            .map(|a| format!("{}={}", a.type_, a.address))
            .collect(),
        reason: if ready {
            None
        } else {
            ready_cond.map(|c| {
                format!(
                    "{}: {}",
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default()
                )
            })
        },
    }
}

fn app_status(a: &DynamicObject) -> ApplicationStatus {
    let s = |p: &str| {
        a.data
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    ApplicationStatus {
        name: a.metadata.name.clone().unwrap_or_default(),
        sync: s("/status/sync/status").unwrap_or_else(|| "Unknown".into()),
        health: s("/status/health/status").unwrap_or_else(|| "Unknown".into()),
        revision: s("/status/sync/revision"),
    }
}

/// Parse the `cloudflared_tunnel_ha_connections` gauge from Prometheus text.
pub fn parse_ha_connections(metrics: &str) -> Option<u32> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let name = name.split('{').next()?.trim();
            (name == "cloudflared_tunnel_ha_connections")
                .then(|| value.trim().parse::<f64>().ok().map(|v| v as u32))?
        })
}

async fn cloudflared_status(
    c: &kube::Client,
    opts: &StatusOptions,
) -> Result<Option<CloudflaredStatus>, PlatformError> {
    let ns = &opts.cloudflared_namespace;
    let d = match Api::<Deployment>::namespaced(c.clone(), ns)
        .get_opt(&opts.cloudflared_deployment)
        .await
    {
        Ok(Some(d)) => d,
        Ok(None) => return Ok(None),
        Err(e) if is_404(&e) => return Ok(None),
        Err(e) => return Err(api_err("cloudflared deployment")(e)),
    };
    let r = deployment_rollout(&d);
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_err("cloudflared pods"))?;
    let mut out = Vec::new();
    let mut total: Option<u32> = None;
    for p in pods.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let (mut connections, mut error) = (None, None);
        if ready {
            // Through the API server's pod proxy: no port is opened for this.
            let path = format!(
                "/api/v1/namespaces/{ns}/pods/{name}:{}/proxy/metrics",
                opts.cloudflared_metrics_port
            );
            match http::Request::get(path).body(Vec::new()) {
                Ok(req) => match c.request_text(req).await {
                    Ok(text) => {
                        connections = parse_ha_connections(&text);
                        if connections.is_none() {
                            error =
                                Some("metrics have no cloudflared_tunnel_ha_connections".into());
                        }
                    }
                    Err(e) => error = Some(format!("metrics unavailable: {e}")),
                },
                Err(e) => error = Some(e.to_string()),
            }
        }
        if let Some(n) = connections {
            total = Some(total.unwrap_or(0) + n);
        }
        out.push(CloudflaredPod {
            name,
            ready,
            connections,
            error,
        });
    }
    Ok(Some(CloudflaredStatus {
        desired: r.desired,
        ready: r.ready_replicas,
        connections: total,
        pods: out,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_gauge() {
        let t = "# HELP cloudflared_tunnel_ha_connections Number of active ha connections\n# TYPE cloudflared_tunnel_ha_connections gauge\ncloudflared_tunnel_ha_connections 4\ncloudflared_tunnel_total_requests 17\n";
        assert_eq!(super::parse_ha_connections(t), Some(4));
        assert_eq!(super::parse_ha_connections("other 1\n"), None);
    }
}
