use std::sync::{Arc, Mutex};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROVISIONER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let out: provisioner::progress::Sink = Arc::new(Mutex::new(std::io::stdout()));
    let err: provisioner::progress::Sink = Arc::new(Mutex::new(std::io::stderr()));
    let code = runtime.block_on(provisioner::run(
        std::env::args().collect(),
        provisioner::Env::from_process(),
        out,
        err,
    ));
    std::process::exit(code);
}
