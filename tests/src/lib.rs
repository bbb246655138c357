//! Shared test support for the cross-crate integration and end-to-end tests:
//! local origin servers, fake cloud APIs (Hetzner, Talos, Cloudflare, Kubernetes)
//! and the test context that starts them.

pub mod cloudflare_fake;
pub mod hetzner_fake;
pub mod kube_fake;
pub mod origins;
pub mod seq;
pub mod shared_data;
pub mod talos_fake;
