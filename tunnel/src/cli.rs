//! The `provisioner tunnel …` and `provisioner secrets …` command groups.
//!
//! Each runs in-process with injected environment, repo root, stdin, stdout
//! and stderr, so tests drive them without a subprocess. The provisioner
//! binary embeds them as subcommands and calls [`TunnelCommand::run`] /
//! [`SecretsCommand::run`] (or the `*_exit_code` wrappers).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use crate::api::endpoints::perm;
use crate::error::TunnelError;
use crate::manifests;
use crate::reconcile::{classify, Credentials, Reconciler, VpcServiceReport};
use crate::secret::SecretString;
use crate::secrets::digest::DigestKey;
use crate::secrets::push::{self, DigestStore, PushAction, PushTarget};
use crate::secrets::store::{apply_edits, parse_edits};
use crate::secrets::{valid_name, AgeKeys, SecretsError, SecretsFile};
use crate::spec::TunnelSpec;

/// Default spec path, relative to the repo root.
pub const DEFAULT_SPEC: &str = "infra/apps/cloudflared/tunnel.toml";
/// Default manifests directory, relative to the repo root.
pub const DEFAULT_MANIFEST_DIR: &str = "infra/apps/cloudflared";

/// Process context injected into the commands.
pub struct CliIo<'a> {
    /// Environment variables.
    pub vars: BTreeMap<String, String>,
    /// Repository root (relative paths resolve against it).
    pub repo_root: PathBuf,
    /// Standard input.
    pub stdin: &'a mut (dyn Read + Send),
    /// Standard output.
    pub stdout: &'a mut (dyn Write + Send),
    /// Standard error.
    pub stderr: &'a mut (dyn Write + Send),
    /// Output format (the provisioner's global `--output`).
    pub output: Output,
}

/// A `Write` over a shared, locked writer (the provisioner's `Sink` type):
/// each write takes the lock briefly.
#[derive(Clone)]
pub struct SharedWriter(pub std::sync::Arc<std::sync::Mutex<dyn Write + Send>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut w) => w.write(buf),
            Err(p) => p.into_inner().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut w) => w.flush(),
            Err(p) => p.into_inner().flush(),
        }
    }
}

