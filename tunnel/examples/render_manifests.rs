//! Renders infra/apps/cloudflared/ from its tunnel.toml without the
//! provisioner binary: `cargo run -p tunnel --example render_manifests [-- --check]`.

use clap::Parser;
use tunnel::cli::{CliIo, TunnelCommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: TunnelCommand,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let extra: Vec<String> = std::env::args().skip(1).collect();
    let args = ["x", "render-manifests"]
        .into_iter()
        .map(String::from)
        .chain(extra);
    let cli = Cli::parse_from(args);
    let repo_root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let (mut stdin, mut stdout, mut stderr) =
        (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut io = CliIo {
        vars: std::env::vars().collect(),
        repo_root,
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
        output: tunnel::cli::Output::Text,
    };
    std::process::exit(cli.cmd.run_exit_code(&mut io).await);
}
