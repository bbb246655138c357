//! The edge worker: the storefront's front door on Cloudflare Workers.
//!
//! Pure logic (configuration, routing, redirects, header handling, the layer
//! pipeline, error pages) lives in plain modules tested on the host. The thin
//! `worker` binding in [`wasm`] does the I/O and only exists on wasm32.

pub mod active;
pub mod alloc;
pub mod cache;
pub mod config;
pub mod errors;
pub mod forwarding;
pub mod http;
pub mod pipeline;
pub mod ratelimit;
pub mod redirect;
pub mod router;

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: alloc::SizeClasses<std::alloc::System> =
    alloc::SizeClasses::new(std::alloc::System);

/// The worker's version, reported by `/__edge/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
