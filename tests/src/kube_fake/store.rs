//! The fake API server's state: resource types, objects, server-side apply
//! with field ownership, and the controllers' status simulation.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// A served resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn rt(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
    }
}

/// The built-in types a v1.34 API server serves (the ones our tests touch).
pub fn builtin_types() -> Vec<ResourceType> {
    vec![
        rt("", "v1", "Namespace", "namespaces", false),
        rt("", "v1", "Node", "nodes", false),
        rt("", "v1", "ServiceAccount", "serviceaccounts", true),
        rt("", "v1", "ConfigMap", "configmaps", true),
        rt("", "v1", "Secret", "secrets", true),
        rt("", "v1", "Service", "services", true),
        rt("", "v1", "Pod", "pods", true),
        rt(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
        ),
        rt("apps", "v1", "Deployment", "deployments", true),
        rt("apps", "v1", "DaemonSet", "daemonsets", true),
        rt("apps", "v1", "StatefulSet", "statefulsets", true),
        rt("batch", "v1", "Job", "jobs", true),
        rt(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        rt(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        rt("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        rt(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
        ),
        rt(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        ),
        rt(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        ),
        rt(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        ),
        rt(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            false,
        ),
        rt("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false),
        rt(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
        rt(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            false,
        ),
    ]
}

/// How a workload's rollout behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Ready once the workload has been read this many times after a change.
    ReadyAfterReads(u32),
    /// Never ready (pods crash-looping, image pull failing...).
    Never,
}

/// Object key: (group, plural, namespace, name).
pub type Key = (String, String, String, String);

#[derive(Debug, Clone)]
pub struct Stored {
    pub obj: Value,
    /// Leaf field path -> manager.
    pub owners: BTreeMap<String, String>,
    /// Reads since the last spec change (for rollout simulation).
    pub reads: u32,
}

#[derive(Debug)]
pub struct State {
    pub types: Vec<ResourceType>,
    pub objects: BTreeMap<Key, Stored>,
    pub resource_version: u64,
    /// Applies that changed an object (created or modified).
    pub mutations: u64,
    /// Reads of a CRD before it becomes Established.
    pub crd_establish_reads: u32,
    pub default_rollout: Rollout,
    pub rollouts: BTreeMap<(String, String, String), Rollout>,
    /// Number of nodes, for DaemonSet status.
    pub node_count: i32,
    pub pod_metrics: BTreeMap<(String, String, u16), String>,
    pub uid_counter: u64,
    /// CRD names that never get established (names conflict).
    pub crd_names_rejected: BTreeSet<String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            types: builtin_types(),
            objects: BTreeMap::new(),
            resource_version: 1000,
            mutations: 0,
            crd_establish_reads: 1,
            default_rollout: Rollout::ReadyAfterReads(1),
            rollouts: BTreeMap::new(),
            node_count: 3,
            pod_metrics: BTreeMap::new(),
            uid_counter: 0,
            crd_names_rejected: BTreeSet::new(),
        }
    }
}

/// A Kubernetes `Status` failure body.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// Separator of field path segments (keys may contain dots and slashes).
pub const SEP: char = '\u{1f}';

/// A field path from segments.
pub fn fp(segs: &[&str]) -> String {
    segs.join(&SEP.to_string())
}

/// A field path as users read it: `.metadata.labels.app.kubernetes.io/name`.
pub fn display(path: &str) -> String {
    format!(".{}", path.replace(SEP, "."))
}

/// Paths of the leaves of `v` (arrays are atomic), skipping identity fields.
pub fn leaves(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}{SEP}{k}")
                };
                if matches!(
                    display(&p).as_str(),
                    ".apiVersion" | ".kind" | ".metadata.name" | ".metadata.namespace" | ".status"
                ) {
                    continue;
                }
                leaves(x, &p, out);
            }
        }
        // Lists of named objects (containers, env, ports, volumes...) are
        // maps keyed by `name`, as in the real server's structured merge.
        Value::Array(a) if keyed(a) => {
            for x in a {
                let name = x.get("name").and_then(Value::as_str).unwrap_or("");
                let p = format!("{prefix}{SEP}[name={name}]");
                leaves(x, &p, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn keyed(a: &[Value]) -> bool {
    !a.is_empty()
        && a.iter()
            .all(|x| x.get("name").is_some_and(Value::is_string))
}

fn key_of(seg: &str) -> Option<&str> {
    seg.strip_prefix("[name=").and_then(|r| r.strip_suffix(']'))
}

fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split(SEP) {
        cur = match key_of(seg) {
            Some(k) => cur
                .as_array()?
                .iter()
                .find(|x| x.get("name").and_then(Value::as_str) == Some(k))?,
            None => cur.get(seg)?,
        };
    }
    Some(cur)
}

fn set_path(v: &mut Value, path: &str, value: Value) {
    let segs: Vec<&str> = path.split(SEP).collect();
    let mut cur = v;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if let Some(k) = key_of(seg) {
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            let Some(a) = cur.as_array_mut() else { return };
            let pos = match a
                .iter()
                .position(|x| x.get("name").and_then(Value::as_str) == Some(k))
            {
                Some(p) => p,
                None => {
                    a.push(json!({"name": k}));
                    a.len() - 1
                }
            };
            if last {
                a[pos] = value;
                return;
            }
            cur = &mut a[pos];
            continue;
        }
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(o) = cur.as_object_mut() else { return };
        if last {
            o.insert((*seg).to_string(), value);
            return;
        }
        cur = o
            .entry((*seg).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn remove_path(v: &mut Value, path: &str) {
    let segs: Vec<&str> = path.split(SEP).collect();
    fn empty(v: &Value) -> bool {
        v.as_object().is_some_and(|c| c.is_empty()) || v.as_array().is_some_and(|a| a.is_empty())
    }
    fn rec(v: &mut Value, segs: &[&str]) {
        if let Some(k) = key_of(segs[0]) {
            let Some(a) = v.as_array_mut() else { return };
            let Some(pos) = a
                .iter()
                .position(|x| x.get("name").and_then(Value::as_str) == Some(k))
            else {
                return;
            };
            if segs.len() == 1 {
                a.remove(pos);
                return;
            }
            rec(&mut a[pos], &segs[1..]);
            if empty(&a[pos]) {
                a.remove(pos);
            }
            return;
        }
        let Some(o) = v.as_object_mut() else { return };
        if segs.len() == 1 {
            o.remove(segs[0]);
            return;
        }
        if let Some(child) = o.get_mut(segs[0]) {
            rec(child, &segs[1..]);
            if empty(child) {
                o.remove(segs[0]);
            }
        }
    }
    rec(v, &segs);
}

/// Outcome of an apply.
pub enum ApplyResult {
    Created(Value),
    Updated(Value),
    Conflict(String),
}

impl State {
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// Server-side apply of `applied` by `manager`.
    pub fn apply(
        &mut self,
        t: &ResourceType,
        key: Key,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> ApplyResult {
        let mut new_leaves = BTreeMap::new();
        leaves(applied, "", &mut new_leaves);
        let existing = self.objects.get(&key).cloned();
        let (mut obj, mut owners, created) = match &existing {
            Some(s) => (s.obj.clone(), s.owners.clone(), false),
            None => (
                json!({"apiVersion": t.api_version(), "kind": t.kind, "metadata": {"name": key.3}}),
                BTreeMap::new(),
                true,
            ),
        };
        // Conflicts: a field owned by another manager with a different value.
        let mut conflicts = Vec::new();
        for (path, value) in &new_leaves {
            if let Some(owner) = owners.get(path) {
                if owner != manager && get_path(&obj, path) != Some(value) {
                    conflicts.push(format!(
                        "conflict with \"{owner}\" using {}: {}",
                        t.api_version(),
                        display(path)
                    ));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return ApplyResult::Conflict(format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts.join("; ")
            ));
        }
        // Fields this manager no longer applies are removed (if only it owned them).
        let dropped: Vec<String> = owners
            .iter()
            .filter(|(p, m)| *m == manager && !new_leaves.contains_key(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for p in dropped {
            owners.remove(&p);
            remove_path(&mut obj, &p);
        }
        for (path, value) in new_leaves {
            set_path(&mut obj, &path, value);
            owners.insert(path, manager.to_string());
        }
        if t.namespaced {
            set_path(
                &mut obj,
                &fp(&["metadata", "namespace"]),
                Value::String(key.2.clone()),
            );
        }
        let before = existing.as_ref().map(|s| s.obj.clone());
        let unchanged = before
            .as_ref()
            .is_some_and(|b| strip_server_fields(b) == strip_server_fields(&obj));
        if unchanged {
            let stored = existing.unwrap_or_else(unreachable_stored);
            let mut s = stored;
            s.owners = owners;
            let out = s.obj.clone();
            self.objects.insert(key, s);
            return ApplyResult::Updated(out);
        }
        self.mutations += 1;
        let rv = self.next_rv();
        set_path(
            &mut obj,
            &fp(&["metadata", "resourceVersion"]),
            Value::String(rv),
        );
        let spec_changed = before
            .as_ref()
            .is_none_or(|b| b.get("spec") != obj.get("spec"));
        let generation = before
            .as_ref()
            .and_then(|b| b.pointer("/metadata/generation").and_then(Value::as_i64))
            .unwrap_or(0)
            + i64::from(spec_changed);
        set_path(
            &mut obj,
            &fp(&["metadata", "generation"]),
            json!(generation.max(1)),
        );
        if created {
            self.uid_counter += 1;
            set_path(
                &mut obj,
                &fp(&["metadata", "uid"]),
                json!(format!("00000000-0000-4000-8000-{:012}", self.uid_counter)),
            );
            set_path(
                &mut obj,
                &fp(&["metadata", "creationTimestamp"]),
                json!("2026-01-01T00:00:00Z"),
            );
        }
        if t.kind == "CustomResourceDefinition" && created {
            set_path(
                &mut obj,
                &fp(&["status"]),
                json!({"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "False", "reason": "Installing", "message": "the initial names have been accepted"}]}),
            );
        }
        let reads = if spec_changed {
            0
        } else {
            existing.as_ref().map(|s| s.reads).unwrap_or(0)
        };
        self.objects.insert(
            key,
            Stored {
                obj: obj.clone(),
                owners,
                reads,
            },
        );
        if created {
            ApplyResult::Created(obj)
        } else {
            ApplyResult::Updated(obj)
        }
    }

    /// Insert an object as another actor (seeding the cluster), owning every field as `manager`.
    pub fn seed(&mut self, t: &ResourceType, obj: Value, manager: &str) {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut l = BTreeMap::new();
        leaves(&obj, "", &mut l);
        let owners = l.into_keys().map(|p| (p, manager.to_string())).collect();
        let mut obj = obj;
        let rv = self.next_rv();
        set_path(
            &mut obj,
            &fp(&["metadata", "resourceVersion"]),
            Value::String(rv),
        );
        if obj.pointer("/metadata/generation").is_none() {
            set_path(&mut obj, &fp(&["metadata", "generation"]), json!(1));
        }
        self.objects.insert(
            (t.group.clone(), t.plural.clone(), ns, name),
            Stored {
                obj,
                owners,
                reads: 0,
            },
        );
    }

    /// A read of one object: the "controllers" progress first.
    pub fn read(&mut self, key: &Key) -> Option<Value> {
        let kind = self
            .objects
            .get(key)?
            .obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rollout = self
            .rollouts
            .get(&(kind.clone(), key.2.clone(), key.3.clone()))
            .copied()
            .unwrap_or(self.default_rollout);
        let node_count = self.node_count;
        let establish = self.crd_establish_reads;
        let rejected = self.crd_names_rejected.contains(&key.3);
        let mut register: Option<ResourceType> = None;
        let mut bump = false;
        {
            let s = self.objects.get_mut(key)?;
            s.reads += 1;
            let reads = s.reads;
            let gen = s
                .obj
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let new_status = match kind.as_str() {
                "Deployment" | "StatefulSet" | "DaemonSet" => Some(workload_status(
                    &kind, &s.obj, gen, reads, rollout, node_count,
                )),
                "CustomResourceDefinition" if rejected => Some(json!({"conditions": [
                    {"type": "NamesAccepted", "status": "False", "reason": "KindConflict", "message": "kind is already in use by another CRD"},
                    {"type": "Established", "status": "False", "reason": "NotAccepted", "message": "not all names are accepted"}]})),
                "CustomResourceDefinition" if reads >= establish => {
                    let o = &s.obj;
                    let group = o
                        .pointer("/spec/group")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let kind_ = o
                        .pointer("/spec/names/kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let plural = o
                        .pointer("/spec/names/plural")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let namespaced =
                        o.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
                    if let Some(v) = o
                        .pointer("/spec/versions")
                        .and_then(Value::as_array)
                        .and_then(|a| a.iter().find(|v| v.get("served") == Some(&json!(true))))
                    {
                        let version = v
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        register = Some(ResourceType {
                            group,
                            version,
                            kind: kind_,
                            plural,
                            namespaced,
                        });
                    }
                    Some(json!({"conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}],
                        "acceptedNames": s.obj.pointer("/spec/names").cloned().unwrap_or(json!({}))}))
                }
                _ => None,
            };
            if let Some(st) = new_status {
                if s.obj.get("status") != Some(&st) {
                    s.obj.as_object_mut().map(|o| o.insert("status".into(), st));
                    bump = true;
                }
            }
        }
        if bump {
            let rv = self.next_rv();
            if let Some(s) = self.objects.get_mut(key) {
                set_path(
                    &mut s.obj,
                    &fp(&["metadata", "resourceVersion"]),
                    Value::String(rv),
                );
            }
        }
        if let Some(t) = register {
            if !self.types.contains(&t) {
                self.types.push(t);
            }
        }
        self.objects.get(key).map(|s| s.obj.clone())
    }
}

fn unreachable_stored() -> Stored {
    Stored {
        obj: Value::Null,
        owners: BTreeMap::new(),
        reads: 0,
    }
}

/// The object without fields the server maintains (for change detection).
fn strip_server_fields(v: &Value) -> Value {
    let mut v = v.clone();
    for p in [
        fp(&["metadata", "resourceVersion"]),
        fp(&["metadata", "generation"]),
        fp(&["metadata", "uid"]),
        fp(&["metadata", "creationTimestamp"]),
        fp(&["status"]),
    ] {
        remove_path(&mut v, &p);
    }
    v
}

fn workload_status(
    kind: &str,
    obj: &Value,
    gen: i64,
    reads: u32,
    rollout: Rollout,
    nodes: i32,
) -> Value {
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1) as i32;
    let ready = matches!(rollout, Rollout::ReadyAfterReads(n) if reads >= n);
    match kind {
        "DaemonSet" => {
            let n = if ready { nodes } else { 0 };
            json!({"observedGeneration": gen, "desiredNumberScheduled": nodes, "currentNumberScheduled": nodes,
                   "numberReady": n, "updatedNumberScheduled": nodes, "numberAvailable": n,
                   "numberUnavailable": nodes - n, "numberMisscheduled": 0})
        }
        "StatefulSet" => {
            let n = if ready { replicas } else { 0 };
            json!({"observedGeneration": gen, "replicas": replicas, "readyReplicas": n, "currentReplicas": replicas,
                   "updatedReplicas": replicas, "availableReplicas": n,
                   "currentRevision": format!("{}-1", obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")),
                   "updateRevision": format!("{}-1", obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""))})
        }
        _ => {
            if ready {
                json!({"observedGeneration": gen, "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                       "availableReplicas": replicas, "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed."}]})
            } else {
                json!({"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas, "unavailableReplicas": replicas,
                       "conditions": [
                    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out progressing."}]})
            }
        }
    }
}
