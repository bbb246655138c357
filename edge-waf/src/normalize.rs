//! Normalisation of values before inspection.
//!
//! Every transformation here is bounded: decoding never makes a value longer
//! than its input (a `%uXXXX` escape is 6 bytes and yields at most 3 UTF-8
//! bytes; a numeric entity of `n` bytes yields at most 4 bytes with `n >= 4`),
//! the number of decoding passes is capped, and callers cap the input length.

/// What decoding found wrong with a value (used by the protocol checks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeFlags {
    /// A `%` not followed by two hex digits (nor `u` + four hex digits).
    pub bad_percent: bool,
    /// A NUL byte appeared (raw or decoded).
    pub nul: bool,
    /// Decoded bytes that were not valid UTF-8 (replaced with U+FFFD).
    pub invalid_utf8: bool,
    /// More than one decoding pass changed the value (double encoding).
    pub multi_encoded: bool,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// One pass of URL decoding: `%XX`, `%uXXXX` and optionally `+` as space.
/// Returns whether anything changed; malformed escapes are kept verbatim
/// and flagged.
pub fn percent_decode_pass(input: &[u8], plus: bool, flags: &mut DecodeFlags) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let changed = percent_decode_into(input, plus, flags, &mut out);
    (out, changed)
}

/// [`percent_decode_pass`] into a caller's buffer (cleared first).
pub fn percent_decode_into(
    input: &[u8],
    plus: bool,
    flags: &mut DecodeFlags,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    out.reserve(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if (input.get(i + 1) == Some(&b'u') || input.get(i + 1) == Some(&b'U'))
                && i + 5 < input.len()
            {
                let h = &input[i + 2..i + 6];
                if let (Some(a), Some(b2), Some(c), Some(d)) =
                    (hex_val(h[0]), hex_val(h[1]), hex_val(h[2]), hex_val(h[3]))
                {
                    let cp = (u32::from(a) << 12)
                        | (u32::from(b2) << 8)
                        | (u32::from(c) << 4)
                        | u32::from(d);
                    push_char(out, char::from_u32(cp).unwrap_or('\u{fffd}'));
                    changed = true;
                    i += 6;
                    continue;
                }
            }
            if i + 2 < input.len() {
                if let (Some(hi), Some(lo)) = (hex_val(input[i + 1]), hex_val(input[i + 2])) {
                    let v = (hi << 4) | lo;
                    if v == 0 {
                        flags.nul = true;
                    }
                    out.push(v);
                    changed = true;
                    i += 3;
                    continue;
                }
            }
            flags.bad_percent = true;
            out.push(b);
            i += 1;
        } else if plus && b == b'+' {
            out.push(b' ');
            changed = true;
            i += 1;
        } else {
            if b == 0 {
                flags.nul = true;
            }
            out.push(b);
            i += 1;
        }
    }
    changed
}

/// One pass of JavaScript/JSON-style escape decoding: `\uXXXX`,
/// `\u{X…}` and `\xXX` (what a browser or Node.js would execute); other
/// backslashes are kept. Never lengthens the value.
pub fn js_decode_pass(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let changed = js_decode_into(input, &mut out);
    (out, changed)
}

