//! `make bench-provision`: a 3+3 `provisioner up` against the fake Hetzner API with
//! realistic action durations (server create 20–40 s, request latency 150 ms), all
//! scaled by a time factor. Prints the wall time, the critical path of the dependent
//! steps, their ratio and the number of API requests, then the same for a no-op `up`.
//!
//! Usage: bench_provision [TIME_FACTOR]   (default 0.02: a 20 s action takes 0.4 s)

use provisioner::{Capture, Env};
use shopedge_tests::hetzner_fake::{self as fake, Config, FakeHetzner};
use std::time::{Duration, Instant};

/// Dependent request round trips before the slowest server action can start:
/// (locations | server types) -> images -> (owned lists) -> (network | groups |
/// firewall) -> server create.
const DEPENDENT_ROUND_TRIPS: u32 = 5;

fn spec() -> &'static str {
    r#"name = "bench"
location = "hil"

[control_plane]
count = 3
server_type = "cpx21"

[[worker_pools]]
name = "default"
count = 3
server_type = "cpx31"

[image]
selector = "os=talos"

[firewall]
admin_sources = ["2001:db8::/32"]

[machine_config.files]
control_plane = "controlplane.yaml"
worker = "worker.yaml"
"#
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let factor: f64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(0.02);
    let s = |secs: f64| Duration::from_secs_f64(secs * factor);
    let latency = s(0.150);
    let config = Config {
        server_create: (s(20.0), s(40.0)),
        server_delete: s(10.0),
        other_action: s(1.0),
        latency,
        ..Config::default()
    };
    let fake = FakeHetzner::start(config).await?;
    fake.add_image("talos", &[("os", "talos")]);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("cluster.toml"), spec())?;
    std::fs::write(
        dir.path().join("controlplane.yaml"),
        "machine:\n  type: controlplane\n",
    )?;
    std::fs::write(dir.path().join("worker.yaml"), "machine:\n  type: worker\n")?;
    let mut env = Env::empty(dir.path())
        .var("HCLOUD_TOKEN", fake::TOKEN)
        .var("HCLOUD_ENDPOINT", &fake.url());
    env.time_scale = factor;

    let run = |env: Env| async move {
        let (out, err) = (Capture::default(), Capture::default());
        let args = vec!["provisioner".to_string(), "up".to_string()];
        let started = Instant::now();
        let code = provisioner::run(args, env, out.sink(), err.sink()).await;
        (code, started.elapsed(), out.text(), err.text())
    };

    let (code, wall, out, err) = run(env.clone()).await;
    if code != 0 {
        anyhow::bail!("up failed:\n{out}\n{err}");
    }
    let log = fake.exchanges();
    let mutating = log.iter().filter(|x| x.mutating).count();
    let polls = log.iter().filter(|x| x.path.ends_with("/actions")).count();
    let slowest = fake.max_action_duration("create_server");
    let critical = slowest + latency * DEPENDENT_ROUND_TRIPS;
    let ratio = wall.as_secs_f64() / critical.as_secs_f64();

    fake.clear_log();
    let (code, noop_wall, out, err) = run(env).await;
    if code != 0 {
        anyhow::bail!("no-op up failed:\n{out}\n{err}");
    }
    let noop = fake.exchanges();
    let noop_mut = noop.iter().filter(|x| x.mutating).count();

    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!("bench-provision: 3 control-plane + 3 worker servers, time factor {factor}");
    println!(
        "  (server create 20-40 s -> {:.2}-{:.2} s, request latency 150 ms -> {:.1} ms)",
        s(20.0).as_secs_f64(),
        s(40.0).as_secs_f64(),
        latency.as_secs_f64() * 1000.0
    );
    println!("up wall time:      {:.3} s", wall.as_secs_f64());
    println!(
        "critical path:     {:.3} s  (slowest server create {:.3} s + {DEPENDENT_ROUND_TRIPS} dependent round trips)",
        critical.as_secs_f64(),
        slowest.as_secs_f64()
    );
    println!(
        "ratio:             {ratio:.3}  (target <= 1.2: {})",
        verdict(ratio <= 1.2)
    );
    println!(
        "API requests (up): {}  ({mutating} mutating, {} reads of which {polls} action polls; target <= 100: {})",
        log.len(),
        log.len() - mutating,
        verdict(log.len() <= 100)
    );
    println!(
        "no-op up:          {} requests, {noop_mut} mutating, {:.3} s  (target <= 10, all reads: {})",
        noop.len(),
        noop_wall.as_secs_f64(),
        verdict(noop.len() <= 10 && noop_mut == 0)
    );
    Ok(())
}
