//! `make bench-edge`: throughput and latency of the same GET
//!   (a) straight to the origin,
//!   (b) through the Rust edge worker in workerd,
//!   (c) through a minimal plain-JS pass-through worker in the same workerd,
//!   (e) through a plain-JS worker doing only the per-request work any proxy
//!       here must do (header timeout, forwarding header edits, response
//!       copy with edits; `edge-worker/js/required-work.mjs`): the share of
//!       the gap to (c) that is the runtime's cost of that work,
//! plus the worker's wasm size (raw and gzipped) and its startup CPU time from
//! `wrangler check startup`.
//!
//! The worker targets are measured in rounds (b, b0, c, d, then the reverse
//! order in the next round), so slow drifts of a shared machine hit them
//! alike; the table shows each target's median round, and the b/c ratio is
//! the median of the per-round ratios (with their range).
//!
//! Settings: BENCH_SECONDS per target per round (default 3), BENCH_ROUNDS
//! (default 5), BENCH_CONCURRENCY (default 16).

use anyhow::{bail, Context as _};
use reqwest::Client;
use shopedge_origins::edge_harness::{repo_root, tool, Edge, EdgeOptions};
use std::io::Write as _;
use std::time::{Duration, Instant};

struct Stats {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// The Host every request carries: a name, as real storefront traffic has (a
/// bare IP address would trip the WAF's IP-host rule and log a line for every
/// request, which production traffic through Cloudflare never does).
const BENCH_HOST: &str = "shop.localhost";

async fn load(url: &str, seconds: f64, concurrency: usize) -> anyhow::Result<Stats> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::HOST,
        reqwest::header::HeaderValue::from_static(BENCH_HOST),
    );
    let client = Client::builder()
        .no_proxy()
        .default_headers(headers)
        .pool_max_idle_per_host(concurrency)
        .build()?;
    // Warm up: connections, JIT, wasm instance.
    let warm_until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < warm_until {
        client.get(url).send().await?.bytes().await?;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        if r.bytes().await.is_err() {
                            errors += 1;
                            continue;
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    if all.is_empty() {
        bail!("no successful request to {url}");
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
    Ok(Stats {
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    })
}

/// A plain-JS baseline worker (`script`, relative to the repo) in front of
/// `origin`.
async fn js_worker(script: &str, origin: &str) -> anyhow::Result<Edge> {
    Edge::start(EdgeOptions {
        script: Some(repo_root().join(script)),
        vars: [("ORIGIN_URL".to_string(), origin.to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    })
    .await
}

/// The sample with the median req/s.
fn median_round(mut v: Vec<Stats>) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|x, y| x.rps.total_cmp(&y.rps));
    let mid = v.len() / 2;
    Some(v.swap_remove(mid))
}

/// Median, minimum and maximum.
fn median_range(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

fn gzip_len(data: &[u8]) -> anyhow::Result<usize> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?.len())
}

fn startup_cpu() -> anyhow::Result<String> {
    let node = tool("SHOPEDGE_NODE")?;
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(node)
        .arg(repo_root().join("node_modules/wrangler/bin/wrangler.js"))
        .args(["check", "startup", "--outfile"])
        .arg(dir.path().join("startup.cpuprofile"))
        .current_dir(repo_root())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .output()
        .context("running wrangler check startup")?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("wrangler check startup failed:\n{text}");
    }
    let pick = |key: &str| {
        text.lines()
            .find_map(|l| l.split_once(key).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    Ok(format!(
        "active {} (profile window {})",
        pick("Active:"),
        pick("Profile window:")
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    // Not cacheable (no cache rule): every request goes through to the origin,
    // so (b) and (c) do the same work. A cached path is measured separately.
    let path = "/store/echo";
    let cached_path = "/store/products";

    // Production-like: the KV override is re-read every 30 s, not per request.
    let rust = Edge::start(EdgeOptions {
        vars: [("EDGE_CONFIG_TTL_SECONDS".to_string(), "30".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    })
    .await?;
    let origin_url = format!("{}{path}", rust.medusa.url());
    let js = js_worker("edge-worker/js/passthrough.mjs", &rust.medusa.url()).await?;
    let required = js_worker("edge-worker/js/required-work.mjs", &rust.medusa.url()).await?;

    // The same worker with its WAF layer switched off by a config override:
    // the cost of routing and proxying alone.
    let mut no_waf = edge_worker::active::ActiveConfig::builtin()
        .map_err(anyhow::Error::msg)?
        .config;
    no_waf.waf.enabled = false;
    let rust_no_waf = Edge::start(EdgeOptions {
        vars: [("EDGE_CONFIG_TTL_SECONDS".to_string(), "30".to_string())]
            .into_iter()
            .collect(),
        kv: [("config".to_string(), serde_json::to_string(&no_waf)?)]
            .into_iter()
            .collect(),
        ..Default::default()
    })
    .await?;

    println!("bench-edge: GET {path} (Host: {BENCH_HOST}), {concurrency} concurrent clients, {rounds} rounds of {seconds} s per target (medians), 127.0.0.1, 2-core machine");
    let a = load(&origin_url, seconds, concurrency).await?;
    let urls = [
        rust.at(path),
        rust_no_waf.at(path),
        js.at(path),
        rust.at(cached_path),
        required.at(path),
    ];
    let mut samples: [Vec<Stats>; 5] = Default::default();
    let mut ratios = Vec::new();
    let mut ratios_b0 = Vec::new();
    let mut ratios_e = Vec::new();
    for round in 0..rounds {
        let mut order = [0usize, 1, 2, 3, 4];
        if round % 2 == 1 {
            order.reverse();
        }
        let mut this = [0.0f64; 5];
        for i in order {
            let s = load(&urls[i], seconds, concurrency).await?;
            this[i] = s.rps;
            samples[i].push(s);
        }
        ratios.push(this[0] / this[2]);
        ratios_b0.push(this[1] / this[2]);
        ratios_e.push(this[4] / this[2]);
    }
    let [b, b0, c, d, e] = samples.map(median_round);
    let (Some(b), Some(b0), Some(c), Some(d), Some(e)) = (b, b0, c, d, e) else {
        bail!("no measurement");
    };
    println!(
        "{:<46} {:>10} {:>9} {:>9} {:>7}",
        "target", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, s) in [
        ("(a) origin directly", &a),
        ("(b) Rust worker in workerd (full pipeline)", &b),
        ("(b0) Rust worker, WAF off (routing + proxy)", &b0),
        ("(c) JS pass-through worker in workerd", &c),
        ("(d) Rust worker, cache HIT /store/products", &d),
        ("(e) JS worker, required per-request work only", &e),
    ] {
        println!(
            "{:<46} {:>10.0} {:>9.2} {:>9.2} {:>7}",
            name, s.rps, s.p50_ms, s.p99_ms, s.errors
        );
    }
    println!("ratio b/a (req/s): {:.2}", b.rps / a.rps);
    let (r, lo, hi) = median_range(&mut ratios);
    println!("ratio b/c (req/s): {r:.2}   (median of {rounds} rounds, range {lo:.2}-{hi:.2}; target >= 0.80)");
    let (r0, lo0, hi0) = median_range(&mut ratios_b0);
    println!("ratio b0/c (req/s): {r0:.2}  (routing and proxying alone; range {lo0:.2}-{hi0:.2})");
    let (re, loe, hie) = median_range(&mut ratios_e);
    println!(
        "ratio e/c (req/s): {re:.2}   (plain JS doing only the required work; range {loe:.2}-{hie:.2})"
    );

    let wasm = std::fs::read(repo_root().join("build/worker/edge_worker_bg.wasm"))?;
    println!(
        "wasm size: {:.1} KiB raw, {:.1} KiB gzipped   (target <= 600 KiB gzipped with the WAF; 350 KiB before it)",
        wasm.len() as f64 / 1024.0,
        gzip_len(&wasm)? as f64 / 1024.0
    );
    rust.shutdown().await;
    rust_no_waf.shutdown().await;
    required.shutdown().await;
    js.shutdown().await;
    match startup_cpu() {
        Ok(s) => println!("startup CPU (wrangler check startup): {s}"),
        Err(e) => println!("startup CPU: not measured: {e}"),
    }
    Ok(())
}
