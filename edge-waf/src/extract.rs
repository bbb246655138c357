//! Splitting a request into the fields the detectors inspect: path, query
//! and form arguments, JSON fields, multipart names/filenames/values,
//! cookies, selected headers and (for unparsed types) the raw body.
//!
//! All parsing is bounded by the configured limits and reports problems
//! (malformed JSON or multipart, excessive depth) instead of failing.

use std::borrow::Cow;

use crate::config::Limits;

/// Where a field came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loc {
    /// The request path.
    Path,
    /// A query, form, JSON or multipart argument name.
    ArgName,
    /// A query, form, JSON or multipart argument value.
    ArgValue,
    CookieName,
    CookieValue,
    /// A request header value (`name` is the lowercase header name).
    Header,
    /// A multipart file name.
    Filename,
    /// The raw body of a type that is not parsed into arguments.
    Body,
    /// The contents of an uploaded file (only web-shell signatures apply).
    FileContent,
}

impl Loc {
    pub fn as_str(self) -> &'static str {
        match self {
            Loc::Path => "path",
            Loc::ArgName => "args_names",
            Loc::ArgValue => "args",
            Loc::CookieName => "cookies_names",
            Loc::CookieValue => "cookies",
            Loc::Header => "headers",
            Loc::Filename => "files",
            Loc::Body => "body",
            Loc::FileContent => "files_content",
        }
    }
}

/// A field's name, kept in the cheapest form until a log line or an
/// exclusion needs it as text (see [`Fields::name`]).
#[derive(Debug, Clone)]
pub enum Name<'a> {
    Static(&'static str),
    /// As sent (cookie names).
    Raw(&'a [u8]),
    /// Percent-encoded with `+` for space (query and form argument names).
    Encoded(&'a [u8]),
    /// A header name as sent (shown lowercase).
    Header(&'a str),
    /// A JSON key: index into the document's key table.
    Json(u32),
    Owned(String),
}

/// One value to inspect, borrowed from the request where possible.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    pub loc: Loc,
    /// Argument, cookie or header name (for exclusions and logs).
    pub name: Name<'a>,
    pub raw: Raw<'a>,
    /// Whether `+` means space (query and form encoding).
    pub plus: bool,
}

/// A field's value as bytes, or as text when it is known to be UTF-8
/// (from a header, the URL or a validated JSON document: normalising it
/// then needs no second validation). Dereferences to the bytes.
#[derive(Debug, Clone)]
pub enum Raw<'a> {
    Bytes(Cow<'a, [u8]>),
    Text(Cow<'a, str>),
}

impl<'a> Raw<'a> {
    /// Borrowed bytes.
    pub fn bytes(b: &'a [u8]) -> Raw<'a> {
        Raw::Bytes(Cow::Borrowed(b))
    }

    /// The first `n` bytes of `s` (as bytes when that cuts a character).
    pub fn text_capped(s: &'a str, n: usize) -> Raw<'a> {
        match s.get(..s.len().min(n)) {
            Some(t) => Raw::Text(Cow::Borrowed(t)),
            None => Raw::Bytes(Cow::Borrowed(&s.as_bytes()[..n])),
        }
    }

    /// The value as text, when known to be UTF-8.
    pub fn text(&self) -> Option<&str> {
        match self {
            Raw::Text(t) => Some(t),
            Raw::Bytes(_) => None,
        }
    }
}

impl std::ops::Deref for Raw<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Raw::Bytes(b) => b,
            Raw::Text(t) => t.as_bytes(),
        }
    }
}

impl PartialEq for Raw<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// The fields of one request, and the JSON key table their names refer to.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    pub list: Vec<Field<'a>>,
    /// JSON keys: (index of the parent key + 1, or 0 at the top; key).
    json: Vec<(u32, Cow<'a, [u8]>)>,
}

impl<'a> Fields<'a> {
    pub fn new() -> Fields<'a> {
        Fields {
            list: Vec::with_capacity(32),
            json: Vec::new(),
        }
    }

    pub fn push(&mut self, f: Field<'a>) {
        self.list.push(f);
    }

    /// The last component of a field's name: a JSON field's own key, the
    /// whole name otherwise.
    pub fn last_key<'s>(&'s self, f: &'s Field<'_>) -> Cow<'s, str> {
        match f.name {
            Name::Json(i) => self
                .json
                .get(i as usize)
                .map_or(Cow::Borrowed(""), |(_, k)| String::from_utf8_lossy(k)),
            _ => self.name(f),
        }
    }

    /// A JSON key or value at the top level of the document, or any field
    /// that is not from JSON.
    pub fn top_level(&self, f: &Field<'_>) -> bool {
        match f.name {
            Name::Json(i) => self.json.get(i as usize).is_some_and(|(p, _)| *p == 0),
            _ => true,
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A short, decoded, printable name for logs and exclusion matching
    /// (JSON keys as a dotted path, header names lowercase).
    pub fn name<'s>(&'s self, f: &'s Field<'_>) -> Cow<'s, str> {
        match &f.name {
            Name::Static(s) => Cow::Borrowed(s),
            Name::Owned(s) => Cow::Borrowed(s),
            Name::Header(h) => {
                if h.bytes().any(|c| c.is_ascii_uppercase()) {
                    Cow::Owned(h.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(h)
                }
            }
            Name::Raw(b) => Cow::Owned(printable(&String::from_utf8_lossy(b))),
            Name::Encoded(b) => Cow::Owned(display_name(b)),
            Name::Json(i) => {
                let mut keys = Vec::new();
                let mut at = *i as usize + 1;
                while at > 0 && keys.len() < 64 {
                    let Some((parent, key)) = self.json.get(at - 1) else {
                        break;
                    };
                    keys.push(key);
                    at = *parent as usize;
                }
                let mut s = String::new();
                for (n, k) in keys.iter().rev().enumerate() {
                    if n > 0 {
                        s.push('.');
                    }
                    s.push_str(&String::from_utf8_lossy(&k[..k.len().min(256)]));
                }
                Cow::Owned(s)
            }
        }
    }
}

