//! The local sample origins (crate `shopedge-origins`, in `tests/origins/`).
pub use shopedge_origins::*;
