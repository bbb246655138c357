//! The local sample origins and the edge harness (crate `shopedge-origins`,
//! in `tests/origins/`).
pub use shopedge_origins::*;
