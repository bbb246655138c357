//! Hand-written matchers for what regexes express badly.

use std::sync::OnceLock;

use base64::Engine as _;

/// Remove shell quoting and escaping tricks so `c'a't`, `c\at`, `c$@at`,
/// `ca""t`, `/bi[n]/sh` and `${IFS}` read as the plain command.
pub fn shell_form(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    shell_form_into(text, &mut out);
    out
}

/// Characters [`shell_form`] removes or rewrites: without any of them the
/// shell form equals the text.
pub fn shell_sensitive(text: &str) -> bool {
    text.bytes().any(|c| {
        matches!(
            c,
            b'\\' | b'\'' | b'"' | b'^' | b'$' | b'`' | b'[' | b'<' | b'>'
        )
    })
}

/// [`shell_form`] into a caller's buffer (cleared first). Only ASCII bytes
/// are removed or rewritten; the text between them is copied in runs.
pub fn shell_form_into(text: &str, out: &mut String) {
    out.clear();
    let b = text.as_bytes();
    // `b[run..i]` is copied as is when the next rewrite (or the end) comes.
    let mut run = 0;
    let mut i = 0;
    // The last byte written (runs included), for `sh$XX`.
    let last = |out: &String, run: usize, i: usize| -> Option<u8> {
        if i > run {
            Some(b[i - 1])
        } else {
            out.as_bytes().last().copied()
        }
    };
    while i < b.len() {
        let c = b[i];
        if !matches!(
            c,
            b'\\' | b'\'' | b'"' | b'^' | b'$' | b'`' | b'<' | b'>' | b'['
        ) {
            i += 1;
            continue;
        }
        // (`text[run..i]` ends before an ASCII byte: a char boundary.)
        let (skip, put): (usize, Option<char>) = match c {
            b'\\' | b'\'' | b'"' | b'^' => (1, None),
            b'$' => {
                let rest = &b[i + 1..];
                if rest.starts_with(b"{ifs}") {
                    (6, Some(' '))
                } else if rest.starts_with(b"ifs") {
                    (4, Some(' '))
                } else if rest.first().is_some_and(|c| {
                    matches!(c, b'@' | b'*' | b'#' | b'!' | b'-' | b'_' | b'?' | b'$')
                }) {
                    (2, None)
                } else if rest.starts_with(b"()") {
                    (3, None)
                } else if last(out, run, i).is_some_and(|c| c.is_ascii_alphanumeric())
                    && rest.first().is_some_and(|c| c.is_ascii_alphabetic())
                {
                    // `sh$XX`: an undefined variable inside a word is empty
                    let n = rest
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    (1 + n, None)
                } else if rest.first().is_some_and(|c| c.is_ascii_digit())
                    && !rest.get(1).is_some_and(|c| c.is_ascii_alphanumeric())
                {
                    (2, None)
                } else {
                    (0, None)
                }
            }
            b'`' if b.get(i + 1) == Some(&b'`') => (2, None),
            b'<' | b'>' if b[i + 1..].starts_with(b"()") => (3, None),
            b'[' => {
                // a bracket expression inside a word: `bi[n]`, `[a-z]in`
                match b[i + 1..].iter().take(12).position(|&x| x == b']') {
                    Some(end)
                        if b[i + 1..i + 1 + end]
                            .iter()
                            .all(|x| x.is_ascii_alphanumeric() || *x == b'-' || *x == b'!') =>
                    {
                        let inner = &b[i + 1..i + 1 + end];
                        let put = (inner.len() == 1 && inner[0].is_ascii_alphanumeric())
                            .then(|| char::from(inner[0]));
                        (end + 2, put)
                    }
                    _ => (0, None),
                }
            }
            _ => (0, None),
        };
        if skip == 0 {
            i += 1;
            continue;
        }
        out.push_str(&text[run..i]);
        if let Some(p) = put {
            out.push(p);
        }
        i += skip;
        run = i;
    }
    out.push_str(&text[run..]);
}

/// Log4j lookups, including nested obfuscation such as
/// `${${lower:j}${::-n}di:ldap://...}`.
pub fn log4j_lookup(text: &str) -> bool {
    if !text.contains("${") {
        return false;
    }
    let mut s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for _ in 0..64 {
        if s.contains("${jndi:") {
            return true;
        }
        let Some(close) = s.find('}') else {
            return false;
        };
        let Some(open) = s[..close].rfind("${") else {
            // a stray `}`: drop it and go on
            s.replace_range(close..close + 1, "");
            continue;
        };
        let inner = &s[open + 2..close];
        if inner.starts_with("jndi:") {
            return true;
        }
        let repl = if let Some(p) = inner.find(":-") {
            inner[p + 2..].to_string()
        } else if let Some(rest) = inner
            .strip_prefix("lower:")
            .or_else(|| inner.strip_prefix("upper:"))
        {
            rest.to_string()
        } else if let Some(p) = inner.find(':') {
            // other lookups (env:, sys:, date:...) are attacks by themselves
            let prefix = &inner[..p];
            if matches!(
                prefix,
                "env"
                    | "sys"
                    | "java"
                    | "ctx"
                    | "main"
                    | "bundle"
                    | "docker"
                    | "k8s"
                    | "log4j"
                    | "spring"
                    | "web"
                    | "base64"
                    | "url"
                    | "jvmrunargs"
                    | "date"
                    | "event"
                    | "marker"
                    | "map"
                    | "sd"
            ) {
                return true;
            }
            String::new()
        } else {
            String::new()
        };
        s.replace_range(open..close + 1, &repl);
    }
    false
}

/// The stable base64 substrings of each keyword at the three byte
/// alignments (characters influenced by unknown neighbouring bytes dropped).
pub fn base64_variants(keywords: &[&str]) -> Vec<String> {
    let eng = base64::engine::general_purpose::STANDARD;
    let mut pats = Vec::new();
    for kw in keywords {
        for shift in 0..3usize {
            let mut data = vec![0u8; shift];
            data.extend_from_slice(kw.as_bytes());
            let enc = eng.encode(&data);
            let enc = enc.as_bytes();
            // first char fully determined by keyword bytes, last one too
            let skip = match shift {
                0 => 0,
                1 => 2,
                _ => 3,
            };
            let stable_end = data.len() * 8 / 6;
            if stable_end > skip + 6 {
                pats.push(String::from_utf8_lossy(&enc[skip..stable_end]).into_owned());
            }
        }
    }
    pats
}