/// Problems found while parsing the body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BodyIssues {
    pub json_invalid: bool,
    pub json_too_deep: bool,
    pub multipart_invalid: bool,
    pub too_many_args: bool,
}

/// Body encodings the WAF understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Form,
    Json,
    Multipart,
    Xml,
    Other,
}

pub fn body_kind(media_type: &str) -> BodyKind {
    match media_type {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "multipart/form-data" | "multipart/related" | "multipart/mixed" => BodyKind::Multipart,
        t if t == "application/json" || t.ends_with("+json") => BodyKind::Json,
        t if t.ends_with("/xml") || t.ends_with("+xml") => BodyKind::Xml,
        _ => BodyKind::Other,
    }
}

fn cap(b: &[u8], n: usize) -> &[u8] {
    &b[..b.len().min(n)]
}

/// Split `name=value&...` into argument fields (`text`: the same input as
/// text, when it is known to be UTF-8).
pub fn parse_urlencoded<'a>(
    input: &'a [u8],
    text: Option<&'a str>,
    out: &mut Fields<'a>,
    limits: &Limits,
    issues: &mut BodyIssues,
) {
    // (`&` and `=` are ASCII: slicing the text at them is safe.)
    let sub =
        |a: usize, b: usize| text.and_then(|t| t.get(a..a + (b - a).min(limits.max_field_len)));
    let mut start = 0;
    while start <= input.len() {
        let end = memchr::memchr(b'&', &input[start..]).map_or(input.len(), |p| start + p);
        let pair = &input[start..end];
        let at = start;
        start = end + 1;
        if pair.is_empty() {
            continue;
        }
        if out.len() >= limits.max_args {
            issues.too_many_args = true;
            return;
        }
        let (name, value, eq) = match memchr::memchr(b'=', pair) {
            Some(p) => (&pair[..p], Some(&pair[p + 1..]), at + p),
            None => (pair, None, end),
        };
        out.push(Field {
            loc: Loc::ArgName,
            name: Name::Encoded(name),
            raw: sub(at, eq).map_or(Raw::bytes(cap(name, limits.max_field_len)), |t| {
                Raw::Text(Cow::Borrowed(t))
            }),
            plus: true,
        });
        if let Some(v) = value {
            if !v.is_empty() {
                out.push(Field {
                    loc: Loc::ArgValue,
                    name: Name::Encoded(name),
                    raw: sub(eq + 1, end).map_or(Raw::bytes(cap(v, limits.max_field_len)), |t| {
                        Raw::Text(Cow::Borrowed(t))
                    }),
                    plus: true,
                });
            }
        }
    }
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

/// A short, decoded, printable name for logs and exclusion matching.
fn display_name(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(256)];
    let mut flags = crate::normalize::DecodeFlags::default();
    let (dec, _) = crate::normalize::percent_decode_pass(raw, true, &mut flags);
    printable(&String::from_utf8_lossy(&dec))
}

/// Cookies: `a=b; c=d`.
pub fn parse_cookies<'a>(header: &'a str, out: &mut Fields<'a>, limits: &Limits) {
    for part in header.split(';') {
        let part = part.trim();
        if part.is_empty() || out.len() >= limits.max_args {
            continue;
        }
        let (name, value) = match part.find('=') {
            Some(p) => (&part[..p], &part[p + 1..]),
            None => (part, ""),
        };
        out.push(Field {
            loc: Loc::CookieName,
            name: Name::Raw(name.as_bytes()),
            raw: Raw::text_capped(name, limits.max_field_len),
            plus: false,
        });
        if !value.is_empty() {
            out.push(Field {
                loc: Loc::CookieValue,
                name: Name::Raw(name.as_bytes()),
                raw: Raw::text_capped(value, limits.max_field_len),
                plus: false,
            });
        }
    }
}