/// [`js_decode_pass`] into a caller's buffer (cleared first).
pub fn js_decode_into(input: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(input.len());
    let mut changed = false;
    let mut i = 0;
    let hexn = |s: &[u8]| -> Option<u32> {
        s.iter()
            .try_fold(0u32, |a, &c| hex_val(c).map(|v| (a << 4) | u32::from(v)))
    };
    while i < input.len() {
        let b = input[i];
        if b == b'\\' && i + 3 < input.len() {
            let n = input[i + 1];
            if n == b'x' || n == b'X' {
                if let Some(v) = hexn(&input[i + 2..i + 4]) {
                    push_char(out, char::from_u32(v).unwrap_or('\u{fffd}'));
                    changed = true;
                    i += 4;
                    continue;
                }
            } else if n == b'u' || n == b'U' {
                if input[i + 2] == b'{' {
                    if let Some(e) = input[i + 3..].iter().take(7).position(|&c| c == b'}') {
                        if e > 0 {
                            if let Some(v) = hexn(&input[i + 3..i + 3 + e]) {
                                push_char(out, char::from_u32(v).unwrap_or('\u{fffd}'));
                                changed = true;
                                i += 4 + e;
                                continue;
                            }
                        }
                    }
                } else if i + 5 < input.len() {
                    if let Some(v) = hexn(&input[i + 2..i + 6]) {
                        push_char(out, char::from_u32(v).unwrap_or('\u{fffd}'));
                        changed = true;
                        i += 6;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    changed
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "colon" => ':',
        "semi" => ';',
        "tab" => '\t',
        "newline" => '\n',
        "lpar" => '(',
        "rpar" => ')',
        "sol" => '/',
        "bsol" => '\\',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        "lcub" | "lbrace" => '{',
        "rcub" | "rbrace" => '}',
        "grave" => '`',
        "num" => '#',
        "excl" => '!',
        "equals" => '=',
        "percnt" => '%',
        "dollar" => '$',
        "period" => '.',
        "comma" => ',',
        "plus" => '+',
        "ast" => '*',
        "vert" | "verbar" => '|',
        _ => return None,
    })
}

/// One pass of HTML entity decoding (`&#NN;`, `&#xHH;`, named entities; the
/// trailing `;` is optional as browsers accept it).
pub fn entity_decode_pass(input: &str) -> (String, bool) {
    if !input.contains('&') {
        return (input.to_string(), false);
    }
    let mut out = Vec::with_capacity(input.len());
    let changed = entity_decode_into(input.as_bytes(), &mut out);
    (
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        changed,
    )
}

/// [`entity_decode_pass`] on bytes, into a caller's buffer (cleared first).
/// Bytes outside entities are copied as they are.
pub fn entity_decode_into(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(bytes.len());
    let mut changed = false;
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] != b'&' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let mut decoded: Option<char>;
        if bytes.get(j) == Some(&b'#') {
            j += 1;
            let hex = matches!(bytes.get(j), Some(b'x') | Some(b'X'));
            if hex {
                j += 1;
            }
            let ds = j;
            let digit = |c: u8| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            };
            // (excessive leading digits are skipped, e.g. &#0000060)
            while j < bytes.len() && digit(bytes[j]) {
                j += 1;
            }
            if j == ds {
                i += 1;
                continue;
            }
            let digits = &bytes[ds..j];
            let skip = digits.iter().take_while(|&&c| c == b'0').count();
            let trimmed = &digits[skip..];
            let v = if trimmed.is_empty() {
                Some(0)
            } else if trimmed.len() > 7 {
                None
            } else {
                std::str::from_utf8(trimmed)
                    .ok()
                    .and_then(|t| u32::from_str_radix(t, if hex { 16 } else { 10 }).ok())
            };
            decoded = Some(v.and_then(char::from_u32).unwrap_or('\u{fffd}'));
        } else {
            let ns = j;
            while j < bytes.len() && j - ns < 10 && bytes[j].is_ascii_alphabetic() {
                j += 1;
            }
            let mut name = [0u8; 10];
            let len = j - ns;
            for (d, s) in name.iter_mut().zip(&bytes[ns..j]) {
                *d = s.to_ascii_lowercase();
            }
            let name = std::str::from_utf8(&name[..len]).unwrap_or("");
            decoded = named_entity(name);
            if decoded.is_none() && bytes.get(j) != Some(&b';') {
                // Browsers also read `&lbracejndi` as `{jndi`: the longest
                // known name that prefixes the letters (4+ characters).
                for k in (4..len).rev() {
                    if let Some(c) = named_entity(&name[..k]) {
                        decoded = Some(c);
                        j = ns + k;
                        break;
                    }
                }
            }
            if decoded.is_none() {
                i += 1;
                continue;
            }
        }
        if bytes.get(j) == Some(&b';') {
            j += 1;
        }
        if let Some(c) = decoded {
            out.extend_from_slice(&bytes[last..start]);
            push_char(out, c);
            last = j;
            changed = true;
        }
        i = j;
    }
    out.extend_from_slice(&bytes[last..]);
    changed
}