/// An IPv4 address written in inet_aton style: 1 to 4 parts, each decimal,
/// octal (`0` prefix) or hex (`0x`); `None` when it is not one or overflows.
fn inet_aton(host: &str) -> Option<(u64, bool)> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    let mut canonical = parts.len() == 4;
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x") {
            canonical = false;
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            canonical = false;
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 16 && !p.is_empty() {
            vals.push(0u64);
            continue;
        }
        if digits.is_empty() || digits.len() > 20 {
            return None;
        }
        // Too long for u64: certainly an overflow trick.
        let v = u128::from_str_radix(digits, radix).ok()?;
        vals.push(u64::try_from(v).unwrap_or(u64::MAX));
    }
    let n = vals.len();
    let mut addr: u64 = 0;
    for (i, v) in vals.iter().enumerate() {
        let last = i == n - 1;
        if !last {
            if *v > 255 {
                return Some((u64::MAX, false));
            }
            addr |= v << (8 * (3 - i));
        } else {
            addr |= *v;
        }
    }
    if vals.iter().take(n - 1).any(|v| *v > 255) || (canonical && vals[n - 1] > 255) {
        canonical = false;
    }
    Some((addr, canonical))
}

fn private_v4(a: u32) -> bool {
    let o = a.to_be_bytes();
    matches!(
        (o[0], o[1]),
        (127, _) | (0, _) | (169, 254) | (10, _) | (192, 168) | (100, 100)
    ) || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || a == u32::from_be_bytes([192, 0, 0, 192])
}

/// Host names that resolve to the local machine, containers' hosts or
/// cloud metadata services.
fn local_name(host: &str) -> bool {
    if matches!(
        host,
        "localhost"
            | "localhost4"
            | "localhost6"
            | "ip6-localhost"
            | "ip6-loopback"
            | "ipv6-localhost"
            | "ipv6-loopback"
            | "metadata"
            | "instance-data"
            | "metadata.google.internal"
            | "metadata.azure.com"
            | "metadata.packet.net"
            | "metadata.platformequinix.com"
            | "metadata.tencentyun.com"
            | "kubernetes.default"
            | "kubernetes.default.svc"
            | "localtest.me"
            | "lvh.me"
            | "0"
    ) {
        return true;
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    matches!(
        last,
        "localhost" | "localdomain" | "localdomain4" | "localdomain6" | "internal"
    ) || host.starts_with("localhost.")
        || host.ends_with(".svc.cluster.local")
        || host.ends_with(".localtest.me")
        || host.ends_with(".lvh.me")
}

/// Is this URL host (name, IPv4 in any inet_aton form, or `[IPv6]`) a
/// loopback, private, link-local or metadata address, or an obfuscated
/// numeric form (integer, hex, octal, overflowing)?
fn dangerous_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.trim_end_matches(']');
        let inner = inner.split('%').next().unwrap_or(inner);
        return match inner.parse::<std::net::Ipv6Addr>() {
            // Only global unicast (2000::/3) is an ordinary destination.
            Ok(a) => !(0x2000..0x4000).contains(&a.segments()[0]),
            Err(_) => false,
        };
    }
    if local_name(host) {
        return true;
    }
    let numeric = host.split('.').all(|p| {
        !p.is_empty()
            && (p.bytes().all(|c| c.is_ascii_digit())
                || (p.starts_with("0x") && p[2..].bytes().all(|c| c.is_ascii_hexdigit())))
    });
    if !numeric {
        return false;
    }
    match inet_aton(host) {
        Some((a, true)) => u32::try_from(a).map_or(true, private_v4),
        // integer, hex, octal or overflowing forms are obfuscation
        Some((_, false)) | None => true,
    }
}

/// URL schemes that reach a host even without `//` (`http:2130706433`).
const SCHEMES: &[&str] = &[
    "http",
    "https",
    "ftp",
    "ftps",
    "sftp",
    "gopher",
    "dict",
    "file",
    "ldap",
    "ldaps",
    "tftp",
    "ssh",
    "telnet",
    "smb",
    "rtmp",
    "imap",
    "pop3",
    "smtp",
    "irc",
    "acap",
    "rsync",
    "xri",
    "jar",
    "netdoc",
    "local_file",
    "git",
];

/// Keywords that gate [`ssrf_target`]: what can start a dangerous host
/// (a digit or `[` after `//`, `:/`, `:` or `@`; `0x`), the local and
/// metadata names, and `\\` (removed before parsing, so it may hide any
/// of them).
pub const SSRF_KEYWORDS: &[&str] = &[
    "//0",
    "//1",
    "//2",
    "//3",
    "//4",
    "//5",
    "//6",
    "//7",
    "//8",
    "//9",
    ":/0",
    ":/1",
    ":/2",
    ":/3",
    ":/4",
    ":/5",
    ":/6",
    ":/7",
    ":/8",
    ":/9",
    ":0",
    ":1",
    ":2",
    ":3",
    ":4",
    ":5",
    ":6",
    ":7",
    ":8",
    ":9",
    "@0",
    "@1",
    "@2",
    "@3",
    "@4",
    "@5",
    "@6",
    "@7",
    "@8",
    "@9",
    "//[",
    ":/[",
    ":[",
    "@[",
    "0x",
    "\\",
    "localhost",
    "loopback",
    "internal",
    "localtest",
    "localdomain",
    "lvh.me",
    ".local",
    "metadata",
    "instance-data",
    "kubernetes",
];

