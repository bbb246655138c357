//! Plain request and response heads the pipeline works on. Bodies are not
//! part of them: the worker streams bodies straight through.

use std::net::IpAddr;

/// An ordered list of headers with case-insensitive names (stored lowercase).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Builds a list from name/value pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.append(k, v);
        }
        h
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a value, keeping existing ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let mut name = name.into();
        name.make_ascii_lowercase();
        self.0.push((name, value.into()));
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.append(name, value);
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Iterates over (lowercase name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The (lowercase name, value) pairs, without copying.
    pub fn as_pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the flat form used to cross the JS/wasm boundary in one call:
    /// `name\nvalue\n` per entry (the Fetch standard forbids newlines in
    /// header names and values). A trailing unpaired part is ignored.
    pub fn from_flat(flat: &str) -> Self {
        let mut parts = flat.split('\n');
        let mut h = Headers(Vec::with_capacity(memchr_count(flat) / 2));
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            if !k.is_empty() {
                h.append(k, v);
            }
        }
        h
    }

    /// The edits that turn `self` into `after`, in the flat form with the
    /// name prefixed by the operation: `-name` (delete every value; the value
    /// part is empty) or `+name` (append the value). Names whose values are
    /// unchanged are left out, so a copy of the original headers plus these
    /// edits equals `after`.
    pub fn edits_to(&self, after: &Headers) -> String {
        let mut out = String::with_capacity(256);
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in self.0.iter().chain(after.0.iter()) {
            if seen.contains(&name.as_str()) {
                continue;
            }
            seen.push(name);
            let old = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
            let new = after.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
            if old.eq(new) {
                continue;
            }
            if name.contains('\n') {
                continue;
            }
            if self.0.iter().any(|(k, _)| k == name) {
                out.push('-');
                out.push_str(name);
                out.push_str("\n\n");
            }
            for (_, v) in after.0.iter().filter(|(k, _)| k == name) {
                if v.contains('\n') {
                    continue;
                }
                out.push('+');
                out.push_str(name);
                out.push('\n');
                out.push_str(v);
                out.push('\n');
            }
        }
        out
    }

    /// Applies [`Headers::edits_to`]'s output (what the JS glue does to a
    /// copy of the original headers).
    pub fn apply_edits(&mut self, edits: &str) {
        let mut parts = edits.split('\n');
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            if let Some(name) = k.strip_prefix('-') {
                self.remove(name);
            } else if let Some(name) = k.strip_prefix('+') {
                self.append(name, v);
            }
        }
    }

    /// The flat form of [`Headers::from_flat`]. Entries whose name or value
    /// holds a newline (never valid in HTTP) are dropped.
    pub fn to_flat(&self) -> String {
        let mut s = String::with_capacity(self.0.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (k, v) in &self.0 {
            if k.contains('\n') || v.contains('\n') {
                continue;
            }
            s.push_str(k);
            s.push('\n');
            s.push_str(v);
            s.push('\n');
        }
        s
    }
}

/// What the pipeline knows about an incoming request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead {
    /// Upper-case method.
    pub method: String,
    /// `http` or `https`, as the client connected.
    pub scheme: String,
    /// Lowercase host without port.
    pub host: String,
    /// Port if the URL had an explicit one.
    pub port: Option<u16>,
    /// Path, starting with `/`, as received (not decoded).
    pub path: String,
    /// Query string without `?`, if any.
    pub query: Option<String>,
    /// Request headers as received.
    pub headers: Headers,
    /// The client's address (`CF-Connecting-IP`).
    pub client_ip: Option<IpAddr>,
}

impl RequestHead {
    /// Parses the parts of an absolute URL (`scheme://host[:port]/path[?query]`).
    pub fn from_url(method: &str, url: &str, headers: Headers) -> Option<RequestHead> {
        let (scheme, rest) = url.split_once("://")?;
        let (authority, path_query) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path_query = path_query.split('#').next().unwrap_or("/");
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_query, None),
        };
        let (host, port) = split_authority(authority)?;
        let client_ip = headers
            .get("cf-connecting-ip")
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        Some(RequestHead {
            method: method.to_ascii_uppercase(),
            scheme: scheme.to_ascii_lowercase(),
            host,
            port,
            path: path.to_string(),
            query,
            headers,
            client_ip,
        })
    }

    /// `path[?query]`.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }

    /// `host[:port]` as the client addressed it.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.clone(),
        }
    }

    /// Whether this is a WebSocket upgrade request.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.headers
            .get("upgrade")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    }
}

fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    // Drop any userinfo.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        return Some((format!("[{}]", host.to_ascii_lowercase()), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_ascii_lowercase(), Some(p.parse().ok()?))),
        None => Some((authority.to_ascii_lowercase(), None)),
    }
}

/// A response's status and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
}

impl ResponseHead {
    /// Whether the body is HTML.
    pub fn is_html(&self) -> bool {
        self.headers.get("content-type").is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/html")
        })
    }
}

/// A response the worker makes itself (redirects, errors, health).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthetic {
    /// Status and headers.
    pub head: ResponseHead,
    /// The whole body.
    pub body: String,
}

impl Synthetic {
    /// A response with the given status, content type and body.
    pub fn new(status: u16, content_type: &str, body: String) -> Synthetic {
        let mut headers = Headers::new();
        headers.set("content-type", content_type);
        Synthetic {
            head: ResponseHead { status, headers },
            body,
        }
    }
}

/// Newlines in `s` (entries of the flat form are two lines each).
fn memchr_count(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::Headers;

    #[test]
    fn flat_form_round_trips_and_keeps_repeated_names() {
        let h = Headers::from_pairs([
            ("Content-Type", "text/html; charset=utf-8"),
            ("set-cookie", "a=1; Path=/"),
            ("set-cookie", "b=2"),
            ("x-empty", ""),
        ]);
        let flat = h.to_flat();
        assert_eq!(
            flat,
            "content-type\ntext/html; charset=utf-8\nset-cookie\na=1; Path=/\nset-cookie\nb=2\nx-empty\n\n"
        );
        assert_eq!(Headers::from_flat(&flat), h);
        assert!(Headers::from_flat("").is_empty());
        // An unpaired trailing name is ignored, not misread.
        assert_eq!(Headers::from_flat("a\n1\nb").len(), 1);
    }

    #[test]
    fn edits_turn_the_original_into_the_result() {
        let before = Headers::from_pairs([
            ("content-type", "text/html"),
            ("server", "origin"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("cache-control", "max-age=60"),
        ]);
        let mut after = before.clone();
        after.remove("server");
        after.set("cache-control", "no-store");
        after.append("x-request-id", "rid-1");
        after.append("set-cookie", "c=3");
        let edits = before.edits_to(&after);
        assert!(
            !edits.contains("content-type"),
            "unchanged names are left out: {edits}"
        );
        let mut applied = before.clone();
        applied.apply_edits(&edits);
        let sorted = |h: &Headers| {
            let mut v: Vec<(String, String)> = h
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&applied), sorted(&after));
        assert_eq!(before.edits_to(&before), "");
    }

    #[test]
    fn flat_form_drops_entries_with_newlines() {
        let h = Headers::from_pairs([("ok", "1"), ("bad", "x\ny"), ("also", "2")]);
        assert_eq!(Headers::from_flat(&h.to_flat()).len(), 2);
    }
}