/// JSON body: every key (named by its dotted path) and every string value.
///
/// A streaming scanner (no value tree): it checks the structure, stops at
/// the depth limit and unescapes strings, so a 64 KiB document costs one
/// pass; strings without escapes are borrowed from the body.
pub fn parse_json<'a>(
    input: &'a [u8],
    truncated: bool,
    out: &mut Fields<'a>,
    limits: &Limits,
    issues: &mut BodyIssues,
) {
    // JSON text is UTF-8 (RFC 8259); a sample cut at the inspection limit
    // may end inside a character.
    let text = match std::str::from_utf8(input) {
        Ok(t) => Some(t),
        Err(e) => {
            if e.error_len().is_some() || !truncated {
                issues.json_invalid = true;
                return;
            }
            std::str::from_utf8(&input[..e.valid_up_to()]).ok()
        }
    };
    let out_start = out.list.len();
    let keys_start = out.json.len();
    // About one field per 12 bytes of a typical document: grow once.
    out.list.reserve((input.len() / 12).min(limits.max_args));
    out.json.reserve((input.len() / 24).min(limits.max_args));
    let mut sc = JsonScan {
        b: input,
        text,
        i: 0,
        key: 0,
        keys: KeyNodes::with_capacity(input.len() / 64),
        depth: 0,
        too_deep: false,
        limits,
        out_start,
    };
    let ok = sc.value(out, issues).is_some() && {
        sc.ws();
        sc.i == input.len()
    };
    if !ok {
        out.list.truncate(out_start);
        out.json.truncate(keys_start);
        if sc.too_deep {
            issues.json_too_deep = true;
        } else if truncated {
            // Only a prefix was read: inspect it as raw text instead.
            out.push(Field {
                loc: Loc::Body,
                name: Name::Static("body"),
                raw: Raw::bytes(cap(input, limits.max_field_len * 4)),
                plus: false,
            });
        } else {
            issues.json_invalid = true;
        }
    }
}

/// A quick, unkeyed 64-bit hash for de-duplicating values within one
/// request (callers bound their probing, so collisions only cost time).
pub(crate) fn quick_hash(seed: u64, v: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(7) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    h ^ (h >> 29)
}

/// JSON key nodes by (parent node, key): an open-addressing table of
/// node ids with a short probe limit (past it a key just gets a new node).
struct KeyNodes {
    slots: Vec<u32>,
    mask: usize,
    /// Per node: the first member key node last seen in an object it holds.
    first: Vec<u32>,
    /// Per node: the member key node last seen after it.
    next: Vec<u32>,
}

impl KeyNodes {
    const PROBES: usize = 8;

    fn with_capacity(n: usize) -> KeyNodes {
        let size = (n * 2).clamp(16, 1 << 16).next_power_of_two();
        KeyNodes {
            slots: vec![0; size],
            mask: size - 1,
            first: Vec::new(),
            next: Vec::new(),
        }
    }

    /// Remember that node `id` followed `prev` (0: came first in an object
    /// of `parent`).
    fn remember(&mut self, prev: u32, parent: u32, id: u32) {
        let (list, at) = if prev != 0 {
            (&mut self.next, prev as usize)
        } else {
            (&mut self.first, parent as usize)
        };
        if at < (1 << 20) {
            if list.len() <= at {
                list.resize(at + 1, 0);
            }
            list[at] = id;
        }
    }