impl CliIo<'_> {
    fn var(&self, k: &str) -> Option<String> {
        self.vars.get(k).cloned()
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        let vars = &self.vars;
        move |k: &str| vars.get(k).cloned()
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.repo_root.join(p)
        }
    }

    fn out(&mut self, s: &str) -> Result<(), TunnelError> {
        writeln!(self.stdout, "{s}").map_err(|source| TunnelError::Io {
            what: "write",
            path: "stdout".into(),
            source,
        })
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Spec selection shared by the tunnel commands (`--tunnel-spec`, so it does
/// not clash with the provisioner's global `--spec`).
#[derive(Debug, Clone, Args)]
pub struct SpecArg {
    /// Tunnel spec (TOML).
    #[arg(long = "tunnel-spec", default_value = DEFAULT_SPEC)]
    pub spec: PathBuf,
}

/// `provisioner tunnel …`
#[derive(Debug, Clone, Subcommand)]
pub enum TunnelCommand {
    /// Create or update the tunnel, its configuration, DNS, Access and Hyperdrive.
    Up {
        #[command(flatten)]
        spec: SpecArg,
        /// Show the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the tunnel's state and any drift (changes nothing).
    Status {
        #[command(flatten)]
        spec: SpecArg,
    },
    /// Rotate the Access service token; stores the new secret in the secrets file.
    RotateToken {
        #[command(flatten)]
        spec: SpecArg,
    },
    /// Render the cloudflared Kubernetes manifests.
    RenderManifests {
        #[command(flatten)]
        spec: SpecArg,
        /// Output directory.
        #[arg(long, default_value = DEFAULT_MANIFEST_DIR)]
        out_dir: PathBuf,
        /// Fail if the files on disk differ from a fresh render (writes nothing).
        #[arg(long)]
        check: bool,
    },
}

/// `provisioner secrets …`
#[derive(Debug, Clone, Subcommand)]
pub enum SecretsCommand {
    /// Set one secret; the value is read from standard input (never an argument).
    Set {
        /// Environment (file infra/secrets/edge.<env>.age).
        #[arg(long)]
        env: String,
        /// Secret name.
        name: String,
    },
    /// Change several secrets: reads `NAME=VALUE` (set) and `-NAME` (remove)
    /// lines from standard input. No plaintext temporary file is written.
    Edit {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// List secret names (never values).
    List {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// Set the Worker's secrets from the file, writing only changed ones.
    Push {
        /// Environment.
        #[arg(long)]
        env: String,
        /// Delete Worker secrets that are not in the file.
        #[arg(long)]
        prune: bool,
        /// Show names and actions only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Worker script name (default: from wrangler.toml for the environment).
        #[arg(long)]
        script: Option<String>,
    },
}

fn load_spec(io: &CliIo<'_>, p: &Path) -> Result<TunnelSpec, TunnelError> {
    let path = io.path(p);
    let text = std::fs::read_to_string(&path).map_err(|source| TunnelError::Io {
        what: "read tunnel spec",
        path: p.display().to_string(),
        source,
    })?;
    TunnelSpec::from_toml(&text).map_err(|e| TunnelError::Spec(format!("{}: {}", p.display(), e)))
}

fn reconciler(io: &CliIo<'_>, spec: TunnelSpec) -> Result<Reconciler, TunnelError> {
    let creds = Credentials::from_env(&io.lookup())?;
    let keys = AgeKeys::load(&io.lookup(), &io.repo_root)?;
    let file = SecretsFile::for_env(&io.repo_root, &spec.environment);
    Reconciler::new(&creds, spec, file, keys)
}

fn json_out<T: serde::Serialize>(io: &mut CliIo<'_>, v: &T) -> Result<(), TunnelError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| TunnelError::Manifest(e.to_string()))?;
    io.out(&s)
}

impl TunnelCommand {
    /// Runs the command.
    pub async fn run(self, io: &mut CliIo<'_>) -> Result<(), TunnelError> {
        match self {
            TunnelCommand::Up { spec, dry_run } => {
                let output = io.output;
                let spec = load_spec(io, &spec.spec)?;
                let r = reconciler(io, spec)?;
                let report = r.up(dry_run).await?;
                if output == Output::Json {
                    return json_out(io, &report);
                }
                let verb = if dry_run { "would" } else { "did" };
                for a in &report.actions {
                    io.out(&format!("{verb}: {}", a.describe()))?;
                }
                for s in &report.secrets_stored {
                    io.out(&format!("stored {s} in the secrets file"))?;
                }
                if report.actions.is_empty() {
                    io.out(&format!("tunnel {}: up to date", report.tunnel))?;
                }
                if let Some(v) = &report.vpc_service {
                    print_vpc(io, v)?;
                }
                if !report.secrets_stored.is_empty() {
                    io.out("next: commit the secrets file and run `provisioner secrets push`")?;
                }
                Ok(())
            }
            TunnelCommand::Status { spec } => {
                let output = io.output;
                let spec = load_spec(io, &spec.spec)?;
                let st = reconciler(io, spec)?.status().await?;
                if output == Output::Json {
                    return json_out(io, &st);
                }
                io.out(&format!(
                    "tunnel {} id={} status={} connections={}",
                    st.tunnel,
                    st.tunnel_id.as_deref().unwrap_or("-"),
                    st.status.as_deref().unwrap_or("-"),
                    st.connections
                ))?;
                if st.pending.is_empty() {
                    io.out("in sync")?;
                }
                for a in &st.pending {
                    io.out(&format!("pending: {}", a.describe()))?;
                }
                if let Some(v) = &st.vpc_service {
                    print_vpc(io, v)?;
                }
                Ok(())
            }
            TunnelCommand::RotateToken { spec } => {
                let output = io.output;
                let spec = load_spec(io, &spec.spec)?;
                let env = spec.environment.clone();
                let report = reconciler(io, spec)?.rotate_token().await?;
                if output == Output::Json {
                    return json_out(io, &report);
                }
                for a in &report.actions {
                    io.out(&format!("did: {}", a.describe()))?;
                }
                io.out(&format!(
                    "rotated; deploy with `provisioner secrets push --env {env}`"
                ))
            }
            TunnelCommand::RenderManifests {
                spec,
                out_dir,
                check,
            } => {
                let spec = load_spec(io, &spec.spec)?;
                let dir = io.path(&out_dir);
                if check {
                    let stale = manifests::stale(&spec, &dir)?;
                    if !stale.is_empty() {
                        return Err(TunnelError::Manifest(format!(
                            "{} out of date in {}: run `provisioner tunnel render-manifests`",
                            stale.join(", "),
                            out_dir.display()
                        )));
                    }
                    return io.out("manifests up to date");
                }
                for f in manifests::write(&spec, &dir)? {
                    io.out(&format!("wrote {}", out_dir.join(f).display()))?;
                }
                Ok(())
            }
        }
    }

    /// Runs and turns errors into a message on stderr and exit code 1.
    pub async fn run_exit_code(self, io: &mut CliIo<'_>) -> i32 {
        let r = self.run(io).await;
        report_exit(io, r)
    }
}

/// The Workers VPC service's id and the wrangler.toml entry that binds it.
fn print_vpc(io: &mut CliIo<'_>, v: &VpcServiceReport) -> Result<(), TunnelError> {
    match (&v.service_id, &v.wrangler_toml) {
        (Some(id), Some(snippet)) => {
            io.out(&format!("Workers VPC service {} id={id}", v.name))?;
            io.out(&format!(
                "wrangler.toml needs (then deploy the Worker; the edge's medusa upstream uses service = \"{}\"):",
                v.binding
            ))?;
            io.out(snippet.trim_end())
        }
        _ => io.out(&format!(
            "Workers VPC service {} does not exist yet (its id is known after `provisioner tunnel up`)",
            v.name
        )),
    }
}

fn report_exit(io: &mut CliIo<'_>, r: Result<(), TunnelError>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                let t = s.to_string();
                if !msg.contains(&t) {
                    msg.push_str(&format!("\n  caused by: {t}"));
                }
                src = s.source();
            }
            let _ = writeln!(io.stderr, "{msg}");
            1
        }
    }
}

fn secrets_file(io: &CliIo<'_>, env: &str) -> Result<SecretsFile, TunnelError> {
    if !env
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || env.is_empty()
    {
        return Err(TunnelError::Spec(format!(
            "--env {env:?}: use lowercase letters, digits and '-'"
        )));
    }
    Ok(SecretsFile::for_env(&io.repo_root, env))
}

fn read_stdin(io: &mut CliIo<'_>) -> Result<String, TunnelError> {
    let mut s = String::new();
    io.stdin
        .read_to_string(&mut s)
        .map_err(|source| TunnelError::Io {
            what: "read",
            path: "stdin".into(),
            source,
        })?;
    Ok(s)
}

/// The Worker script for an environment from wrangler.toml: `[env.<env>].name`
/// if set, else `<name>-<env>` (wrangler's naming of environments).
pub fn script_from_wrangler(repo_root: &Path, env: &str) -> Result<String, TunnelError> {
    let path = repo_root.join("wrangler.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| TunnelError::Io {
        what: "read (or pass --script)",
        path: "wrangler.toml".into(),
        source,
    })?;
    let doc: toml::Value =
        toml::from_str(&text).map_err(|e| TunnelError::Spec(format!("wrangler.toml: {e}")))?;
    if let Some(n) = doc
        .get("env")
        .and_then(|e| e.get(env))
        .and_then(|e| e.get("name"))
        .and_then(|n| n.as_str())
    {
        return Ok(n.to_string());
    }
    let name = doc
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| TunnelError::Spec("wrangler.toml has no `name`; pass --script".into()))?;
    Ok(format!("{name}-{env}"))
}