/// Fold a character for matching: fullwidth ASCII to ASCII, lowercase ASCII.
fn fold_char(c: char) -> char {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x2028 | 0x2029 | 0x00A0 | 0x3000 => ' ',
        0x3002 | 0xFF61 => '.',
        0x2018 | 0x2019 | 0x201B | 0x2032 | 0x02BC => '\'',
        0x201C | 0x201D | 0x2033 => '"',
        0x2460..=0x2468 => char::from_u32(c as u32 - 0x2460 + u32::from(b'1')).unwrap_or(c),
        0x24EA => '0',
        // circled letters
        0x24B6..=0x24CF => char::from_u32(c as u32 - 0x24B6 + u32::from(b'a')).unwrap_or(c),
        0x24D0..=0x24E9 => char::from_u32(c as u32 - 0x24D0 + u32::from(b'a')).unwrap_or(c),
        _ => c,
    };
    c.to_ascii_lowercase()
}

/// The normalised forms of one value handed to the detectors.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// Repeatedly URL-, JavaScript- and entity-decoded, NULs removed,
    /// fullwidth folded, lowercased.
    pub text: String,
    /// `text` with SQL/C comments replaced by a space and whitespace runs
    /// collapsed to one space; empty when that would equal `text`.
    pub compact: String,
    pub flags: DecodeFlags,
}

/// Reusable buffers for [`normalize_into`]: one set per request, so
/// normalising a field allocates nothing once they have grown.
#[derive(Debug, Default)]
pub struct NormBuf {
    /// See [`Normalized::text`].
    pub text: String,
    /// See [`Normalized::compact`] (empty when equal to `text`).
    pub compact: String,
    pub flags: DecodeFlags,
    /// The bytes in `text`.
    pub present: ByteSet,
    a: Vec<u8>,
    b: Vec<u8>,
}

/// Bounded, repeated decoding: URL-decoding (with `+` when `plus`), `%u`,
/// JavaScript escapes, HTML entities, then NUL removal, folding and
/// lowercasing.
pub fn normalize(raw: &[u8], plus: bool, max_len: usize, max_passes: usize) -> Normalized {
    let mut buf = NormBuf::default();
    normalize_into(raw, None, None, plus, max_len, max_passes, &mut buf);
    Normalized {
        text: buf.text,
        compact: buf.compact,
        flags: buf.flags,
    }
}

/// Would [`entity_decode_into`] decode something at `raw[i]` (an `&`)?
fn entity_here(raw: &[u8], i: usize) -> bool {
    match raw.get(i + 1) {
        Some(b'#') => true,
        Some(c) if c.is_ascii_alphabetic() => {
            let run = &raw[i + 1..];
            let n = run
                .iter()
                .take(10)
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            let mut name = [0u8; 10];
            for (d, s) in name.iter_mut().zip(&run[..n]) {
                *d = s.to_ascii_lowercase();
            }
            let name = std::str::from_utf8(&name[..n]).unwrap_or("");
            named_entity(name).is_some() || (4..n).any(|k| named_entity(&name[..k]).is_some())
        }
        _ => false,
    }
}

/// Characters that [`fold_char`] changes, by their UTF-8 encoding: the
/// lead byte and the bytes after it.
fn folds_at(raw: &[u8], i: usize) -> bool {
    let b1 = raw.get(i + 1).copied().unwrap_or(0);
    let b2 = raw.get(i + 2).copied().unwrap_or(0);
    match raw[i] {
        0xC2 => b1 == 0xA0,
        0xCA => b1 == 0xBC,
        0xE2 => {
            (b1 == 0x80
                && matches!(
                    b2,
                    0x98 | 0x99 | 0x9B | 0x9C | 0x9D | 0xA8 | 0xA9 | 0xB2 | 0xB3
                ))
                || matches!(b1, 0x91..=0x93)
        }
        0xE3 => b1 == 0x80 && matches!(b2, 0x80 | 0x82),
        0xEF => matches!(b1, 0xBC | 0xBD),
        _ => false,
    }
}

/// A summary of the bytes in a value, one bit per kind: each ASCII
/// punctuation character, space, tab, CR, LF and NUL has its own bit;
/// digits share one, letters one, other control bytes one and non-ASCII
/// bytes one. Gates and checks ask about single bytes with [`has`].
pub type ByteSet = u64;