    fn find(&self, table: &[(u32, Cow<'_, [u8]>)], parent: u32, key: &[u8]) -> Option<u32> {
        let h = quick_hash(u64::from(parent), key) as usize;
        for p in 0..Self::PROBES {
            let id = self.slots[h.wrapping_add(p) & self.mask];
            if id == 0 {
                return None;
            }
            let (pp, k) = &table[id as usize - 1];
            if *pp == parent && **k == *key {
                return Some(id);
            }
        }
        None
    }

    /// Remember node `id` (an index into `table` + 1).
    fn insert(&mut self, table: &[(u32, Cow<'_, [u8]>)], id: u32) {
        let (parent, key) = &table[id as usize - 1];
        let h = quick_hash(u64::from(*parent), key) as usize;
        for p in 0..Self::PROBES {
            let slot = &mut self.slots[h.wrapping_add(p) & self.mask];
            if *slot == 0 {
                *slot = id;
                return;
            }
        }
    }
}

struct JsonScan<'a, 'l> {
    b: &'a [u8],
    /// `b` (or its valid start) as text.
    text: Option<&'a str>,
    i: usize,
    /// The current key (index into the key table + 1; 0 at the top).
    key: u32,
    keys: KeyNodes,
    /// Nesting depth, bounded by `limits.json_max_depth` (so is the
    /// recursion).
    depth: usize,
    too_deep: bool,
    limits: &'l Limits,
    out_start: usize,
}

impl<'a> JsonScan<'a, '_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > self.limits.json_max_depth {
            self.too_deep = true;
            return None;
        }
        Some(())
    }

    /// The document: an iterative walk with an explicit stack of open
    /// containers (`true` for an object) and the key node each belongs to.
    fn value(&mut self, out: &mut Fields<'a>, issues: &mut BodyIssues) -> Option<()> {
        let mut stack: Vec<(bool, u32)> = Vec::with_capacity(16);
        // The previous member's key node in the innermost object (0: none).
        let mut prev: u32 = 0;
        'value: loop {
            self.ws();
            match self.peek()? {
                b'{' => {
                    self.enter()?;
                    self.i += 1;
                    stack.push((true, self.key));
                    self.ws();
                    if self.peek()? == b'}' {
                        self.i += 1;
                        stack.pop();
                        self.depth -= 1;
                    } else {
                        prev = self.member(out, issues, 0)?;
                        continue 'value;
                    }
                }
                b'[' => {
                    self.enter()?;
                    self.i += 1;
                    stack.push((false, self.key));
                    self.ws();
                    if self.peek()? == b']' {
                        self.i += 1;
                        stack.pop();
                        self.depth -= 1;
                    } else {
                        continue 'value;
                    }
                }
                b'"' => {
                    let v = self.string()?;
                    if !v.is_empty() {
                        self.push(out, Loc::ArgValue, v, issues);
                    }
                }
                b't' => self.lit(b"true")?,
                b'f' => self.lit(b"false")?,
                b'n' => self.lit(b"null")?,
                b'-' | b'0'..=b'9' => {
                    let s = self.i;
                    while self.i < self.b.len()
                        && matches!(
                            self.b[self.i],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.i += 1;
                    }
                    if self.i == s {
                        return None;
                    }
                }
                _ => return None,
            }
            // After a value: the next member or item, or close containers.
            loop {
                let Some(&(object, parent)) = stack.last() else {
                    return Some(());
                };
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if object {
                            prev = self.member(out, issues, prev)?;
                        } else {
                            self.key = parent;
                        }
                        continue 'value;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.i += 1;
                self.depth -= 1;
                stack.pop();
                self.key = parent;
                prev = 0;
                if let Some(&(false, p)) = stack.last() {
                    self.key = p;
                } else if let Some(&(true, _)) = stack.last() {
                    // back in an object: the member that held the container
                    prev = parent;
                }
            }
        }
    }

