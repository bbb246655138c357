//! Runs the compiled edge worker in workerd (Miniflare's Node API, through
//! `tests/e2e/mf-host.mjs`) in front of the local sample origins.
//!
//! The worker must have been built (`scripts/build-worker.sh`, which
//! `make test` runs first); tools come from `target/tools.env`
//! (`scripts/setup.sh`).

use crate::{self as origins, Kind, Origin};
use anyhow::{anyhow, bail, Context as _};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The repository root.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // tests/origins -> repository root
    manifest
        .parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

/// A value of `target/tools.env`.
pub fn tool(name: &str) -> anyhow::Result<String> {
    let path = repo_root().join("target/tools.env");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is missing: run `make test` (or scripts/setup.sh) first",
            path.display()
        )
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
        .ok_or_else(|| {
            anyhow!(
                "{name} not set in {}: re-run scripts/setup.sh",
                path.display()
            )
        })
}

/// The built worker's entry module.
pub fn worker_entry() -> anyhow::Result<PathBuf> {
    let entry = repo_root().join("build/worker/entry.mjs");
    if !entry.is_file() {
        bail!(
            "{} is missing: build the worker with `scripts/build-worker.sh` (make test does)",
            entry.display()
        );
    }
    Ok(entry)
}

/// How to start the edge.
#[derive(Debug, Clone, Default)]
pub struct EdgeOptions {
    /// Extra Worker vars.
    pub vars: BTreeMap<String, String>,
    /// Worker secrets.
    pub secrets: BTreeMap<String, String>,
    /// Bind the `STOREFRONT` service binding (to the storefront origin).
    pub storefront_binding: bool,
    /// Initial KV contents of EDGE_CONFIG.
    pub kv: BTreeMap<String, String>,
    /// Extra Miniflare worker definitions (JSON).
    pub extra_workers: Vec<serde_json::Value>,
    /// Replace the worker script (for the JS baseline).
    pub script: Option<PathBuf>,
    /// Origin URL for the JS baseline's ORIGIN_URL var.
    pub medusa_url_override: Option<String>,
    /// Rate Limiting bindings: name -> (limit, period seconds). Unset
    /// bindings of the built-in config get a limit no test reaches.
    pub ratelimits: BTreeMap<String, (u32, u32)>,
}

