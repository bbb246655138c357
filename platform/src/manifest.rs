//! Loading Kubernetes manifests (multi-document YAML) and reading their identity.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ManifestError;

/// One Kubernetes object read from a file, with where it came from.
/// `Debug` shows only the identity: a filled Secret must never reach a log.
#[derive(Clone, PartialEq)]
pub struct Manifest {
    /// The file the object was read from (relative to the infra root when known).
    pub file: PathBuf,
    /// Index of the YAML document inside the file (0-based).
    pub doc: usize,
    /// The object itself.
    pub value: Value,
}

/// apiVersion/kind/namespace/name of an object, for messages and ordering.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl ObjectRef {
    /// API group ("" for the core group).
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(_, v)| v)
            .unwrap_or(&self.api_version)
    }
}

/// The group part of an apiVersion ("" for `v1`).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("file", &self.file)
            .field("doc", &self.doc)
            .field("object", &self.object_ref().to_string())
            .finish()
    }
}

impl Manifest {
    pub fn new(file: impl Into<PathBuf>, doc: usize, value: Value) -> Self {
        Self {
            file: file.into(),
            doc,
            value,
        }
    }

    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version().to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }
    /// `file` or `file#doc` for messages.
    pub fn location(&self) -> String {
        if self.doc == 0 {
            self.file.display().to_string()
        } else {
            format!("{} (document {})", self.file.display(), self.doc + 1)
        }
    }
}

/// Parse every non-empty document of a YAML stream into JSON values.
pub fn parse_documents(text: &str, file: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: Value =
            serde::Deserialize::deserialize(de).map_err(|source| ManifestError::Yaml {
                file: file.to_path_buf(),
                doc,
                source,
            })?;
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            return Err(ManifestError::NotAnObject {
                file: file.to_path_buf(),
                doc,
            });
        }
        out.push(Manifest::new(file, doc, value));
    }
    Ok(out)
}

/// Read and parse a manifest file.
pub fn load_file(path: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse_documents(&text, path)
}

/// Pod template spec of a workload (`/spec/template/spec`), if the kind has one.
pub fn pod_spec(value: &Value) -> Option<&Value> {
    match value.get("kind").and_then(Value::as_str)? {
        "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job" => {
            value.pointer("/spec/template/spec")
        }
        "CronJob" => value.pointer("/spec/jobTemplate/spec/template/spec"),
        "Pod" => value.get("spec"),
        _ => None,
    }
}

/// Labels of a workload's pod template.
pub fn pod_labels(value: &Value) -> Option<&serde_json::Map<String, Value>> {
    let kind = value.get("kind").and_then(Value::as_str)?;
    let ptr = match kind {
        "CronJob" => "/spec/jobTemplate/spec/template/metadata/labels",
        "Pod" => "/metadata/labels",
        _ => "/spec/template/metadata/labels",
    };
    value.pointer(ptr).and_then(Value::as_object)
}
