//! A small Kustomize resolver: the subset of kustomize this repository uses.
//!
//! Supported fields: `resources` (files and directories with a
//! `kustomization.yaml`), `namespace`, `commonAnnotations`, `labels`
//! (without selectors), and `patches` (strategic-merge or JSON 6902, from
//! `path` or inline `patch`, optional `target`). Everything else is an error,
//! so a kustomization never silently means something different here than in
//! Argo CD's kustomize. Generators are refused on purpose: `secretGenerator`
//! would put plaintext secrets in Git.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::KustomizeError;
use crate::manifest::{self, Manifest};

/// File names kustomize accepts for a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Kinds that are cluster-scoped (no namespace is set on them).
pub const CLUSTER_SCOPED: [&str; 14] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "CSIDriver",
    "PriorityClass",
    "Node",
    "PersistentVolume",
    "IngressClass",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ClusterIssuer",
];

/// Whether a kind is cluster-scoped.
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// Find the kustomization file in a directory.
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// Remove `.` and `..` components lexically (kustomize resolves paths the same way).
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Paths of the patch files a kustomization in `dir` references.
pub fn patch_files(dir: &Path) -> Vec<PathBuf> {
    let Some(file) = kustomization_file(dir) else {
        return Vec::new();
    };
    let Ok(docs) = manifest::load_file(&file) else {
        return Vec::new();
    };
    docs.iter()
        .filter_map(|m| m.value.get("patches").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("path").and_then(Value::as_str))
        .map(|p| normalize(&dir.join(p)))
        .collect()
}

/// Build the kustomization in `dir` into a list of objects.
pub fn build(dir: &Path) -> Result<Vec<Manifest>, KustomizeError> {
    let mut stack = Vec::new();
    build_inner(dir, &mut stack)
}

const KNOWN_FIELDS: [&str; 7] = [
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "patches",
    "commonAnnotations",
    "labels",
];

