//! IP/CIDR, country and ASN access rules.

use std::net::IpAddr;

use crate::config::{path_matches, AccessConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("`{0}` is not an IP address or CIDR (expected e.g. 203.0.113.0/24 or 2001:db8::/32)")]
    Invalid(String),
    #[error(
        "`{0}`: prefix length too long for the address family (max 32 for IPv4, 128 for IPv6)"
    )]
    Prefix(String),
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| CidrError::Invalid(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| CidrError::Invalid(s.to_string()))?,
        };
        if prefix > max {
            return Err(CidrError::Prefix(s.to_string()));
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // IPv4-mapped IPv6 clients compare as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Compiled access rules.
#[derive(Debug, Clone)]
pub struct AccessRules {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    allow_countries: Vec<String>,
    deny_countries: Vec<String>,
    deny_asns: Vec<u32>,
    protected: Vec<String>,
}

/// Result of the access rules for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessVerdict {
    /// The address is allowlisted.
    Allowlisted,
    Denied(&'static str),
    Neutral,
}

impl AccessRules {
    pub fn new(cfg: &AccessConfig) -> Result<AccessRules, CidrError> {
        Ok(AccessRules {
            allow: cfg
                .allow_ips
                .iter()
                .map(|s| Cidr::parse(s))
                .collect::<Result<_, _>>()?,
            deny: cfg
                .deny_ips
                .iter()
                .map(|s| Cidr::parse(s))
                .collect::<Result<_, _>>()?,
            allow_countries: cfg
                .allow_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            deny_countries: cfg
                .deny_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            deny_asns: cfg.deny_asns.clone(),
            protected: cfg.protected_paths.clone(),
        })
    }

    pub fn is_allowlisted(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.allow.iter().any(|c| c.contains(ip)))
    }

    pub fn check(
        &self,
        ip: Option<IpAddr>,
        country: Option<&str>,
        asn: Option<u32>,
    ) -> AccessVerdict {
        if self.is_allowlisted(ip) {
            return AccessVerdict::Allowlisted;
        }
        if let Some(ip) = ip {
            if self.deny.iter().any(|c| c.contains(ip)) {
                return AccessVerdict::Denied("ip");
            }
        }
        if let Some(c) = country {
            let c = c.to_ascii_uppercase();
            if self.deny_countries.contains(&c) {
                return AccessVerdict::Denied("country");
            }
            if !self.allow_countries.is_empty() && !self.allow_countries.contains(&c) {
                return AccessVerdict::Denied("country");
            }
        } else if !self.allow_countries.is_empty() {
            return AccessVerdict::Denied("country");
        }
        if asn.is_some_and(|a| self.deny_asns.contains(&a)) {
            return AccessVerdict::Denied("asn");
        }
        AccessVerdict::Neutral
    }

    pub fn is_protected(&self, path: &str) -> bool {
        self.protected.iter().any(|p| path_matches(p, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_v4_v6() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.7".parse().unwrap()));
        assert!(!c.contains("203.0.114.7".parse().unwrap()));
        assert!(c.contains("::ffff:203.0.113.9".parse().unwrap()));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!c.contains("2001:db9::5".parse().unwrap()));
        assert!(!c.contains("203.0.113.7".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
