//! Rule definitions and the matching engine.
//!
//! Each rule names a family, a paranoia level, a score and the field
//! locations it inspects. Regex rules carry literal keywords; one
//! Aho-Corasick automaton over all keywords selects, per field, the few
//! rules whose regexes are worth running (most fields run none).

mod defs;
mod funcs;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};

use crate::extract::Loc;

/// Attack or violation family (a rule group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Protocol,
    Method,
    Scanner,
    Multipart,
    Lfi,
    Rfi,
    Rce,
    Php,
    Generic,
    Ssrf,
    Xss,
    Sqli,
    SessionFixation,
    Java,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Protocol => "protocol",
            Family::Method => "method",
            Family::Scanner => "scanner",
            Family::Multipart => "multipart",
            Family::Lfi => "lfi",
            Family::Rfi => "rfi",
            Family::Rce => "rce",
            Family::Php => "php",
            Family::Generic => "generic",
            Family::Ssrf => "ssrf",
            Family::Xss => "xss",
            Family::Sqli => "sqli",
            Family::SessionFixation => "session-fixation",
            Family::Java => "java",
        }
    }
}

/// Score of a match (CRS severities).
pub const CRITICAL: u8 = 5;
pub const ERROR: u8 = 4;
pub const WARNING: u8 = 3;
pub const NOTICE: u8 = 2;

/// Target bits: which field locations a rule inspects.
pub const ARGV: u16 = 1;
pub const ARGN: u16 = 2;
pub const COOKIE: u16 = 4;
pub const HDR: u16 = 8;
pub const PATH: u16 = 16;
pub const FILE: u16 = 32;
pub const BODY: u16 = 64;
/// Uploaded file contents (web-shell signatures only).
pub const FDATA: u16 = 128;
/// Arguments, names, cookies and raw bodies.
pub const ARGS: u16 = ARGV | ARGN | COOKIE | BODY;
pub const ALL: u16 = ARGS | HDR | PATH | FILE;

pub fn loc_bit(loc: Loc) -> u16 {
    match loc {
        Loc::ArgValue => ARGV,
        Loc::ArgName => ARGN,
        Loc::CookieName | Loc::CookieValue => COOKIE,
        Loc::Header => HDR,
        Loc::Path => PATH,
        Loc::Filename => FILE,
        Loc::Body => BODY,
        Loc::FileContent => FDATA,
    }
}

/// Which normalised form a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Decoded, lowercased.
    Text,
    /// `Text` with comments removed and whitespace collapsed.
    Compact,
    /// `Text` with shell quoting/escaping tricks removed.
    Shell,
    /// Decoded, case preserved (for base64 and similar).
    Cased,
}

/// How a rule matches.
pub enum Pat {
    /// A regex (on lowercase text, ASCII mode), run only when one of the
    /// keywords occurs in the field (or always, when there are none).
    Re(&'static str, &'static [&'static str]),
    /// A regex run only when its [`Gate`] holds (see there).
    ReAll(&'static str, Gate),
    /// Any of these literals occurs.
    Words(&'static [&'static str]),
    /// Any of these literals occurs as a whole word (not preceded or
    /// followed by an ASCII letter, digit or `_`).
    WordsB(&'static [&'static str]),
    /// Any of these literals, base64-encoded at any of the three
    /// alignments, occurs (case-sensitive; use with `Form::Cased`).
    Base64(&'static [&'static str]),
    /// A hand-written matcher, run when a keyword occurs (always if none).
    Func(fn(&str) -> bool, &'static [&'static str]),
    /// A cheap hand-written matcher run on every field it targets, given
    /// all the forms.
    FuncAlways(fn(&Forms<'_>) -> bool),
}

/// A keyword prefilter in disjunctive normal form: the regex runs when
/// any clause holds; a clause holds when each of its slots has one of its
/// keywords in the field. Alphabetic keywords of up to three letters match
/// only where no ASCII letter touches them (`or` in `1 or 1`, not in
/// `store`); a word ending in `*` is a prefix with no letter before it
/// (`on*` in `onload`); other keywords match anywhere.
pub type Gate = &'static [&'static [&'static [&'static str]]];

