//! Starts the local sample origins for `make dev`: the Medusa-like API and the
//! storefront page server, on 127.0.0.1 (ports from MEDUSA_PORT and
//! STOREFRONT_PORT, default 9000 and 3000). Runs until interrupted.

use shopedge_origins::{start, Kind};
use std::net::{Ipv4Addr, SocketAddr};

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let medusa = start(
        Kind::Medusa,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port("MEDUSA_PORT", 9000))),
    )
    .await?;
    let storefront = start(
        Kind::Storefront,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port("STOREFRONT_PORT", 3000))),
    )
    .await?;
    println!("dev-origins: medusa sample API on {}", medusa.url());
    println!(
        "dev-origins: storefront sample pages on {}",
        storefront.url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
