//! The configuration in force: the built-in one, or a valid override from KV.

use crate::config::EdgeConfig;
use sha2::{Digest, Sha256};

/// The built-in configuration as validated JSON, produced by `build.rs` from
/// `edge.toml`.
pub const BUILTIN_CONFIG_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/edge-config.json"));

/// Where the configuration in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Compiled in.
    Builtin,
    /// The KV override.
    Override,
}

impl ConfigSource {
    /// `builtin` or `override`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigSource::Builtin => "builtin",
            ConfigSource::Override => "override",
        }
    }
}

/// A validated configuration and its hash.
#[derive(Clone)]
pub struct ActiveConfig {
    /// The configuration.
    pub config: EdgeConfig,
    /// The WAF compiled from `config.waf` (compiled once per configuration).
    pub waf: std::sync::Arc<edge_waf::Waf>,
    /// SHA-256 of its canonical JSON, hex, first 16 characters.
    pub hash: String,
    /// Where it came from.
    pub source: ConfigSource,
}

impl std::fmt::Debug for ActiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveConfig")
            .field("hash", &self.hash)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why an override was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRejected(pub String);

fn hash_of(config: &EdgeConfig) -> String {
    let canonical = serde_json::to_vec(config).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl ActiveConfig {
    /// The built-in configuration.
    pub fn builtin() -> Result<ActiveConfig, String> {
        let config: EdgeConfig = serde_json::from_str(BUILTIN_CONFIG_JSON)
            .map_err(|e| format!("built-in config does not parse: {e}"))?;
        let waf = edge_waf::Waf::new(config.waf.clone())
            .map_err(|e| format!("built-in WAF config is invalid: {e}"))?;
        Ok(ActiveConfig {
            hash: hash_of(&config),
            config,
            waf: std::sync::Arc::new(waf),
            source: ConfigSource::Builtin,
        })
    }

    /// Parses and validates an override (JSON in the same schema as
    /// `edge.toml`).
    pub fn from_override(json: &str) -> Result<ActiveConfig, OverrideRejected> {
        let config: EdgeConfig = serde_json::from_str(json)
            .map_err(|e| OverrideRejected(format!("override does not parse: {e}")))?;
        config
            .validate()
            .map_err(|e| OverrideRejected(format!("override is invalid: {e}")))?;
        let waf = edge_waf::Waf::new(config.waf.clone())
            .map_err(|e| OverrideRejected(format!("override is invalid: waf: {e}")))?;
        Ok(ActiveConfig {
            hash: hash_of(&config),
            config,
            waf: std::sync::Arc::new(waf),
            source: ConfigSource::Override,
        })
    }

    /// The override if present and valid, else the built-in config; the second
    /// value is the reason an override was rejected.
    pub fn select(
        builtin: &ActiveConfig,
        override_json: Option<&str>,
    ) -> (ActiveConfig, Option<OverrideRejected>) {
        match override_json {
            None => (builtin.clone(), None),
            Some(json) => match ActiveConfig::from_override(json) {
                Ok(active) => (active, None),
                Err(reason) => (builtin.clone(), Some(reason)),
            },
        }
    }
}
