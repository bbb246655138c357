//! Rule definitions and the matching engine.
//!
//! Each rule names a family, a paranoia level, a score and the field
//! locations it inspects. Regex rules carry literal keywords; one
//! Aho-Corasick automaton over all keywords selects, per field, the few
//! rules whose regexes are worth running (most fields run none).

mod defs;
mod funcs;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
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
    /// A hand-written matcher, run when one of the keywords occurs as a
    /// whole word.
    FuncB(fn(&str) -> bool, &'static [&'static [&'static str]]),
}

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
pub use funcs::{session_param_name, shell_form, url_host};

enum Compiled {
    Re(regex::bytes::Regex),
    /// A keyword hit is the match.
    Words,
    Func(fn(&str) -> bool),
}

struct CompiledRule {
    def: &'static RuleDef,
    m: Compiled,
}

struct Keyword {
    /// Rules gated (or matched) by this keyword.
    rules: Vec<usize>,
    /// Per rule: 0 = anywhere, 1 = at a word start, 2 = a whole word.
    bounded: Vec<u8>,
    len: usize,
}

/// Rules compiled for one paranoia level.
pub struct Engine {
    rules: Vec<CompiledRule>,
    /// Keywords of the lowercase forms (text, compact, shell), one automaton.
    ac: Option<AhoCorasick>,
    kws: Vec<Keyword>,
    /// Case-sensitive keywords for `Form::Cased`.
    ac_cased: Option<AhoCorasick>,
    kws_cased: Vec<Keyword>,
    /// Rules that run on every field of their targets.
    ungated: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rule {id}: invalid pattern: {source}")]
    Regex { id: u32, source: regex::Error },
    #[error("building keyword automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

/// The normalised forms of a field.
pub struct Forms<'a> {
    pub text: &'a str,
    pub compact: &'a str,
    pub shell: &'a str,
    pub cased: &'a str,
}

impl Forms<'_> {
    fn get(&self, f: Form) -> &str {
        match f {
            Form::Text => self.text,
            Form::Compact => self.compact,
            Form::Shell => self.shell,
            Form::Cased => self.cased,
        }
    }
}

fn add_kw(list: &mut Vec<String>, meta: &mut Vec<Keyword>, k: String, rule: usize, bounded: u8) {
    match list.iter().position(|x| *x == k) {
        Some(p) => {
            meta[p].rules.push(rule);
            meta[p].bounded.push(bounded);
        }
        None => {
            meta.push(Keyword {
                rules: vec![rule],
                bounded: vec![bounded],
                len: k.len(),
            });
            list.push(k);
        }
    }
}

/// Per-request scratch space for [`Engine::scan`].
#[derive(Default)]
pub struct Scratch {
    state: Vec<u8>,
}

impl Engine {
    pub fn new(paranoia: u8, enabled: impl Fn(&RuleDef) -> bool) -> Result<Engine, EngineError> {
        let mut rules = Vec::new();
        let (mut kw, mut meta) = (Vec::new(), Vec::new());
        let (mut kwc, mut metac) = (Vec::new(), Vec::new());
        let mut ungated = Vec::new();
        for def in RULES.iter().filter(|d| d.pl <= paranoia && enabled(d)) {
            let idx = rules.len();
            let cased = def.form == Form::Cased;
            let mut push = |k: String, bounded: u8| {
                if cased {
                    add_kw(&mut kwc, &mut metac, k, idx, bounded)
                } else {
                    add_kw(&mut kw, &mut meta, k.to_ascii_lowercase(), idx, bounded)
                }
            };
            let m = match &def.pat {
                Pat::Re(re, k) => {
                    // Keywords that start with a letter are gated at word
                    // starts (the patterns have `\b` or a delimiter there).
                    k.iter().for_each(|k| {
                        push(
                            k.to_string(),
                            u8::from(k.len() >= 4 && k.as_bytes()[0].is_ascii_alphabetic()),
                        )
                    });
                    if k.is_empty() {
                        ungated.push(idx);
                    }
                    Compiled::Re(
                        regex::bytes::Regex::new(&format!("(?-u){re}"))
                            .map_err(|source| EngineError::Regex { id: def.id, source })?,
                    )
                }
                Pat::Words(k) | Pat::WordsB(k) => {
                    let b = if matches!(def.pat, Pat::WordsB(_)) {
                        2
                    } else {
                        0
                    };
                    k.iter().for_each(|k| push(k.to_string(), b));
                    Compiled::Words
                }
                Pat::Base64(k) => {
                    for p in funcs::base64_variants(k) {
                        push(p, 0);
                    }
                    Compiled::Words
                }
                Pat::Func(f, k) => {
                    k.iter().for_each(|k| {
                        push(
                            k.to_string(),
                            u8::from(k.as_bytes()[0].is_ascii_alphabetic()),
                        )
                    });
                    if k.is_empty() {
                        ungated.push(idx);
                    }
                    Compiled::Func(*f)
                }
                Pat::FuncB(f, lists) => {
                    lists
                        .iter()
                        .flat_map(|l| l.iter())
                        .for_each(|k| push(k.to_string(), 2));
                    Compiled::Func(*f)
                }
            };
            rules.push(CompiledRule { def, m });
        }
        let build = |k: &Vec<String>, ci: bool| -> Result<Option<AhoCorasick>, EngineError> {
            if k.is_empty() {
                Ok(None)
            } else {
                Ok(Some(
                    AhoCorasickBuilder::new()
                        .match_kind(MatchKind::Standard)
                        .ascii_case_insensitive(ci)
                        .build(k)?,
                ))
            }
        };
        Ok(Engine {
            ac: build(&kw, true)?,
            kws: meta,
            ac_cased: build(&kwc, false)?,
            kws_cased: metac,
            rules,
            ungated,
        })
    }

