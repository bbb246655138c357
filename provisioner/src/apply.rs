//! Observing the cluster and executing a plan: independent steps in parallel
//! (bounded), dependent ones in order, actions waited for.

use crate::hcloud::types::*;
use crate::hcloud::{Client, HcloudError};
use crate::plan::{self, Observed, Plan, Step};
use crate::progress::Progress;
use crate::spec::ClusterSpec;
use crate::userdata::{UserDataError, UserDataSource};
use futures::future::join_all;
use futures::FutureExt;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Api(#[from] HcloudError),
    #[error(transparent)]
    UserData(#[from] UserDataError),
    #[error("no image matches selector {selector:?}: upload a Talos snapshot with these labels (see Talos's Hetzner guide) or set image.id")]
    NoImage { selector: String },
    #[error("image {id} does not exist: {source}")]
    ImageMissing {
        id: u64,
        #[source]
        source: HcloudError,
    },
    #[error("{what} {value:?} is not offered by Hetzner: use one of {valid}")]
    Unknown {
        what: &'static str,
        value: String,
        valid: String,
    },
    #[error("server type {server_type:?} is not offered in {locations}: choose another type or a location where it is offered ({offered})")]
    NotInLocation {
        server_type: String,
        locations: String,
        offered: String,
    },
    #[error("{count} server(s) must be replaced ({details}); re-run with --allow-replace to delete and re-create them")]
    ReplaceNeedsConsent { count: usize, details: String },
    #[error("server {name} could not be created in any location ({tried}): {source}")]
    NoCapacity {
        name: String,
        tried: String,
        #[source]
        source: HcloudError,
    },
    #[error("a {kind} named {name:?} already exists but is not owned by this cluster (no matching cluster/managed-by labels): rename the cluster or remove that resource")]
    Foreign { kind: String, name: String },
    #[error("{what} {name} was not created by an earlier step")]
    Missing { what: &'static str, name: String },
    #[error("{count} step(s) failed:\n{}", .errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Many { count: usize, errors: Vec<String> },
}

/// Lists everything this cluster owns (four reads, in parallel).
pub async fn observe(client: &Client, cluster: &str) -> Result<Observed, HcloudError> {
    let sel = plan::owned_selector(cluster);
    let (networks, groups, firewalls, servers) = futures::try_join!(
        client.networks(&sel),
        client.placement_groups(&sel),
        client.firewalls(&sel),
        client.servers(&sel),
    )?;
    Ok(Observed {
        networks,
        groups,
        firewalls,
        servers,
        ..Default::default()
    })
}

/// Checks locations and server types against the API, then resolves the image
/// (newest snapshot matching the selector). Three reads.
pub async fn check_and_resolve(client: &Client, spec: &ClusterSpec) -> Result<u64, ApplyError> {
    let (locations, types) = futures::try_join!(client.locations(), client.server_types())?;
    let loc_names: Vec<&str> = locations.iter().map(|l| l.name.as_str()).collect();
    for loc in std::iter::once(&spec.location).chain(&spec.fallback_locations) {
        if !loc_names.contains(&loc.as_str()) {
            return Err(ApplyError::Unknown {
                what: "location",
                value: loc.clone(),
                valid: loc_names.join(", "),
            });
        }
    }
    let type_names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    let wanted = std::iter::once(&spec.control_plane.server_type)
        .chain(spec.worker_pools.iter().map(|p| &p.server_type));
    for t in wanted {
        let Some(st) = types.iter().find(|x| &x.name == t) else {
            return Err(ApplyError::Unknown {
                what: "server type",
                value: t.clone(),
                valid: type_names.join(", "),
            });
        };
        // Each type must be orderable in the main location or a fallback.
        let offered: Vec<&str> = st.locations.iter().map(|l| l.name.as_str()).collect();
        let usable = std::iter::once(&spec.location)
            .chain(&spec.fallback_locations)
            .any(|l| offered.contains(&l.as_str()));
        if !offered.is_empty() && !usable {
            return Err(ApplyError::NotInLocation {
                server_type: t.clone(),
                locations: std::iter::once(spec.location.clone())
                    .chain(spec.fallback_locations.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", "),
                offered: offered.join(", "),
            });
        }
    }
    resolve_image(client, spec).await
}

pub async fn resolve_image(client: &Client, spec: &ClusterSpec) -> Result<u64, ApplyError> {
    if let Some(id) = spec.image.id {
        client
            .image(id)
            .await
            .map_err(|source| ApplyError::ImageMissing { id, source })?;
        return Ok(id);
    }
    let selector = spec.image.selector.clone().unwrap_or_default();
    let mut images = client.images(&selector).await?;
    // Newest first; ties broken by id.
    images.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    images
        .first()
        .map(|i| i.id)
        .ok_or(ApplyError::NoImage { selector })
}

/// The result of [`up`].
#[derive(Debug, Clone)]
pub struct UpReport {
    pub plan: Plan,
    pub outcome: Outcome,
}

/// Converges the cluster's infrastructure: renders every node's user data (failing
/// before any request when one is invalid), checks the spec against the API,
/// observes, plans and executes. The Talos step calls this, then bootstraps; it
/// finds the servers' addresses with [`observe`].
pub async fn up(
    client: &Client,
    spec: &ClusterSpec,
    source: &dyn UserDataSource,
    progress: Progress,
    allow_replace: bool,
) -> Result<UpReport, ApplyError> {
    let mut hashes = BTreeMap::new();
    for n in plan::nodes(spec) {
        let ud = source.user_data_for(&n)?;
        hashes.insert(n.name.clone(), crate::spec::short_hash(&ud));
    }
    let image = check_and_resolve(client, spec).await?;
    let observed = observe(client, &spec.name).await?;
    let h = |n: &crate::userdata::Node| hashes.get(&n.name).cloned().unwrap_or_default();
    let desired = plan::desired(spec, image, &h);
    let plan = plan::plan_up(&desired, &observed);
    let exec = Executor {
        client,
        spec: Some(spec),
        user_data: Some(source),
        progress,
        allow_replace,
        settle: Default::default(),
    };
    let outcome = exec.run(&plan, &observed).await?;
    Ok(UpReport { plan, outcome })
}

/// What running a plan did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Outcome {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

pub struct Executor<'a> {
    pub client: &'a Client,
    pub spec: Option<&'a ClusterSpec>,
    pub user_data: Option<&'a dyn UserDataSource>,
    pub progress: Progress,
    pub allow_replace: bool,
    /// Set when a server was adopted and must be waited for.
    pub settle: std::sync::atomic::AtomicBool,
}

type Shared<T> = Arc<std::sync::Mutex<T>>;

fn push(v: &Shared<Vec<String>>, s: String) {
    if let Ok(mut v) = v.lock() {
        v.push(s);
    }
}

fn not_found_ok<T>(r: Result<T, HcloudError>) -> Result<Option<T>, HcloudError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == Some("not_found") => Ok(None),
        Err(e) => Err(e),
    }
}