fn field_err(file: &Path, field: &str, reason: impl Into<String>) -> KustomizeError {
    KustomizeError::Field {
        file: file.to_path_buf(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn build_inner(dir: &Path, stack: &mut Vec<PathBuf>) -> Result<Vec<Manifest>, KustomizeError> {
    let file = kustomization_file(dir).ok_or_else(|| KustomizeError::NotAKustomization {
        file: dir.to_path_buf(),
        entry: dir.display().to_string(),
    })?;
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if stack.contains(&canon) {
        return Err(KustomizeError::Cycle { file });
    }
    stack.push(canon);
    let docs = manifest::load_file(&file)?;
    let k = docs
        .into_iter()
        .next()
        .map(|m| m.value)
        .unwrap_or(Value::Object(Map::new()));
    let obj = k
        .as_object()
        .ok_or_else(|| field_err(&file, "(root)", "not a mapping"))?;
    for key in obj.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            let reason = if key.ends_with("Generator") {
                "generators are not allowed (secrets must not be generated from plaintext in Git)"
            } else {
                "not supported by the repository's kustomize subset"
            };
            return Err(field_err(&file, key, reason));
        }
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
        if kind != "Kustomization" {
            return Err(field_err(
                &file,
                "kind",
                format!("expected Kustomization, got {kind}"),
            ));
        }
    }

    let mut out: Vec<Manifest> = Vec::new();
    let resources = string_list(obj, "resources", &file)?;
    for entry in resources {
        let resolved = normalize(&dir.join(&entry));
        if resolved.is_dir() {
            if kustomization_file(&resolved).is_none() {
                return Err(KustomizeError::NotAKustomization {
                    file: file.clone(),
                    entry,
                });
            }
            out.extend(build_inner(&resolved, stack)?);
        } else if resolved.is_file() {
            out.extend(manifest::load_file(&resolved)?);
        } else {
            return Err(KustomizeError::MissingResource {
                file: file.clone(),
                entry,
                resolved,
            });
        }
    }

    if let Some(patches) = obj.get("patches") {
        let list = patches
            .as_array()
            .ok_or_else(|| field_err(&file, "patches", "must be a list"))?;
        for (i, p) in list.iter().enumerate() {
            apply_patch_entry(dir, &file, i, p, &mut out)?;
        }
    }

    if let Some(ns) = obj.get("namespace") {
        let ns = ns
            .as_str()
            .ok_or_else(|| field_err(&file, "namespace", "must be a string"))?;
        for m in &mut out {
            if !is_cluster_scoped(m.kind()) {
                if let Some(meta) = m.value.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("namespace".into(), Value::String(ns.to_string()));
                }
            }
        }
    }

    if let Some(ann) = obj.get("commonAnnotations") {
        let ann = ann
            .as_object()
            .ok_or_else(|| field_err(&file, "commonAnnotations", "must be a mapping"))?;
        for m in &mut out {
            for (k, v) in ann {
                set_meta_map(&mut m.value, "annotations", k, v.clone());
            }
        }
    }

    if let Some(labels) = obj.get("labels") {
        let list = labels
            .as_array()
            .ok_or_else(|| field_err(&file, "labels", "must be a list"))?;
        for entry in list {
            let e = entry
                .as_object()
                .ok_or_else(|| field_err(&file, "labels", "entries must be mappings"))?;
            if e.get("includeSelectors").and_then(Value::as_bool) == Some(true) {
                return Err(field_err(
                    &file,
                    "labels.includeSelectors",
                    "selector labels are immutable on workloads; not supported",
                ));
            }
            let pairs = e
                .get("pairs")
                .and_then(Value::as_object)
                .ok_or_else(|| field_err(&file, "labels.pairs", "required mapping"))?;
            for m in &mut out {
                for (k, v) in pairs {
                    set_meta_map(&mut m.value, "labels", k, v.clone());
                }
            }
        }
    }

    // Duplicate objects are an error in kustomize too.
    let mut seen: BTreeMap<crate::manifest::ObjectRef, PathBuf> = BTreeMap::new();
    for m in &out {
        let r = m.object_ref();
        if let Some(first) = seen.get(&r) {
            return Err(KustomizeError::Duplicate {
                file: file.clone(),
                object: r,
                first: first.clone(),
                second: m.file.clone(),
            });
        }
        seen.insert(r, m.file.clone());
    }
    stack.pop();
    Ok(out)
}

fn string_list(
    obj: &Map<String, Value>,
    key: &str,
    file: &Path,
) -> Result<Vec<String>, KustomizeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| field_err(file, key, "entries must be strings"))
            })
            .collect(),
        Some(_) => Err(field_err(file, key, "must be a list")),
    }
}

fn set_meta_map(obj: &mut Value, which: &str, k: &str, v: Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        let m = meta
            .entry(which)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = m.as_object_mut() {
            m.insert(k.to_string(), v);
        }
    }
}

#[derive(Debug, Default)]
struct Target {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

impl Target {
    fn matches(&self, m: &Manifest) -> bool {
        let (group, version) = match m.api_version().rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", m.api_version()),
        };
        self.group.as_deref().is_none_or(|g| g == group)
            && self.version.as_deref().is_none_or(|v| v == version)
            && self.kind.as_deref().is_none_or(|k| k == m.kind())
            && self.name.as_deref().is_none_or(|n| n == m.name())
            && self
                .namespace
                .as_deref()
                .is_none_or(|n| Some(n) == m.namespace())
    }
    fn describe(&self) -> String {
        format!(
            "kind={} name={} namespace={}",
            self.kind.as_deref().unwrap_or("*"),
            self.name.as_deref().unwrap_or("*"),
            self.namespace.as_deref().unwrap_or("*")
        )
    }
}