    /// An object member's key and `:`; sets `self.key` to its node (the
    /// node that followed `prev` last time is tried first: objects in an
    /// array repeat their keys in order). Returns the node.
    fn member(&mut self, out: &mut Fields<'a>, issues: &mut BodyIssues, prev: u32) -> Option<u32> {
        let parent = match self.key {
            _ if prev != 0 => out.json[prev as usize - 1].0,
            k => k,
        };
        self.ws();
        let hint = if prev != 0 {
            self.keys.next.get(prev as usize).copied().unwrap_or(0)
        } else {
            self.keys.first.get(parent as usize).copied().unwrap_or(0)
        };
        // The expected key, compared in place (a key that had no escapes
        // is followed by its closing quote only if it is the same key).
        if let Some((pp, Cow::Borrowed(k))) =
            (hint as usize).checked_sub(1).and_then(|h| out.json.get(h))
        {
            let (i, n) = (self.i, k.len());
            if *pp == parent
                && self.b.get(i) == Some(&b'"')
                && self.b.get(i + 1..i + 1 + n) == Some(*k)
                && self.b.get(i + 1 + n) == Some(&b'"')
            {
                self.i = i + n + 2;
                self.key = hint;
                self.ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.i += 1;
                return Some(hint);
            }
        }
        let key: Cow<'a, [u8]> = match self.string()? {
            Raw::Bytes(b) => b,
            Raw::Text(Cow::Borrowed(t)) => Cow::Borrowed(t.as_bytes()),
            Raw::Text(Cow::Owned(t)) => Cow::Owned(t.into_bytes()),
        };
        let id = match hint {
            h if h != 0 && {
                let (pp, k) = &out.json[h as usize - 1];
                *pp == parent && **k == *key
            } =>
            {
                h
            }
            _ => {
                let id = match self.keys.find(&out.json, parent, &key) {
                    Some(id) => id,
                    None => {
                        out.json.push((parent, key.clone()));
                        let id = u32::try_from(out.json.len()).unwrap_or(u32::MAX);
                        self.keys.insert(&out.json, id);
                        self.key = id;
                        let raw = match (self.text, &key) {
                            (Some(_), Cow::Borrowed(b)) => match std::str::from_utf8(b) {
                                Ok(t) => Raw::Text(Cow::Borrowed(t)),
                                Err(_) => Raw::Bytes(key),
                            },
                            _ => Raw::Bytes(key),
                        };
                        self.push(out, Loc::ArgName, raw, issues);
                        id
                    }
                };
                self.keys.remember(prev, parent, id);
                id
            }
        };
        self.key = id;
        self.ws();
        if self.peek()? != b':' {
            return None;
        }
        self.i += 1;
        Some(id)
    }

    fn lit(&mut self, l: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(l) {
            self.i += l.len();
            Some(())
        } else {
            None
        }
    }

    fn push(&mut self, out: &mut Fields<'a>, loc: Loc, raw: Raw<'a>, issues: &mut BodyIssues) {
        if out.list.len() - self.out_start >= self.limits.max_args {
            issues.too_many_args = true;
            return;
        }
        let max = self.limits.max_field_len;
        let raw = match raw {
            Raw::Bytes(Cow::Borrowed(b)) => Raw::bytes(cap(b, max)),
            Raw::Text(Cow::Borrowed(t)) => Raw::text_capped(t, max),
            Raw::Bytes(Cow::Owned(mut v)) => {
                v.truncate(max);
                Raw::Bytes(Cow::Owned(v))
            }
            Raw::Text(Cow::Owned(t)) if t.len() > max => match t.get(..max) {
                Some(c) => Raw::Text(Cow::Owned(c.to_string())),
                None => Raw::Bytes(Cow::Owned(t.as_bytes()[..max].to_vec())),
            },
            r => r,
        };
        let name = match self.key {
            0 => Name::Static(""),
            k => Name::Json(k - 1),
        };
        out.push(Field {
            loc,
            name,
            raw,
            plus: false,
        });
    }

    /// A JSON string at `self.i` (which must be `"`), unescaped; borrowed
    /// from the document when it has no escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<Raw<'a>> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        // fast path: no escapes
        self.i = start + stop_at(&self.b[start..])?;
        match self.b[self.i] {
            b'"' => {
                let end = self.i;
                self.i += 1;
                // (quotes are ASCII: the text splits there)
                Some(match self.text.and_then(|t| t.get(start..end)) {
                    Some(t) => Raw::Text(Cow::Borrowed(t)),
                    None => Raw::bytes(&self.b[start..end]),
                })
            }
            b'\\' => self.escaped(start),
            _ => None,
        }
    }

    /// The rest of a string with escapes (from `start`, its first byte;
    /// `self.i` at the first backslash).
    #[inline(never)]
    fn escaped(&mut self, start: usize) -> Option<Raw<'a>> {
        let at = self.i;
        if let Some(t) = self.text {
            if let Some(s) = self.escaped_text(start, t) {
                return Some(Raw::Text(Cow::Owned(s)));
            }
            self.i = at;
        }
        self.escaped_bytes(start).map(|v| Raw::Bytes(Cow::Owned(v)))
    }

    /// [`JsonScan::escaped`] into a `String`, copying the document's text
    /// between escapes (`None` also when that text is not all validated:
    /// the caller then falls back to bytes).
    fn escaped_text(&mut self, start: usize, t: &'a str) -> Option<String> {
        let mut v = String::with_capacity(self.i - start + 32);
        v.push_str(t.get(start..self.i)?);
        while self.i < self.b.len() {
            let c = self.b[self.i];
            self.i += 1;
            match c {
                b'"' => return Some(v),
                b'\\' => v.push(self.escape()?),
                c if c < 0x20 => return None,
                _ => {
                    let from = self.i - 1;
                    self.i += stop_at(&self.b[self.i..]).unwrap_or(self.b.len() - self.i);
                    v.push_str(t.get(from..self.i)?);
                }
            }
        }
        None
    }

    /// The character of the escape after a backslash (at `self.i`).
    fn escape(&mut self) -> Option<char> {
        let e = *self.b.get(self.i)?;
        self.i += 1;
        Some(match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
                let mut cp = u32::from_str_radix(hex, 16).ok()?;
                self.i += 4;
                if (0xD800..0xDC00).contains(&cp) && self.b[self.i..].starts_with(b"\\u") {
                    if let Some(lo) = self
                        .b
                        .get(self.i + 2..self.i + 6)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                    {
                        if (0xDC00..0xE000).contains(&lo) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            self.i += 6;
                        }
                    }
                }
                char::from_u32(cp).unwrap_or('\u{fffd}')
            }
            _ => return None,
        })
    }

    /// [`JsonScan::escaped`] into bytes.
    fn escaped_bytes(&mut self, start: usize) -> Option<Vec<u8>> {
        let mut v = Vec::with_capacity(self.i - start + 32);
        v.extend_from_slice(&self.b[start..self.i]);
        while self.i < self.b.len() {
            let c = self.b[self.i];
            self.i += 1;
            match c {
                b'"' => return Some(v),
                b'\\' => {
                    let ch = self.escape()?;
                    let mut buf = [0u8; 4];
                    v.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return None,
                _ => {
                    // A run of ordinary bytes up to the next quote, escape
                    // or control byte, copied at once.
                    let from = self.i - 1;
                    self.i += stop_at(&self.b[self.i..]).unwrap_or(self.b.len() - self.i);
                    v.extend_from_slice(&self.b[from..self.i]);
                }
            }
        }
        None
    }
}