pub struct RuleDef {
    pub id: u32,
    pub family: Family,
    pub pl: u8,
    pub score: u8,
    pub targets: u16,
    pub form: Form,
    pub pat: Pat,
    pub desc: &'static str,
}

pub use defs::RULES;
pub use funcs::{session_param_name, shell_form, shell_form_into, shell_sensitive, url_host};

enum Compiled {
    Re(regex::bytes::Regex),
    /// A keyword hit is the match.
    Words,
    Func(fn(&str) -> bool),
    FuncForms(fn(&Forms<'_>) -> bool),
}

struct CompiledRule {
    def: &'static RuleDef,
    m: Compiled,
    /// Slot masks of the gate's clauses; empty: no gate (always a candidate).
    clauses: Vec<u64>,
}

/// Where a keyword leads: a rule's gate slot.
#[derive(Clone)]
struct KwEntry {
    rule: u16,
    bit: u64,
    /// 0 = anywhere, 1 = at a word start, 2 = a whole word, 3 = no ASCII
    /// letter on either side, 4 = no ASCII letter before.
    bound: u8,
    /// For case-sensitive rules: the exact literal to confirm in the
    /// case-preserving form.
    exact: Option<Box<str>>,
}

/// Rules compiled for one paranoia level.
pub struct Engine {
    rules: Vec<CompiledRule>,
    /// Multi-byte keywords of all rules (case-insensitive), one automaton.
    ac: Option<AhoCorasick>,
    kws: Vec<Vec<KwEntry>>,
    kw_len: Vec<usize>,
    /// Single-byte keywords, per rule: (slot bit, set of bytes). Checked
    /// against the set of bytes present in the field, not the automaton.
    byte_masks: Vec<Vec<(u64, [u64; 4])>>,
    /// Rules with a clause made only of single-byte slots (they can pass
    /// their gate without any automaton hit), listed under the bytes of
    /// the clause's least common slot.
    byte_triggers: Vec<Vec<u16>>,
    /// Rules that run on every field they target.
    ungated: Vec<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rule {id}: invalid pattern: {source}")]
    Regex { id: u32, source: regex::Error },
    #[error("rule {0}: more than 64 gate slots")]
    TooManySlots(u32),
    #[error("building keyword automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

/// The normalised forms of a field. `compact` and `shell` are the same
/// `&str` as `text` when they would be equal to it.
pub struct Forms<'a> {
    pub text: &'a str,
    pub compact: &'a str,
    pub shell: &'a str,
    /// The raw value, case kept, URL-decoded once (made when first needed).
    pub cased: Cased<'a>,
}

/// The case-preserving form, decoded on first use (few fields need it).
pub struct Cased<'a> {
    raw: &'a [u8],
    plus: bool,
    cell: std::cell::OnceCell<std::borrow::Cow<'a, str>>,
}

impl<'a> Cased<'a> {
    pub fn new(raw: &'a [u8], plus: bool) -> Cased<'a> {
        Cased {
            raw,
            plus,
            cell: std::cell::OnceCell::new(),
        }
    }

    pub fn get(&self) -> &str {
        self.cell.get_or_init(|| {
            let raw = self.raw;
            if raw.contains(&b'%') || (self.plus && raw.contains(&b'+')) {
                let mut flags = crate::normalize::DecodeFlags::default();
                let (d, _) = crate::normalize::percent_decode_pass(raw, self.plus, &mut flags);
                std::borrow::Cow::Owned(String::from_utf8_lossy(&d).into_owned())
            } else {
                String::from_utf8_lossy(raw)
            }
        })
    }
}

impl Forms<'_> {
    fn get(&self, f: Form) -> &str {
        match f {
            Form::Text => self.text,
            Form::Compact => self.compact,
            Form::Shell => self.shell,
            Form::Cased => self.cased.get(),
        }
    }

