//! `make bench-edge`: throughput and latency of the same GET
//!   (a) straight to the origin,
//!   (b) through the Rust edge worker in workerd,
//!   (c) through a minimal plain-JS pass-through worker in the same workerd,
//! plus the worker's wasm size (raw and gzipped) and its startup CPU time from
//! `wrangler check startup`.
//!
//! Settings: BENCH_SECONDS (default 5), BENCH_CONCURRENCY (default 16).

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
        .unwrap_or(5.0);
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
    let js = Edge::start(EdgeOptions {
        script: Some(repo_root().join("edge-worker/js/passthrough.mjs")),
        vars: [("ORIGIN_URL".to_string(), rust.medusa.url())]
            .into_iter()
            .collect(),
        ..Default::default()
    })
    .await?;

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

    println!("bench-edge: GET {path} (Host: {BENCH_HOST}), {concurrency} concurrent clients, {seconds} s per target (best of 2 interleaved rounds), 127.0.0.1, 2-core machine");
    let a = load(&origin_url, seconds, concurrency).await?;
    let mut best: [Option<Stats>; 4] = [None, None, None, None];
    for _round in 0..2 {
        let urls = [
            rust.at(path),
            rust_no_waf.at(path),
            js.at(path),
            rust.at(cached_path),
        ];
        for (i, url) in urls.iter().enumerate() {
            let s = load(url, seconds, concurrency).await?;
            if best[i].as_ref().is_none_or(|b| s.rps > b.rps) {
                best[i] = Some(s);
            }
        }
    }
    let [Some(b), Some(b0), Some(c), Some(d)] = best else {
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
    ] {
        println!(
            "{:<46} {:>10.0} {:>9.2} {:>9.2} {:>7}",
            name, s.rps, s.p50_ms, s.p99_ms, s.errors
        );
    }
    println!("ratio b/a (req/s): {:.2}", b.rps / a.rps);
    println!("ratio b/c (req/s): {:.2}   (target >= 0.80)", b.rps / c.rps);
    println!(
        "ratio b0/c (req/s): {:.2}  (routing and proxying alone)",
        b0.rps / c.rps
    );

    let wasm = std::fs::read(repo_root().join("build/worker/edge_worker_bg.wasm"))?;
    println!(
        "wasm size: {:.1} KiB raw, {:.1} KiB gzipped   (target <= 600 KiB gzipped with the WAF; 350 KiB before it)",
        wasm.len() as f64 / 1024.0,
        gzip_len(&wasm)? as f64 / 1024.0
    );
    rust.shutdown().await;
    rust_no_waf.shutdown().await;
    js.shutdown().await;
    match startup_cpu() {
        Ok(s) => println!("startup CPU (wrangler check startup): {s}"),
        Err(e) => println!("startup CPU: not measured: {e}"),
    }
    Ok(())
}