impl Executor<'_> {
    /// Runs `plan` against `observed` (the state it was planned from).
    pub async fn run(&self, plan: &Plan, observed: &Observed) -> Result<Outcome, ApplyError> {
        let replacements: Vec<String> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ReplaceServer { server, reason, .. } => {
                    Some(format!("{}: {reason}", server.node.name))
                }
                _ => None,
            })
            .collect();
        if !replacements.is_empty() && !self.allow_replace {
            return Err(ApplyError::ReplaceNeedsConsent {
                count: replacements.len(),
                details: replacements.join("; "),
            });
        }
        // Render all user data before the first mutating request.
        let mut user_data = BTreeMap::new();
        for s in &plan.steps {
            if let Step::CreateServer { server } | Step::ReplaceServer { server, .. } = s {
                let ud = self
                    .user_data
                    .ok_or(ApplyError::Missing {
                        what: "user data source for",
                        name: server.node.name.clone(),
                    })?
                    .user_data_for(&server.node)?;
                user_data.insert(server.node.name.clone(), ud);
            }
        }

        let created: Shared<Vec<String>> = Arc::default();
        let updated: Shared<Vec<String>> = Arc::default();
        let deleted: Shared<Vec<String>> = Arc::default();
        let mut errors: Vec<String> = Vec::new();

        let mut network_id = observed.networks.first().map(|n| n.id);
        let mut groups: BTreeMap<String, u64> = observed
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.id))
            .collect();
        let mut pending_actions: Vec<Action> = Vec::new();

        // Phase 1: network, placement groups, firewall (independent of each other).
        let phase1 = plan.steps.iter().filter(|s| {
            matches!(
                s,
                Step::CreateNetwork { .. }
                    | Step::CreatePlacementGroup { .. }
                    | Step::CreateFirewall { .. }
                    | Step::SetFirewallRules { .. }
                    | Step::ApplyFirewall { .. }
                    | Step::UpdateServerLabels { .. }
            )
        });
        let results = join_all(phase1.map(|s| self.phase1_step(s))).await;
        for r in results {
            match r {
                Ok(P1::Network(id, name)) => {
                    network_id = Some(id);
                    push(&created, format!("network {name}"));
                }
                Ok(P1::Group(id, name)) => {
                    groups.insert(name.clone(), id);
                    push(&created, format!("placement group {name}"));
                }
                Ok(P1::Actions(mut a, what, is_create)) => {
                    pending_actions.append(&mut a);
                    push(if is_create { &created } else { &updated }, what);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(many(errors));
        }

        // Phase 2: deletions of servers (scale down, replacement), waited for.
        let deletes = plan.steps.iter().filter_map(|s| match s {
            Step::DeleteServer { id, name, .. } => Some((*id, name.clone())),
            Step::ReplaceServer { id, server, .. } => Some((*id, server.node.name.clone())),
            _ => None,
        });
        let del_results = join_all(deletes.map(|(id, name)| {
            let deleted = deleted.clone();
            async move {
                let task = self.progress.start(format!("delete server {name}"));
                let r = async {
                    if let Some(Some(a)) = not_found_ok(self.client.delete("servers", id).await)? {
                        self.client.wait_actions(vec![a]).await?;
                    }
                    Ok::<_, HcloudError>(())
                }
                .await;
                match &r {
                    Ok(()) => {
                        task.done();
                        push(&deleted, format!("server {name}"));
                    }
                    Err(e) => task.failed(&e.to_string()),
                }
                r
            }
        }))
        .await;
        errors.extend(
            del_results
                .into_iter()
                .filter_map(|r| r.err())
                .map(|e| e.to_string()),
        );
        if !errors.is_empty() {
            return Err(many(errors));
        }

        // Phase 3: server creates, in parallel, all actions polled together.
        let creates: Vec<&plan::DesiredServer> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::CreateServer { server } | Step::ReplaceServer { server, .. } => Some(server),
                _ => None,
            })
            .collect();
        if !creates.is_empty() {
            let net = network_id.ok_or(ApplyError::Missing {
                what: "network",
                name: plan.cluster.clone(),
            })?;
            let tasks = creates.iter().map(|ds| {
                let ud = user_data.get(&ds.node.name).cloned().unwrap_or_default();
                let pg = groups.get(&ds.placement_group).copied();
                async move {
                    let pg = pg.ok_or(ApplyError::Missing {
                        what: "placement group",
                        name: ds.placement_group.clone(),
                    })?;
                    let task = self
                        .progress
                        .start(format!("create server {}", ds.node.name));
                    match self.create_server(ds, net, pg, ud).await {
                        Ok(actions) => Ok((task, ds.node.name.clone(), actions)),
                        Err(e) => {
                            task.failed(&e.to_string());
                            Err(e)
                        }
                    }
                }
            });
            let mut started = Vec::new();
            for r in join_all(tasks).await {
                match r {
                    Ok(t) => started.push(t),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            let actions: Vec<Action> = started
                .iter()
                .flat_map(|(_, _, a)| a.iter().cloned())
                .chain(pending_actions.drain(..))
                .collect();
            let waited = self.client.wait_actions(actions).await;
            for (task, name, _) in started {
                match &waited {
                    Ok(()) => {
                        task.done();
                        push(&created, format!("server {name}"));
                    }
                    Err(e) => task.failed(&e.to_string()),
                }
            }
            if let Err(e) = waited {
                errors.push(e.to_string());
            }
        }
        if !pending_actions.is_empty() {
            if let Err(e) = self.client.wait_actions(pending_actions).await {
                errors.push(e.to_string());
            }
        }
        if !errors.is_empty() {
            return Err(many(errors));
        }

        // Servers found half-made (a crash or a lost answer in an earlier run) are
        // waited for until they run.
        let unsettled = observed
            .servers
            .iter()
            .any(|s| matches!(s.status.as_str(), "initializing" | "starting"));
        if unsettled || self.settle.load(std::sync::atomic::Ordering::Relaxed) {
            self.wait_servers_running(&plan.cluster).await?;
        }

        // Phase 4: removals that depend on servers being gone.
        self.delete_rest(plan, &deleted).await?;

        let take = |v: Shared<Vec<String>>| v.lock().map(|v| v.clone()).unwrap_or_default();
        Ok(Outcome {
            created: take(created),
            updated: take(updated),
            deleted: take(deleted),
        })
    }

    /// Polls the cluster's servers (one request per round) until none is still
    /// initializing or starting.
    async fn wait_servers_running(&self, cluster: &str) -> Result<(), ApplyError> {
        let cfg = self.client.config();
        let sel = plan::owned_selector(cluster);
        let started = tokio::time::Instant::now();
        let mut interval = cfg.poll_initial;
        let task = self.progress.start("wait for servers created earlier");
        loop {
            let servers = self.client.servers(&sel).await?;
            let waiting: Vec<&str> = servers
                .iter()
                .filter(|s| matches!(s.status.as_str(), "initializing" | "starting"))
                .map(|s| s.name.as_str())
                .collect();
            if waiting.is_empty() {
                task.done();
                return Ok(());
            }
            if started.elapsed() > cfg.action_timeout {
                let msg = format!(
                    "still starting after {:?}: {}",
                    cfg.action_timeout,
                    waiting.join(", ")
                );
                task.failed(&msg);
                return Err(ApplyError::Many {
                    count: waiting.len(),
                    errors: vec![msg],
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(cfg.poll_max);
        }
    }

    async fn phase1_step(&self, s: &Step) -> Result<P1, ApplyError> {
        let task = self.progress.start(s.describe());
        let r = self.phase1_inner(s).await;
        match &r {
            Ok(_) => task.done(),
            Err(e) => task.failed(&e.to_string()),
        }
        r
    }

    async fn phase1_inner(&self, s: &Step) -> Result<P1, ApplyError> {
        let c = self.client;
        Ok(match s {
            Step::CreateNetwork {
                name,
                ip_range,
                subnet,
                labels,
            } => {
                let id = match c
                    .create_network(&CreateNetwork {
                        name: name.clone(),
                        ip_range: ip_range.clone(),
                        labels: labels.clone(),
                        subnets: vec![subnet.clone()],
                    })
                    .await
                {
                    Ok(n) => n.id,
                    Err(e) => adopt(c, "networks", name, labels, e).await?,
                };
                P1::Network(id, name.clone())
            }
            Step::CreatePlacementGroup { name, labels } => {
                let id = match c
                    .create_placement_group(&CreatePlacementGroup {
                        name: name.clone(),
                        kind: "spread".into(),
                        labels: labels.clone(),
                    })
                    .await
                {
                    Ok(g) => g.id,
                    Err(e) => adopt(c, "placement_groups", name, labels, e).await?,
                };
                P1::Group(id, name.clone())
            }
            Step::CreateFirewall {
                name,
                labels,
                rules,
                apply_to,
            } => {
                let actions = match c
                    .create_firewall(&CreateFirewall {
                        name: name.clone(),
                        labels: labels.clone(),
                        rules: rules.clone(),
                        apply_to: apply_to.clone(),
                    })
                    .await
                {
                    Ok((_, a)) => a,
                    Err(e) => {
                        adopt(c, "firewalls", name, labels, e).await?;
                        vec![]
                    }
                };
                P1::Actions(actions, format!("firewall {name}"), true)
            }
            Step::SetFirewallRules { id, name, rules } => {
                let a = c.set_firewall_rules(*id, rules).await?;
                P1::Actions(a, format!("firewall {name} rules"), false)
            }
            Step::ApplyFirewall { id, name, apply_to } => {
                let a = c.apply_firewall_to(*id, apply_to).await?;
                P1::Actions(a, format!("firewall {name} targets"), false)
            }
            Step::UpdateServerLabels {
                id, name, labels, ..
            } => {
                c.set_labels("servers", *id, labels).await?;
                P1::Actions(vec![], format!("server {name} labels"), false)
            }
            _ => P1::Actions(vec![], String::new(), false),
        })
    }

    /// Creates one server, trying the fallback locations on capacity errors.
    async fn create_server(
        &self,
        ds: &plan::DesiredServer,
        network: u64,
        group: u64,
        user_data: String,
    ) -> Result<Vec<Action>, ApplyError> {
        let (main, fallbacks) = match self.spec {
            Some(s) => (s.location.clone(), s.fallback_locations.clone()),
            None => ("hil".to_string(), vec![]),
        };
        let mut tried = Vec::new();
        let mut last = None;
        for loc in std::iter::once(main).chain(fallbacks) {
            let req = CreateServer {
                name: ds.node.name.clone(),
                server_type: ds.server_type.clone(),
                image: ds.image.to_string(),
                location: loc.clone(),
                labels: ds.labels.clone(),
                networks: vec![network],
                placement_group: group,
                public_net: CreatePublicNet {
                    enable_ipv4: false,
                    enable_ipv6: true,
                },
                user_data: user_data.clone(),
                start_after_create: true,
            };
            match self.client.create_server(&req).await {
                Ok((_, actions)) => return Ok(actions),
                Err(e) if e.code() == Some("uniqueness_error") => {
                    adopt(self.client, "servers", &ds.node.name, &ds.labels, e).await?;
                    self.settle
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    return Ok(vec![]);
                }
                Err(e)
                    if matches!(
                        e.code(),
                        Some(
                            "resource_unavailable" | "resource_limit_exceeded" | "placement_error"
                        )
                    ) =>
                {
                    tracing::warn!(server = %ds.node.name, location = %loc, error = %e, "no capacity, trying the next location");
                    tried.push(loc);
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(match last {
            Some(source) => ApplyError::NoCapacity {
                name: ds.node.name.clone(),
                tried: tried.join(", "),
                source,
            },
            None => ApplyError::Missing {
                what: "location for server",
                name: ds.node.name.clone(),
            },
        })
    }

    /// Load balancers, volumes, firewalls, placement groups, then networks.
    async fn delete_rest(
        &self,
        plan: &Plan,
        deleted: &Shared<Vec<String>>,
    ) -> Result<(), ApplyError> {
        let c = self.client;
        let mut errors = Vec::new();
        // Cluster-created load balancers and volumes.
        let r = join_all(plan.steps.iter().filter_map(|s| {
            match s {
                Step::DeleteLoadBalancer { id, name } => Some(
                    self.tracked(
                        format!("delete load balancer {name}"),
                        format!("load balancer {name}"),
                        deleted,
                        async move {
                            not_found_ok(c.delete("load_balancers", *id).await)?;
                            Ok(())
                        }
                        .boxed(),
                    ),
                ),
                Step::DeleteVolume { id, name, .. } => Some(
                    self.tracked(
                        format!("delete volume {name}"),
                        format!("volume {name}"),
                        deleted,
                        async move {
                            // Servers are gone by now, but a volume may be attached elsewhere.
                            let vols = c.volumes(None).await?;
                            if vols.iter().any(|v| v.id == *id && v.server.is_some()) {
                                let a = c.detach_volume(*id).await?;
                                c.wait_actions(vec![a]).await?;
                            }
                            not_found_ok(c.delete("volumes", *id).await)?;
                            Ok(())
                        }
                        .boxed(),
                    ),
                ),
                _ => None,
            }
        }))
        .await;
        errors.extend(r.into_iter().filter_map(Result::err));
        // Firewalls (detached first) and placement groups.
        let r = join_all(plan.steps.iter().filter_map(|s| {
            match s {
                Step::DeleteFirewall {
                    id,
                    name,
                    applied_to,
                } => Some(
                    self.tracked(
                        format!("delete firewall {name}"),
                        format!("firewall {name}"),
                        deleted,
                        async move {
                            if !applied_to.is_empty() {
                                let remove: Vec<FirewallResource> = applied_to
                                    .iter()
                                    .map(|r| FirewallResource {
                                        kind: r.kind.clone(),
                                        label_selector: r.label_selector.clone(),
                                        server: r.server.clone(),
                                    })
                                    .collect();
                                if let Some(a) =
                                    not_found_ok(c.remove_firewall_from(*id, &remove).await)?
                                {
                                    c.wait_actions(a).await?;
                                }
                            }
                            not_found_ok(c.delete("firewalls", *id).await)?;
                            Ok(())
                        }
                        .boxed(),
                    ),
                ),
                Step::DeletePlacementGroup { id, name } => Some(
                    self.tracked(
                        format!("delete placement group {name}"),
                        format!("placement group {name}"),
                        deleted,
                        async move {
                            not_found_ok(c.delete("placement_groups", *id).await)?;
                            Ok(())
                        }
                        .boxed(),
                    ),
                ),
                _ => None,
            }
        }))
        .await;
        errors.extend(r.into_iter().filter_map(Result::err));
        if !errors.is_empty() {
            return Err(many(errors));
        }
        for s in &plan.steps {
            if let Step::DeleteNetwork { id, name } = s {
                self.tracked(
                    format!("delete network {name}"),
                    format!("network {name}"),
                    deleted,
                    async move {
                        not_found_ok(c.delete("networks", *id).await)?;
                        Ok(())
                    },
                )
                .await
                .map_err(|e| many(vec![e]))?;
            }
        }
        Ok(())
    }

    async fn tracked(
        &self,
        label: String,
        done: String,
        deleted: &Shared<Vec<String>>,
        f: impl std::future::Future<Output = Result<(), HcloudError>>,
    ) -> Result<(), String> {
        let task = self.progress.start(label);
        match f.await {
            Ok(()) => {
                task.done();
                push(deleted, done);
                Ok(())
            }
            Err(e) => {
                let s = e.to_string();
                task.failed(&s);
                Err(s)
            }
        }
    }
}

/// After a `uniqueness_error` on create (e.g. a retried request whose first answer
/// was lost): the existing resource is adopted when it carries this cluster's
/// ownership labels, and is an error naming the conflict otherwise.
async fn adopt(
    client: &Client,
    kind: &'static str,
    name: &str,
    labels: &Labels,
    err: HcloudError,
) -> Result<u64, ApplyError> {
    if err.code() != Some("uniqueness_error") {
        return Err(err.into());
    }
    match client.find_by_name(kind, name).await? {
        Some((id, have))
            if have.get(plan::LABEL_CLUSTER) == labels.get(plan::LABEL_CLUSTER)
                && have.get(plan::LABEL_MANAGED_BY) == labels.get(plan::LABEL_MANAGED_BY) =>
        {
            tracing::info!(
                kind,
                name,
                id,
                "adopting the resource created by an earlier attempt"
            );
            Ok(id)
        }
        Some(_) => Err(ApplyError::Foreign {
            kind: kind.trim_end_matches('s').replace('_', " "),
            name: name.to_string(),
        }),
        None => Err(err.into()),
    }
}

enum P1 {
    Network(u64, String),
    Group(u64, String),
    Actions(Vec<Action>, String, bool),
}

fn many(errors: Vec<String>) -> ApplyError {
    ApplyError::Many {
        count: errors.len(),
        errors,
    }
}
