//! One sequence shared by every fake in the process: each records the number
//! it drew with every request, so a test can check the order of requests
//! across fakes (Hetzner, then Talos, then Cloudflare, then Kubernetes...).
//! Tests running in parallel draw from the same counter, which keeps each
//! test's own numbers increasing.

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The next number of the sequence.
pub fn next() -> u64 {
    NEXT.fetch_add(1, Ordering::SeqCst)
}
