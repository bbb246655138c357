//! A size-class allocator for the worker's wasm instance.
//!
//! A request allocates a few hundred small blocks (header names and values,
//! WAF views, edit strings) and frees nearly all of them before it ends.
//! The standard wasm allocator (dlmalloc) searches and coalesces on every
//! call; here, blocks of up to [`MAX_SMALL`] bytes come from one free list
//! per power-of-two size class, so an allocation or a free is a few loads
//! and stores. Larger blocks go to the backing allocator.
//!
//! Small blocks are carved from 64 KiB slabs taken from the backing
//! allocator and never handed back; a class keeps as many blocks as it ever
//! had live at once. Wasm memory cannot shrink anyway, and a worker
//! instance's small-block peak is bounded by its concurrent requests.
//!
//! The allocator is not thread-safe: it is the global allocator only on
//! wasm32 without threads (the worker), where there is one thread. On the
//! host it is an ordinary value, tested against random workloads.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Smallest class: 16 bytes (room for the free-list link, and the usual
/// 16-byte alignment).
const MIN_SHIFT: u32 = 4;
/// Largest small block, in bytes.
pub const MAX_SMALL: usize = 4096;
const CLASSES: usize = (MAX_SMALL.trailing_zeros() - MIN_SHIFT + 1) as usize;
/// Slab size: one wasm page.
const SLAB: usize = 64 * 1024;

struct State {
    /// Head of each class's free list (the first word of a free block points
    /// at the next).
    free: [*mut u8; CLASSES],
    /// Unused tail of each class's current slab.
    next: [*mut u8; CLASSES],
    end: [*mut u8; CLASSES],
}

/// Small blocks from size-class free lists, the rest from `B`.
pub struct SizeClasses<B> {
    backing: B,
    state: UnsafeCell<State>,
}

// SAFETY: only used as the global allocator on single-threaded wasm32, where
// no two calls can run at once. (On the host it is used by one thread, in
// tests, and never shared.)
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<B: Sync> Sync for SizeClasses<B> {}

impl<B> SizeClasses<B> {
    /// An allocator over `backing`.
    pub const fn new(backing: B) -> Self {
        Self {
            backing,
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                next: [ptr::null_mut(); CLASSES],
                end: [ptr::null_mut(); CLASSES],
            }),
        }
    }
}

/// The class of a layout, or `None` for a large block.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    if size > MAX_SMALL {
        return None;
    }
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

impl<B: GlobalAlloc> SizeClasses<B> {
    /// A block of `class`, or null when the backing allocator is out of
    /// memory.
    ///
    /// # Safety
    /// No other call on this allocator may be running.
    unsafe fn alloc_small(&self, class: usize) -> *mut u8 {
        let st = &mut *self.state.get();
        let head = st.free[class];
        if !head.is_null() {
            st.free[class] = *(head as *mut *mut u8);
            return head;
        }
        let size = class_size(class);
        if st.next[class] == st.end[class] {
            // A slab aligned to the largest class, so every block (at a
            // multiple of its size) is aligned to its size.
            let slab = self
                .backing
                .alloc(Layout::from_size_align_unchecked(SLAB, MAX_SMALL));
            if slab.is_null() {
                return ptr::null_mut();
            }
            st.next[class] = slab;
            st.end[class] = slab.add(SLAB);
        }
        let block = st.next[class];
        st.next[class] = block.add(size);
        block
    }

    /// # Safety
    /// `block` was returned by `alloc_small(class)` and is not in use.
    unsafe fn free_small(&self, block: *mut u8, class: usize) {
        let st = &mut *self.state.get();
        *(block as *mut *mut u8) = st.free[class];
        st.free[class] = block;
    }
}

