//! Validation of generated machine-config documents against the Talos JSON
//! schema of the cluster's Talos version (`<dir>/v<major>.<minor>.schema.json`).

use crate::error::{Result, TalosError};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `v1.13.9` / `1.13` / `v1.14.0-rc.1` -> `v1.13` / `v1.13` / `v1.14`.
pub fn minor_version(talos_version: &str) -> Option<String> {
    crate::version::TalosVersion::parse(talos_version).map(|v| v.minor_release())
}

/// The loaded schema of one Talos minor version.
pub struct TalosSchema {
    version: String,
    path: PathBuf,
    root: Value,
    compiled: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for TalosSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TalosSchema")
            .field("version", &self.version)
            .field("path", &self.path)
            .finish()
    }
}

fn available(dir: &Path) -> String {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".schema.json").map(String::from))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl TalosSchema {
    /// Loads `<dir>/v<major>.<minor>.schema.json` for `talos_version`.
    pub fn load(dir: &Path, talos_version: &str) -> Result<Self> {
        let minor = minor_version(talos_version).ok_or_else(|| {
            TalosError::Input(format!(
                "Talos version `{talos_version}` is not of the form v<major>.<minor>.<patch> (e.g. v1.13.9)"
            ))
        })?;
        let path = dir.join(format!("{minor}.schema.json"));
        if !path.is_file() {
            return Err(TalosError::NoSchema {
                version: talos_version.to_string(),
                dir: dir.to_path_buf(),
                available: available(dir),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| TalosError::SchemaRead {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let root: Value = serde_json::from_str(&text).map_err(|e| TalosError::SchemaRead {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if root.get("$defs").and_then(Value::as_object).is_none() {
            return Err(TalosError::SchemaRead {
                path,
                detail: "no `$defs` object".into(),
            });
        }
        Ok(TalosSchema {
            version: minor,
            path,
            root,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// `v<major>.<minor>` of this schema.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the schema defines a document of `kind` (`v1alpha1` for the main config).
    pub fn has_kind(&self, kind: &str) -> bool {
        self.def_for_kind(kind).is_some()
    }

    /// Whether `v1alpha1.<def>` has a property `prop` (used to pick the layout).
    pub fn def_has_property(&self, def: &str, prop: &str) -> bool {
        self.root["$defs"][def]["properties"].get(prop).is_some()
    }

    fn def_for_kind(&self, kind: &str) -> Option<String> {
        if kind == "v1alpha1" {
            return Some("v1alpha1.Config".into());
        }
        let defs = self.root.get("$defs")?.as_object()?;
        defs.iter()
            .find(|(_, d)| {
                d["properties"]["kind"]["enum"]
                    .as_array()
                    .is_some_and(|e| e.len() == 1 && e[0] == kind)
            })
            .map(|(name, _)| name.clone())
    }

    fn validator(&self, def: &str) -> Result<std::sync::Arc<jsonschema::Validator>> {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(v) = cache.get(def) {
            return Ok(v.clone());
        }
        let mut schema = serde_json::Map::new();
        for k in ["$schema", "$id", "$defs"] {
            if let Some(v) = self.root.get(k) {
                schema.insert(k.into(), v.clone());
            }
        }
        schema.insert("$ref".into(), Value::String(format!("#/$defs/{def}")));
        let v = jsonschema::validator_for(&Value::Object(schema)).map_err(|e| {
            TalosError::SchemaRead {
                path: self.path.clone(),
                detail: format!("cannot compile `{def}`: {e}"),
            }
        })?;
        let v = std::sync::Arc::new(v);
        cache.insert(def.to_string(), v.clone());
        Ok(v)
    }

    /// The kind of a document: `v1alpha1` for the main config, else its `kind`.
    pub fn doc_kind(doc: &Value) -> Option<String> {
        if let Some(k) = doc.get("kind").and_then(Value::as_str) {
            return Some(k.to_string());
        }
        if doc.get("version").and_then(Value::as_str) == Some("v1alpha1") {
            return Some("v1alpha1".into());
        }
        None
    }

    /// Validates one document; returns the list of schema errors (path: message).
    pub fn validate_doc(&self, doc: &Value) -> Result<Vec<String>> {
        let Some(kind) = Self::doc_kind(doc) else {
            return Ok(vec![
                "document has neither `kind` nor `version: v1alpha1`".to_string()
            ]);
        };
        let Some(def) = self.def_for_kind(&kind) else {
            return Ok(vec![format!(
                "document kind `{kind}` does not exist in Talos {}",
                self.version
            )]);
        };
        let v = self.validator(&def)?;
        Ok(v.iter_errors(doc)
            .map(|e| {
                let p = e.instance_path.to_string();
                format!("  at `{}`: {}", if p.is_empty() { "/" } else { &p }, e)
            })
            .collect())
    }
}

/// Validates every document of a multi-document machine config (YAML text)
/// against the schema for `talos_version` found in `schema_dir`.
pub fn validate_config(yaml: &str, talos_version: &str, schema_dir: &Path) -> Result<()> {
    let schema = TalosSchema::load(schema_dir, talos_version)?;
    validate_with(&schema, yaml, "machine")
}

/// Like [`validate_config`] with a loaded schema; `node` names the config in errors.
pub fn validate_with(schema: &TalosSchema, yaml: &str, node: &str) -> Result<()> {
    for (i, doc) in crate::render::split_docs(yaml)?.iter().enumerate() {
        let json: Value =
            serde_json::to_value(doc).map_err(|e| TalosError::Input(e.to_string()))?;
        let errors = schema.validate_doc(&json)?;
        if !errors.is_empty() {
            return Err(TalosError::Invalid {
                node: node.to_string(),
                doc: TalosSchema::doc_kind(&json).unwrap_or_else(|| format!("#{i}")),
                version: schema.version().to_string(),
                errors: errors.join("\n"),
            });
        }
    }
    Ok(())
}