/// The first byte of `b` that is `"`, `\\` or a control byte, eight bytes
/// at a time. (In each word the lowest flagged byte is a true hit: the
/// borrows of the zero-byte test only run towards higher bytes.)
#[inline(always)]
fn stop_at(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i < b.len() {
        let mut w = [b'a'; 8];
        match b.get(i..i + 8) {
            Some(c) => w.copy_from_slice(c),
            None => {
                for (d, &c) in w.iter_mut().zip(&b[i..]) {
                    *d = c;
                }
            }
        }
        let x = u64::from_le_bytes(w);
        let q = x ^ (ONES * u64::from(b'"'));
        let e = x ^ (ONES * u64::from(b'\\'));
        let hit = ((q.wrapping_sub(ONES) & !q)
            | (e.wrapping_sub(ONES) & !e)
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    None
}

/// XML body: text content, CDATA sections and attribute values as argument
/// values (element and attribute names are the document's schema, not
/// data); processing instructions other than `<?xml…?>` and document type
/// declarations are kept whole so code in them and external entities are
/// still inspected. A document that does not scan as XML is inspected as
/// raw text instead.
pub fn parse_xml<'a>(
    input: &'a [u8],
    out: &mut Fields<'a>,
    limits: &Limits,
    issues: &mut BodyIssues,
) {
    let start = out.len();
    if !scan_xml(input, out, limits, issues) {
        out.list.truncate(start);
        out.push(Field {
            loc: Loc::Body,
            name: Name::Static("body"),
            raw: Raw::bytes(cap(input, limits.max_field_len * 4)),
            plus: false,
        });
    }
}

fn scan_xml<'a>(
    b: &'a [u8],
    out: &mut Fields<'a>,
    limits: &Limits,
    issues: &mut BodyIssues,
) -> bool {
    let mut elem: &[u8] = b"";
    // Character data and attribute values reach the application with
    // their entity and character references replaced (`&lt;` is `<`), so
    // they are inspected that way; CDATA sections are taken as they are.
    let push_as = |out: &mut Fields<'a>,
                   name: Name<'a>,
                   v: &'a [u8],
                   references: bool,
                   issues: &mut BodyIssues| {
        let v = trim_ascii(v);
        if v.is_empty() {
            return;
        }
        if out.len() >= limits.max_args {
            issues.too_many_args = true;
            return;
        }
        let v = cap(v, limits.max_field_len);
        let mut decoded = Vec::new();
        let raw = if references
            && v.contains(&b'&')
            && crate::normalize::entity_decode_into(v, &mut decoded)
        {
            Raw::Bytes(Cow::Owned(decoded))
        } else {
            Raw::bytes(v)
        };
        out.push(Field {
            loc: Loc::ArgValue,
            name,
            raw,
            plus: false,
        });
    };
    let push = |out: &mut Fields<'a>, name: Name<'a>, v: &'a [u8], issues: &mut BodyIssues| {
        push_as(out, name, v, true, issues)
    };
    let mut i = 0;
    let mut saw_element = false;
    while i < b.len() {
        let Some(lt) = b[i..].iter().position(|&c| c == b'<').map(|p| p + i) else {
            push(out, Name::Raw(elem), &b[i..], issues);
            break;
        };
        push(out, Name::Raw(elem), &b[i..lt], issues);
        let rest = &b[lt..];
        if rest.starts_with(b"<!--") {
            match find(b, b"-->", lt + 4) {
                Some(e) => i = e + 3,
                None => return false,
            }
        } else if rest.starts_with(b"<![CDATA[") {
            let Some(e) = find(b, b"]]>", lt + 9) else {
                return false;
            };
            push_as(out, Name::Raw(elem), &b[lt + 9..e], false, issues);
            i = e + 3;
        } else if rest.starts_with(b"<?") {
            let Some(e) = find(b, b"?>", lt + 2) else {
                return false;
            };
            let target = b[lt + 2..e]
                .iter()
                .position(|c| c.is_ascii_whitespace())
                .map_or(&b[lt + 2..e], |p| &b[lt + 2..lt + 2 + p]);
            // The XML declaration and style-sheet / XMP packet PIs are markup.
            let lower_starts =
                |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
            if !(lower_starts(b"xml") || target.eq_ignore_ascii_case(b"xpacket")) {
                push_as(out, Name::Static("xml:pi"), &b[lt..e + 2], false, issues);
            }
            i = e + 2;
        } else if rest.starts_with(b"<!") {
            // DOCTYPE (with an optional internal subset) or another declaration.
            let mut j = lt + 2;
            let mut depth = 0usize;
            let mut quote = 0u8;
            while j < b.len() {
                let c = b[j];
                if quote != 0 {
                    if c == quote {
                        quote = 0;
                    }
                } else if c == b'"' || c == b'\'' {
                    quote = c;
                } else if c == b'[' {
                    depth += 1;
                } else if c == b']' {
                    depth = depth.saturating_sub(1);
                } else if c == b'>' && depth == 0 {
                    break;
                }
                j += 1;
            }
            if j >= b.len() {
                return false;
            }
            push_as(out, Name::Static("xml:doctype"), &b[lt..=j], false, issues);
            i = j + 1;
        } else if rest.starts_with(b"</") {
            let Some(e) = b[lt..].iter().position(|&c| c == b'>') else {
                return false;
            };
            i = lt + e + 1;
            elem = b"";
        } else {
            // start tag: name, then attributes
            let mut j = lt + 1;
            let ns = j;
            while j < b.len() && !b[j].is_ascii_whitespace() && !matches!(b[j], b'>' | b'/') {
                j += 1;
            }
            if j == ns {
                return false;
            }
            saw_element = true;
            elem = &b[ns..j];
            loop {
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                match b.get(j) {
                    None => return false,
                    Some(b'>') => {
                        j += 1;
                        break;
                    }
                    Some(b'/') if b.get(j + 1) == Some(&b'>') => {
                        j += 2;
                        break;
                    }
                    Some(_) => {}
                }
                let an = j;
                while j < b.len()
                    && !matches!(b[j], b'=' | b'>' | b'/')
                    && !b[j].is_ascii_whitespace()
                {
                    j += 1;
                }
                if j == an {
                    return false;
                }
                let attr_name = &b[an..j];
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if b.get(j) != Some(&b'=') {
                    continue; // attribute without a value
                }
                j += 1;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let q = match b.get(j) {
                    Some(&q) if q == b'"' || q == b'\'' => q,
                    _ => return false,
                };
                let Some(e) = b[j + 1..].iter().position(|&c| c == q).map(|p| p + j + 1) else {
                    return false;
                };
                let name = format!(
                    "{}@{}",
                    String::from_utf8_lossy(cap(elem, 128)),
                    String::from_utf8_lossy(cap(attr_name, 128))
                );
                push(out, Name::Owned(name), &b[j + 1..e], issues);
                j = e + 1;
            }
            i = j;
        }
    }
    saw_element
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |p| p + 1);
    &v[s..e]
}