/// Keywords that gate [`url_ip_host`]: a digit or `[` where the host
/// starts (after `//`, ASCII whitespace or `@`).
pub const URL_IP_KEYWORDS: &[&str] = &[
    "//0", "//1", "//2", "//3", "//4", "//5", "//6", "//7", "//8", "//9", "@0", "@1", "@2", "@3",
    "@4", "@5", "@6", "@7", "@8", "@9", "//[", "@[", "// ", "//\t", "//\n", "//\r", "//\u{b}",
    "//\u{c}",
];

/// A URL in the value (or a value that starts with a host name and a
/// path) pointing at loopback, private, link-local or cloud metadata
/// addresses, or at an obfuscated numeric IP form.
pub fn ssrf_target(text: &str) -> bool {
    // `\l\o\c\a\l\h\o\s\t` and `http:\\host` tricks
    let t: std::borrow::Cow<'_, str> = if text.as_bytes().contains(&b'\\') {
        std::borrow::Cow::Owned(text.chars().filter(|&c| c != '\\').collect())
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let had_backslash = t.len() != text.len();
    // A bare `host/path` or `host:port/path` value.
    let bare = ltrim(&t);
    if let Some(end) = bare.bytes().position(|c| c == b'/') {
        let hp = &bare[..end];
        let h = match hp.bytes().position(|c| c == b':') {
            Some(c) => &hp[..c],
            None => hp,
        };
        // (`scheme:/...` is not a host)
        if !h.is_empty()
            && !hp.ends_with(':')
            && h.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
            && !h.bytes().all(|c| c.is_ascii_digit() || c == b'.')
            && dangerous_host(h)
        {
            return true;
        }
    }
    let b = t.as_bytes();
    let mut from = 0;
    while let Some(p) = b[from..].iter().position(|&c| c == b':') {
        let colon = from + p;
        from = colon + 1;
        let ss = t[..colon]
            .bytes()
            .rposition(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'_')))
            .map_or(0, |i| i + 1);
        let scheme = &t[ss..colon];
        if scheme.is_empty() || scheme.len() > 12 || !b[ss].is_ascii_alphabetic() {
            continue;
        }
        // the scheme must start the value or follow a delimiter, not a dot
        if ss > 0 && matches!(b[ss - 1], b'.' | b'@') {
            continue;
        }
        let rest = &t[colon + 1..];
        let slashes = rest.bytes().take_while(|&c| c == b'/').count();
        let after = &rest[slashes..];
        if slashes == 0 && !had_backslash && !SCHEMES.contains(&scheme) {
            continue;
        }
        let host_end = after
            .bytes()
            .position(|c| matches!(c, b'/' | b'?' | b'#' | b' ' | b'"' | b'\'' | b'<' | b'>'))
            .unwrap_or(after.len());
        let authority = &after[..host_end];
        let hostport = match authority.bytes().rposition(|c| c == b'@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        };
        let host = if hostport.starts_with('[') {
            match hostport.find(']') {
                Some(e) => &hostport[..=e],
                None => hostport,
            }
        } else {
            match hostport.bytes().position(|c| c == b':') {
                Some(c) => &hostport[..c],
                None => hostport,
            }
        };
        if slashes == 0
            && !had_backslash
            && !host.starts_with('[')
            && !host
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b'x')
        {
            // `http:name` without `//` is a relative reference, not a host
            continue;
        }
        if dangerous_host(host) {
            return true;
        }
        // Parser differentials: `http://a.com:80 &@b.com# @127.0.0.1/`.
        let tail = after.get(..after.len().min(256)).unwrap_or(after);
        for (i, _) in tail.match_indices('@').take(8) {
            let h = &tail[i + 1..];
            let e = h
                .find(|c: char| {
                    !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
                })
                .unwrap_or(h.len());
            let h = &h[..e];
            let h = if h.starts_with('[') {
                h
            } else {
                h.split(':').next().unwrap_or(h)
            };
            if dangerous_host(h) {
                return true;
            }
        }
    }
    false
}

/// `str::trim_start` without the Unicode machinery when the value starts
/// with a visible ASCII character (the usual case).
fn ltrim(s: &str) -> &str {
    if s.as_bytes().first().is_some_and(|c| c.is_ascii_graphic()) {
        s
    } else {
        s.trim_start()
    }
}

/// `str::trim_end`, likewise.
fn rtrim(s: &str) -> &str {
    if s.as_bytes().last().is_some_and(|c| c.is_ascii_graphic()) {
        s
    } else {
        s.trim_end()
    }
}

/// A path segment with shell wildcards standing in for letters, as in
/// `/e?c/p?sswd`, `/bin/c*t` or `/bi[n]/`: `/`, up to 6 of `[a-z?*[]]`,
/// a wildcard, up to 8 of `[a-z?*[]-]`, `/`; or `/`, up to 12 word
/// characters, a bracket expression `[!x-y]`, word characters, then `/`
/// or the end.
pub fn glob_path(text: &str) -> bool {
    let b = text.as_bytes();
    let globby = |c: u8| c.is_ascii_lowercase() || matches!(c, b'?' | b'*' | b'[' | b']');
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut from = 0;
    while let Some(p) = memchr::memchr3(b'?', b'*', b'[', &b[from..]) {
        let q = from + p;
        from = q + 1;
        let c = b[q];
        // `/` within 6 wildcard/letter bytes before, and within 8 after.
        let back = b[..q].iter().rev().take(7).position(|&x| !globby(x));
        let fwd = b[q + 1..]
            .iter()
            .take(9)
            .position(|&x| !(globby(x) || x == b'-'));
        if back.is_some_and(|n| b[q - 1 - n] == b'/') && fwd.is_some_and(|n| b[q + 1 + n] == b'/') {
            return true;
        }
        if c != b'[' {
            continue;
        }
        // A bracket expression inside a path segment.
        let back = b[..q].iter().rev().take(13).position(|&x| !word(x));
        if back.is_none_or(|n| b[q - 1 - n] != b'/') {
            continue;
        }
        let mut j = q + 1;
        if b.get(j) == Some(&b'!') {
            j += 1;
        }
        let n = b[j..]
            .iter()
            .take(13)
            .position(|&x| !(word(x) || x == b'-'))
            .unwrap_or(b.len() - j);
        if !(1..=12).contains(&n) || b.get(j + n) != Some(&b']') {
            continue;
        }
        j += n + 1;
        while j < b.len() && word(b[j]) {
            j += 1;
        }
        if j == b.len() || b[j] == b'/' {
            return true;
        }
    }
    false
}

