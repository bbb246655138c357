//! `provisioner`: builds and reconciles the IPv6-only Talos Kubernetes cluster on
//! Hetzner Cloud. Layout: [`spec`] (the cluster spec), [`hcloud`] (API client),
//! [`plan`] (pure desired-vs-observed planning), [`apply`] (executing plans),
//! [`userdata`] (machine configs as user data), [`talos_ops`] (bootstrap, admin
//! client configs), [`tunnel_ops`] (the Cloudflare Tunnel step), [`inputs`] and
//! [`platform_ops`] (the add-ons and their secret inputs), [`lockdown`], [`up`]
//! (the steps after Talos), [`progress`] and [`cli`].

// Errors carry the API's code, message and details for good messages; they are
// returned rarely, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod cli;
pub mod hcloud;
pub mod inputs;
pub mod lockdown;
pub mod plan;
pub mod platform_ops;
pub mod progress;
pub mod spec;
pub mod talos_ops;
pub mod tunnel_ops;
pub mod up;
pub mod userdata;

pub use cli::{run, Capture, Env};
