//! The Talos API (gRPC, mutual TLS, port 50000).

pub mod client;
pub mod proto;

/// The Talos API port.
pub const TALOS_API_PORT: u16 = 50000;
