//! Strategic-merge patches for machine configs, applied the way `talosctl
//! --config-patch` applies them: maps merge recursively, lists append (except the
//! subnet lists Talos marks as replace-on-merge), scalars replace, `$patch: delete`
//! removes a key or a whole document, `$patch: replace` replaces a map. A patch
//! document with `apiVersion`/`kind` targets the document of that kind (and `name`)
//! or adds it; one without targets the `v1alpha1` config.

use crate::error::{Result, TalosError};
use crate::render::Role;
use serde_yaml::{Mapping, Value};
use std::path::Path;

/// Lists that replace instead of append (the subnet lists; Talos marks the pod
/// and service subnets `merge:"replace"`). Paths in documents with a `kind`
/// start with the kind.
const REPLACE_LISTS: &[&str] = &[
    "cluster.network.podSubnets",
    "cluster.network.serviceSubnets",
    "machine.kubelet.nodeIP.validSubnets",
    "cluster.etcd.advertisedSubnets",
    "cluster.etcd.listenSubnets",
    "KubeNetworkConfig.podSubnets",
    "KubeNetworkConfig.serviceSubnets",
    "KubeNodeConfig.nodeIP.validSubnets",
];

/// Maps that a patch replaces instead of merging into (Talos `merge:"replace"`
/// fields holding whole Kubernetes configuration files).
const REPLACE_MAPS: &[&str] = &[
    "cluster.apiServer.auditPolicy",
    "KubeAuditPolicyConfig.configuration",
    "KubeAuthenticationConfig.configuration",
    "KubeCredentialProviderConfig.configuration",
    "KubeStaticPodConfig.pod",
];

/// One patch file (possibly several YAML documents).
#[derive(Debug, Clone)]
pub struct Patch {
    /// Where it came from (file path relative to the patch dir), used in errors.
    pub source: String,
    pub docs: Vec<Value>,
}

fn perr(file: &str, detail: impl Into<String>, fix: impl Into<String>) -> TalosError {
    TalosError::Patch {
        file: file.to_string(),
        detail: detail.into(),
        fix: fix.into(),
    }
}

impl Patch {
    /// Parses patch text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Patch> {
        let mut docs = Vec::new();
        for d in serde_yaml::Deserializer::from_str(text) {
            let v = serde_yaml::Value::deserialize(d).map_err(|e| {
                perr(
                    source,
                    format!("not valid YAML: {e}"),
                    "fix the YAML syntax",
                )
            })?;
            match v {
                Value::Null => continue,
                Value::Mapping(_) => docs.push(v),
                Value::Sequence(_) => {
                    return Err(perr(
                        source,
                        "is a list (JSON 6902 patch); only strategic-merge patches are supported",
                        "rewrite it as a partial machine config (a YAML map)",
                    ))
                }
                _ => {
                    return Err(perr(
                        source,
                        "is not a YAML map",
                        "write a partial machine config",
                    ))
                }
            }
        }
        Ok(Patch {
            source: source.to_string(),
            docs,
        })
    }

    /// The patches for a node of `role` running `talos_version`: those of the
    /// version's overlay directory `dir/v<major>.<minor>/` when it exists (config
    /// layouts differ between Talos releases, so an overlay replaces the base set
    /// for its release), else those of `dir`. See [`Patch::load_dir`].
    pub fn load_for_version(dir: &Path, role: Role, talos_version: &str) -> Result<Vec<Patch>> {
        Self::load_dir(&Self::dir_for_version(dir, talos_version), role)
    }

    /// The directory [`Patch::load_for_version`] reads.
    pub fn dir_for_version(dir: &Path, talos_version: &str) -> std::path::PathBuf {
        match crate::version::TalosVersion::parse(talos_version) {
            Some(v) if dir.join(v.minor_release()).is_dir() => dir.join(v.minor_release()),
            _ => dir.to_path_buf(),
        }
    }

    /// Loads `dir/*.yaml` (all roles) then `dir/<role>/*.yaml`, each in file-name order.
    /// A missing `dir` yields no patches; other sub-directories are ignored.
    pub fn load_dir(dir: &Path, role: Role) -> Result<Vec<Patch>> {
        let mut out = Vec::new();
        for sub in [None, Some(role.as_str())] {
            let d = match sub {
                Some(s) => dir.join(s),
                None => dir.to_path_buf(),
            };
            if !d.is_dir() {
                continue;
            }
            let mut files: Vec<_> = std::fs::read_dir(&d)
                .map_err(|source| TalosError::PatchRead {
                    path: d.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml") | Some("yml")
                        )
                })
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|source| TalosError::PatchRead {
                    path: f.clone(),
                    source,
                })?;
                let name = match sub {
                    Some(s) => format!("{}/{s}/{}", dir.display(), file_name(&f)),
                    None => format!("{}/{}", dir.display(), file_name(&f)),
                };
                out.push(Patch::parse(&name, &text)?);
            }
        }
        Ok(out)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