/// Extract a parameter (e.g. `boundary`, `charset`) from a header value.
pub fn header_param<'a>(value: &'a str, param: &str) -> Option<&'a str> {
    for part in value.split(';').skip(1) {
        let part = part.trim();
        if let Some(p) = part.find('=') {
            if part[..p].trim().eq_ignore_ascii_case(param) {
                return Some(part[p + 1..].trim().trim_matches('"'));
            }
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// multipart/form-data: field names, file names, (non-file) values and
/// file contents (inspected for web shells only).
pub fn parse_multipart<'a>(
    input: &'a [u8],
    boundary: Option<&str>,
    out: &mut Fields<'a>,
    limits: &Limits,
    issues: &mut BodyIssues,
) {
    let Some(boundary) = boundary.filter(|b| !b.is_empty() && b.len() <= 200) else {
        issues.multipart_invalid = true;
        return;
    };
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let Some(mut pos) = find(input, delim, 0) else {
        issues.multipart_invalid = true;
        return;
    };
    loop {
        let start = pos + delim.len();
        if input[start..].starts_with(b"--") {
            break;
        }
        let next = find(input, delim, start);
        let part = &input[start..next.unwrap_or(input.len())];
        let part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .unwrap_or(part);
        let (head, body) = match find(part, b"\r\n\r\n", 0) {
            Some(p) => (&part[..p], &part[p + 4..]),
            None => match find(part, b"\n\n", 0) {
                Some(p) => (&part[..p], &part[p + 2..]),
                None => {
                    issues.multipart_invalid = true;
                    (part, &b""[..])
                }
            },
        };
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let head = String::from_utf8_lossy(head);
        let mut name = None;
        let mut filename = None;
        for line in head.lines() {
            let line = line.trim();
            if line.len() > 20 && line[..20].eq_ignore_ascii_case("content-disposition:") {
                name = header_param(line, "name").map(str::to_string);
                filename = header_param(line, "filename").map(str::to_string);
            }
        }
        if out.len() >= limits.max_args {
            issues.too_many_args = true;
            return;
        }
        let fname = name.clone().unwrap_or_default();
        if let Some(n) = name {
            let mut raw = n.into_bytes();
            raw.truncate(limits.max_field_len);
            out.push(Field {
                loc: Loc::ArgName,
                name: Name::Owned(fname.clone()),
                raw: Raw::Bytes(Cow::Owned(raw)),
                plus: false,
            });
        } else {
            issues.multipart_invalid = true;
        }
        match filename {
            // File contents (images, documents) are data for the
            // application, not arguments: only web-shell signatures are
            // looked for in them.
            Some(f) => {
                let mut raw = f.into_bytes();
                raw.truncate(limits.max_field_len);
                out.push(Field {
                    loc: Loc::Filename,
                    name: Name::Owned(fname.clone()),
                    raw: Raw::Bytes(Cow::Owned(raw)),
                    plus: false,
                });
                out.push(Field {
                    loc: Loc::FileContent,
                    name: Name::Owned(fname),
                    raw: Raw::bytes(cap(body, limits.max_field_len)),
                    plus: false,
                });
            }
            None => out.push(Field {
                loc: Loc::ArgValue,
                name: Name::Owned(fname),
                raw: Raw::bytes(cap(body, limits.max_field_len)),
                plus: false,
            }),
        }
        match next {
            Some(n) => pos = n,
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_and_cookies() {
        let l = Limits::default();
        let mut out = Fields::new();
        let mut issues = BodyIssues::default();
        parse_urlencoded(b"a=1&b%5B%5D=x+y&flag", None, &mut out, &l, &mut issues);
        let names: Vec<_> = out
            .list
            .iter()
            .map(|f| (f.loc, out.name(f).into_owned()))
            .collect();
        let names: Vec<_> = names.iter().map(|(l, n)| (*l, n.as_str())).collect();
        assert_eq!(
            names,
            vec![
                (Loc::ArgName, "a"),
                (Loc::ArgValue, "a"),
                (Loc::ArgName, "b[]"),
                (Loc::ArgValue, "b[]"),
                (Loc::ArgName, "flag")
            ]
        );
        let mut out = Fields::new();
        parse_cookies("sid=abc; theme=dark", &mut out, &l);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn json_depth_is_bounded() {
        let l = Limits::default();
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let mut out = Fields::new();
        let mut issues = BodyIssues::default();
        parse_json(deep.as_bytes(), false, &mut out, &l, &mut issues);
        assert!(issues.json_too_deep);
        let mut issues = BodyIssues::default();
        parse_json(
            br#"{"cart":{"items":[{"title":"x"}]}}"#,
            false,
            &mut out,
            &l,
            &mut issues,
        );
        assert!(out
            .list
            .iter()
            .any(|f| out.name(f) == "cart.items.title" && f.loc == Loc::ArgValue));
        assert!(out
            .list
            .iter()
            .any(|f| out.name(f) == "cart.items" && f.loc == Loc::ArgName));
        let mut issues = BodyIssues::default();
        parse_json(b"{nope", false, &mut out, &l, &mut issues);
        assert!(issues.json_invalid);
    }

    #[test]
    fn xml_values_not_names() {
        let l = Limits::default();
        let mut out = Fields::new();
        let mut issues = BodyIssues::default();
        parse_xml(
            b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><java.lang.Runtime a=\"v1\" b='v2'>t1<![CDATA[c<1>]]><?php echo 1; ?><!-- c --><e/></java.lang.Runtime>",
            &mut out,
            &l,
            &mut issues,
        );
        let vals: Vec<&[u8]> = out.list.iter().map(|f| &*f.raw).collect();
        assert_eq!(
            vals,
            vec![
                &b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"[..],
                b"v1",
                b"v2",
                b"t1",
                b"c<1>",
                b"<?php echo 1; ?>"
            ]
        );
        assert!(out.list.iter().all(|f| f.loc == Loc::ArgValue));
        let mut out = Fields::new();
        parse_xml(b"not <xml", &mut out, &l, &mut issues);
        assert_eq!(out.len(), 1);
        assert_eq!(out.list[0].loc, Loc::Body);
    }

    #[test]
    fn xml_character_data_and_attributes_have_references_replaced() {
        let l = Limits::default();
        let mut out = Fields::new();
        let mut issues = BodyIssues::default();
        parse_xml(
            b"<a t=\"&lt;?php &#x20;\">x &amp; y<![CDATA[&lt;kept]]></a><?pi &lt;kept?>",
            &mut out,
            &l,
            &mut issues,
        );
        let vals: Vec<&[u8]> = out.list.iter().map(|f| &*f.raw).collect();
        assert_eq!(
            vals,
            vec![&b"<?php  "[..], b"x & y", b"&lt;kept", b"<?pi &lt;kept?>"]
        );
    }

    #[test]
    fn multipart_names_and_filenames() {
        let l = Limits::default();
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.php\"\r\nContent-Type: text/plain\r\n\r\n<?php ?>\r\n--XX--\r\n";
        let mut out = Fields::new();
        let mut issues = BodyIssues::default();
        parse_multipart(body, Some("XX"), &mut out, &l, &mut issues);
        assert!(!issues.multipart_invalid);
        assert!(out
            .list
            .iter()
            .any(|f| f.loc == Loc::ArgValue && &*f.raw == b"Hello"));
        assert!(out
            .list
            .iter()
            .any(|f| f.loc == Loc::Filename && &*f.raw == b"a.php"));
    }
}