/// Bit of [`ByteSet`] for each byte, plus (above bit 47) the classes the
/// normalisation fast path looks at.
const BYTE_INFO: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut next = 0u32;
    let mut c = 0usize;
    // Own bits: punctuation, space, \t, \n, \r, NUL.
    while c < 128 {
        let b = c as u8;
        if b.is_ascii_punctuation() || matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0) {
            t[c] = 1 << next;
            next += 1;
        }
        c += 1;
    }
    let digit = 1 << next;
    let letter = 1 << (next + 1);
    let control = 1 << (next + 2);
    let high = 1 << (next + 3);
    c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_digit() {
            t[c] = digit;
        } else if b.is_ascii_alphabetic() {
            t[c] = letter;
        } else if c >= 128 {
            t[c] = high | CLS_HIGH;
        } else if t[c] == 0 {
            t[c] = control;
        }
        c += 1;
    }
    t[b'%' as usize] |= CLS_DECODE;
    t[b'\\' as usize] |= CLS_DECODE;
    t[0] |= CLS_DECODE;
    t[b'+' as usize] |= CLS_PLUS;
    t[b'&' as usize] |= CLS_AMP;
    t[b'\t' as usize] |= CLS_COMPACT;
    t[b'\n' as usize] |= CLS_COMPACT;
    t[b'\r' as usize] |= CLS_COMPACT;
    t[0x0b] |= CLS_COMPACT;
    t[0x0c] |= CLS_COMPACT;
    t
};
const CLS_DECODE: u64 = 1 << 63;
const CLS_PLUS: u64 = 1 << 62;
const CLS_AMP: u64 = 1 << 61;
const CLS_HIGH: u64 = 1 << 60;
const CLS_COMPACT: u64 = 1 << 59;
const CLS_MASK: u64 = !((1 << 48) - 1);

/// The [`ByteSet`] bit of byte `c`.
pub fn byte_bit(c: u8) -> ByteSet {
    BYTE_INFO[usize::from(c)] & !CLS_MASK
}

/// Whether the set has byte `c` (for digits, letters, other control and
/// non-ASCII bytes: any byte of the same kind).
pub fn has(set: ByteSet, c: u8) -> bool {
    set & byte_bit(c) != 0
}

/// The [`ByteSet`] of `raw` when it is a plain token that every form
/// (text, compact, shell) reads as `raw` lowercased and that no field-level
/// check looks at: no byte that is decoded, folded, compacted or removed by
/// the shell form, and no space, colon, CR or LF. `None` otherwise.
pub fn plain(info: u64, plus: bool) -> Option<ByteSet> {
    let not_plain = CLS_DECODE
        | CLS_AMP
        | CLS_HIGH
        | CLS_COMPACT
        | if plus { CLS_PLUS } else { 0 }
        | b"\\'\"^$`[<>:* \r\n\t&%"
            .iter()
            .fold(0, |a, &c| a | byte_bit(c))
        | BYTE_INFO[1];
    (info & not_plain == 0).then_some(info & !CLS_MASK)
}

/// The bytes of `raw` and their classes (for [`plain`] and
/// [`normalize_into`]), eight at a time.
pub fn byte_info(raw: &[u8]) -> u64 {
    let mut chunks = raw.chunks_exact(8);
    let (mut a, mut b) = (0u64, 0u64);
    for c in &mut chunks {
        a |= BYTE_INFO[usize::from(c[0])]
            | BYTE_INFO[usize::from(c[1])]
            | BYTE_INFO[usize::from(c[2])]
            | BYTE_INFO[usize::from(c[3])];
        b |= BYTE_INFO[usize::from(c[4])]
            | BYTE_INFO[usize::from(c[5])]
            | BYTE_INFO[usize::from(c[6])]
            | BYTE_INFO[usize::from(c[7])];
    }
    for &c in chunks.remainder() {
        a |= BYTE_INFO[usize::from(c)];
    }
    a | b
}

/// Normalise `raw` by lowercasing alone when nothing in it would be
/// decoded or folded (the common case); `false` (and `out` untouched
/// beyond its buffers) otherwise.
fn lowercase_only_into(
    raw: &[u8],
    text: Option<&str>,
    info: u64,
    plus: bool,
    out: &mut NormBuf,
) -> bool {
    if info & CLS_DECODE != 0 || (plus && info & CLS_PLUS != 0) {
        return false;
    }
    if info & CLS_AMP != 0 && memchr::memchr_iter(b'&', raw).any(|i| entity_here(raw, i)) {
        return false;
    }
    if info & CLS_HIGH != 0 && (0..raw.len()).any(|i| raw[i] >= 0xC2 && folds_at(raw, i)) {
        return false;
    }
    let s = match text {
        Some(t) => t,
        None => match std::str::from_utf8(raw) {
            Ok(s) => s,
            Err(_) => return false,
        },
    };
    out.text.push_str(s);
    out.text.make_ascii_lowercase();
    out.present = info & !CLS_MASK;
    if (info & CLS_COMPACT != 0 || has(out.present, b'*') || has(out.present, b' '))
        && needs_compact(&out.text)
    {
        compact_sql_into(&out.text, &mut out.compact);
    }
    true
}

