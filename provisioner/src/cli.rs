//! The command line: `init`, `plan`, `up`, `down`, `status`, `lockdown`, and the
//! `tunnel`/`secrets` groups of the `tunnel` crate.
//!
//! [`run`] takes its environment and output streams as arguments so tests drive the
//! CLI in-process. A new subcommand group is one variant in [`Command`] plus one arm
//! in [`dispatch`].

use crate::apply::{self, ApplyError, Executor};
use crate::hcloud::{Client, ClientConfig, HcloudError, DEFAULT_ENDPOINT, TOKEN_HELP};
use crate::lockdown::{self, LockdownError};
use crate::plan::{self, Observed, Plan, LABEL_PHASE};
use crate::platform_ops::{self, PlatformStepError};
use crate::progress::{line, Progress, Sink};
use crate::spec::{ClusterSpec, SpecError};
use crate::talos_ops;
use crate::tunnel_ops;
use crate::up::{self, TunnelStep};
use crate::userdata::{self, UserDataError};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tunnel::cli::{CliIo, SecretsCommand, SharedWriter, TunnelCommand};

#[derive(Debug, Parser)]
#[command(
    name = "provisioner",
    version,
    about = "Builds and reconciles the IPv6-only Talos cluster on Hetzner Cloud"
)]
pub struct Cli {
    /// Cluster spec file (TOML, or YAML for .yaml/.yml).
    #[arg(long, short = 'f', global = true, default_value = "cluster.toml")]
    pub spec: PathBuf,
    /// Read the Hetzner API token from this file instead of HCLOUD_TOKEN.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Hetzner API endpoint (default: HCLOUD_ENDPOINT or the public API).
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Kubeconfig for the cluster steps of `up` and `status`, instead of an admin
    /// one issued from the Talos secrets bundle for machine_config.generated.endpoint
    /// (e.g. a server address that reaches the API after `lockdown`).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented cluster spec with good defaults.
    Init {
        /// Cluster name.
        #[arg(long, default_value = "shopedge")]
        name: String,
        /// Overwrite an existing spec file.
        #[arg(long)]
        force: bool,
    },
    /// Show, read-only, what `up` would create, change or delete.
    Plan,
    /// Create or converge the cluster: Hetzner, Talos bootstrap, then (when the
    /// spec has them) the Cloudflare Tunnel, the platform add-ons and lockdown.
    Up {
        /// Allow deleting and re-creating servers whose type or image changed.
        #[arg(long)]
        allow_replace: bool,
    },
    /// Delete everything this cluster owns.
    Down {
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long)]
        yes: bool,
        /// Also delete the load balancers and volumes the in-cluster CCM and CSI created.
        #[arg(long)]
        include_cluster_created: bool,
    },
    /// Show what exists.
    Status,
    /// Close the bootstrap firewall window: no public inbound port remains.
    Lockdown,
    /// Write an admin kubeconfig (client certificate issued locally from the cluster's
    /// Kubernetes CA); needs machine_config.generated and the age identity.
    Kubeconfig {
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// API server URL (default: machine_config.generated.endpoint).
        #[arg(long)]
        server: Option<String>,
    },
    /// Write a talosconfig for the control-plane nodes (admin certificate from the
    /// cluster's Talos API CA); needs machine_config.generated and the age identity.
    Talosconfig {
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Cloudflare Tunnel: up [--dry-run] | status | rotate-token | render-manifests [--check].
    #[command(subcommand)]
    Tunnel(TunnelCommand),
    /// Worker secrets (age-encrypted per environment): set | edit | list | push.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

/// Shows a prompt and reads one line of input.
pub type Prompt = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// User-data source plus each node's user-data hash.
type Sources = (Box<dyn userdata::UserDataSource>, BTreeMap<String, String>);

/// The process environment, injected so tests can drive the CLI in-process.
#[derive(Clone)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    /// Directory relative paths are resolved against.
    pub cwd: PathBuf,
    /// Whether stderr is a terminal (spinners, confirmation prompts).
    pub terminal: bool,
    /// Reads one line of user input after showing the prompt (terminal only).
    pub prompt: Option<Prompt>,
    /// Multiplies the client's retry and poll delays (tests and benchmarks).
    pub time_scale: f64,
}