/// Package managers whose `install`-like subcommands are commands.
const PACKAGE_MANAGERS: &[&str] = &[
    "pip",
    "pip2",
    "pip3",
    "pipx",
    "npm",
    "npx",
    "yarn",
    "pnpm",
    "gem",
    "apt",
    "apt-get",
    "aptitude",
    "yum",
    "dnf",
    "apk",
    "pacman",
    "zypper",
    "brew",
    "composer",
    "easy_install",
];

/// Commands that run the command after them (`time ifconfig`, `strace id`).
const PREFIXES: &[&str] = &[
    "time",
    "nohup",
    "sudo",
    "doas",
    "exec",
    "command",
    "builtin",
    "nice",
    "stdbuf",
    "setsid",
    "xargs",
    "strace",
    "ltrace",
    "env",
    "timeout",
    "watch",
    "chroot",
    "busybox",
    "unbuffer",
    "torsocks",
    "proxychains",
    "proxychains4",
    "runuser",
    "ionice",
    "taskset",
    "flock",
    "catchsegv",
];

/// The end of the command-name-like word at the start of `s` (letters,
/// digits, `_-.+`); 0 when it is longer than any command name.
fn word_end(s: &str) -> usize {
    const WORD: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+');
            c += 1;
        }
        t
    };
    let n = s
        .as_bytes()
        .iter()
        .take(33)
        .position(|&c| !WORD[usize::from(c)])
        .unwrap_or(s.len().min(33));
    if n > 32 {
        0
    } else {
        n
    }
}

/// A token that names a file (`recipe.rb`, `site.yml`), not a number.
fn file_like(t: &str) -> bool {
    let t = t.trim_matches(|c: char| c == '"' || c == '\'');
    match t.rsplit_once('.') {
        Some((name, ext)) => {
            !name.is_empty()
                && name.bytes().any(|c| c.is_ascii_alphabetic())
                && (1..=5).contains(&ext.len())
                && ext.bytes().all(|c| c.is_ascii_alphanumeric())
                && ext.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

/// The word at the start of `rest` (letters, digits, `_-.+`), with a
/// trailing version (`python3.10`) dropped when the base is a command.
fn command_word<'a>(rest: &'a str, sets: &Sets) -> (&'a str, &'a str) {
    let wend = word_end(rest);
    let word = &rest[..wend];
    // `python3.10` -> `python`
    let word = if word.ends_with(|c: char| c.is_ascii_digit() || c == '.') {
        let base = word.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        if !base.is_empty() && sets.known(base) {
            base
        } else {
            word
        }
    } else {
        word
    };
    (word, &rest[wend..])
}

/// A command word at the start of a value, or after a shell separator,
/// followed by something that makes it a command line.
fn command_at(text: &str, sets: &Sets) -> bool {
    let b = text.as_bytes();
    // Bytes after which a new command can start.
    const SEP: [bool; 256] = {
        let mut t = [false; 256];
        let seps = b";|&`\n({$<>\r";
        let mut i = 0;
        while i < seps.len() {
            t[seps[i] as usize] = true;
            i += 1;
        }
        t
    };
    let mut next = Some(0);
    while let Some(start) = next {
        next = b
            .get(start..)
            .and_then(|t| t.iter().position(|&c| SEP[usize::from(c)]))
            .map(|p| start + p + 1);
        let tail = text.get(start..).unwrap_or("");
        let skip = tail
            .bytes()
            .take_while(|c| matches!(c, b' ' | b'\t' | b'(' | b'{' | b'!'))
            .count();
        let mut rest = &tail[skip..];
        // Undefined variables expand to nothing: `$u wget`, `;$a cat x`.
        for _ in 0..3 {
            let Some(v) = rest.strip_prefix('$') else {
                break;
            };
            let n = v
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            if n == 0 || !v[n..].starts_with([' ', '\t']) {
                break;
            }
            rest = v[n..].trim_start();
        }
        // A command name starts with a letter (or a path).
        if !rest
            .as_bytes()
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'/' | b'.'))
        {
            continue;
        }
        // Command prefixes: `time ifconfig`, `sudo -u x id`, `nohup sh`.
        let mut prefixed = false;
        for _ in 0..3 {
            let sp = word_end(rest);
            if rest.as_bytes().get(sp) != Some(&b' ') {
                break;
            }
            let (w, tail) = (&rest[..sp], &rest[sp + 1..]);
            if !sets.has(w, K_PREFIX) || tail.is_empty() {
                break;
            }
            let t = tail.trim_start();
            let t = if w == "sudo" || w == "timeout" {
                t.trim_start_matches(|c: char| c == '-' || c.is_ascii_alphanumeric())
                    .trim_start()
            } else {
                t
            };
            if t.is_empty() || t.starts_with('-') {
                break;
            }
            rest = t;
            prefixed = true;
        }
        // Optional path prefix: /bin/, /usr/bin/, ./
        let slash = if rest.starts_with(['/', '.']) {
            rest.rfind('/')
        } else {
            None
        };
        let rest = match slash {
            Some(p)
                if rest[..p]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'/' || c == b'.')
                    && !rest[..p].contains(' ')
                    && p < 24 =>
            {
                &rest[p + 1..]
            }
            _ => rest,
        };
        let (word, after) = command_word(rest, sets);
        if word.is_empty() || !sets.known(word) {
            continue;
        }
        if prefixed {
            return true;
        }
        let a = after.trim_start();
        let spaced = after.starts_with([' ', '\t']);
        let tokens: Vec<&str> = a.split_whitespace().take(6).collect();
        let first = tokens.first().copied().unwrap_or("");
        let at_start = start == 0;
        let ambiguous = sets.has(word, K_WORD | K_AMBIG);
        if ambiguous {
            // `;ps`, `|env`, `` `who` ``: a lone command after a shell
            // separator (not `&`, which prose uses); `cat<<<x` here-strings.
            let sep = start > 0 && matches!(b[start - 1], b';' | b'|' | b'`' | b'\n' | b'\r');
            if after.starts_with("<<<")
                || (sep && (after.trim().is_empty() || after.starts_with([';', '|', '`'])))
            {
                return true;
            }
            if !spaced {
                continue;
            }
            if a.starts_with(['-', '/', '~', '$', '<', '>', '|', ';', '&', '`', '.', '*'])
                || first.contains("://")
                || (PACKAGE_MANAGERS.contains(&word)
                    && matches!(first, "install" | "i" | "add" | "download"))
            {
                return true;
            }
            continue;
        }
        // An unambiguous command name.
        if after.is_empty() {
            // At the very start of a value a lone word may be a name or a
            // field value: only strict, unmistakable commands count there.
            if !at_start || sets.has(word, K_STRICT) {
                return true;
            }
        } else if after.starts_with([';', '|', '&', '<', '>', '`', ')', '$', '\n']) {
            return true;
        } else if spaced {
            if !at_start {
                if tokens.len() <= 6 {
                    return true;
                }
            } else if a.is_empty() {
                if sets.has(word, K_STRICT) {
                    return true;
                }
            } else if a.starts_with([
                '-', '/', '~', '$', '.', '\'', '"', '<', '>', '|', ';', '&', '`',
            ]) || a.bytes().next().is_some_and(|c| c.is_ascii_digit())
                || sets.has(word, K_STRICT)
                || first.contains("://")
                || tokens
                    .iter()
                    .skip(1)
                    .any(|t| t.starts_with('-') && t.len() > 1)
                || tokens
                    .iter()
                    .take(4)
                    .any(|t| file_like(t) || t.contains('/'))
                || sets.flags(first) & (K_BARE | K_AMBIG) == K_BARE
                || (PACKAGE_MANAGERS.contains(&word)
                    && matches!(
                        first,
                        "install" | "uninstall" | "download" | "add" | "remove"
                    ))
            {
                return true;
            }
        }
    }
    false
}

