//! Talos version strings (`v1.13.9`, `v1.14.0-rc.1`, `1.13`): parsing and the
//! comparisons the renderer (config layout) and the bootstrap (node vs spec) need.

use std::fmt;

/// A parsed Talos version. `patch` is `None` when the string names only a
/// minor release (`v1.13`); `pre` keeps whatever follows the patch number
/// (`rc.1`, `3-gabcdef-dirty`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalosVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
    pub pre: Option<String>,
}

impl TalosVersion {
    /// Parses `v<major>.<minor>[.<patch>][-<pre>]` (the `v` is optional).
    pub fn parse(s: &str) -> Option<TalosVersion> {
        let v = s.trim();
        let v = v.strip_prefix('v').unwrap_or(v);
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string()).filter(|p| !p.is_empty())),
            None => (v, None),
        };
        let mut it = core.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = match it.next() {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        if it.next().is_some() {
            return None;
        }
        Some(TalosVersion {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// `v<major>.<minor>`, the name of the schema file and of the patch overlay directory.
    pub fn minor_release(&self) -> String {
        format!("v{}.{}", self.major, self.minor)
    }

    /// Same major and minor release.
    pub fn same_minor(&self, other: &TalosVersion) -> bool {
        self.major == other.major && self.minor == other.minor
    }

    /// Whether this is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for TalosVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)?;
        if let Some(p) = self.patch {
            write!(f, ".{p}")?;
        }
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_prerelease_and_minor_only() {
        let v = TalosVersion::parse("v1.13.9").unwrap();
        assert_eq!(
            (v.major, v.minor, v.patch, v.pre.as_deref()),
            (1, 13, Some(9), None)
        );
        let v = TalosVersion::parse("v1.14.0-rc.1").unwrap();
        assert_eq!(
            (v.minor, v.patch, v.pre.as_deref()),
            (14, Some(0), Some("rc.1"))
        );
        assert_eq!(v.to_string(), "v1.14.0-rc.1");
        let v = TalosVersion::parse("1.13").unwrap();
        assert_eq!((v.minor, v.patch), (13, None));
        assert_eq!(v.minor_release(), "v1.13");
        let v = TalosVersion::parse("v1.13.9-3-gabcdef-dirty").unwrap();
        assert_eq!(v.pre.as_deref(), Some("3-gabcdef-dirty"));
        for bad in ["", "latest", "v1", "v1.x.0", "v1.13.9.1", "v1.13.x"] {
            assert!(TalosVersion::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn comparisons() {
        let a = TalosVersion::parse("v1.13.9").unwrap();
        let b = TalosVersion::parse("v1.13.2").unwrap();
        let c = TalosVersion::parse("v1.14.0").unwrap();
        assert!(a.same_minor(&b));
        assert!(!a.same_minor(&c));
        assert!(c.at_least(1, 14) && !a.at_least(1, 14) && a.at_least(1, 13));
        assert!(TalosVersion::parse("v2.0.0").unwrap().at_least(1, 14));
    }
}