/// The worker in workerd plus the sample origins behind it.
pub struct Edge {
    /// The worker's URL, with a trailing slash.
    pub url: String,
    /// The Medusa-like origin.
    pub medusa: Origin,
    /// The storefront origin.
    pub storefront: Origin,
    /// The Cloudflare Access stand-in (publishes the signing keys; its URL
    /// is the team domain, `ACCESS_TEAM_DOMAIN`).
    pub access: Origin,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The worker's stderr (console output), collected by a task.
    pub logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Edge {
    /// Starts the origins and the worker.
    pub async fn start(opts: EdgeOptions) -> anyhow::Result<Edge> {
        let medusa =
            origins::start(Kind::Medusa, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let storefront =
            origins::start(Kind::Storefront, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let access =
            origins::start(Kind::Access, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let mut vars = BTreeMap::new();
        vars.insert("ACCESS_TEAM_DOMAIN".to_string(), access.url());
        vars.insert(
            "ACCESS_AUD".to_string(),
            crate::access::AUDIENCE.to_string(),
        );
        vars.insert(
            "MEDUSA_ORIGIN".to_string(),
            opts.medusa_url_override
                .clone()
                .unwrap_or_else(|| medusa.url()),
        );
        vars.insert("STOREFRONT_ORIGIN".to_string(), storefront.url());
        vars.insert("EDGE_CONFIG_TTL_SECONDS".to_string(), "0".to_string());
        vars.extend(opts.vars.clone());
        let script = match &opts.script {
            Some(s) => s.clone(),
            None => worker_entry()?,
        };
        let config = json!({
            "script": script,
            "vars": vars,
            "secrets": opts.secrets,
            "storefront_origin": if opts.storefront_binding { Some(storefront.url()) } else { None },
            "kv": opts.kv,
            "extra_workers": opts.extra_workers,
            "ratelimits": ratelimits(&opts.ratelimits),
        });
        let node = tool("SHOPEDGE_NODE")?;
        let mut child = Command::new(&node)
            .arg(repo_root().join("tests/e2e/mf-host.mjs"))
            .current_dir(repo_root())
            .env("MF_HOST_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {node}"))?;
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut l) = logs.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        let stdout_pipe = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        // Protocol lines (prefixed `MFHOST `) go to the channel; the rest of
        // stdout is the worker's console output and goes to the logs. Read
        // continuously so the pipe never fills.
        let (tx, mut stdout) = tokio::sync::mpsc::unbounded_channel::<String>();
        {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout_pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match line.strip_prefix("MFHOST ") {
                        Some(rest) => {
                            if tx.send(rest.to_string()).is_err() {
                                break;
                            }
                        }
                        None => {
                            if let Ok(mut l) = logs.lock() {
                                l.push_str(&line);
                                l.push('\n');
                            }
                        }
                    }
                }
            });
        }
        let first = tokio::time::timeout(std::time::Duration::from_secs(60), stdout.recv())
            .await
            .map_err(|_| anyhow!("miniflare did not start within 60 s"))?;
        let Some(first) = first else {
            let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
            bail!("miniflare exited before it was ready:\n{logs}");
        };
        let ready: serde_json::Value = serde_json::from_str(&first)
            .with_context(|| format!("unexpected miniflare output: {first}"))?;
        let url = ready["url"]
            .as_str()
            .ok_or_else(|| anyhow!("no url in {first}"))?
            .to_string();
        Ok(Edge {
            url,
            medusa,
            storefront,
            access,
            child,
            stdin,
            stdout,
            logs,
        })
    }

    /// A valid Cloudflare Access JWT for the test application.
    pub fn access_jwt(&self) -> String {
        self.access_jwt_with(
            3600,
            crate::access::SignedBy::Published,
            crate::access::AUDIENCE,
        )
    }

    /// An Access JWT valid for `ttl` seconds (negative: expired), signed by
    /// `by`, for `audience`.
    pub fn access_jwt_with(&self, ttl: i64, by: crate::access::SignedBy, audience: &str) -> String {
        let claims = crate::access::claims(&self.access.url(), audience, ttl);
        crate::access::sign(&claims, by, crate::access::KID)
    }

    /// `url` + `path` (path without a leading slash is fine too).
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), path)
    }

    async fn command(&mut self, cmd: serde_json::Value) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("miniflare stdin closed"))?;
        stdin.write_all(format!("{cmd}\n").as_bytes()).await?;
        stdin.flush().await?;
        let line = self
            .stdout
            .recv()
            .await
            .ok_or_else(|| anyhow!("miniflare exited"))?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["ok"] != json!(true) {
            bail!("miniflare command failed: {line}");
        }
        Ok(())
    }

    /// Writes a key of the EDGE_CONFIG KV namespace.
    pub async fn kv_put(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "kv_put", "key": key, "value": value}))
            .await
    }

    /// Deletes a key of the EDGE_CONFIG KV namespace.
    pub async fn kv_delete(&mut self, key: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "kv_delete", "key": key})).await
    }

    /// The worker's console output once `done` holds for it (console lines
    /// reach the harness asynchronously), or after `within` as it then is.
    pub async fn worker_logs_when(
        &self,
        within: std::time::Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let until = std::time::Instant::now() + within;
        loop {
            let logs = self.worker_logs();
            if done(&logs) || std::time::Instant::now() >= until {
                return logs;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// What the worker printed so far.
    pub fn worker_logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops the worker.
    pub async fn shutdown(mut self) {
        drop(self.stdin.take());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// Miniflare's `ratelimits` option: the given bindings, plus the built-in
/// config's bindings with a limit no test reaches.
fn ratelimits(given: &BTreeMap<String, (u32, u32)>) -> serde_json::Value {
    let mut all: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    if let Ok(active) = edge_worker::active::ActiveConfig::builtin() {
        for r in &active.config.rate_limits {
            all.insert(r.binding.clone(), (1_000_000, r.period_seconds));
        }
    }
    all.extend(given.iter().map(|(k, v)| (k.clone(), *v)));
    let map: serde_json::Map<String, serde_json::Value> = all
        .into_iter()
        .enumerate()
        .map(|(i, (name, (limit, period)))| {
            let ns = (1001 + i).to_string();
            (
                name,
                json!({"namespace_id": ns, "simple": {"limit": limit, "period": period}}),
            )
        })
        .collect();
    serde_json::Value::Object(map)
}