/// [`normalize`] into reusable buffers. `text` is `raw` as text when the
/// caller knows it is UTF-8, `info` its [`byte_info`] when already computed.
pub fn normalize_into(
    raw: &[u8],
    text: Option<&str>,
    info: Option<u64>,
    plus: bool,
    max_len: usize,
    max_passes: usize,
    out: &mut NormBuf,
) {
    let raw = &raw[..raw.len().min(max_len)];
    out.flags = DecodeFlags::default();
    out.text.clear();
    out.compact.clear();
    // The common case: nothing to decode or fold, lowercased in one pass.
    // (`text` is `raw` as text when known; a cut `raw` may not match it.)
    let text = text.filter(|t| t.len() == raw.len());
    debug_assert!(text.is_none_or(|t| t.as_bytes() == raw));
    let info = info.unwrap_or_else(|| byte_info(raw));
    if lowercase_only_into(raw, text, info, plus, out) {
        return;
    }
    let NormBuf { a, b, flags, .. } = out;
    a.clear();
    a.extend_from_slice(raw);
    let mut passes_changed = 0;
    let mut first = true;
    for _ in 0..max_passes.max(1) {
        let mut changed_any = false;
        if (a.contains(&b'%') || (first && plus && a.contains(&b'+')))
            && percent_decode_into(a, plus && first, flags, b)
        {
            std::mem::swap(a, b);
            changed_any = true;
        }
        first = false;
        if a.windows(2)
            .any(|w| w[0] == b'\\' && matches!(w[1], b'u' | b'U' | b'x' | b'X'))
            && js_decode_into(a, b)
        {
            std::mem::swap(a, b);
            changed_any = true;
        }
        if a.contains(&b'&') && entity_decode_into(a, b) {
            std::mem::swap(a, b);
            changed_any = true;
        }
        if !changed_any {
            break;
        }
        passes_changed += 1;
    }
    if passes_changed > 1 {
        flags.multi_encoded = true;
    }
    if a.contains(&0) {
        flags.nul = true;
    }
    let s = match std::str::from_utf8(a) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            flags.invalid_utf8 = true;
            String::from_utf8_lossy(a)
        }
    };
    out.text.reserve(s.len());
    // ASCII runs are lowercased as a block; other characters are folded.
    let mut rest: &str = &s;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .position(|c| c >= 0x80 || c == 0)
            .unwrap_or(rest.len());
        let start = out.text.len();
        out.text.push_str(&rest[..n]);
        out.text[start..].make_ascii_lowercase();
        rest = &rest[n..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        if c != '\0' {
            out.text.push(fold_char(c));
        }
        rest = &rest[c.len_utf8()..];
    }
    if needs_compact(&out.text) {
        compact_sql_into(&out.text, &mut out.compact);
    }
    out.present = byte_set(out.text.as_bytes());
}

/// The [`ByteSet`] of `b`.
pub fn byte_set(b: &[u8]) -> ByteSet {
    byte_info(b) & !CLS_MASK
}

/// Whether SQL comment removal / whitespace collapsing changes `t`.
pub fn needs_compact(t: &str) -> bool {
    let mut prev = 0u8;
    for &c in t.as_bytes() {
        match c {
            b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => return true,
            b'*' if prev == b'/' => return true,
            b'/' if prev == b'*' => return true,
            b' ' if prev == b' ' => return true,
            _ => {}
        }
        prev = c;
    }
    false
}

/// Replace `/* ... */` comments with a space (MySQL `/*! ... */` keeps its
/// content), turn control whitespace into spaces and collapse runs.
pub fn compact_sql(s: &str) -> String {
    let mut out = String::new();
    compact_sql_into(s, &mut out);
    out
}