/// Unix commands that are unambiguous on their own.
const UNIX_BARE: &[&str] = &[
    "ansible",
    "ansible-doc",
    "ansible-runner",
    "chef",
    "chef-client",
    "rmt",
    "rmt-tar",
    "rmt-dump",
    "aa-disable",
    "aa-enable",
    "aa-status",
    "aa-exec",
    "aptitude",
    "uconv",
    "pipx",
    "htop",
    "btop",
    "bcdboot",
    "bcdedit",
    "regedit",
    "uuencode",
    "whoami",
    "uname",
    "ifconfig",
    "ipconfig",
    "netstat",
    "visudo",
    "passwd",
    "useradd",
    "usermod",
    "userdel",
    "chmod",
    "chown",
    "chgrp",
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "nmap",
    "telnet",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "csh",
    "tcsh",
    "dash",
    "busybox",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "lua",
    "node",
    "nodejs",
    "gcc",
    "cc",
    "make",
    "crontab",
    "sudo",
    "su",
    "chroot",
    "mkfifo",
    "mknod",
    "nohup",
    "setsid",
    "strace",
    "ltrace",
    "gdb",
    "tcpdump",
    "iptables",
    "systemctl",
    "service",
    "shutdown",
    "reboot",
    "halt",
    "poweroff",
    "init",
    "killall",
    "pkill",
    "base64",
    "xxd",
    "hexdump",
    "od",
    "openssl",
    "ssh",
    "scp",
    "sftp",
    "rsync",
    "ftp",
    "tftp",
    "nslookup",
    "dig",
    "host",
    "ping",
    "traceroute",
    "tracepath",
    "awk",
    "gawk",
    "nawk",
    "sed",
    "xargs",
    "env",
    "printenv",
    "id",
    "groups",
    "getent",
    "ls",
    "ps",
    "pwd",
    "lsof",
    "last",
    "w",
    "who",
    "uptime",
    "dmesg",
    "mount",
    "umount",
    "df",
    "du",
    "fdisk",
    "lsblk",
    "tar",
    "zip",
    "unzip",
    "gzip",
    "gunzip",
    "bzip2",
    "bunzip2",
    "xz",
    "unxz",
    "zcat",
    "bzcat",
    "xzcat",
    "7z",
    "cat",
    "tac",
    "nl",
    "rev",
    "strings",
    "vi",
    "vim",
    "nano",
    "emacs",
    "ed",
    "ex",
    "less",
    "more",
    "tail",
    "head",
    "grep",
    "egrep",
    "fgrep",
    "rgrep",
    "find",
    "locate",
    "which",
    "whereis",
    "file",
    "stat",
    "readlink",
    "realpath",
    "mkdir",
    "rmdir",
    "rm",
    "mv",
    "cp",
    "ln",
    "touch",
    "dd",
    "shred",
    "truncate",
    "tee",
    "echo",
    "printf",
    "eval",
    "exec",
    "source",
    "export",
    "alias",
    "history",
    "kill",
    "sleep",
    "timeout",
    "watch",
    "screen",
    "tmux",
    "at",
    "batch",
    "chattr",
    "lsattr",
    "getcap",
    "setcap",
    "pip",
    "pip3",
    "npm",
    "npx",
    "gem",
    "cargo",
    "go",
    "java",
    "javac",
    "jshell",
    "docker",
    "kubectl",
    "podman",
    "ansible",
    "ansible-playbook",
    "ansible-pull",
    "chef-client",
    "puppet",
    "salt",
    "terraform",
    "git",
    "svn",
    "apt",
    "apt-get",
    "yum",
    "dnf",
    "rpm",
    "dpkg",
    "apk",
    "pacman",
    "flock",
    "runuser",
    "sg",
    "newgrp",
    "unshare",
    "nsenter",
    "capsh",
    "setarch",
    "ionice",
    "nice",
    "taskset",
    "stdbuf",
    "script",
    "expect",
    "ssh-keygen",
    "gpg",
    "base32",
    "uuencode",
    "uudecode",
    "sqlite3",
    "mysql",
    "psql",
    "mongo",
    "redis-cli",
    "ldapsearch",
    "smbclient",
    "rpcclient",
    "nmblookup",
    "showmount",
    "arp",
    "route",
    "ip",
    "ss",
    "tc",
    "bpftrace",
    "ssh-copy-id",
    "ftpd",
    "httpd",
    "nginx",
    "apache2",
    "lynx",
    "links",
    "w3m",
    "aria2c",
    "axel",
    "fetch",
    "powershell",
    "pwsh",
    "cmd",
    "cmd.exe",
    "certutil",
    "bitsadmin",
    "wmic",
    "mshta",
    "rundll32",
    "regsvr32",
    "cscript",
    "wscript",
    "systeminfo",
    "tasklist",
    "taskkill",
    "schtasks",
    "net",
    "net1",
    "reg",
    "regedit",
    "sc",
    "icacls",
    "cacls",
    "type",
    "dir",
    "copy",
    "del",
    "erase",
    "ren",
    "move",
    "xcopy",
    "robocopy",
    "findstr",
    "set",
    "start",
    "call",
    "ver",
    "hostname",
    "nbtstat",
    "nltest",
    "dsquery",
    "vssadmin",
    "wevtutil",
    "bcdedit",
    "diskpart",
    "format",
    "attrib",
    "takeown",
    "cipher",
    "forfiles",
    "msiexec",
    "installutil",
    "msbuild",
    "odbcconf",
    "csc",
    "vbc",
    "jsc",
    "lastlog",
    "chef-vault",
    "cpulimit",
    "chef-shell",
    "chef-run",
    "chef-apply",
    "chef-solo",
    "knife",
    "ansible-config",
    "ansible-console",
    "ansible-doc",
    "ansible-test",
    "lastlogin",
    "ansible-vault",
    "ansible-inventory",
    "ansible-galaxy",
    "cscli",
    "ll",
    "column",
    "bridge",
    "c89",
    "c99",
    "bsdtar",
    "perf",
    "cd",
    "comm",
    "chattr",
    "dos2unix",
    "unix2dos",
    "bzip",
    "lzma",
    "unlzma",
    "lz4",
    "zstd",
    "rlwrap",
    "rview",
    "rvim",
    "vimdiff",
    "gimp",
    "easy_install",
    "irb",
    "jjs",
    "jrunscript",
    "ksshell",
    "logsave",
    "ltrace",
    "mawk",
    "nmap",
    "nroff",
    "pdb",
    "pic",
    "pry",
    "psftp",
    "rake",
    "red",
    "restic",
    "rpmquery",
    "run-parts",
    "sqlplus",
    "ssh-keyscan",
    "start-stop-daemon",
    "sysctl",
    "tclsh",
    "wish",
    "xelatex",
    "xetex",
    "xmodmap",
    "xmore",
    "xpad",
    "yelp",
    "zypper",
    "sshpass",
    "pdflatex",
    "latex",
    "tex",
    "iconv",
    "jq",
    "yq",
    "mysqldump",
    "pg_dump",
    "mongoexport",
    "scp",
    "rcp",
    "rsh",
    "rlogin",
    "finger",
    "whois",
    "curlie",
    "httpie",
    "http",
    "nping",
    "hping3",
    "arping",
    "fping",
    "ngrep",
    "tshark",
    "wireshark",
    "ettercap",
    "john",
    "hashcat",
    "aircrack-ng",
    "msfconsole",
    "msfvenom",
    "sqlmap",
    "nikto",
    "dirb",
    "gobuster",
    "wfuzz",
    "ffuf",
    "hydra",
    "medusa",
    "ncrack",
    "enum4linux",
    "responder",
    "impacket",
    "crackmapexec",
    "evil-winrm",
    "mimikatz",
    "psexec",
    "wmiexec",
    "smbexec",
    "secretsdump",
    "bloodhound",
    "sharphound",
    "rubeus",
    "kerbrute",
    "chisel",
    "ligolo",
    "frp",
    "ngrok",
    "proxychains",
    "torsocks",
    "tor",
];

