//! The keyword automaton: a dense Aho-Corasick DFA over byte classes,
//! ASCII case-insensitive, reporting every (overlapping) keyword ending at
//! each position.
//!
//! States are numbered so that those with matches come last: the scan loop
//! is one table lookup and one comparison per byte.

#[derive(Debug, thiserror::Error)]
pub enum KwDfaError {
    #[error("keyword automaton too large ({0} states)")]
    TooLarge(usize),
    #[error("empty keyword")]
    Empty,
}

pub struct KwDfa {
    /// Byte -> class (0: a byte in no keyword).
    class: [u8; 256],
    /// For dividing a state id by the row length (the number of classes).
    recip: u64,
    /// `trans[state * classes + class]` = next state * classes.
    trans: Vec<u32>,
    /// Id (premultiplied) of the first state with matches.
    match_base: u32,
    /// Per match state, in order from `match_base`.
    matches: Vec<MatchState>,
    /// Keyword indices, grouped by state.
    outs: Vec<u32>,
}

struct MatchState {
    /// Range in `outs`.
    outs: (u32, u32),
}

impl KwDfa {
    /// Build from lowercase (or case-less) keywords.
    pub fn new<S: AsRef<[u8]>>(words: &[S]) -> Result<KwDfa, KwDfaError> {
        let mut class = [0u8; 256];
        let mut nclass = 1usize;
        for w in words {
            for &c in w.as_ref() {
                let l = c.to_ascii_lowercase();
                if class[usize::from(l)] == 0 {
                    if nclass > 255 {
                        return Err(KwDfaError::TooLarge(nclass));
                    }
                    let id = u8::try_from(nclass).unwrap_or(u8::MAX);
                    class[usize::from(l)] = id;
                    class[usize::from(l.to_ascii_uppercase())] = id;
                    nclass += 1;
                }
            }
        }
        // The trie: rows of `nclass` child ids (0 = none; the root, id 0,
        // is nobody's child).
        let mut next: Vec<u32> = vec![0; nclass];
        let mut own: Vec<Vec<u32>> = vec![Vec::new()];
        for (k, w) in words.iter().enumerate() {
            let w = w.as_ref();
            if w.is_empty() {
                return Err(KwDfaError::Empty);
            }
            let mut s = 0usize;
            for &c in w {
                let at = s * nclass + usize::from(class[usize::from(c)]);
                s = match next[at] {
                    0 => {
                        let n = own.len();
                        own.push(Vec::new());
                        next.resize(next.len() + nclass, 0);
                        next[at] = u32::try_from(n).map_err(|_| KwDfaError::TooLarge(n))?;
                        n
                    }
                    n => n as usize,
                };
            }
            own[s].push(u32::try_from(k).unwrap_or(u32::MAX));
        }
        let n = own.len();
        if n.saturating_mul(nclass) >= u32::MAX as usize {
            return Err(KwDfaError::TooLarge(n));
        }
        // Failure links in breadth-first order; missing transitions take
        // the failure state's (already complete, being shallower).
        let mut fail = vec![0u32; n];
        let mut outs: Vec<Vec<u32>> = own;
        let mut queue = std::collections::VecDeque::new();
        for &v in &next[..nclass] {
            if v != 0 {
                fail[v as usize] = 0;
                queue.push_back(v as usize);
            }
        }
        while let Some(u) = queue.pop_front() {
            let f = fail[u] as usize;
            if !outs[f].is_empty() {
                let inherited = outs[f].clone();
                outs[u].extend(inherited);
            }
            for c in 0..nclass {
                let v = next[u * nclass + c];
                if v != 0 {
                    fail[v as usize] = next[f * nclass + c];
                    queue.push_back(v as usize);
                } else {
                    next[u * nclass + c] = next[f * nclass + c];
                }
            }
        }
        // Renumber: states without matches first (the root stays 0).
        let mut order: Vec<usize> = (0..n).filter(|&s| outs[s].is_empty()).collect();
        let first_match = order.len();
        order.extend((0..n).filter(|&s| !outs[s].is_empty()));
        let stride = nclass;
        let mut new_id = vec![0u32; n];
        for (i, &s) in order.iter().enumerate() {
            new_id[s] = u32::try_from(i * stride).unwrap_or(u32::MAX);
        }
        let mut trans = Vec::with_capacity(n * stride);
        for &s in &order {
            trans.extend(
                next[s * nclass..(s + 1) * nclass]
                    .iter()
                    .map(|&t| new_id[t as usize]),
            );
        }
        let mut matches = Vec::with_capacity(n - first_match);
        let mut flat = Vec::new();
        for &s in &order[first_match..] {
            let a = u32::try_from(flat.len()).unwrap_or(u32::MAX);
            flat.extend_from_slice(&outs[s]);
            let b = u32::try_from(flat.len()).unwrap_or(u32::MAX);
            matches.push(MatchState { outs: (a, b) });
        }
        let recip = (1u64 << 32).div_ceil(stride as u64);
        debug_assert!((0..n as u64).all(|k| (k * stride as u64 * recip) >> 32 == k));
        Ok(KwDfa {
            class,
            // (2^32 / stride, rounded up: `(k * stride * recip) >> 32` is k
            // for every state k)
            recip,
            trans,
            match_base: u32::try_from(first_match * stride).unwrap_or(u32::MAX),
            matches,
            outs: flat,
        })
    }

