//! talos crate.
