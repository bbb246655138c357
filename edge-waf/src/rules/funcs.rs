//! Hand-written matchers for what regexes express badly.

use std::collections::HashSet;
use std::sync::OnceLock;

use base64::Engine as _;

/// Remove shell quoting and escaping tricks so `c'a't`, `c\at`, `c$@at`,
/// `ca""t`, `/bi[n]/sh` and `${IFS}` read as the plain command.
pub fn shell_form(text: &str) -> String {
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' | b'\'' | b'"' | b'^' => {
                i += 1;
            }
            b'$' => {
                let rest = &b[i + 1..];
                if rest.starts_with(b"{ifs}") {
                    out.push(b' ');
                    i += 6;
                } else if rest.starts_with(b"ifs") {
                    out.push(b' ');
                    i += 4;
                } else if rest
                    .first()
                    .is_some_and(|c| matches!(c, b'@' | b'*' | b'#' | b'!' | b'-' | b'_'))
                    || rest.starts_with(b"()")
                {
                    i += if rest.starts_with(b"()") { 3 } else { 2 };
                } else if rest.first().is_some_and(|c| c.is_ascii_digit())
                    && !rest.get(1).is_some_and(|c| c.is_ascii_alphanumeric())
                {
                    i += 2;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            b'`' if b.get(i + 1) == Some(&b'`') => {
                i += 2;
            }
            b'[' => {
                // a bracket expression inside a word: `bi[n]`, `[a-z]in`
                if let Some(end) = b[i + 1..].iter().take(12).position(|&x| x == b']') {
                    let inner = &b[i + 1..i + 1 + end];
                    if inner.len() == 1 && inner[0].is_ascii_alphanumeric() {
                        out.push(inner[0]);
                    }
                    if inner
                        .iter()
                        .all(|x| x.is_ascii_alphanumeric() || *x == b'-' || *x == b'!')
                    {
                        i += end + 2;
                        continue;
                    }
                }
                out.push(c);
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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

/// Numeric IPv4 forms that are not plain dotted decimal (`2130706433`,
/// `0x7f000001`, `0177.0.0.1`) or special addresses.
fn dangerous_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return false;
    }
    if host.starts_with('[') || host.contains("::") {
        // IPv6 literal: loopback, mapped, unspecified, link-local, AWS IMDS
        let h = host.trim_start_matches('[').trim_end_matches(']');
        return h == "::1"
            || h == "::"
            || h.contains("ffff:")
            || h.starts_with("0:0:0:0:0:")
            || h.starts_with("fe80")
            || h.starts_with("fd00:ec2")
            || h.contains("169.254.")
            || h.contains("127.0.0.1");
    }
    if matches!(
        host,
        "localhost"
            | "metadata.google.internal"
            | "metadata"
            | "instance-data"
            | "metadata.azure.com"
            | "kubernetes.default.svc"
    ) || host.ends_with(".localhost")
        || host.ends_with(".localdomain")
        || host.starts_with("localhost.")
        || host.ends_with(".internal")
    {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    let numeric = parts.iter().all(|p| {
        !p.is_empty()
            && (p.bytes().all(|c| c.is_ascii_digit())
                || (p.starts_with("0x")
                    && p.len() > 2
                    && p[2..].bytes().all(|c| c.is_ascii_hexdigit())))
    });
    if !numeric {
        return false;
    }
    if parts.len() != 4
        || parts
            .iter()
            .any(|p| p.starts_with("0x") || (p.len() > 1 && p.starts_with('0')))
    {
        return true; // integer, hex or octal obfuscation
    }
    let oct: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
    if oct.len() != 4 || oct.iter().any(|&o| o > 255) {
        return true;
    }
    matches!(
        (oct[0], oct[1]),
        (127, _) | (0, _) | (169, 254) | (10, _) | (192, 168) | (100, 100)
    ) || (oct[0] == 172 && (16..32).contains(&oct[1]))
}

/// A URL (or `scheme:host`) in the value pointing at loopback, private,
/// link-local or cloud metadata addresses, or at an obfuscated IP form.
pub fn ssrf_target(text: &str) -> bool {
    let t: String = text.chars().filter(|&c| c != '\\').collect();
    // bare `localhost/...` values
    let bare = t.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let host_part = bare.split(['/', '?', ' ']).next().unwrap_or("");
    if bare.len() > host_part.len()
        && !host_part.is_empty()
        && !host_part
            .bytes()
            .all(|c| c.is_ascii_digit() || c == b'.' || c == b':')
    {
        // `host.containers.internal/`, `ip6-loopback/`: a bare host name
        let h = host_part.split(':').next().unwrap_or(host_part);
        if dangerous_host(h)
            || matches!(
                h,
                "ip6-loopback" | "ip6-localhost" | "ipv6-loopback" | "ipv6-localhost" | "0"
            )
        {
            return true;
        }
    }
    let bare = bare
        .strip_prefix("ipv6-")
        .or_else(|| bare.strip_prefix("ip6-"))
        .unwrap_or(bare);
    if let Some(rest) = bare.strip_prefix("localhost") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        if rest.is_empty() || rest.starts_with(['/', ':', '.']) {
            return true;
        }
    }
    let mut from = 0;
    while let Some(p) = t[from..].find(':') {
        let colon = from + p;
        from = colon + 1;
        // scheme: letters/digits/+-._ immediately before the colon
        let scheme_start = t[..colon]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
            .last()
            .map(|(i, _)| i);
        let Some(ss) = scheme_start else { continue };
        let scheme = &t[ss..colon];
        if scheme.is_empty() || !scheme.as_bytes()[0].is_ascii_alphabetic() || scheme.len() > 12 {
            continue;
        }
        let after = t[colon + 1..].trim_start_matches('/');
        let host_end = after
            .find(['/', '?', '#', ' ', '"', '\'', '<', '>'])
            .unwrap_or(after.len());
        let authority = &after[..host_end];
        let hostport = authority.rsplit('@').next().unwrap_or(authority);
        let host = if hostport.starts_with('[') {
            match hostport.find(']') {
                Some(e) => &hostport[..=e],
                None => hostport,
            }
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        if dangerous_host(host) {
            return true;
        }
    }
    false
}

/// A command word at the start of a value, or after a shell separator,
/// followed by something that makes it a command line. `words` must be
/// lowercase. `bare` words also match on their own.
fn command_at(text: &str, sets: &Sets) -> bool {
    let (bare, words) = (&sets.bare, &sets.words);
    let b = text.as_bytes();
    let mut starts: Vec<usize> = vec![0];
    for (i, &c) in b.iter().enumerate() {
        if matches!(
            c,
            b';' | b'|' | b'&' | b'`' | b'\n' | b'(' | b'{' | b'$' | b'<' | b'>' | b'\r'
        ) {
            starts.push(i + 1);
        }
    }
    for start in starts {
        let mut rest = text
            .get(start..)
            .unwrap_or("")
            .trim_start_matches([' ', '\t', '(', '{', '!']);
        // command prefixes: `time ifconfig`, `sudo -u x id`, `nohup sh`
        for _ in 0..3 {
            let Some((w, tail)) = rest.split_once(' ') else {
                break;
            };
            if matches!(
                w,
                "time"
                    | "nohup"
                    | "sudo"
                    | "doas"
                    | "exec"
                    | "command"
                    | "builtin"
                    | "nice"
                    | "stdbuf"
                    | "setsid"
                    | "xargs"
            ) && !tail.is_empty()
            {
                let t = tail.trim_start();
                let t = if w == "sudo" {
                    t.trim_start_matches(|c: char| c == '-' || c.is_ascii_alphanumeric())
                        .trim_start()
                } else {
                    t
                };
                if t.is_empty() || t.starts_with('-') {
                    break;
                }
                rest = t;
            } else {
                break;
            }
        }
        // optional path prefix: /bin/, /usr/bin/, ./
        let rest = match rest.rfind('/') {
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
        let wend = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')))
            .unwrap_or(rest.len());
        let word = &rest[..wend];
        if word.is_empty() {
            continue;
        }
        // `python3.10` -> `python`
        let word = match word.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.') {
            w if !w.is_empty() && (bare.contains(&w) || words.contains(&w)) => w,
            _ => word,
        };
        let after = &rest[wend..];
        let ambiguous = words.contains(&word) || sets.ambiguous.contains(&word);
        if !ambiguous && bare.contains(&word) {
            let a = after.trim_start();
            // At the very start of a value a lone word may be a name
            // ("Axel Smith"): require a command-like argument or a strict,
            // unmistakable command there. After a shell separator, any use.
            let at_start = start == 0;
            if after.is_empty() {
                if !at_start || sets.strict.contains(&word) {
                    return true;
                }
            } else if after.starts_with([';', '|', '&', '<', '>', '`', ')', '$', '\n']) {
                return true;
            } else if after.starts_with([' ', '\t']) {
                if !at_start {
                    if a.split_whitespace().count() <= 6 {
                        return true;
                    }
                } else if a.is_empty() {
                    if sets.strict.contains(&word) {
                        return true;
                    }
                } else if a.starts_with([
                    '-', '/', '~', '$', '.', '\'', '"', '<', '>', '|', ';', '&', '`',
                ]) || a.bytes().next().is_some_and(|c| c.is_ascii_digit())
                    || a.split_whitespace()
                        .next()
                        .is_some_and(|t| t.contains('.') || t.contains("://"))
                    || sets.strict.contains(&word)
                {
                    return true;
                }
            }
        }
        if ambiguous && (bare.contains(&word) || words.contains(&word)) {
            let a = after.trim_start();
            if !after.starts_with([' ', '\t']) {
                continue;
            }
            if a.starts_with(['-', '/', '~', '$', '<', '>', '|', ';', '&', '`', '.', '*']) {
                return true;
            }
        }
    }
    false
}

/// Unix commands that are unambiguous on their own.
const UNIX_BARE: &[&str] = &[
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
    "lastlog",
    "lastlogin",
];

/// Command names that are also common words: they need an option, path
/// or redirection after them.
const AMBIGUOUS: &[&str] = &[
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

pub const UNIX_KEYWORDS: &[&[&str]] = &[UNIX_BARE, UNIX_WORDS];

struct Sets {
    bare: HashSet<&'static str>,
    words: HashSet<&'static str>,
    ambiguous: HashSet<&'static str>,
    strict: HashSet<&'static str>,
}

fn sets() -> &'static Sets {
    static SETS: OnceLock<Sets> = OnceLock::new();
    SETS.get_or_init(|| Sets {
        bare: UNIX_BARE.iter().copied().collect(),
        words: UNIX_WORDS.iter().copied().collect(),
        ambiguous: AMBIGUOUS.iter().copied().collect(),
        strict: STRICT.iter().copied().collect(),
    })
}

pub fn unix_command(shell: &str) -> bool {
    command_at(shell, sets())
}

/// A path segment naming a dotfile or dot-directory (`/.git/`, `/.env`,
/// `/.cursor/mcp.json`), except `/.well-known/`.
pub fn dot_segment(path: &str) -> bool {
    path.split('/')
        .any(|seg| seg.len() > 1 && seg.starts_with('.') && seg != ".." && seg != ".well-known")
}
