//! tunnel crate.