use serde::Deserialize as _;

fn directive(v: &Value) -> Option<&str> {
    v.as_mapping()
        .and_then(|m| m.get("$patch"))
        .and_then(Value::as_str)
}

fn without_directives(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .filter(|(k, _)| k.as_str() != Some("$patch"))
                .map(|(k, v)| (k.clone(), without_directives(v)))
                .collect(),
        ),
        Value::Sequence(s) => Value::Sequence(s.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

fn merge(target: &mut Value, patch: &Value, path: &str, file: &str) -> Result<()> {
    match (target, patch) {
        (t @ Value::Mapping(_), p @ Value::Mapping(_)) if REPLACE_MAPS.contains(&path) => {
            *t = without_directives(p);
            Ok(())
        }
        (Value::Mapping(t), Value::Mapping(p)) => merge_map(t, p, path, file),
        (t @ Value::Null, p) => {
            *t = without_directives(p);
            Ok(())
        }
        (Value::Sequence(t), Value::Sequence(p)) => {
            if REPLACE_LISTS.contains(&path) {
                *t = p.iter().map(without_directives).collect();
            } else {
                t.extend(p.iter().map(without_directives));
            }
            Ok(())
        }
        (t, p) if !p.is_mapping() && !p.is_sequence() && !t.is_mapping() && !t.is_sequence() => {
            *t = p.clone();
            Ok(())
        }
        (t, p) => Err(perr(
            file,
            format!(
                "`{path}` is {} in the generated config but the patch gives {}",
                type_name(t),
                type_name(p)
            ),
            format!("give `{path}` {} in the patch", type_name(t)),
        )),
    }
}

fn merge_map(t: &mut Mapping, p: &Mapping, path: &str, file: &str) -> Result<()> {
    for (k, pv) in p {
        let Some(key) = k.as_str() else {
            return Err(perr(
                file,
                format!("non-string key under `{path}`"),
                "use string keys",
            ));
        };
        if key == "$patch" {
            continue;
        }
        let sub = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        match directive(pv) {
            Some("delete") => {
                if t.remove(k).is_none() {
                    return Err(perr(
                        file,
                        format!("deletes `{sub}`, which the generated config does not have"),
                        format!("remove the `$patch: delete` for `{sub}` (nothing to delete) or fix the field path"),
                    ));
                }
                continue;
            }
            Some("replace") => {
                t.insert(k.clone(), without_directives(pv));
                continue;
            }
            Some(other) => {
                return Err(perr(
                    file,
                    format!("unknown directive `$patch: {other}` at `{sub}`"),
                    "use `$patch: delete` or `$patch: replace`",
                ))
            }
            None => {}
        }
        match t.get_mut(k) {
            Some(tv) => merge(tv, pv, &sub, file)?,
            None => {
                t.insert(k.clone(), without_directives(pv));
            }
        }
    }
    Ok(())
}

fn doc_key(doc: &Value) -> (Option<String>, Option<String>) {
    let s = |k: &str| doc.get(k).and_then(Value::as_str).map(String::from);
    (s("kind"), s("name"))
}

/// Applies one patch to the documents of a machine config.
pub fn apply_patch(docs: &mut Vec<Value>, patch: &Patch) -> Result<()> {
    let file = patch.source.as_str();
    for pd in &patch.docs {
        let (kind, name) = doc_key(pd);
        let idx = docs.iter().position(|d| {
            let (dk, dn) = doc_key(d);
            match &kind {
                None => dk.is_none(),
                Some(k) => dk.as_deref() == Some(k) && (name.is_none() || dn == name),
            }
        });
        let what = match (&kind, &name) {
            (None, _) => "the v1alpha1 config document".to_string(),
            (Some(k), None) => format!("document kind `{k}`"),
            (Some(k), Some(n)) => format!("document kind `{k}` name `{n}`"),
        };
        if directive(pd) == Some("delete") {
            match idx {
                Some(i) => {
                    docs.remove(i);
                    continue;
                }
                None => {
                    return Err(perr(
                        file,
                        format!("deletes {what}, which the generated config does not contain"),
                        "remove this document from the patch or fix its kind/name",
                    ))
                }
            }
        }
        match idx {
            Some(i) => {
                let t = &mut docs[i];
                let (Value::Mapping(tm), Value::Mapping(pm)) = (t, pd) else {
                    continue;
                };
                let mut pm = pm.clone();
                if kind.is_none() {
                    pm.remove("version");
                } else {
                    pm.remove("apiVersion");
                    pm.remove("kind");
                    pm.remove("name");
                }
                merge_map(tm, &pm, kind.as_deref().unwrap_or(""), file)?;
            }
            None if kind.is_some() => docs.push(without_directives(pd)),
            None => {
                return Err(perr(
                    file,
                    "patches the v1alpha1 config, but the generated config has none",
                    "give the patch document an `apiVersion` and `kind`",
                ))
            }
        }
    }
    Ok(())
}