#[derive(serde::Serialize)]
struct PushReport {
    script: String,
    dry_run: bool,
    items: Vec<push::PushItem>,
    writes: usize,
}

impl SecretsCommand {
    /// Runs the command.
    pub async fn run(self, io: &mut CliIo<'_>) -> Result<(), TunnelError> {
        match self {
            SecretsCommand::Set { env, name } => {
                if !valid_name(&name) {
                    return Err(SecretsError::BadName(name).into());
                }
                let file = secrets_file(io, &env)?;
                let keys = AgeKeys::load(&io.lookup(), &io.repo_root)?;
                keys.recipients()?;
                let mut value = read_stdin(io)?;
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                if value.is_empty() {
                    return Err(TunnelError::Spec(format!(
                        "no value on standard input for {name}: pipe it in, e.g. `printf %s \"$VALUE\" | provisioner secrets set --env {env} {name}`"
                    )));
                }
                let mut map = file.load_or_empty(&keys)?;
                map.insert(name.clone(), SecretString::new(value));
                file.save(&keys, &map)?;
                io.out(&format!("set {name} in {}", file.display()))
            }
            SecretsCommand::Edit { env } => {
                let file = secrets_file(io, &env)?;
                let keys = AgeKeys::load(&io.lookup(), &io.repo_root)?;
                keys.recipients()?;
                let input = read_stdin(io)?;
                let edits = parse_edits(&input)?;
                let mut map = file.load_or_empty(&keys)?;
                let (set, removed) = apply_edits(&mut map, edits);
                file.save(&keys, &map)?;
                for n in set {
                    io.out(&format!("set {n}"))?;
                }
                for n in removed {
                    io.out(&format!("removed {n}"))?;
                }
                Ok(())
            }
            SecretsCommand::List { env } => {
                let output = io.output;
                let file = secrets_file(io, &env)?;
                let keys = AgeKeys::load(&io.lookup(), &io.repo_root)?;
                let map = file.load(&keys)?;
                let names: Vec<&String> = map.keys().collect();
                if output == Output::Json {
                    return json_out(io, &names);
                }
                for n in names {
                    io.out(n)?;
                }
                Ok(())
            }
            SecretsCommand::Push {
                env,
                prune,
                dry_run,
                script,
            } => {
                let output = io.output;
                let file = secrets_file(io, &env)?;
                let keys = AgeKeys::load(&io.lookup(), &io.repo_root)?;
                let local = file.load(&keys)?;
                let creds = Credentials::from_env(&io.lookup())?;
                let script = match script {
                    Some(s) => s,
                    None => script_from_wrangler(&io.repo_root, &env)?,
                };
                let key = DigestKey::derive(&keys.identity_secret(file.display())?);
                let target = PushTarget {
                    account: creds.account_id.clone(),
                    script: script.clone(),
                    digests: io
                        .var("SHOPEDGE_SECRETS_STATE_KV_NAMESPACE")
                        .filter(|s| !s.is_empty())
                        .map(|namespace| DigestStore { namespace }),
                };
                if target.digests.is_none() {
                    let _ = writeln!(io.stderr, "notice: SHOPEDGE_SECRETS_STATE_KV_NAMESPACE is not set, so the digests of pushed values are not kept: every secret is written ({}).", perm::KV);
                }
                let client = creds.client()?;
                let (remote, last) = push::observe(&client, &target).await.map_err(|e| {
                    if e.has_code(10007) {
                        TunnelError::Spec(format!(
                            "Worker {script:?} does not exist in account CLOUDFLARE_ACCOUNT_ID={}: deploy it first (`npx wrangler deploy --env {env}`) or pass --script",
                            creds.account_id
                        ))
                    } else {
                        classify(e)
                    }
                })?;
                let plan = push::plan_push(&local, &remote, &last, &key, prune);
                let writes = if dry_run {
                    0
                } else {
                    push::execute(&client, &target, &local, &plan, &key).await?
                };
                if output == Output::Json {
                    return json_out(
                        io,
                        &PushReport {
                            script,
                            dry_run,
                            items: plan,
                            writes,
                        },
                    );
                }
                for item in &plan {
                    let a = match item.action {
                        PushAction::Create => "create",
                        PushAction::Update => "update",
                        PushAction::Unchanged => "unchanged",
                        PushAction::Delete => "delete",
                        PushAction::KeepExtra => "keep (not in file; --prune deletes)",
                    };
                    io.out(&format!("{a}: {}", item.name))?;
                }
                io.out(&format!(
                    "{} {writes} change(s) to Worker {script}",
                    if dry_run { "dry run:" } else { "pushed" }
                ))
            }
        }
    }