    /// Whether the shell form differs from the text.
    pub fn shell_differs(&self) -> bool {
        !std::ptr::eq(self.shell, self.text)
    }
}

/// Per-request scratch space for [`Engine::scan`].
#[derive(Default)]
pub struct Scratch {
    bits: Vec<u64>,
    touched: Vec<u16>,
}

struct Builder {
    words: Vec<String>,
    index: std::collections::HashMap<String, usize>,
    kws: Vec<Vec<KwEntry>>,
    byte_masks: Vec<Vec<(u64, [u64; 4])>>,
}

impl Builder {
    fn add(&mut self, k: &str, rule: u16, bit: u64, bound: u8, exact: Option<&str>) {
        let lower = k.to_ascii_lowercase();
        if lower.len() == 1 && exact.is_none() {
            let c = lower.as_bytes()[0];
            let r = usize::from(rule);
            if self.byte_masks.len() <= r {
                self.byte_masks.resize(r + 1, Vec::new());
            }
            let masks = &mut self.byte_masks[r];
            let i = match masks.iter().position(|(b, _)| *b == bit) {
                Some(i) => i,
                None => {
                    masks.push((bit, [0; 4]));
                    masks.len() - 1
                }
            };
            masks[i].1[usize::from(c >> 6)] |= 1 << (c & 63);
            return;
        }
        let i = match self.index.get(&lower) {
            Some(&i) => i,
            None => {
                self.words.push(lower.clone());
                self.kws.push(Vec::new());
                self.index.insert(lower, self.words.len() - 1);
                self.words.len() - 1
            }
        };
        self.kws[i].push(KwEntry {
            rule,
            bit,
            bound,
            exact: exact.map(Box::from),
        });
    }
}

/// A gate keyword and its bound (see [`Gate`]): a trailing `*` marks a
/// prefix (no letter before it, anything after).
fn gate_keyword(k: &str) -> (&str, u8) {
    if let Some(p) = k
        .strip_suffix('*')
        .filter(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphabetic()))
    {
        return (p, 4);
    }
    let alpha = k.bytes().all(|c| c.is_ascii_alphabetic());
    (k, if alpha && k.len() <= 3 { 3 } else { 0 })
}