/// Commands that are never a name or a word: they match even alone.
const STRICT: &[&str] = &[
    "whoami",
    "ifconfig",
    "ipconfig",
    "netstat",
    "visudo",
    "uname",
    "useradd",
    "usermod",
    "userdel",
    "crontab",
    "systeminfo",
    "tasklist",
    "nslookup",
    "powershell",
    "pwsh",
    "cmd.exe",
    "certutil",
    "bitsadmin",
    "mshta",
    "rundll32",
    "regsvr32",
    "wmic",
    "busybox",
    "mkfifo",
    "ncat",
    "netcat",
    "socat",
    "printenv",
    "getent",
    "lsof",
    "dmesg",
    "sqlmap",
    "msfconsole",
    "msfvenom",
    "mimikatz",
    "passwd",
    "chmod",
    "chown",
    "uname",
    "ansible-inventory",
    "ansible-console",
    "ansible-config",
    "chef-shell",
    "cscli",
];

/// Command names that are also common words: they need an option, path
/// or redirection after them.
const AMBIGUOUS: &[&str] = &[
    "chef",
    "dig",
    "knife",
    "chisel",
    "latex",
    "tex",
    "nano",
    "touch",
    "reboot",
    "shutdown",
    "poweroff",
    "yelp",
    "gimp",
    "pry",
    "rake",
    "ll",
    "column",
    "bridge",
    "perf",
    "cd",
    "comm",
    "red",
    "pic",
    "wish",
    "http",
    "medusa",
    "tor",
    "john",
    "finger",
    "whois",
    "responder",
    "at",
    "w",
    "who",
    "last",
    "file",
    "find",
    "more",
    "less",
    "head",
    "tail",
    "set",
    "start",
    "call",
    "type",
    "copy",
    "move",
    "format",
    "host",
    "route",
    "script",
    "expect",
    "batch",
    "watch",
    "screen",
    "go",
    "make",
    "id",
    "ip",
    "ss",
    "tc",
    "sc",
    "net",
    "reg",
    "dir",
    "del",
    "ren",
    "ver",
    "cat",
    "echo",
    "kill",
    "sleep",
    "source",
    "export",
    "alias",
    "history",
    "git",
    "ps",
    "ls",
    "df",
    "du",
    "ed",
    "ex",
    "od",
    "nl",
    "rev",
    "tee",
    "dd",
    "env",
    "init",
    "service",
    "mount",
    "fetch",
    "links",
    "halt",
    "salt",
    "puppet",
    "apt",
    "ping",
    "node",
    "gem",
    "cargo",
    "java",
    "docker",
    "ftp",
    "ssh",
    "tar",
    "zip",
    "gcc",
    "cc",
    "su",
    "sh",
    "sg",
    "stat",
    "which",
    "mail",
    "install",
    "eval",
    "exec",
    "printf",
    "timeout",
    "strings",
    "locate",
    "erase",
    "call",
    "cut",
    "shred",
    "truncate",
    "groups",
    "nice",
    "python",
    "perl",
    "ruby",
    "php",
    "lua",
    "base64",
    "openssl",
    "script",
];