    /// Runs and turns errors into a message on stderr and exit code 1.
    pub async fn run_exit_code(self, io: &mut CliIo<'_>) -> i32 {
        let r = self.run(io).await;
        report_exit(io, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The shape of the provisioner's CLI: global `--spec` and `--output`.
    #[derive(Parser)]
    struct Host {
        #[arg(long, short = 'f', global = true, default_value = "cluster.toml")]
        spec: PathBuf,
        #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(subcommand)]
        cmd: HostCmd,
    }

    #[derive(clap::Subcommand)]
    enum HostCmd {
        #[command(subcommand)]
        Tunnel(TunnelCommand),
        #[command(subcommand)]
        Secrets(SecretsCommand),
    }

    #[test]
    fn embeds_in_a_cli_with_global_spec_and_output() {
        Host::command().debug_assert();
        let h = Host::try_parse_from([
            "provisioner",
            "-o",
            "json",
            "tunnel",
            "up",
            "--tunnel-spec",
            "t.toml",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(h.output, Output::Json);
        assert!(matches!(
            h.cmd,
            HostCmd::Tunnel(TunnelCommand::Up { dry_run: true, .. })
        ));
        let h = Host::try_parse_from([
            "provisioner",
            "secrets",
            "push",
            "--env",
            "production",
            "--prune",
            "--output",
            "json",
        ])
        .unwrap();
        assert_eq!(h.output, Output::Json);
        assert_eq!(h.spec, PathBuf::from("cluster.toml"));
    }

    #[test]
    fn run_futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let (mut i, mut o, mut e) = (std::io::empty(), Vec::new(), Vec::new());
        let mut io = CliIo {
            vars: BTreeMap::new(),
            repo_root: PathBuf::from("."),
            stdin: &mut i,
            stdout: &mut o,
            stderr: &mut e,
            output: Output::Text,
        };
        let cmd = TunnelCommand::Status {
            spec: SpecArg {
                spec: PathBuf::from("x"),
            },
        };
        let fut = cmd.run(&mut io);
        is_send(&fut);
        drop(fut);
        let fut = SecretsCommand::List { env: "x".into() }.run(&mut io);
        is_send(&fut);
    }

    #[test]
    fn script_name_follows_wrangler() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wrangler.toml"),
            "name = \"w\"\n[env.staging]\n[env.production]\nname = \"w-prod\"\n",
        )
        .unwrap();
        assert_eq!(
            script_from_wrangler(dir.path(), "staging").unwrap(),
            "w-staging"
        );
        assert_eq!(
            script_from_wrangler(dir.path(), "production").unwrap(),
            "w-prod"
        );
    }
}
