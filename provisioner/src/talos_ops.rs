//! The Talos steps around the Hetzner reconciler: bootstrap of the first
//! control-plane node after `up`, and the admin client configs (`kubeconfig`,
//! `talosconfig`). Only for `machine_config.generated`; the secrets bundle comes
//! from [`crate::userdata::GeneratedUserData`].

use crate::hcloud::types::Server;
use crate::hcloud::{Client, HcloudError};
use crate::plan::{self, LABEL_ROLE};
use crate::userdata::GeneratedUserData;
use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;
use talos::{BootstrapOptions, BootstrapReport, SecretsBundle, TalosClientCreds, TalosError};

/// Overrides the Talos API address of the first control-plane node (`host:port`),
/// e.g. when it is reached through a tunnel or in tests.
pub const TALOS_ENDPOINT_ENV: &str = "SHOPEDGE_TALOS_ENDPOINT";

#[derive(Debug, thiserror::Error)]
pub enum TalosStepError {
    #[error(transparent)]
    Talos(#[from] TalosError),
    #[error(transparent)]
    Api(#[from] HcloudError),
    #[error("{TALOS_ENDPOINT_ENV}={value:?} is not a socket address: write host:port, e.g. [2001:db8::1]:50000")]
    BadEndpoint { value: String },
    #[error("control-plane server {name} has no public IPv6 address yet: re-run `provisioner up`")]
    NoAddress { name: String },
    #[error("cluster {0} has no control-plane server: run `provisioner up` first")]
    NoControlPlane(String),
}

/// The address a server answers on: Hetzner reports its IPv6 as the /64 network
/// (`2a01:4f8:c0c:1234::/64`), on which the server takes `::1`; a plain address is
/// taken as is.
pub fn node_address(ip: &str) -> Option<Ipv6Addr> {
    match ip.split_once('/') {
        Some((net, _)) => {
            let mut seg = net.parse::<Ipv6Addr>().ok()?.segments();
            seg[7] = 1;
            Some(Ipv6Addr::from(seg))
        }
        None => ip.parse().ok(),
    }
}

/// The cluster's control-plane servers, in name order (`<cluster>-cp-1` first).
pub async fn control_planes(client: &Client, cluster: &str) -> Result<Vec<Server>, HcloudError> {
    let mut cps: Vec<Server> = client
        .servers(&plan::owned_selector(cluster))
        .await?
        .into_iter()
        .filter(|s| s.labels.get(LABEL_ROLE).map(String::as_str) == Some("control-plane"))
        .collect();
    cps.sort_by_key(|s| {
        s.name
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    Ok(cps)
}

/// IPv6 addresses of servers.
pub fn addresses(servers: &[Server]) -> Result<Vec<Ipv6Addr>, TalosStepError> {
    servers
        .iter()
        .map(|s| {
            s.public_net
                .ipv6
                .as_ref()
                .and_then(|i| node_address(&i.ip))
                .ok_or_else(|| TalosStepError::NoAddress {
                    name: s.name.clone(),
                })
        })
        .collect()
}

/// The Talos API address of the first control-plane node, or the override.
pub fn talos_endpoint(
    vars: &BTreeMap<String, String>,
    first_cp: Option<Ipv6Addr>,
    cluster: &str,
) -> Result<SocketAddr, TalosStepError> {
    if let Some(v) = vars.get(TALOS_ENDPOINT_ENV).filter(|v| !v.is_empty()) {
        return v
            .parse()
            .map_err(|_| TalosStepError::BadEndpoint { value: v.clone() });
    }
    let ip = first_cp.ok_or_else(|| TalosStepError::NoControlPlane(cluster.to_string()))?;
    Ok(SocketAddr::from((ip, talos::TALOS_API_PORT)))
}

/// Bootstraps etcd on the first control-plane node (exactly once: a node that is
/// already bootstrapped counts as success) and waits for the Kubernetes API and
/// `expected_nodes` nodes. The node must run the spec's Talos minor release (a
/// patch-level difference is a warning). `scale` multiplies the poll interval (tests).
pub async fn bootstrap(
    g: &GeneratedUserData,
    addr: SocketAddr,
    expected_nodes: usize,
    scale: f64,
    progress: Option<talos::bootstrap::ProgressFn>,
) -> Result<BootstrapReport, TalosStepError> {
    let now = time::OffsetDateTime::now_utc();
    let creds = TalosClientCreds::issue_admin(g.secrets(), &mut rand::rngs::OsRng, now)?;
    let kubeconfig = kubeconfig(g.secrets(), &g.cluster.cluster_name, &g.cluster.endpoint)?;
    let k8s = talos::KubeApiReadiness::from_kubeconfig(&kubeconfig)?;
    let defaults = BootstrapOptions::default();
    let opts = BootstrapOptions {
        poll_interval: defaults
            .poll_interval
            .mul_f64(scale.clamp(0.0, 1.0))
            .max(Duration::from_millis(10)),
        expected_nodes,
        expected_talos_version: Some(g.cluster.talos_version.clone()),
        progress,
        ..defaults
    };
    Ok(talos::bootstrap(addr, &creds, &k8s, &opts).await?)
}

/// An admin kubeconfig for `cluster` at `server` (`https://host:6443`); the client
/// certificate is issued locally from the Kubernetes CA.
pub fn kubeconfig(
    secrets: &SecretsBundle,
    cluster: &str,
    server: &str,
) -> Result<talos::zeroize::Zeroizing<String>, TalosStepError> {
    Ok(talos::admin_kubeconfig(
        secrets,
        cluster,
        server,
        &mut rand::rngs::OsRng,
        time::OffsetDateTime::now_utc(),
    )?)
}

/// A talosconfig with an admin certificate from the Talos API CA, for `endpoints`
/// (and the same nodes).
pub fn talosconfig(
    secrets: &SecretsBundle,
    cluster: &str,
    endpoints: &[String],
) -> Result<talos::zeroize::Zeroizing<String>, TalosStepError> {
    let creds = TalosClientCreds::issue_admin(
        secrets,
        &mut rand::rngs::OsRng,
        time::OffsetDateTime::now_utc(),
    )?;
    Ok(talos::talosconfig(&creds, cluster, endpoints, endpoints)?)
}

/// The host of an `https://host:port` endpoint (brackets of IPv6 literals removed).
pub fn endpoint_host(endpoint: &str) -> Option<String> {
    let u = url::Url::parse(endpoint).ok()?;
    Some(
        u.host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_address_takes_one_of_the_network() {
        assert_eq!(
            node_address("2a01:4f8:c0c:1234::/64"),
            Some("2a01:4f8:c0c:1234::1".parse().unwrap())
        );
        assert_eq!(
            node_address("2a01:4ff:1f0:7::1"),
            Some("2a01:4ff:1f0:7::1".parse().unwrap())
        );
        assert_eq!(node_address("nope"), None);
    }

    #[test]
    fn talos_endpoint_default_and_override() {
        let mut vars = BTreeMap::new();
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            talos_endpoint(&vars, Some(ip), "c").unwrap().to_string(),
            "[2001:db8::1]:50000"
        );
        assert!(talos_endpoint(&vars, None, "c")
            .unwrap_err()
            .to_string()
            .contains("provisioner up"));
        vars.insert(TALOS_ENDPOINT_ENV.into(), "127.0.0.1:4000".into());
        assert_eq!(
            talos_endpoint(&vars, None, "c").unwrap().to_string(),
            "127.0.0.1:4000"
        );
        vars.insert(TALOS_ENDPOINT_ENV.into(), "bad".into());
        assert!(talos_endpoint(&vars, None, "c")
            .unwrap_err()
            .to_string()
            .contains(TALOS_ENDPOINT_ENV));
    }

    #[test]
    fn endpoint_host_strips_brackets() {
        assert_eq!(
            endpoint_host("https://[2001:db8::1]:6443").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            endpoint_host("https://api.example.com:6443").as_deref(),
            Some("api.example.com")
        );
    }
}