impl Env {
    /// The real process environment.
    pub fn from_process() -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal() && std::io::stdin().is_terminal();
        Self {
            vars: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            terminal,
            prompt: Some(Arc::new(|p: &str| {
                use std::io::Write;
                eprint!("{p}");
                let _ = std::io::stderr().flush();
                let mut s = String::new();
                std::io::stdin().read_line(&mut s).ok()?;
                Some(s.trim().to_string())
            })),
            time_scale: 1.0,
        }
    }

    /// An empty environment for tests: no variables, not a terminal.
    pub fn empty(cwd: impl Into<PathBuf>) -> Self {
        Self {
            vars: BTreeMap::new(),
            cwd: cwd.into(),
            terminal: false,
            prompt: None,
            time_scale: 1.0,
        }
    }

    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.into(), v.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    UserData(#[from] UserDataError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Api(#[from] HcloudError),
    #[error("Talos: {0}")]
    Talos(#[from] crate::talos_ops::TalosStepError),
    #[error("Cloudflare Tunnel: {0}")]
    Tunnel(#[from] tunnel::TunnelError),
    #[error("platform: {0}")]
    PlatformStep(#[from] PlatformStepError),
    #[error("Kubernetes: {0}")]
    Platform(#[from] platform::PlatformError),
    #[error("lockdown: {0}")]
    Lockdown(#[from] LockdownError),
    #[error("cannot read kubeconfig {path}: {source}")]
    KubeconfigFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no Hetzner API token: {TOKEN_HELP}")]
    NoToken,
    #[error("cannot read token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage).
pub async fn run(args: Vec<String>, env: Env, out: Sink, err: Sink) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            line(if code == 0 { &out } else { &err }, text.trim_end());
            return code;
        }
    };
    match dispatch(&cli, &env, &out, &err).await {
        Ok(code) => code,
        Err(e) => {
            line(&err, &format!("error: {e}"));
            1
        }
    }
}

async fn dispatch(cli: &Cli, env: &Env, out: &Sink, err: &Sink) -> Result<i32, CliError> {
    let done = match &cli.command {
        Command::Init { name, force } => init(cli, env, out, name, *force),
        Command::Plan => cmd_plan(cli, env, out).await,
        Command::Up { allow_replace } => cmd_up(cli, env, out, err, *allow_replace).await,
        Command::Down {
            yes,
            include_cluster_created,
        } => cmd_down(cli, env, out, err, *yes, *include_cluster_created).await,
        Command::Status => cmd_status(cli, env, out).await,
        Command::Lockdown => cmd_lockdown(cli, env, out).await,
        Command::Kubeconfig { out: to, server } => {
            cmd_kubeconfig(cli, env, out, to.as_deref(), server.as_deref())
        }
        Command::Talosconfig { out: to } => cmd_talosconfig(cli, env, out, to.as_deref()).await,
        Command::Tunnel(c) => return Ok(run_group(cli, env, out, err, Group::Tunnel(c)).await),
        Command::Secrets(c) => return Ok(run_group(cli, env, out, err, Group::Secrets(c)).await),
    };
    done.map(|()| 0)
}

/// A command group implemented by another crate, reporting its own errors.
enum Group<'a> {
    Tunnel(&'a TunnelCommand),
    Secrets(&'a SecretsCommand),
}

/// Runs the `tunnel`/`secrets` groups with this process's environment and streams;
/// relative paths resolve against the working directory (the repository root).
async fn run_group(cli: &Cli, env: &Env, out: &Sink, err: &Sink, group: Group<'_>) -> i32 {
    let (mut o, mut e) = (SharedWriter(out.clone()), SharedWriter(err.clone()));
    let mut stdin = std::io::stdin();
    let mut io = CliIo {
        vars: env.vars.clone(),
        repo_root: env.cwd.clone(),
        stdin: &mut stdin,
        stdout: &mut o,
        stderr: &mut e,
        output: if cli.output == Output::Json {
            tunnel::cli::Output::Json
        } else {
            tunnel::cli::Output::Text
        },
    };
    match group {
        Group::Tunnel(c) => c.clone().run_exit_code(&mut io).await,
        Group::Secrets(c) => c.clone().run_exit_code(&mut io).await,
    }
}

fn spec_path(cli: &Cli, env: &Env) -> PathBuf {
    env.cwd.join(&cli.spec)
}

/// Loads and validates the spec; returns it and its directory. `online`: a token
/// is available, so locations are checked against the API instead of a fixed list.
pub fn load_spec(path: &Path, online: bool) -> Result<(ClusterSpec, PathBuf), CliError> {
    let spec = ClusterSpec::load(path)?;
    spec.validate_with(path, !online)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((spec, dir))
}

fn token(cli: &Cli, env: &Env) -> Result<Option<String>, CliError> {
    if let Some(p) = &cli.token_file {
        let path = env.cwd.join(p);
        let t = std::fs::read_to_string(&path).map_err(|source| CliError::TokenFile {
            path: path.clone(),
            source,
        })?;
        let t = t.trim().to_string();
        return Ok((!t.is_empty()).then_some(t));
    }
    Ok(env
        .vars
        .get("HCLOUD_TOKEN")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

fn client_with(cli: &Cli, env: &Env, token: String) -> Result<Client, CliError> {
    let endpoint = cli
        .endpoint
        .clone()
        .or_else(|| env.vars.get("HCLOUD_ENDPOINT").cloned())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let cfg = ClientConfig::new(endpoint, token).scale_time(env.time_scale);
    Ok(Client::new(cfg)?)
}

fn client(cli: &Cli, env: &Env) -> Result<Client, CliError> {
    let t = token(cli, env)?.ok_or(CliError::NoToken)?;
    client_with(cli, env, t)
}

fn emit_json(out: &Sink, v: &serde_json::Value) {
    line(
        out,
        &serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
    );
}

fn init(cli: &Cli, env: &Env, out: &Sink, name: &str, force: bool) -> Result<(), CliError> {
    if let Err(e) = crate::spec::check_dns_label(name) {
        return Err(CliError::Refused(format!("cluster name {name:?} {e}")));
    }
    let path = spec_path(cli, env);
    if path.exists() && !force {
        return Err(CliError::Refused(format!(
            "{} exists: pass --force to overwrite it",
            path.display()
        )));
    }
    std::fs::write(&path, ClusterSpec::template(name)).map_err(|source| CliError::Write {
        path: path.clone(),
        source,
    })?;
    line(
        out,
        &format!(
            "wrote {}\nnext: set machine_config.generated.endpoint and age_recipients (or SHOPEDGE_AGE_RECIPIENTS), upload a Talos snapshot, then `provisioner plan`",
            path.display()
        ),
    );
    Ok(())
}

fn print_plan(out: &Sink, plan: &Plan, output: Output, from_empty: bool) {
    if output == Output::Json {
        let mut v = serde_json::to_value(plan).unwrap_or_default();
        v["from_empty"] = json!(from_empty);
        v["summary"] = json!(plan::summary(plan));
        emit_json(out, &v);
        return;
    }
    if from_empty {
        line(
            out,
            "note: no Hetzner API token (HCLOUD_TOKEN or --token-file): planning from an empty project",
        );
    }
    if plan.is_empty() {
        line(out, "No changes: the infrastructure matches the spec.");
    }
    for s in &plan.steps {
        line(out, &format!("  {}", s.describe()));
    }
    for n in &plan.notes {
        line(out, &format!("note: {n}"));
    }
    if plan.replacements() > 0 {
        line(
            out,
            &format!(
                "note: {} server(s) must be replaced: `provisioner up --allow-replace` deletes and re-creates them",
                plan.replacements()
            ),
        );
    }
    let sm = plan::summary(plan);
    let g = |k| sm.get(k).copied().unwrap_or(0);
    line(
        out,
        &format!(
            "Plan: {} to create, {} to change, {} to replace, {} to delete.",
            g("create"),
            g("update"),
            g("replace"),
            g("delete")
        ),
    );
}

/// User-data hashes of every node, read before anything is sent.
fn hasher(spec: &ClusterSpec, dir: &Path, env: &Env) -> Result<Sources, CliError> {
    let senv = userdata::SourceEnv {
        vars: &env.vars,
        persist: false,
    };
    let src = userdata::source_for(spec, dir, &senv)?;
    let mut hashes = BTreeMap::new();
    for n in plan::nodes(spec) {
        let ud = src.user_data_for(&n)?;
        hashes.insert(n.name.clone(), crate::spec::short_hash(&ud));
    }
    Ok((src, hashes))
}

async fn cmd_plan(cli: &Cli, env: &Env, out: &Sink) -> Result<(), CliError> {
    let (spec, dir) = load_spec(&spec_path(cli, env), token(cli, env)?.is_some())?;
    let (src, hashes) = hasher(&spec, &dir, env)?;
    let provisional = src.generated().filter(|g| !g.persisted);
    if let Some(g) = provisional.filter(|_| cli.output == Output::Text) {
        line(
            out,
            &format!(
                "note: {} does not exist yet: `up` generates the Talos secrets there, so the planned machine configs are provisional",
                g.secrets_path.display()
            ),
        );
    }
    let h = |n: &userdata::Node| hashes.get(&n.name).cloned().unwrap_or_default();
    match token(cli, env)? {
        None => {
            let desired = plan::desired(&spec, spec.image.id.unwrap_or(0), &h);
            let p = plan::plan_up(&desired, &Observed::default());
            print_plan(out, &p, cli.output, true);
        }
        Some(t) => {
            let client = client_with(cli, env, t)?;
            let image = apply::check_and_resolve(&client, &spec).await?;
            let observed = apply::observe(&client, &spec.name).await?;
            let desired = plan::desired(&spec, image, &h);
            let p = plan::plan_up(&desired, &observed);
            print_plan(out, &p, cli.output, false);
        }
    }
    Ok(())
}

async fn cmd_up(
    cli: &Cli,
    env: &Env,
    out: &Sink,
    err: &Sink,
    allow_replace: bool,
) -> Result<(), CliError> {
    // Everything that can fail locally fails before the first request.
    let (spec, dir) = load_spec(&spec_path(cli, env), token(cli, env)?.is_some())?;
    let senv = userdata::SourceEnv {
        vars: &env.vars,
        persist: true,
    };
    let src = userdata::source_for(&spec, &dir, &senv)?;
    let hcloud_token = token(cli, env)?.ok_or(CliError::NoToken)?;
    let kubeconfig_source = cli.kubeconfig.is_some() || src.generated().is_some();
    let steps = up::prepare(&spec, &dir, &env.vars, &hcloud_token, kubeconfig_source)?;
    let text = cli.output == Output::Text;
    if let Some(p) = steps
        .platform
        .as_ref()
        .filter(|p| text && !p.generated.is_empty())
    {
        line(
            err,
            &format!(
                "generated {} in {} (encrypted; commit it)",
                p.generated.join(", "),
                p.secrets_file
            ),
        );
    }
    let client = client_with(cli, env, hcloud_token)?;
    let started = std::time::Instant::now();
    let progress = if cli.output == Output::Json {
        Progress::quiet()
    } else {
        Progress::new(err.clone(), env.terminal)
    };

    // 1. Hetzner.
    let report = apply::up(&client, &spec, src.as_ref(), progress, allow_replace).await?;
    let (p, outcome) = (report.plan, report.outcome);
    // A locked firewall admits no operator machine: the cluster was
    // bootstrapped before it was locked, and Kubernetes is reachable only
    // through an explicit --kubeconfig.
    let locked = firewall_locked(&client, &spec).await?;
    let mut skipped: Vec<String> = Vec::new();

    // 2. Talos.
    let boot = match src.generated() {
        Some(_) if locked => {
            skipped.push("talos: the firewall is locked, so the cluster was bootstrapped before; not checked again".into());
            None
        }
        Some(g) => Some(bootstrap_step(cli, env, err, &client, &spec, g).await?),
        None => None,
    };

    // 3. Cloudflare Tunnel.
    let tunnel = match &steps.tunnel {
        TunnelStep::Off => None,
        TunnelStep::Skipped(why) => {
            skipped.push(format!("tunnel: {why}"));
            None
        }
        TunnelStep::Run(r) => {
            if text {
                line(err, "… Cloudflare Tunnel");
            }
            let t = tunnel_ops::up(r).await?;
            if text {
                for a in &t.report.actions {
                    line(err, &format!("  {}", a.describe()));
                }
                for s in &t.report.secrets_stored {
                    line(
                        err,
                        &format!("  stored {s} in the secrets file (encrypted)"),
                    );
                }
                line(
                    err,
                    &format!(
                        "✓ tunnel {}: {} change(s)",
                        t.report.tunnel,
                        t.report.actions.len()
                    ),
                );
            }
            Some(t)
        }
    };

    // 4. Platform add-ons, then 5. lockdown.
    let mut applied = None;
    let mut locked_now = None;
    if let Some(prep) = &steps.platform {
        if locked && cli.kubeconfig.is_none() {
            skipped.push("platform: the firewall is locked and no --kubeconfig was given, so the add-ons were not applied; pass --kubeconfig with a server address that reaches the API (Argo CD keeps the cluster in sync with Git meanwhile)".into());
        } else {
            let token = tunnel
                .as_ref()
                .map(|t| platform::SecretValue::new(t.token.expose()));
            let plan = platform_ops::plan(prep, token, env.time_scale)?;
            let kc = cluster_kubeconfig(cli, env, &spec, &dir, src.generated())?;
            let report = if text {
                let progress = platform_ops::LineProgress::new(err.clone());
                platform_ops::apply(
                    &kc,
                    &plan,
                    &platform_ops::options(env.time_scale),
                    &progress,
                )
                .await?
            } else {
                platform_ops::apply(
                    &kc,
                    &plan,
                    &platform_ops::options(env.time_scale),
                    &platform::NoProgress,
                )
                .await?
            };
            applied = Some(report);
        }
        locked_now = Some(lockdown::lockdown(&client, &spec).await?);
    }

    for n in &p.notes {
        line(err, &format!("note: {n}"));
    }
    for s in &skipped {
        line(err, &format!("note: {s}"));
    }
    let stats = client.stats();
    if cli.output == Output::Json {
        emit_json(
            out,
            &json!({
                "cluster": spec.name, "outcome": outcome, "requests": stats, "bootstrap": boot,
                "tunnel": tunnel.as_ref().map(|t| &t.report),
                "platform": applied,
                "lockdown": locked_now,
                "skipped": skipped,
            }),
        );
        return Ok(());
    }
    if p.is_empty() {
        line(
            out,
            &format!(
                "Cluster {} is up to date ({} requests, {:.1}s).",
                spec.name,
                stats.reads + stats.writes,
                started.elapsed().as_secs_f64()
            ),
        );
    } else {
        line(
            out,
            &format!(
                "Cluster {}: {} created, {} updated, {} deleted in {:.1}s ({} requests).",
                spec.name,
                outcome.created.len(),
                outcome.updated.len(),
                outcome.deleted.len(),
                started.elapsed().as_secs_f64(),
                stats.reads + stats.writes
            ),
        );
    }
    if let Some(t) = &tunnel {
        line(
            out,
            &if t.report.actions.is_empty() {
                format!("Tunnel {}: up to date.", t.report.tunnel)
            } else {
                format!(
                    "Tunnel {}: {} change(s).",
                    t.report.tunnel,
                    t.report.actions.len()
                )
            },
        );
    }
    if let Some(a) = &applied {
        let total: usize = a.steps.iter().map(|s| s.objects.len()).sum();
        line(
            out,
            &if a.changed() == 0 {
                format!(
                    "Platform: up to date ({total} objects in {} steps unchanged; server-side apply of identical objects changes nothing).",
                    a.steps.len()
                )
            } else {
                format!(
                    "Platform: {} of {total} objects created or changed in {} steps, all ready.",
                    a.changed(),
                    a.steps.len()
                )
            },
        );
    }
    if let Some(l) = &locked_now {
        line(
            out,
            &if l.changed {
                format!(
                    "Firewall {} locked: no public inbound port is open (ICMPv6 only).",
                    l.firewall
                )
            } else {
                format!("Firewall {}: already locked.", l.firewall)
            },
        );
    }
    Ok(())
}

/// Whether the cluster's firewall is locked (`provisioner lockdown` ran).
async fn firewall_locked(client: &Client, spec: &ClusterSpec) -> Result<bool, CliError> {
    let fws = client.firewalls(&plan::owned_selector(&spec.name)).await?;
    Ok(fws
        .iter()
        .find(|f| f.name == spec.name)
        .and_then(|f| f.labels.get(LABEL_PHASE))
        .is_some_and(|p| p == "locked"))
}

/// The kubeconfig of the cluster steps: `--kubeconfig`, else an admin one
/// issued now from the Talos secrets bundle (in memory only).
fn cluster_kubeconfig(
    cli: &Cli,
    env: &Env,
    spec: &ClusterSpec,
    dir: &Path,
    g: Option<&userdata::GeneratedUserData>,
) -> Result<talos::zeroize::Zeroizing<String>, CliError> {
    if let Some(p) = &cli.kubeconfig {
        let path = env.cwd.join(p);
        return std::fs::read_to_string(&path)
            .map(talos::zeroize::Zeroizing::new)
            .map_err(|source| CliError::KubeconfigFile { path, source });
    }
    if let Some(g) = g {
        return Ok(talos_ops::kubeconfig(
            g.secrets(),
            &spec.name,
            &g.cluster.endpoint,
        )?);
    }
    let (secrets, g) = userdata::stored_secrets(spec, dir, &env.vars)?;
    Ok(talos_ops::kubeconfig(&secrets, &spec.name, &g.endpoint)?)
}

/// Bootstraps Talos on the first control-plane node once the servers exist.
async fn bootstrap_step(
    cli: &Cli,
    env: &Env,
    err: &Sink,
    client: &Client,
    spec: &ClusterSpec,
    g: &userdata::GeneratedUserData,
) -> Result<talos::BootstrapReport, CliError> {
    let cps = talos_ops::control_planes(client, &spec.name).await?;
    let first = match cps.first() {
        Some(_) => talos_ops::addresses(&cps[..1])?.first().copied(),
        None => None,
    };
    let addr = talos_ops::talos_endpoint(&env.vars, first, &spec.name)?;
    let progress: Option<talos::bootstrap::ProgressFn> = (cli.output == Output::Text).then(|| {
        let err = err.clone();
        Box::new(move |s: &talos::BootstrapStage| line(&err, &format!("talos: {s}")))
            as talos::bootstrap::ProgressFn
    });
    let expected = spec.server_count() as usize;
    let report = talos_ops::bootstrap(g, addr, expected, env.time_scale, progress).await?;
    if cli.output == Output::Text {
        line(
            err,
            &format!(
                "Talos {} on {addr}: {:?}, {} etcd member(s), {} node(s) registered.",
                report.talos_version,
                report.outcome,
                report.etcd_members,
                report.nodes.len()
            ),
        );
    }
    Ok(report)
}

/// Prints `text` or writes it to `to` (mode 0600).
fn emit_private(
    env: &Env,
    out: &Sink,
    to: Option<&Path>,
    text: &str,
    what: &str,
) -> Result<(), CliError> {
    match to {
        None => {
            line(out, text.trim_end());
            Ok(())
        }
        Some(p) => {
            let path = env.cwd.join(p);
            talos::write_private_file(&path, text).map_err(talos_ops::TalosStepError::from)?;
            line(out, &format!("wrote {what} {} (mode 0600)", path.display()));
            Ok(())
        }
    }
}

fn cmd_kubeconfig(
    cli: &Cli,
    env: &Env,
    out: &Sink,
    to: Option<&Path>,
    server: Option<&str>,
) -> Result<(), CliError> {
    let (spec, dir) = load_spec(&spec_path(cli, env), false)?;
    let (secrets, g) = userdata::stored_secrets(&spec, &dir, &env.vars)?;
    let kc = talos_ops::kubeconfig(&secrets, &spec.name, server.unwrap_or(&g.endpoint))?;
    emit_private(env, out, to, &kc, "kubeconfig")
}

async fn cmd_talosconfig(
    cli: &Cli,
    env: &Env,
    out: &Sink,
    to: Option<&Path>,
) -> Result<(), CliError> {
    let online = token(cli, env)?.is_some();
    let (spec, dir) = load_spec(&spec_path(cli, env), online)?;
    let (secrets, g) = userdata::stored_secrets(&spec, &dir, &env.vars)?;
    // The control-plane nodes' addresses when the API can be asked, else the
    // Kubernetes endpoint's host (which names the same nodes).
    let mut endpoints: Vec<String> = Vec::new();
    if online {
        let cps = talos_ops::control_planes(&client(cli, env)?, &spec.name).await?;
        endpoints = talos_ops::addresses(&cps)?
            .iter()
            .map(|a| a.to_string())
            .collect();
    }
    if endpoints.is_empty() {
        endpoints.extend(talos_ops::endpoint_host(&g.endpoint));
    }
    let tc = talos_ops::talosconfig(&secrets, &spec.name, &endpoints)?;
    emit_private(env, out, to, &tc, "talosconfig")
}

async fn observe_for_down(
    client: &Client,
    cluster: &str,
    include_cluster_created: bool,
) -> Result<Observed, CliError> {
    let mut observed = apply::observe(client, cluster).await?;
    if include_cluster_created {
        let (lbs, vols) = futures::try_join!(client.load_balancers(None), client.volumes(None))?;
        let (lbs, vols) = plan::cluster_created(cluster, &observed, &lbs, &vols);
        observed.load_balancers = lbs;
        observed.volumes = vols;
    }
    Ok(observed)
}

async fn cmd_down(
    cli: &Cli,
    env: &Env,
    out: &Sink,
    err: &Sink,
    yes: bool,
    include_cluster_created: bool,
) -> Result<(), CliError> {
    let (spec, _) = load_spec(&spec_path(cli, env), token(cli, env)?.is_some())?;
    if spec.delete_protection {
        return Err(CliError::Refused(format!(
            "cluster {} has delete_protection = true in its spec: set it to false to allow `down`",
            spec.name
        )));
    }
    let client = client(cli, env)?;
    let observed = observe_for_down(&client, &spec.name, include_cluster_created).await?;
    if let Some(s) = observed.servers.iter().find(|s| s.protection.delete) {
        return Err(CliError::Refused(format!(
            "server {} has Hetzner delete protection enabled: disable it first",
            s.name
        )));
    }
    let p = plan::plan_down(&spec.name, &observed);
    if p.is_empty() {
        line(
            out,
            &format!("Nothing owned by cluster {} exists.", spec.name),
        );
        return Ok(());
    }
    if !yes {
        let prompt = match (&env.prompt, env.terminal) {
            (Some(p), true) => p,
            _ => {
                return Err(CliError::Refused(
                    "down deletes the cluster: pass --yes when not running on a terminal".into(),
                ))
            }
        };
        for s in &p.steps {
            line(err, &format!("  {}", s.describe()));
        }
        let answer = prompt(&format!(
            "Type the cluster name ({}) to delete it: ",
            spec.name
        ));
        if answer.as_deref() != Some(spec.name.as_str()) {
            return Err(CliError::Refused(
                "confirmation did not match: nothing deleted".into(),
            ));
        }
    }
    let progress = if cli.output == Output::Json {
        Progress::quiet()
    } else {
        Progress::new(err.clone(), env.terminal)
    };
    let exec = Executor {
        client: &client,
        spec: Some(&spec),
        user_data: None,
        progress,
        allow_replace: false,
        settle: Default::default(),
    };
    let outcome = exec.run(&p, &observed).await?;
    if cli.output == Output::Json {
        emit_json(out, &json!({ "cluster": spec.name, "outcome": outcome }));
    } else {
        line(
            out,
            &format!(
                "Cluster {}: {} resources deleted.",
                spec.name,
                outcome.deleted.len()
            ),
        );
    }
    Ok(())
}

async fn cmd_status(cli: &Cli, env: &Env, out: &Sink) -> Result<(), CliError> {
    let (spec, dir) = load_spec(&spec_path(cli, env), token(cli, env)?.is_some())?;
    let client = client(cli, env)?;
    let o = apply::observe(&client, &spec.name).await?;
    let servers: Vec<serde_json::Value> = o
        .servers
        .iter()
        .map(|s| {
            json!({
                "id": s.id, "name": s.name, "status": s.status,
                "role": s.labels.get(plan::LABEL_ROLE),
                "server_type": s.server_type.name, "location": s.location.name,
                "ipv6": s.public_net.ipv6.as_ref().map(|i| i.ip.clone()),
                "ipv4": s.public_net.ipv4.is_some(),
                "private_ip": s.private_net.first().map(|p| p.ip.clone()),
            })
        })
        .collect();
    let fw_phase = o
        .firewalls
        .first()
        .map(|f| f.labels.get(LABEL_PHASE).cloned().unwrap_or_default());
    let locked = fw_phase.as_deref() == Some("locked");
    let kube = kubernetes_section(cli, env, &spec, &dir, !o.servers.is_empty(), locked).await;
    let tunnel = tunnel_section(env, &spec, &dir).await;
    let failed = [kube.error(), tunnel.error()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    if cli.output == Output::Json {
        emit_json(
            out,
            &json!({
                "cluster": spec.name,
                "networks": o.networks.iter().map(|n| json!({"id": n.id, "name": n.name, "ip_range": n.ip_range})).collect::<Vec<_>>(),
                "placement_groups": o.groups.iter().map(|g| json!({"id": g.id, "name": g.name, "servers": g.servers.len()})).collect::<Vec<_>>(),
                "firewalls": o.firewalls.iter().map(|f| json!({"id": f.id, "name": f.name, "inbound_rules": f.rules.len(), "phase": f.labels.get(LABEL_PHASE)})).collect::<Vec<_>>(),
                "servers": servers,
                "kubernetes": kube.to_json(),
                "tunnel": tunnel.to_json(),
            }),
        );
    } else {
        print_infra_status(out, &spec, &o, fw_phase.as_deref());
        print_kube_status(out, &kube);
        print_tunnel_status(out, &tunnel);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Refused(format!("status is incomplete: {failed}")))
    }
}

fn print_infra_status(out: &Sink, spec: &ClusterSpec, o: &Observed, fw_phase: Option<&str>) {
    line(out, &format!("Cluster {}", spec.name));
    for n in &o.networks {
        line(
            out,
            &format!("  network {} ({}) id {}", n.name, n.ip_range, n.id),
        );
    }
    for g in &o.groups {
        line(
            out,
            &format!("  placement group {} ({} servers)", g.name, g.servers.len()),
        );
    }
    for f in &o.firewalls {
        line(
            out,
            &format!(
                "  firewall {} ({} inbound rules, {})",
                f.name,
                f.rules.len(),
                fw_phase.unwrap_or_default()
            ),
        );
    }
    let mut ss: Vec<_> = o.servers.iter().collect();
    ss.sort_by(|a, b| a.name.cmp(&b.name));
    for s in ss {
        line(
            out,
            &format!(
                "  server {} {} {} {} {}",
                s.name,
                s.status,
                s.server_type.name,
                s.location.name,
                s.public_net
                    .ipv6
                    .as_ref()
                    .map(|i| i.ip.as_str())
                    .unwrap_or("-")
            ),
        );
    }
    if o.networks.is_empty() && o.servers.is_empty() && o.firewalls.is_empty() {
        line(out, "  (nothing exists)");
    }
}

/// One section of `status` read from another API.
enum Section<T> {
    Skipped(String),
    Read(T),
    Failed(String),
}

impl<T: serde::Serialize> Section<T> {
    fn error(&self) -> Option<String> {
        match self {
            Section::Failed(e) => Some(e.clone()),
            _ => None,
        }
    }
    fn to_json(&self) -> serde_json::Value {
        match self {
            Section::Skipped(why) => json!({ "skipped": why }),
            Section::Read(v) => serde_json::to_value(v).unwrap_or_default(),
            Section::Failed(e) => json!({ "error": e }),
        }
    }
}

/// Nodes, add-on rollouts, Argo CD applications and cloudflared.
async fn kubernetes_section(
    cli: &Cli,
    env: &Env,
    spec: &ClusterSpec,
    dir: &Path,
    servers_exist: bool,
    locked: bool,
) -> Section<platform::ClusterStatus> {
    if cli.kubeconfig.is_none() {
        if !servers_exist {
            return Section::Skipped("no servers yet".into());
        }
        if !matches!(
            spec.machine_config,
            crate::spec::MachineConfigSource::Generated(_)
        ) {
            return Section::Skipped(
                "machine_config.files: pass --kubeconfig to read the cluster".into(),
            );
        }
        if locked {
            return Section::Skipped(
                "the firewall is locked: pass --kubeconfig with a server address that reaches the API".into(),
            );
        }
    }
    let kc = match cluster_kubeconfig(cli, env, spec, dir, None) {
        Ok(k) => k,
        Err(e) => return Section::Failed(e.to_string()),
    };
    let read = async {
        let conn = platform::connect(&kc, std::time::SystemTime::now()).await?;
        platform::cluster_status(&conn, &platform::StatusOptions::default()).await
    };
    match read.await {
        Ok(st) => Section::Read(st),
        Err(e) => Section::Failed(format!("Kubernetes: {e}")),
    }
}

/// The tunnel and its connections as Cloudflare sees them.
async fn tunnel_section(
    env: &Env,
    spec: &ClusterSpec,
    dir: &Path,
) -> Section<tunnel::reconcile::TunnelStatus> {
    let Some(t) = &spec.tunnel else {
        return Section::Skipped("no [tunnel] in the spec".into());
    };
    if !tunnel_ops::credentials_given(&env.vars) {
        return Section::Skipped(format!(
            "{} not set",
            tunnel_ops::CREDENTIAL_VARS.join(" / ")
        ));
    }
    let r = async {
        let (tspec, _) = tunnel_ops::load_spec(dir, &t.spec)?;
        let r = tunnel_ops::reconciler(tspec, dir, &env.vars)?;
        tunnel_ops::status(&r).await
    };
    match r.await {
        Ok(st) => Section::Read(st),
        Err(e) => Section::Failed(format!("Cloudflare Tunnel: {e}")),
    }
}

fn print_kube_status(out: &Sink, s: &Section<platform::ClusterStatus>) {
    let st = match s {
        Section::Skipped(why) => return line(out, &format!("Kubernetes: not read ({why})")),
        Section::Failed(e) => return line(out, &format!("Kubernetes: unavailable: {e}")),
        Section::Read(st) => st,
    };
    line(out, &format!("Kubernetes {}", st.server));
    for n in &st.nodes {
        line(
            out,
            &format!(
                "  node {} {} {} {}{}",
                n.name,
                if n.ready { "Ready" } else { "NotReady" },
                if n.roles.is_empty() {
                    "worker".to_string()
                } else {
                    n.roles.join(",")
                },
                n.kubelet_version,
                n.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        );
    }
    for a in &st.addons {
        line(
            out,
            &format!(
                "  add-on {} {} {}/{} {}",
                a.addon,
                a.kind,
                a.namespace,
                a.name,
                if a.rollout.ready {
                    format!(
                        "rolled out ({}/{} ready)",
                        a.rollout.ready_replicas, a.rollout.desired
                    )
                } else {
                    format!("NOT READY ({})", a.rollout.detail)
                }
            ),
        );
    }
    match &st.applications {
        None => line(out, "  Argo CD: not installed"),
        Some(apps) if apps.is_empty() => line(out, "  Argo CD: no applications"),
        Some(apps) => {
            for a in apps {
                line(
                    out,
                    &format!(
                        "  application {} {} {}{}",
                        a.name,
                        a.sync,
                        a.health,
                        a.revision
                            .as_deref()
                            .map(|r| format!(" at {r}"))
                            .unwrap_or_default()
                    ),
                );
            }
        }
    }
    match &st.cloudflared {
        None => line(out, "  cloudflared: not deployed"),
        Some(c) => line(
            out,
            &format!(
                "  cloudflared {}/{} ready{}",
                c.ready,
                c.desired,
                c.connections
                    .map(|n| format!(", {n} tunnel connections (pod metrics)"))
                    .unwrap_or_default()
            ),
        ),
    }
}

fn print_tunnel_status(out: &Sink, s: &Section<tunnel::reconcile::TunnelStatus>) {
    match s {
        Section::Skipped(why) if why.starts_with("no [tunnel]") => {}
        Section::Skipped(why) => line(out, &format!("Tunnel: not read ({why})")),
        Section::Failed(e) => line(out, &format!("Tunnel: unavailable: {e}")),
        Section::Read(t) => {
            line(
                out,
                &format!(
                    "Tunnel {} {} ({} connections to Cloudflare), {}",
                    t.tunnel,
                    t.status.as_deref().unwrap_or("not created"),
                    t.connections,
                    if t.pending.is_empty() {
                        "in sync".to_string()
                    } else {
                        format!(
                            "{} change(s) pending: run `provisioner up`",
                            t.pending.len()
                        )
                    }
                ),
            );
        }
    }
}

async fn cmd_lockdown(cli: &Cli, env: &Env, out: &Sink) -> Result<(), CliError> {
    let (spec, _) = load_spec(&spec_path(cli, env), token(cli, env)?.is_some())?;
    let client = client(cli, env)?;
    let l = lockdown::lockdown(&client, &spec).await?;
    line(
        out,
        &format!(
            "Firewall {} locked: no public inbound port is open (ICMPv6 only).",
            l.firewall
        ),
    );
    Ok(())
}

/// A `Write` that collects output in memory (tests, embedding).
#[derive(Clone, Default)]
pub struct Capture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
    pub fn sink(&self) -> Sink {
        Arc::new(std::sync::Mutex::new(self.clone()))
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