/// Commands that are also English words: need an option/path argument.
const UNIX_WORDS: &[&str] = &[
    "time", "sort", "uniq", "wc", "cut", "tr", "diff", "cmp", "split", "join", "paste", "fold",
    "fmt", "expand", "look", "bc", "dc", "yes", "true", "false", "test", "wait", "trap", "read",
    "write", "wall", "mail", "man", "info", "top", "free", "nice", "jobs", "fg", "bg", "date",
    "cal", "clear", "reset", "exit", "logout", "help", "view", "open", "run", "print", "dump",
    "patch", "install", "make", "build", "select", "shift", "local", "declare", "typeset", "unset",
    "ulimit", "umask", "let", "for", "while", "until", "if", "case", "function", "do", "done",
    "then", "else", "fi",
];

/// FxHash-style hashing for the small static word sets (the keys are
/// our own constants, so there is nothing for a client to collide).
#[derive(Default, Clone, Copy)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

/// The command names that gate [`unix_command`] (prefix commands are
/// among them).
pub const UNIX_KEYWORDS: &[&[&str]] = &[UNIX_BARE, UNIX_WORDS, PREFIXES];

const K_PREFIX: u8 = 1;
const K_BARE: u8 = 2;
const K_WORD: u8 = 4;
const K_AMBIG: u8 = 8;
const K_STRICT: u8 = 16;

/// The command-name lists as one table: name -> kinds (`K_PREFIX`...), with
/// a bitmap of the names' first two bytes to skip most words unhashed.
struct Sets {
    map: std::collections::HashMap<&'static str, u8, std::hash::BuildHasherDefault<WordHasher>>,
    pairs: Vec<u64>,
    longest: usize,
}

impl Sets {
    fn pair(w: &[u8]) -> usize {
        (usize::from(w[0]) << 8) | usize::from(w.get(1).copied().unwrap_or(0))
    }

    /// The kinds of command name `w` is (0 if none).
    fn flags(&self, w: &str) -> u8 {
        let b = w.as_bytes();
        if b.is_empty() || b.len() > self.longest {
            return 0;
        }
        let p = Self::pair(b);
        if self.pairs[p >> 6] & (1 << (p & 63)) == 0 {
            return 0;
        }
        self.map.get(w).copied().unwrap_or(0)
    }

    fn has(&self, w: &str, kind: u8) -> bool {
        self.flags(w) & kind != 0
    }

    fn known(&self, w: &str) -> bool {
        self.has(w, K_BARE | K_WORD)
    }
}

fn sets() -> &'static Sets {
    static SETS: OnceLock<Sets> = OnceLock::new();
    SETS.get_or_init(|| {
        let mut map = std::collections::HashMap::default();
        for (list, kind) in [
            (PREFIXES, K_PREFIX),
            (UNIX_BARE, K_BARE),
            (UNIX_WORDS, K_WORD),
            (AMBIGUOUS, K_AMBIG),
            (STRICT, K_STRICT),
        ] {
            for &w in list {
                *map.entry(w).or_insert(0) |= kind;
            }
        }
        let mut pairs = vec![0u64; 1024];
        let mut longest = 0;
        for w in map.keys() {
            let p = Sets::pair(w.as_bytes());
            pairs[p >> 6] |= 1 << (p & 63);
            longest = longest.max(w.len());
        }
        Sets {
            map,
            pairs,
            longest,
        }
    })
}

/// A Unix command line in the value, read with shell quoting removed and,
/// when that changes it, as written.
pub fn unix_command(f: &super::Forms<'_>) -> bool {
    let s = sets();
    command_at(f.shell, s) || (f.shell_differs() && command_at(f.text, s))
}

/// [`unix_command`] for argument names: a name is a single identifier, so
/// only a name that also contains spaces or shell syntax can be a command line.
pub fn unix_command_line(f: &super::Forms<'_>) -> bool {
    f.shell
        .contains([' ', '\t', ';', '|', '&', '`', '$', '(', '\n', '<', '>'])
        && command_at(f.shell, sets())
}