/// [`compact_sql`] into a caller's buffer (cleared first).
pub fn compact_sql_into(s: &str, out: &mut String) {
    out.clear();
    let b = s.as_bytes();
    let mut i = 0;
    // Runs of unchanged bytes are copied as `&str` slices, so multi-byte
    // characters stay whole; only ASCII is removed or replaced.
    let mut run = 0;
    fn space(out: &mut String) {
        if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            out.push_str(&s[run..i]);
            space(out);
            if b.get(i + 2) == Some(&b'!') {
                // MySQL versioned comment: its content is executed, keep it.
                let mut j = i + 3;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
                run = i;
                continue;
            }
            i = s[i + 2..]
                .find("*/")
                .map(|p| i + 2 + p + 2)
                .unwrap_or(b.len());
            run = i;
            continue;
        }
        if c == b'*' && b.get(i + 1) == Some(&b'/') {
            out.push_str(&s[run..i]);
            space(out);
            i += 2;
            run = i;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            out.push_str(&s[run..i]);
            space(out);
            i += 1;
            run = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&s[run..]);
}

/// Result of normalising a URL path.
#[derive(Debug, Clone, Default)]
pub struct NormalizedPath {
    /// Decoded, backslashes as `/`, `//` collapsed, `.`/`..` resolved, lowercase.
    pub path: String,
    /// Some `..` segment tried to climb above the root, or `..` appeared
    /// after decoding in an encoded form.
    pub traversal: bool,
    /// Number of `..` segments.
    pub dotdot: usize,
    pub flags: DecodeFlags,
}

/// Normalise a path (the part of the URI before `?`).
pub fn normalize_path(raw: &str, max_len: usize, max_passes: usize) -> NormalizedPath {
    let n = normalize(raw.as_bytes(), false, max_len, max_passes);
    let unified = n.text.replace('\\', "/");
    let mut segs: Vec<&str> = Vec::new();
    let mut traversal = false;
    let mut dotdot = 0;
    for seg in unified.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                dotdot += 1;
                if segs.pop().is_none() {
                    traversal = true;
                }
            }
            s => segs.push(s),
        }
    }
    let mut path = String::with_capacity(unified.len() + 1);
    for s in &segs {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty() || (unified.ends_with('/') && !segs.is_empty()) {
        path.push('/');
    }
    NormalizedPath {
        path,
        traversal,
        dotdot,
        flags: n.flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeatedly_and_folds() {
        let n = normalize(b"%253Cscript%253E", false, 1000, 4);
        assert_eq!(n.text, "<script>");
        assert!(n.flags.multi_encoded);
        let n = normalize(b"%u003cSVG+onload%3d1", true, 1000, 4);
        assert_eq!(n.text, "<svg onload=1");
        let n = normalize("&#x3C;IMG&colon;&lt;\u{ff1c}".as_bytes(), false, 1000, 4);
        assert_eq!(n.text, "<img:<<");
        let n = normalize(br"c\u006fnsole\x2elog\u{28}", false, 1000, 4);
        assert_eq!(n.text, "console.log(");
        let n = normalize(b"a%00b", false, 1000, 4);
        assert_eq!(n.text, "ab");
        assert!(n.flags.nul);
    }

    #[test]
    fn flags_malformed_percent_and_invalid_utf8() {
        let n = normalize(b"100%zz", false, 1000, 4);
        assert!(n.flags.bad_percent);
        assert_eq!(n.text, "100%zz");
        let n = normalize(b"%ff%fe", false, 1000, 4);
        assert!(n.flags.invalid_utf8);
    }

    #[test]
    fn compacts_sql_comments() {
        assert_eq!(compact_sql("union/**/select"), "union select");
        assert_eq!(compact_sql("union/*!50000select*/ 1"), "union select 1");
        assert_eq!(compact_sql("a \t\n b"), "a b");
    }

    #[test]
    fn path_normalisation() {
        let p = normalize_path("/a/b/..%2f..%2f..%2fetc/passwd", 1000, 4);
        assert_eq!(p.path, "/etc/passwd");
        assert!(p.traversal);
        let p = normalize_path("/Store//Products\\x/", 1000, 4);
        assert_eq!(p.path, "/store/products/x/");
        assert!(!p.traversal);
    }
}