    /// Every keyword occurrence in `hay`, as (end position, match state),
    /// appended to `hits`; [`KwDfa::keywords`] lists a state's keywords.
    #[inline(never)]
    pub fn find_all(&self, hay: &[u8], hits: &mut Vec<(u32, u32)>) {
        let trans = &self.trans[..];
        let class = &self.class;
        let base = self.match_base as usize;
        let mut s = 0usize;
        let mut i = 0usize;
        while i < hay.len() {
            s = trans
                .get(s + usize::from(class[usize::from(hay[i])]))
                .map_or(0, |&t| t as usize);
            i += 1;
            if s >= base {
                // (fields are far shorter than 4 GiB)
                hits.push((i as u32, s as u32));
            }
        }
    }

    /// The keywords (indices) that end in match state `s`.
    pub fn keywords(&self, s: u32) -> &[u32] {
        let i = ((u64::from(s - self.match_base) * self.recip) >> 32) as usize;
        match self.matches.get(i) {
            Some(m) => &self.outs[m.outs.0 as usize..m.outs.1 as usize],
            None => &[],
        }
    }

    /// Bytes of the tables (for size checks).
    #[cfg(test)]
    pub fn table_bytes(&self) -> usize {
        self.trans.len() * 4 + self.outs.len() * 4 + self.matches.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(words: &[&str], hay: &str) -> Vec<(u32, u32)> {
        let h = hay.to_ascii_lowercase();
        let mut v = Vec::new();
        for e in 1..=h.len() {
            for (k, w) in words.iter().enumerate() {
                if e >= w.len() && h.as_bytes()[e - w.len()..e] == *w.as_bytes() {
                    v.push((e as u32, k as u32));
                }
            }
        }
        v.sort_unstable();
        v
    }

    fn dfa_hits(d: &KwDfa, hay: &str) -> Vec<(u32, u32)> {
        let mut hits = Vec::new();
        d.find_all(hay.as_bytes(), &mut hits);
        let mut v: Vec<(u32, u32)> = hits
            .iter()
            .flat_map(|&(e, s)| d.keywords(s).iter().map(move |&k| (e, k)))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn overlapping_case_insensitive_matches() {
        let words = ["he", "she", "his", "hers", "s", "union select", "e"];
        let d = KwDfa::new(&words).expect("builds");
        for hay in [
            "ushers",
            "SHE said HIS hers",
            "x UNION SELECT y",
            "",
            "hhhhsssheeee",
            "union selec union select",
        ] {
            assert_eq!(dfa_hits(&d, hay), naive(&words, hay), "{hay}");
        }
    }

    #[test]
    fn matches_naive_search_on_pseudo_random_text() {
        let words = ["ab", "abc", "bca", "c", "aab", "cabbage", "b-a", "--"];
        let d = KwDfa::new(&words).expect("builds");
        let mut x = 12345u32;
        for _ in 0..300 {
            let mut s = String::new();
            for _ in 0..40 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                s.push(b"abcABC-eg"[(x >> 16) as usize % 9] as char);
            }
            assert_eq!(dfa_hits(&d, &s), naive(&words, &s), "{s}");
        }
    }
}