    /// Whether raw bytes contain any keyword (case-insensitively for the
    /// lowercase forms) or there are ungated rules: `false` proves that a
    /// field whose normalised forms equal its lowercased raw bytes cannot
    /// match any rule.
    pub fn may_match(&self, raw: &[u8]) -> bool {
        if !self.ungated.is_empty() {
            return true;
        }
        let hit = |ac: &AhoCorasick, kws: &[Keyword]| {
            ac.find_overlapping_iter(raw).any(|m| {
                let k = &kws[m.pattern().as_usize()];
                k.bounded
                    .iter()
                    .any(|&b| bound_ok(b, raw, m.start(), m.start() + k.len))
            })
        };
        self.ac.as_ref().is_some_and(|ac| hit(ac, &self.kws))
            || self
                .ac_cased
                .as_ref()
                .is_some_and(|ac| hit(ac, &self.kws_cased))
    }

    /// Run the rules that target `loc` on one field; `skip` filters rules
    /// (exclusions). Calls `hit` with each matching rule once.
    pub fn scan(
        &self,
        loc: Loc,
        forms: &Forms<'_>,
        scratch: &mut Scratch,
        skip: &dyn Fn(&RuleDef) -> bool,
        hit: &mut dyn FnMut(&'static RuleDef),
    ) {
        let bit = loc_bit(loc);
        let state = &mut scratch.state;
        state.clear();
        state.resize(self.rules.len(), 0);
        // 0 = not a candidate, 1 = candidate (run the matcher), 2 = matched
        let mut any = false;
        let mut mark = |ac: &AhoCorasick, kws: &[Keyword], hay: &str, state: &mut Vec<u8>| {
            let hb = hay.as_bytes();
            for m in ac.find_overlapping_iter(hay) {
                let k = &kws[m.pattern().as_usize()];
                for (j, &ri) in k.rules.iter().enumerate() {
                    if state[ri] == 2 || self.rules[ri].def.targets & bit == 0 {
                        continue;
                    }
                    if !bound_ok(k.bounded[j], hb, m.start(), m.start() + k.len) {
                        continue;
                    }
                    state[ri] = if matches!(self.rules[ri].m, Compiled::Words) {
                        2
                    } else {
                        1
                    };
                    any = true;
                }
            }
        };
        if let Some(ac) = &self.ac {
            mark(ac, &self.kws, forms.text, state);
            if forms.compact != forms.text {
                mark(ac, &self.kws, forms.compact, state);
            }
            if forms.shell != forms.text {
                mark(ac, &self.kws, forms.shell, state);
            }
        }
        if let Some(ac) = &self.ac_cased {
            if !forms.cased.is_empty() {
                mark(ac, &self.kws_cased, forms.cased, state);
            }
        }
        for &ri in &self.ungated {
            if self.rules[ri].def.targets & bit != 0 && state[ri] == 0 {
                state[ri] = 1;
                any = true;
            }
        }
        if !any {
            return;
        }
        for (ri, st) in state.iter().enumerate() {
            if *st == 0 {
                continue;
            }
            let r = &self.rules[ri];
            if skip(r.def) {
                continue;
            }
            let matched = match &r.m {
                Compiled::Words => *st == 2,
                Compiled::Re(re) => re.is_match(forms.get(r.def.form).as_bytes()),
                Compiled::Func(f) => f(forms.get(r.def.form)),
            };
            if matched {
                hit(r.def);
            }
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn bound_ok(kind: u8, h: &[u8], s: usize, e: usize) -> bool {
    let left = s == 0 || !is_word(h[s - 1]);
    match kind {
        0 => true,
        1 => left,
        _ => left && (e >= h.len() || !is_word(h[e])),
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
