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
                    push_char(&mut out, char::from_u32(cp).unwrap_or('\u{fffd}'));
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
    (out, changed)
}

/// One pass of JavaScript/JSON-style escape decoding: `\\uXXXX`,
/// `\\u{X…}` and `\\xXX` (what a browser or Node.js would execute); other
/// backslashes are kept. Never lengthens the value.
pub fn js_decode_pass(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'\\' && i + 3 < input.len() {
            let n = input[i + 1];
            let hexn = |s: &[u8]| -> Option<u32> {
                s.iter()
                    .try_fold(0u32, |a, &c| hex_val(c).map(|v| (a << 4) | u32::from(v)))
            };
            if (n == b'x' || n == b'X') && i + 3 < input.len() {
                if let Some(v) = hexn(&input[i + 2..i + 4]) {
                    push_char(&mut out, char::from_u32(v).unwrap_or('\u{fffd}'));
                    changed = true;
                    i += 4;
                    continue;
                }
            } else if n == b'u' || n == b'U' {
                if input[i + 2] == b'{' {
                    if let Some(e) = input[i + 3..].iter().take(7).position(|&c| c == b'}') {
                        if e > 0 {
                            if let Some(v) = hexn(&input[i + 3..i + 3 + e]) {
                                push_char(&mut out, char::from_u32(v).unwrap_or('\u{fffd}'));
                                changed = true;
                                i += 4 + e;
                                continue;
                            }
                        }
                    }
                } else if i + 5 < input.len() {
                    if let Some(v) = hexn(&input[i + 2..i + 6]) {
                        push_char(&mut out, char::from_u32(v).unwrap_or('\u{fffd}'));
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
    (out, changed)
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
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
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
            while j < bytes.len()
                && j - ds < 8
                && (if hex {
                    bytes[j].is_ascii_hexdigit()
                } else {
                    bytes[j].is_ascii_digit()
                })
            {
                j += 1;
            }
            // skip over excessive leading digits (e.g. &#0000060)
            while j < bytes.len()
                && (if hex {
                    bytes[j].is_ascii_hexdigit()
                } else {
                    bytes[j].is_ascii_digit()
                })
            {
                j += 1;
            }
            if j == ds {
                i += 1;
                continue;
            }
            let digits = &input[ds..j];
            let trimmed = digits.trim_start_matches('0');
            let v = if trimmed.is_empty() {
                Some(0)
            } else if trimmed.len() > 7 {
                None
            } else {
                u32::from_str_radix(trimmed, if hex { 16 } else { 10 }).ok()
            };
            decoded = Some(v.and_then(char::from_u32).unwrap_or('\u{fffd}'));
        } else {
            let ns = j;
            while j < bytes.len() && j - ns < 10 && bytes[j].is_ascii_alphabetic() {
                j += 1;
            }
            let name = input[ns..j].to_ascii_lowercase();
            decoded = named_entity(&name);
            if decoded.is_none() && bytes.get(j) != Some(&b';') {
                // Browsers also read `&lbracejndi` as `{jndi`: the longest
                // known name that prefixes the letters (4+ characters).
                for k in (4..name.len()).rev() {
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
            out.push_str(&input[last..start]);
            out.push(c);
            last = j;
            changed = true;
        }
        i = j;
    }
    out.push_str(&input[last..]);
    (out, changed)
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
    /// Repeatedly URL- and entity-decoded, NULs removed, fullwidth folded,
    /// lowercased.
    pub text: String,
    /// `text` with SQL/C comments replaced by a space and whitespace runs
    /// collapsed to one space; empty when that would equal `text`.
    pub compact: String,
    pub flags: DecodeFlags,
}

/// Bounded, repeated decoding: URL-decoding (with `+` when `plus`), `%u`,
/// HTML entities, then NUL removal, folding and lowercasing.
pub fn normalize(raw: &[u8], plus: bool, max_len: usize, max_passes: usize) -> Normalized {
    let raw = &raw[..raw.len().min(max_len)];
    let mut flags = DecodeFlags::default();
    let mut cur: Vec<u8> = raw.to_vec();
    let mut passes_changed = 0;
    let mut first = true;
    for _ in 0..max_passes.max(1) {
        let mut changed_any = false;
        if cur.contains(&b'%') || (first && plus && cur.contains(&b'+')) {
            let (next, changed) = percent_decode_pass(&cur, plus && first, &mut flags);
            if changed {
                cur = next;
                changed_any = true;
            }
        }
        first = false;
        if cur
            .windows(2)
            .any(|w| w[0] == b'\\' && matches!(w[1], b'u' | b'U' | b'x' | b'X'))
        {
            let (next, changed) = js_decode_pass(&cur);
            if changed {
                cur = next;
                changed_any = true;
            }
        }
        if cur.contains(&b'&') {
            let s = String::from_utf8_lossy(&cur);
            let (next, changed) = entity_decode_pass(&s);
            if changed {
                cur = next.into_bytes();
                changed_any = true;
            }
        }
        if !changed_any {
            break;
        }
        passes_changed += 1;
    }
    if passes_changed > 1 {
        flags.multi_encoded = true;
    }
    if cur.contains(&0) {
        flags.nul = true;
    }
    let s = match std::str::from_utf8(&cur) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            flags.invalid_utf8 = true;
            String::from_utf8_lossy(&cur)
        }
    };
    let mut text = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\0' {
            continue;
        }
        text.push(fold_char(c));
    }
    let compact = if text.contains("/*")
        || text.contains("*/")
        || text.contains("  ")
        || text
            .bytes()
            .any(|c| matches!(c, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
    {
        compact_sql(&text)
    } else {
        String::new()
    };
    Normalized {
        text,
        compact,
        flags,
    }
}

/// Replace `/* ... */` comments with a space (MySQL `/*! ... */` keeps its
/// content), turn control whitespace into spaces and collapse runs.
pub fn compact_sql(s: &str) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    fn space(out: &mut Vec<u8>) {
        if out.last() != Some(&b' ') {
            out.push(b' ');
        }
    }
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            space(&mut out);
            if b.get(i + 2) == Some(&b'!') {
                // MySQL versioned comment: its content is executed, keep it.
                let mut j = i + 3;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
                continue;
            }
            i = s[i + 2..]
                .find("*/")
                .map(|p| i + 2 + p + 2)
                .unwrap_or(b.len());
            continue;
        }
        if c == b'*' && b.get(i + 1) == Some(&b'/') {
            space(&mut out);
            i += 2;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            space(&mut out);
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    // Only whole ASCII bytes were removed or replaced: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
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