/// A PHP open tag (`<?php` and whitespace, `<?=`, `<?` and whitespace or
/// the end, the `<?xml :` polyglot) or a `[php]`/`{php}` template tag, in
/// the value as PHP would read it: `cased` is the value URL-decoded once;
/// it is decoded up to twice more (like the normaliser), but HTML entities
/// are left alone, because PHP does not decode them (`&lt;?php` in a form
/// field is escaped text; XML values arrive here with their entities
/// already decoded, as an XML parser hands them over).
pub fn php_open_tag(cased: &str) -> bool {
    let mut v = std::borrow::Cow::Borrowed(cased.as_bytes());
    for _ in 0..2 {
        if !v.contains(&b'%') {
            break;
        }
        let mut flags = crate::normalize::DecodeFlags::default();
        let (d, changed) = crate::normalize::percent_decode_pass(&v, false, &mut flags);
        if !changed {
            break;
        }
        v = std::borrow::Cow::Owned(d);
    }
    let b: &[u8] = &v;
    let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let at = |i: usize, lit: &[u8]| {
        b.get(i..i + lit.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(lit))
    };
    memchr::memchr3_iter(b'<', b'[', b'{', b).any(|i| match b[i] {
        b'<' if at(i, b"<?") => {
            let r = i + 2;
            match b.get(r) {
                None => true,
                Some(&c) if c == b'=' || ws(c) => true,
                Some(_) if at(r, b"php") => b.get(r + 3).is_some_and(|&c| ws(c)),
                Some(_) if at(r, b"xml") => match b.get(r + 3) {
                    Some(b':') => true,
                    Some(&c) if ws(c) => b[r + 3..]
                        .iter()
                        .find(|&&c| !ws(c))
                        .is_some_and(|c| !c.is_ascii_alphabetic()),
                    _ => false,
                },
                Some(_) => false,
            }
        }
        b'[' => at(i, b"[?php") || at(i, b"[php]") || at(i, b"[/php]") || at(i, b"[\\php]"),
        b'{' => at(i, b"{php}") || at(i, b"{/php}"),
        _ => false,
    })
}

/// A path segment naming a dotfile or dot-directory (`/.git/`, `/.env`,
/// `/.cursor/mcp.json`), except `/.well-known/`.
pub fn dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        seg.len() > 1 && seg.starts_with('.') && !seg.starts_with("..") && seg != ".well-known"
    })
}

/// Session identifier names of common web frameworks (as query, form or
/// JSON argument names, where they enable session fixation).
pub fn session_param_name(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "jsessionid",
        "phpsessid",
        "phpsession",
        "sessionid",
        "session-id",
        "session_id",
        "_session_id",
        "sessid",
        "asp.net_sessionid",
        "cfid",
        "cftoken",
        "cfsid",
        "connect.sid",
        "sails.sid",
        "laravel_session",
        "ci_session",
        "_rails_session",
        "rack.session",
        "play_session",
        "koa.sess",
        "koa:sess",
        "cakephp",
        "shiny-token",
        "zend_session_id",
        "_flask_session",
        "weblogicsession",
        "jservsession",
        "jwsession",
        "meteor_login_token",
        "next-auth.session-token",
        "__host-next-auth.session-token",
        "__secure-next-auth.session-token",
        "authjs.session-token",
    ];
    let name = name.trim();
    if name.len() > 48 || name.len() < 3 {
        return false;
    }
    let mut buf = [0u8; 48];
    for (d, c) in buf.iter_mut().zip(name.bytes()) {
        *d = c.to_ascii_lowercase();
    }
    let n = std::str::from_utf8(&buf[..name.len()]).unwrap_or("");
    if !["sess", "sid", "cf", "token", "cakephp"]
        .iter()
        .any(|k| n.contains(k))
    {
        return false;
    }
    EXACT.contains(&n)
        || n.starts_with("aspsessionid")
        || (n.len() <= 40
            && n.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            && (n.ends_with("_sessid") || n.ends_with("_sessionid") || n.ends_with("-sessionid")))
}

/// The host of a URL (`scheme://user@host:port/...`), lowercase.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.trim().split_once("://")?.1;
    let auth = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let hp = auth.rsplit('@').next().unwrap_or(auth);
    let host = if hp.starts_with('[') {
        hp.split(']').next().map(|h| format!("{h}]"))?
    } else {
        hp.split(':').next().unwrap_or(hp).to_string()
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `scheme://` at the start of a value (spaces tolerated around `:`),
/// for the schemes that fetch remote content; returns what follows.
fn url_rest<'a>(t: &'a str, schemes: &[&str]) -> Option<&'a str> {
    let t = t.trim_ascii_start();
    let n = t.bytes().take_while(|c| c.is_ascii_alphanumeric()).count();
    if !schemes.contains(&&t[..n]) {
        return None;
    }
    // (URL parsers drop ASCII whitespace only)
    let r = t[n..]
        .trim_ascii_start()
        .strip_prefix(':')?
        .trim_ascii_start();
    let slashes = r.bytes().take_while(|&c| c == b'/').count();
    (slashes >= 2).then_some(&r[slashes..])
}

/// A URL whose host is an IP address (IPv4 dotted or `[IPv6]`).
pub fn url_ip_host(t: &str) -> bool {
    const SCHEMES: &[&str] = &[
        "http", "https", "ftp", "ftps", "file", "php", "data", "gopher", "dict",
    ];
    let Some(rest) = url_rest(t, SCHEMES) else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    let auth_end = rest
        .bytes()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    // A host that is an address starts with a digit or `[` (after any
    // user info).
    if !rest.as_bytes()[..auth_end].contains(&b'@')
        && !rest.starts_with(|c: char| c.is_ascii_digit() || c == '[')
    {
        return false;
    }
    let host = rest[..auth_end].rsplit('@').next().unwrap_or("");
    if let Some(h) = host.strip_prefix('[') {
        let inner = h.split(']').next().unwrap_or("");
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
    }
    let h = host.split(':').next().unwrap_or("");
    let mut parts = h.split('.');
    (0..4).all(|_| {
        parts
            .next()
            .is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// A URL ending in `?` (the remainder of a remote include URL).
pub fn url_question_end(t: &str) -> bool {
    let t = rtrim(t);
    let Some(body) = t.strip_suffix('?') else {
        return false;
    };
    let body = body.trim_end_matches('?');
    url_rest(body, &["http", "https", "ftp", "ftps"])
        .is_some_and(|r| !r.is_empty() && !r.contains('?'))
}