// SAFETY: blocks of a class never overlap (each comes from a slab carved in
// steps of the class size, or from the free list holding only blocks given
// back), are at least as large as the layout asked for and aligned to their
// size, which is at least the layout's alignment. Large layouts are passed
// to the backing allocator unchanged.
unsafe impl<B: GlobalAlloc> GlobalAlloc for SizeClasses<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => self.alloc_small(class),
            None => self.backing.alloc(layout),
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(class) => self.free_small(block, class),
            None => self.backing.dealloc(block, layout),
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class_of(layout), class_of(new_layout)) {
            // Still fits its block.
            (Some(old), Some(new)) if old == new => block,
            (None, None) => self.backing.realloc(block, layout, new_size),
            _ => {
                let fresh = self.alloc(new_layout);
                if !fresh.is_null() {
                    ptr::copy_nonoverlapping(block, fresh, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                fresh
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::System;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn classes_cover_sizes_and_alignments() {
        let l = |s, a| Layout::from_size_align(s, a).unwrap();
        assert_eq!(class_of(l(1, 1)), Some(0));
        assert_eq!(class_of(l(16, 8)), Some(0));
        assert_eq!(class_of(l(17, 1)), Some(1));
        assert_eq!(class_of(l(8, 64)), Some(2), "alignment raises the class");
        assert_eq!(class_of(l(4096, 8)), Some(CLASSES - 1));
        assert_eq!(class_of(l(4097, 8)), None);
        assert_eq!(class_of(l(8, 8192)), None);
        assert_eq!(class_size(CLASSES - 1), MAX_SMALL);
    }

    #[test]
    fn freed_blocks_are_reused_and_realloc_in_class_stays_put() {
        let a = SizeClasses::new(System);
        let l = Layout::from_size_align(24, 8).unwrap();
        unsafe {
            let p = a.alloc(l);
            a.dealloc(p, l);
            let q = a.alloc(l);
            assert_eq!(p, q, "the free list hands back the last freed block");
            let r = a.realloc(q, l, 32);
            assert_eq!(r, q, "24 and 32 bytes share a class");
            let s = a.realloc(r, Layout::from_size_align(32, 8).unwrap(), 40);
            assert_ne!(s, r, "40 bytes is the next class");
            a.dealloc(s, Layout::from_size_align(40, 8).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random allocations, reallocations and frees (small and large):
        /// every live block is aligned, never overlaps another, and keeps
        /// its contents.
        #[test]
        fn random_workloads_keep_blocks_disjoint_and_intact(
            ops in prop::collection::vec((0u8..3, 1usize..9000, 0u32..7, any::<u8>()), 1..400)
        ) {
            let a = SizeClasses::new(System);
            let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
            unsafe {
                for (op, size, align_shift, fill) in ops {
                    match op {
                        0 => {
                            let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
                            let p = a.alloc(layout);
                            prop_assert!(!p.is_null());
                            prop_assert_eq!(p as usize % layout.align(), 0);
                            ptr::write_bytes(p, fill, size);
                            live.push((p, layout, fill));
                        }
                        1 if !live.is_empty() => {
                            let (p, layout, fill) = live.swap_remove(size % live.len());
                            prop_assert!((0..layout.size()).all(|i| *p.add(i) == fill));
                            a.dealloc(p, layout);
                        }
                        _ if !live.is_empty() => {
                            let i = size % live.len();
                            let (p, layout, fill) = live[i];
                            let new_size = (size * 7) % 9000 + 1;
                            let q = a.realloc(p, layout, new_size);
                            prop_assert!(!q.is_null());
                            let kept = layout.size().min(new_size);
                            prop_assert!((0..kept).all(|j| *q.add(j) == fill));
                            ptr::write_bytes(q, fill, new_size);
                            live[i] = (q, Layout::from_size_align(new_size, layout.align()).unwrap(), fill);
                        }
                        _ => {}
                    }
                    let mut spans: Vec<(usize, usize)> =
                        live.iter().map(|(p, l, _)| (*p as usize, *p as usize + l.size())).collect();
                    spans.sort();
                    prop_assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlap");
                }
                for (p, layout, fill) in live {
                    prop_assert!((0..layout.size()).all(|i| *p.add(i) == fill));
                    a.dealloc(p, layout);
                }
            }
        }
    }
}