fn apply_patch_entry(
    dir: &Path,
    file: &Path,
    index: usize,
    entry: &Value,
    out: &mut [Manifest],
) -> Result<(), KustomizeError> {
    let e = entry
        .as_object()
        .ok_or_else(|| field_err(file, "patches", "entries must be mappings"))?;
    for key in e.keys() {
        if !["path", "patch", "target"].contains(&key.as_str()) {
            return Err(field_err(
                file,
                &format!("patches[{index}].{key}"),
                "unsupported",
            ));
        }
    }
    let (label, text) = match (e.get("path"), e.get("patch")) {
        (Some(Value::String(p)), None) => {
            let resolved = normalize(&dir.join(p));
            let text = std::fs::read_to_string(&resolved).map_err(|_| {
                KustomizeError::MissingResource {
                    file: file.to_path_buf(),
                    entry: p.clone(),
                    resolved: resolved.clone(),
                }
            })?;
            (p.clone(), text)
        }
        (None, Some(Value::String(t))) => (format!("patches[{index}] (inline)"), t.clone()),
        _ => {
            return Err(field_err(
                file,
                &format!("patches[{index}]"),
                "exactly one of `path` or `patch` is required",
            ))
        }
    };
    let patch: Value = serde_yaml::from_str(&text).map_err(|err| KustomizeError::PatchFailed {
        file: file.to_path_buf(),
        patch: label.clone(),
        reason: format!("invalid YAML: {err}"),
    })?;
    let mut target = Target::default();
    if let Some(t) = e.get("target") {
        let t = t
            .as_object()
            .ok_or_else(|| field_err(file, "patches.target", "must be a mapping"))?;
        let get = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        for key in t.keys() {
            if !["group", "version", "kind", "name", "namespace"].contains(&key.as_str()) {
                return Err(field_err(
                    file,
                    &format!("patches[{index}].target.{key}"),
                    "unsupported",
                ));
            }
        }
        target = Target {
            group: get("group"),
            version: get("version"),
            kind: get("kind"),
            name: get("name"),
            namespace: get("namespace"),
        };
    }
    let ops = match &patch {
        Value::Array(ops) => {
            if e.get("target").is_none() {
                return Err(KustomizeError::PatchFailed {
                    file: file.to_path_buf(),
                    patch: label,
                    reason: "a JSON 6902 patch needs a `target`".into(),
                });
            }
            Some(ops.clone())
        }
        Value::Object(o) => {
            if target.kind.is_none() {
                target.kind = o.get("kind").and_then(Value::as_str).map(str::to_string);
            }
            if target.name.is_none() {
                target.name = o
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            None
        }
        _ => {
            return Err(KustomizeError::PatchFailed {
                file: file.to_path_buf(),
                patch: label,
                reason: "a patch must be a mapping (strategic merge) or a list (JSON 6902)".into(),
            })
        }
    };
    let mut matched = 0;
    for m in out.iter_mut().filter(|m| target.matches(m)) {
        matched += 1;
        match &ops {
            Some(ops) => {
                json6902(&mut m.value, ops).map_err(|reason| KustomizeError::PatchFailed {
                    file: file.to_path_buf(),
                    patch: label.clone(),
                    reason,
                })?
            }
            None => strategic_merge(&mut m.value, &patch),
        }
    }
    if matched == 0 {
        return Err(KustomizeError::PatchNoTarget {
            file: file.to_path_buf(),
            patch: label,
            target: target.describe(),
        });
    }
    Ok(())
}

/// Strategic merge, the part of it our manifests need: mappings merge
/// recursively, `null` deletes a key, lists of mappings that all carry a
/// `name` merge by name (containers, env, volumes, ports), other lists replace.
pub fn strategic_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    b.remove(k);
                    continue;
                }
                match b.get_mut(k) {
                    Some(bv) => strategic_merge(bv, pv),
                    None => {
                        b.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(p)) if by_name(b) && by_name(p) => {
            for pv in p {
                let name = pv.get("name").cloned();
                match b.iter_mut().find(|bv| bv.get("name") == name.as_ref()) {
                    Some(bv) => strategic_merge(bv, pv),
                    None => b.push(pv.clone()),
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn by_name(list: &[Value]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|v| v.get("name").is_some_and(Value::is_string))
}

/// RFC 6902 `add`, `replace`, `remove` and `test` (what kustomize users use).
pub fn json6902(doc: &mut Value, ops: &[Value]) -> Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or(format!("operation {i}: missing `op`"))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or(format!("operation {i}: missing `path`"))?;
        let (parent_ptr, last) = path
            .rsplit_once('/')
            .ok_or(format!("operation {i}: path `{path}` must start with /"))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        match kind {
            "test" => {
                let want = op
                    .get("value")
                    .ok_or(format!("operation {i}: missing `value`"))?;
                if doc.pointer(path) != Some(want) {
                    return Err(format!("operation {i}: test failed at {path}"));
                }
                continue;
            }
            "add" | "replace" | "remove" => {}
            other => return Err(format!("operation {i}: unsupported op `{other}`")),
        }
        let parent = doc
            .pointer_mut(parent_ptr)
            .ok_or(format!("operation {i}: path `{parent_ptr}` does not exist"))?;
        let value = op.get("value").cloned();
        match parent {
            Value::Object(o) => match kind {
                "add" => {
                    o.insert(
                        last,
                        value.ok_or(format!("operation {i}: missing `value`"))?,
                    );
                }
                "replace" => {
                    if !o.contains_key(&last) {
                        return Err(format!("operation {i}: replace: `{path}` does not exist"));
                    }
                    o.insert(
                        last,
                        value.ok_or(format!("operation {i}: missing `value`"))?,
                    );
                }
                _ => {
                    o.remove(&last)
                        .ok_or(format!("operation {i}: remove: `{path}` does not exist"))?;
                }
            },
            Value::Array(a) => {
                let idx = if last == "-" {
                    a.len()
                } else {
                    last.parse::<usize>()
                        .map_err(|_| format!("operation {i}: `{last}` is not an array index"))?
                };
                match kind {
                    "add" if idx <= a.len() => {
                        a.insert(idx, value.ok_or(format!("operation {i}: missing `value`"))?)
                    }
                    "replace" if idx < a.len() => {
                        a[idx] = value.ok_or(format!("operation {i}: missing `value`"))?
                    }
                    "remove" if idx < a.len() => {
                        a.remove(idx);
                    }
                    _ => return Err(format!("operation {i}: index {idx} out of range at {path}")),
                }
            }
            _ => return Err(format!("operation {i}: `{parent_ptr}` is not a container")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_named_lists_and_deletes_nulls() {
        let mut base = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}}, "paused": false}});
        let patch = json!({"spec": {"paused": null, "template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]}, {"name": "c", "image": "c:1"}]}}}});
        strategic_merge(&mut base, &patch);
        assert_eq!(
            base,
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "b", "image": "b:1"}, {"name": "c", "image": "c:1"}]}}}})
        );
        // Lists without names are replaced.
        let mut b = json!({"args": ["a", "b"]});
        strategic_merge(&mut b, &json!({"args": ["c"]}));
        assert_eq!(b, json!({"args": ["c"]}));
    }

    #[test]
    fn json6902_operations() {
        let mut d = json!({"spec": {"files": ["a"], "n": 1, "m": {"k/x": 1}}});
        let ops = vec![
            json!({"op": "add", "path": "/spec/files/-", "value": "b"}),
            json!({"op": "replace", "path": "/spec/n", "value": 2}),
            json!({"op": "remove", "path": "/spec/m/k~1x"}),
            json!({"op": "test", "path": "/spec/n", "value": 2}),
        ];
        json6902(&mut d, &ops).expect("ops apply");
        assert_eq!(d, json!({"spec": {"files": ["a", "b"], "n": 2, "m": {}}}));
        let err = json6902(
            &mut d,
            &[json!({"op": "replace", "path": "/spec/missing", "value": 1})],
        )
        .expect_err("missing");
        assert!(err.contains("/spec/missing"), "{err}");
        let err = json6902(&mut d, &[json!({"op": "move", "from": "/a", "path": "/b"})])
            .expect_err("unsupported");
        assert!(err.contains("move"), "{err}");
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("a/b/../c/./d")), PathBuf::from("a/c/d"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }
}