impl Engine {
    pub fn new(paranoia: u8, enabled: impl Fn(&RuleDef) -> bool) -> Result<Engine, EngineError> {
        let mut rules: Vec<CompiledRule> = Vec::new();
        let mut b = Builder {
            words: Vec::new(),
            index: std::collections::HashMap::new(),
            kws: Vec::new(),
            byte_masks: Vec::new(),
        };
        let mut ungated = Vec::new();
        let regex = |def: &RuleDef, re: &str| {
            regex::bytes::Regex::new(&format!("(?-u){re}"))
                .map_err(|source| EngineError::Regex { id: def.id, source })
        };
        for def in RULES.iter().filter(|d| d.pl <= paranoia && enabled(d)) {
            let idx = u16::try_from(rules.len()).unwrap_or(u16::MAX);
            let cased = def.form == Form::Cased;
            let mut clauses = Vec::new();
            let m = match &def.pat {
                Pat::Re(re, k) => {
                    // Keywords that start with a letter are gated at word
                    // starts (the patterns have `\b` or a delimiter there).
                    for k in k.iter() {
                        let bound = u8::from(k.len() >= 4 && k.as_bytes()[0].is_ascii_alphabetic());
                        b.add(k, idx, 1, bound, None);
                    }
                    if !k.is_empty() {
                        clauses.push(1);
                    }
                    Compiled::Re(regex(def, re)?)
                }
                Pat::ReAll(re, gate) => {
                    let mut slot = 0u32;
                    for clause in gate.iter() {
                        let mut mask = 0u64;
                        for alts in clause.iter() {
                            if slot >= 63 {
                                return Err(EngineError::TooManySlots(def.id));
                            }
                            let bit = 1u64 << slot;
                            slot += 1;
                            mask |= bit;
                            for k in alts.iter() {
                                let (k, bound) = gate_keyword(k);
                                b.add(k, idx, bit, bound, None);
                            }
                        }
                        clauses.push(mask);
                    }
                    Compiled::Re(regex(def, re)?)
                }
                Pat::Words(k) | Pat::WordsB(k) => {
                    let bound = if matches!(def.pat, Pat::WordsB(_)) {
                        2
                    } else {
                        0
                    };
                    for k in k.iter() {
                        b.add(k, idx, 1, bound, cased.then_some(*k));
                    }
                    clauses.push(1);
                    Compiled::Words
                }
                Pat::Base64(k) => {
                    for p in funcs::base64_variants(k) {
                        b.add(&p, idx, 1, 0, Some(&p));
                    }
                    clauses.push(1);
                    Compiled::Words
                }
                Pat::Func(f, k) => {
                    for k in k.iter() {
                        let bound = u8::from(k.as_bytes()[0].is_ascii_alphabetic());
                        b.add(k, idx, 1, bound, None);
                    }
                    if !k.is_empty() {
                        clauses.push(1);
                    }
                    Compiled::Func(*f)
                }
                Pat::FuncAlways(f) => Compiled::FuncForms(*f),
            };
            if clauses.is_empty() {
                ungated.push(idx);
            }
            rules.push(CompiledRule { def, m, clauses });
        }
        let ac = if b.words.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(true)
                    // A full DFA: one table lookup per byte in the overlapping
                    // search that runs on every field.
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&b.words)?,
            )
        };
        let mut byte_masks = b.byte_masks;
        byte_masks.resize(rules.len(), Vec::new());
        // How often a byte appears in ordinary text, roughly.
        let common = |c: usize| -> u32 {
            match c as u8 {
                b'a'..=b'z' | b'0'..=b'9' | b' ' => 8,
                b'.' | b'-' | b'/' | b'_' | b',' | b':' | b'=' | b'&' => 4,
                b'\'' | b'"' | b'(' | b')' | b';' | b'?' | b'+' | b'%' => 2,
                _ => 1,
            }
        };
        let mut byte_triggers: Vec<Vec<u16>> = vec![Vec::new(); 256];
        for (i, r) in rules.iter().enumerate() {
            let slots = &byte_masks[i];
            let all: u64 = slots.iter().map(|(b, _)| *b).fold(0, |a, b| a | b);
            for &m in r.clauses.iter().filter(|&&m| m & all == m) {
                let best = slots
                    .iter()
                    .filter(|(b, _)| m & b != 0)
                    .min_by_key(|(_, mask)| {
                        (0..256)
                            .filter(|&c| mask[c >> 6] & (1 << (c & 63)) != 0)
                            .map(common)
                            .sum::<u32>()
                    });
                if let Some((_, mask)) = best {
                    for (c, t) in byte_triggers.iter_mut().enumerate() {
                        let r16 = u16::try_from(i).unwrap_or(u16::MAX);
                        if mask[c >> 6] & (1 << (c & 63)) != 0 && !t.contains(&r16) {
                            t.push(r16);
                        }
                    }
                }
            }
        }
        Ok(Engine {
            kw_len: b.words.iter().map(String::len).collect(),
            ac,
            kws: b.kws,
            byte_masks,
            byte_triggers,
            rules,
            ungated,
        })
    }

    /// Run the rules that target `loc` on one field; `skip` filters rules
    /// (exclusions). When some rule passes its keyword gate, `proceed` is
    /// asked once whether to go on (the caller skips values it has already
    /// inspected); then `hit` is called with each matching rule once.
    pub fn scan(
        &self,
        loc: Loc,
        forms: &Forms<'_>,
        scratch: &mut Scratch,
        skip: &dyn Fn(&RuleDef) -> bool,
        proceed: &mut dyn FnMut() -> bool,
        hit: &mut dyn FnMut(&'static RuleDef),
    ) {
        let bit = loc_bit(loc);
        let Scratch { bits, touched } = scratch;
        if bits.len() != self.rules.len() {
            bits.clear();
            bits.resize(self.rules.len(), 0);
        }
        for &r in touched.iter() {
            bits[usize::from(r)] = 0;
        }
        touched.clear();
        let rules = &self.rules;
        // Bit 63 marks a rule as touched (gate slots use bits 0..63).
        const TOUCHED: u64 = 1 << 63;
        let mark = |r: u16, b: u64, bits: &mut Vec<u64>, touched: &mut Vec<u16>| {
            let ri = usize::from(r);
            if rules[ri].def.targets & bit == 0 {
                return;
            }
            if bits[ri] == 0 {
                touched.push(r);
            }
            bits[ri] |= b | TOUCHED;
        };
        let mut present = [0u64; 4];
        let scan_form =
            |hay: &str, present: &mut [u64; 4], bits: &mut Vec<u64>, touched: &mut Vec<u16>| {
                let hb = hay.as_bytes();
                for &c in hb {
                    present[usize::from(c >> 6)] |= 1 << (c & 63);
                }
                let Some(ac) = &self.ac else { return };
                for m in ac.find_overlapping_iter(hb) {
                    let p = m.pattern().as_usize();
                    let (s, e) = (m.start(), m.start() + self.kw_len[p]);
                    for k in &self.kws[p] {
                        if !bound_ok(k.bound, hb, s, e) {
                            continue;
                        }
                        if let Some(x) = &k.exact {
                            if !forms.cased.get().contains(&**x) {
                                continue;
                            }
                        }
                        mark(k.rule, k.bit, bits, touched);
                    }
                }
            };
        scan_form(forms.text, &mut present, bits, touched);
        if !std::ptr::eq(forms.compact, forms.text) {
            scan_form(forms.compact, &mut present, bits, touched);
        }
        if forms.shell_differs() {
            scan_form(forms.shell, &mut present, bits, touched);
        }
        for (w, word) in present.iter().enumerate() {
            let mut m = *word;
            while m != 0 {
                let c = w * 64 + m.trailing_zeros() as usize;
                m &= m - 1;
                for &r in &self.byte_triggers[c] {
                    mark(r, 0, bits, touched);
                }
            }
        }
        for &r in &self.ungated {
            mark(r, 0, bits, touched);
        }
        // Rule order, so the decision lists matches deterministically.
        touched.sort_unstable();
        let mut asked = false;
        for &r in touched.iter() {
            let cr = &self.rules[usize::from(r)];
            let mut st = bits[usize::from(r)];
            for (b, mask) in &self.byte_masks[usize::from(r)] {
                if st & b == 0 && (0..4).any(|w| present[w] & mask[w] != 0) {
                    st |= b;
                }
            }
            if !cr.clauses.is_empty() && !cr.clauses.iter().any(|&m| m & !st == 0) {
                continue;
            }
            if skip(cr.def) {
                continue;
            }
            if !asked {
                asked = true;
                if !proceed() {
                    return;
                }
            }
            let matched = match &cr.m {
                Compiled::Words => true,
                Compiled::Re(re) => re.is_match(forms.get(cr.def.form).as_bytes()),
                Compiled::Func(f) => f(forms.get(cr.def.form)),
                Compiled::FuncForms(f) => f(forms),
            };
            if matched {
                hit(cr.def);
            }
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn bound_ok(kind: u8, h: &[u8], s: usize, e: usize) -> bool {
    match kind {
        0 => true,
        1 => s == 0 || !is_word(h[s - 1]),
        2 => (s == 0 || !is_word(h[s - 1])) && (e >= h.len() || !is_word(h[e])),
        4 => s == 0 || !h[s - 1].is_ascii_alphabetic(),
        _ => {
            (s == 0 || !h[s - 1].is_ascii_alphabetic())
                && (e >= h.len() || !h[e].is_ascii_alphabetic())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_rules_compile_at_every_level() {
        for pl in 1..=4 {
            Engine::new(pl, |_| true).expect("rules compile");
        }
        let mut ids: Vec<u32> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "rule ids are unique");
    }
}
