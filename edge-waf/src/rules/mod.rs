//! Rule definitions and the matching engine.
//!
//! Each rule names a family, a paranoia level, a score and the field
//! locations it inspects. Regex rules carry literal keywords; one
//! Aho-Corasick automaton over all keywords selects, per field, the few
//! rules whose regexes are worth running (most fields run none).

mod defs;
mod funcs;
mod kwdfa;

use crate::normalize::{byte_bit, ByteSet};
use kwdfa::KwDfa;
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
    /// A hand-written matcher given all the forms, run when one of the
    /// words (two letters or more) occurs at a word start.
    FuncWords(fn(&Forms<'_>) -> bool, &'static [&'static [&'static str]]),
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
    /// The rule's target locations.
    targets: u16,
    bit: u64,
    /// 0 = anywhere, 1 = at a word start, 2 = a whole word, 3 = no ASCII
    /// letter on either side, 4 = no ASCII letter before, 5 = a command
    /// name (word start, then no letter, `_`, `-` or `+`).
    bound: u8,
    /// For case-sensitive rules: the exact literal to confirm in the
    /// case-preserving form.
    exact: Option<Box<str>>,
}

/// Rules compiled for one paranoia level.
pub struct Engine {
    rules: Vec<CompiledRule>,
    /// Multi-byte keywords of all rules (case-insensitive), one automaton.
    ac: Option<KwDfa>,
    /// The keywords that matter in the shell form (those of shell-form and
    /// keyword-list rules), indices into `kws`: the shell form only undoes
    /// quoting, so other rules' regexes would not see it anyway.
    ac_shell: Option<(KwDfa, Vec<usize>)>,
    kws: Vec<Vec<KwEntry>>,
    kw_len: Vec<usize>,
    /// Single-byte keywords, checked against the set of bytes present in
    /// the field, not the automaton: per rule, the union of its bytes and
    /// the offset of its 64 entries in `byte_slots` (per `ByteSet` bit, the
    /// gate slots that byte fills).
    byte_rules: Vec<(ByteSet, u32)>,
    byte_slots: Vec<u64>,
    /// Rules with a clause made only of single-byte slots (they can pass
    /// their gate without any automaton hit), listed with that clause's
    /// slots under the bytes of its least common slot.
    byte_triggers: Vec<Vec<(u16, Box<[ByteSet]>)>>,
    /// Rules that run on every field they target.
    ungated: Vec<u16>,
    /// Per `ByteSet` bit: the locations its trigger rules target; and the
    /// locations ungated rules target.
    trigger_targets: [u16; 64],
    ungated_targets: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rule {id}: invalid pattern: {source}")]
    Regex { id: u32, source: regex::Error },
    #[error("rule {0}: more than 64 gate slots")]
    TooManySlots(u32),
    #[error("building keyword automaton: {0}")]
    Automaton(#[from] kwdfa::KwDfaError),
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
    hits: Vec<(u32, u32)>,
}

struct Builder {
    words: Vec<String>,
    index: std::collections::HashMap<String, usize>,
    kws: Vec<Vec<KwEntry>>,
    byte_masks: Vec<Vec<(u64, ByteSet)>>,
    /// Target locations of the rule being added.
    targets: u16,
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
                    masks.push((bit, 0));
                    masks.len() - 1
                }
            };
            masks[i].1 |= byte_bit(c);
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
            targets: self.targets,
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
            targets: 0,
        };
        let mut ungated = Vec::new();
        let regex = |def: &RuleDef, re: &str| {
            regex::bytes::Regex::new(&format!("(?-u){re}"))
                .map_err(|source| EngineError::Regex { id: def.id, source })
        };
        for def in RULES.iter().filter(|d| d.pl <= paranoia && enabled(d)) {
            let idx = u16::try_from(rules.len()).unwrap_or(u16::MAX);
            b.targets = def.targets;
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
                Pat::FuncWords(f, lists) => {
                    // Command names are whole words (a version may follow).
                    for k in lists.iter().flat_map(|l| l.iter()).filter(|k| k.len() >= 2) {
                        b.add(k, idx, 1, 5, None);
                    }
                    clauses.push(1);
                    Compiled::FuncForms(*f)
                }
            };
            if clauses.is_empty() {
                ungated.push(idx);
            }
            rules.push(CompiledRule { def, m, clauses });
        }
        for entries in &mut b.kws {
            entries.sort_by_key(|k| k.bound);
        }
        let shell_kw: Vec<usize> = (0..b.words.len())
            .filter(|&i| {
                b.kws[i].iter().any(|k| {
                    let d = rules[usize::from(k.rule)].def;
                    d.form == Form::Shell || matches!(d.pat, Pat::Words(_) | Pat::WordsB(_))
                })
            })
            .collect();
        let ac_shell = if shell_kw.is_empty() {
            None
        } else {
            let words: Vec<&str> = shell_kw.iter().map(|&i| b.words[i].as_str()).collect();
            Some((keyword_dfa(&words)?, shell_kw))
        };
        let ac = if b.words.is_empty() {
            None
        } else {
            Some(keyword_dfa(&b.words)?)
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
        // Indexed by `ByteSet` bit.
        let mut byte_triggers: Vec<Vec<(u16, Box<[ByteSet]>)>> = vec![Vec::new(); 64];
        for (i, r) in rules.iter().enumerate() {
            let slots = &byte_masks[i];
            let all: u64 = slots.iter().map(|(b, _)| *b).fold(0, |a, b| a | b);
            for &m in r.clauses.iter().filter(|&&m| m & all == m) {
                // The clause's slots, as byte sets (checked in full when
                // the rarest one's byte is present).
                let clause: Box<[ByteSet]> = slots
                    .iter()
                    .filter(|(b, _)| m & b != 0)
                    .map(|(_, mask)| *mask)
                    .collect();
                let best = clause.iter().min_by_key(|&&mask| {
                    (0..256)
                        .filter(|&c| byte_bit(c as u8) & mask != 0)
                        .map(common)
                        .sum::<u32>()
                });
                if let Some(&mask) = best {
                    let r16 = u16::try_from(i).unwrap_or(u16::MAX);
                    for (n, t) in byte_triggers.iter_mut().enumerate() {
                        if mask & (1 << n) != 0 {
                            t.push((r16, clause.clone()));
                        }
                    }
                }
            }
        }
        let mut byte_rules = Vec::with_capacity(rules.len());
        let mut byte_slots = Vec::new();
        for slots in &byte_masks {
            let union = slots.iter().fold(0, |a, (_, m)| a | m);
            if union == 0 {
                byte_rules.push((0, 0));
                continue;
            }
            let off = byte_slots.len();
            byte_slots.resize(off + 64, 0u64);
            for &(slot, mask) in slots {
                for n in 0..64 {
                    if mask & (1 << n) != 0 {
                        byte_slots[off + n] |= slot;
                    }
                }
            }
            byte_rules.push((union, u32::try_from(off).unwrap_or(u32::MAX)));
        }
        let mut trigger_targets = [0u16; 64];
        for (n, t) in byte_triggers.iter().enumerate() {
            trigger_targets[n] = t
                .iter()
                .fold(0, |a, (r, _)| a | rules[usize::from(*r)].def.targets);
        }
        let ungated_targets = ungated
            .iter()
            .fold(0, |a, &r| a | rules[usize::from(r)].def.targets);
        Ok(Engine {
            trigger_targets,
            ungated_targets,
            kw_len: b.words.iter().map(String::len).collect(),
            ac,
            ac_shell,
            kws: b.kws,
            byte_rules,
            byte_slots,
            byte_triggers,
            rules,
            ungated,
        })
    }

    /// Whether no rule could run on a field at `loc` whose every form is
    /// `hay` (any case) and whose bytes are `present`: no keyword of a rule
    /// that targets `loc` occurs (within its bounds), no trigger byte and
    /// no ungated rule. Then [`Engine::scan`] would match nothing.
    pub fn untouched(&self, loc: Loc, hay: &[u8], present: ByteSet, scratch: &mut Scratch) -> bool {
        let bit = loc_bit(loc);
        if self.ungated_targets & bit != 0 {
            return false;
        }
        let mut m = present;
        while m != 0 {
            if self.trigger_targets[m.trailing_zeros() as usize] & bit != 0 {
                return false;
            }
            m &= m - 1;
        }
        let Some(dfa) = &self.ac else {
            return true;
        };
        let hits = &mut scratch.hits;
        hits.clear();
        dfa.find_all(hay, hits);
        for &(e, st) in hits.iter() {
            let e = e as usize;
            for &p in dfa.keywords(st) {
                let p = p as usize;
                let s = e - self.kw_len[p];
                if self.kws[p]
                    .iter()
                    .any(|k| k.targets & bit != 0 && bound_ok(k.bound, hay, s, e))
                {
                    return false;
                }
            }
        }
        true
    }

    /// Run the rules that target `loc` on one field; `skip` filters rules
    /// (exclusions). When some rule passes its keyword gate, `proceed` is
    /// asked once whether to go on (the caller skips values it has already
    /// inspected); then `hit` is called with each matching rule once.
    /// `present` is the set of bytes in the text form (callers compute it
    /// while normalising); the compact and shell forms only lose bytes or
    /// gain spaces.
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        &self,
        loc: Loc,
        forms: &Forms<'_>,
        present: ByteSet,
        scratch: &mut Scratch,
        skip: &dyn Fn(&RuleDef) -> bool,
        proceed: &mut dyn FnMut() -> bool,
        hit: &mut dyn FnMut(&'static RuleDef),
    ) {
        let bit = loc_bit(loc);
        let Scratch {
            bits,
            touched,
            hits,
        } = scratch;
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
        let mut present = present;
        if forms.shell_differs() || !std::ptr::eq(forms.compact, forms.text) {
            present |= byte_bit(b' ');
        }
        let scan_form = |hay: &str,
                         dfa: &KwDfa,
                         map: Option<&[usize]>,
                         hits: &mut Vec<(u32, u32)>,
                         bits: &mut Vec<u64>,
                         touched: &mut Vec<u16>| {
            let hb = hay.as_bytes();
            hits.clear();
            dfa.find_all(hb, hits);
            for &(e, st) in hits.iter() {
                let e = e as usize;
                for &p in dfa.keywords(st) {
                    let p = p as usize;
                    let p = map.map_or(p, |m| m[p]);
                    let s = e - self.kw_len[p];
                    for k in &self.kws[p] {
                        if k.targets & bit == 0 || !bound_ok(k.bound, hb, s, e) {
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
            }
        };
        if let Some(ac) = &self.ac {
            scan_form(forms.text, ac, None, hits, bits, touched);
            if !std::ptr::eq(forms.compact, forms.text) {
                scan_form(forms.compact, ac, None, hits, bits, touched);
            }
        }
        if forms.shell_differs() {
            if let Some((ac, map)) = &self.ac_shell {
                scan_form(forms.shell, ac, Some(map), hits, bits, touched);
            }
        }
        let mut m = present;
        while m != 0 {
            let n = m.trailing_zeros() as usize;
            m &= m - 1;
            for (r, clause) in &self.byte_triggers[n] {
                if clause.iter().all(|&c| present & c != 0) {
                    mark(*r, 0, bits, touched);
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
            let (union, off) = self.byte_rules[usize::from(r)];
            let mut m = present & union;
            while m != 0 {
                st |= self.byte_slots[off as usize + m.trailing_zeros() as usize];
                m &= m - 1;
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

/// The keyword automaton (overlapping matches, ASCII case-insensitive).
fn keyword_dfa<S: AsRef<[u8]>>(words: &[S]) -> Result<KwDfa, kwdfa::KwDfaError> {
    KwDfa::new(words)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[inline(always)]
fn bound_ok(kind: u8, h: &[u8], s: usize, e: usize) -> bool {
    match kind {
        0 => true,
        1 => s == 0 || !is_word(h[s - 1]),
        2 => (s == 0 || !is_word(h[s - 1])) && (e >= h.len() || !is_word(h[e])),
        4 => s == 0 || !h[s - 1].is_ascii_alphabetic(),
        5 => {
            (s == 0 || !is_word(h[s - 1]))
                && (e >= h.len()
                    || !(h[e].is_ascii_alphabetic() || matches!(h[e], b'_' | b'-' | b'+')))
        }
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

    #[test]
    fn keyword_automata_stay_small() {
        // (they are built at every worker start and live in its memory)
        let e = Engine::new(4, |_| true).expect("rules compile");
        let main = e.ac.as_ref().map_or(0, KwDfa::table_bytes);
        let shell = e.ac_shell.as_ref().map_or(0, |(d, _)| d.table_bytes());
        println!("keyword automata: {main} + {shell} bytes");
        assert!(main + shell < 4 << 20, "{main} + {shell} bytes");
    }
}
