//! Checks recorded exchanges against Hetzner's published OpenAPI description
//! (`../shared/hcloud-openapi/hcloud.json`): path and method exist, query
//! parameters are documented, request bodies match the request schema (strictly:
//! undocumented fields are errors), responses match the schema of their status.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::Exchange;

pub struct OpenApi {
    doc: Value,
    lax: Value,
    strict: Value,
    cache: Mutex<HashMap<(bool, String), std::sync::Arc<jsonschema::Validator>>>,
}

/// OpenAPI 3.0 `nullable` to JSON Schema; optionally forbid undocumented properties.
fn convert(v: &Value, strict: bool, in_composition: bool) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let child_in_comp = matches!(k.as_str(), "allOf" | "anyOf" | "oneOf");
                let c = if child_in_comp {
                    match val {
                        Value::Array(items) => {
                            Value::Array(items.iter().map(|i| convert(i, strict, true)).collect())
                        }
                        other => convert(other, strict, true),
                    }
                } else if k == "properties" {
                    // property names are not schemas themselves; their values are
                    match val {
                        Value::Object(props) => Value::Object(
                            props
                                .iter()
                                .map(|(pk, pv)| (pk.clone(), convert(pv, strict, false)))
                                .collect(),
                        ),
                        other => other.clone(),
                    }
                } else if k == "example" || k == "examples" || k == "description" {
                    continue;
                } else {
                    convert(val, strict, false)
                };
                out.insert(k.clone(), c);
            }
            if strict
                && !in_composition
                && out.contains_key("properties")
                && !out.contains_key("additionalProperties")
                && !out.contains_key("allOf")
                && !out.contains_key("anyOf")
                && !out.contains_key("oneOf")
            {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            if out.get("nullable") == Some(&Value::Bool(true)) {
                out.remove("nullable");
                if let Some(Value::Array(e)) = out.get_mut("enum") {
                    e.push(Value::Null);
                }
                match out.get("type").cloned() {
                    Some(Value::String(t)) => {
                        out.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        return json!({ "anyOf": [Value::Object(out), { "type": "null" }] });
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| convert(x, strict, false)).collect()),
        other => other.clone(),
    }
}

impl OpenApi {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let comps = doc.get("components").cloned().unwrap_or_default();
        Ok(Self {
            lax: convert(&comps, false, false),
            strict: convert(&comps, true, false),
            doc,
            cache: Mutex::default(),
        })
    }

    /// Finds the path template matching a concrete path (without `/v1`).
    fn template(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = self.doc.get("paths")?.as_object()?;
        let mut best: Option<(usize, String)> = None;
        for t in paths.keys() {
            let tp: Vec<&str> = t.trim_matches('/').split('/').collect();
            if tp.len() != parts.len() {
                continue;
            }
            let mut literal = 0;
            let ok = tp.iter().zip(&parts).all(|(a, b)| {
                if a.starts_with('{') {
                    b.parse::<u64>().is_ok()
                } else {
                    literal += 1;
                    a == b
                }
            });
            if ok && best.as_ref().is_none_or(|(l, _)| literal > *l) {
                best = Some((literal, t.clone()));
            }
        }
        best.map(|(_, t)| t)
    }

    fn validator(
        &self,
        strict: bool,
        schema: &Value,
    ) -> anyhow::Result<std::sync::Arc<jsonschema::Validator>> {
        let key = (strict, schema.to_string());
        if let Some(v) = self.cache.lock().unwrap().get(&key) {
            return Ok(v.clone());
        }
        let comps = if strict { &self.strict } else { &self.lax };
        let mut root = convert(schema, strict, false);
        if let Value::Object(m) = &mut root {
            let inner = Value::Object(std::mem::take(m));
            m.insert("allOf".into(), json!([inner]));
            m.insert("components".into(), comps.clone());
        }
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&root)
            .map_err(|e| anyhow::anyhow!("schema does not compile: {e}"))?;
        let v = std::sync::Arc::new(v);
        self.cache.lock().unwrap().insert(key, v.clone());
        Ok(v)
    }

    fn check(&self, strict: bool, schema: &Value, body: &Value, what: &str) -> Vec<String> {
        match self.validator(strict, schema) {
            Err(e) => vec![format!("{what}: {e}")],
            Ok(v) => v
                .iter_errors(body)
                .map(|e| format!("{what}: {} at {}", e, e.instance_path))
                .take(5)
                .collect(),
        }
    }

    /// Problems with one exchange (empty when it conforms).
    pub fn validate(&self, x: &Exchange) -> Vec<String> {
        let mut problems = Vec::new();
        let path = x.path.strip_prefix("/v1").unwrap_or(&x.path);
        let what = format!("{} {}", x.method, path);
        let Some(t) = self.template(path) else {
            return vec![format!("{what}: path not in the API description")];
        };
        let method = x.method.to_lowercase();
        let Some(op) = self.doc.pointer(&format!(
            "/paths/{}/{}",
            t.replace('~', "~0").replace('/', "~1"),
            method
        )) else {
            return vec![format!("{what}: method not allowed on {t}")];
        };
        // Query parameters.
        let params: Vec<&str> = op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for (k, _) in &x.query {
            if !params.contains(&k.as_str()) {
                problems.push(format!("{what}: undocumented query parameter {k:?}"));
            }
        }
        // Request body.
        let req_schema = op.pointer("/requestBody/content/application~1json/schema");
        match (&x.request, req_schema) {
            (Some(body), Some(schema)) => {
                problems.extend(self.check(true, schema, body, &format!("{what} request")))
            }
            (Some(_), None) => problems.push(format!("{what}: sends a body the API does not take")),
            (None, Some(_)) if op.pointer("/requestBody/required") == Some(&Value::Bool(true)) => {
                problems.push(format!("{what}: required request body missing"))
            }
            _ => {}
        }
        // Response.
        let status = x.status.to_string();
        let responses = &op["responses"];
        let resp = if responses.get(&status).is_some() {
            &responses[&status]
        } else if x.status >= 400 && x.status < 500 && responses.get("4xx").is_some() {
            &responses["4xx"]
        } else if x.status >= 500 && responses.get("5xx").is_some() {
            &responses["5xx"]
        } else {
            problems.push(format!("{what}: undocumented status {status}"));
            return problems;
        };
        let schema = resp.pointer("/content/application~1json/schema");
        match (schema, &x.response) {
            (Some(s), Some(body)) => {
                problems.extend(self.check(false, s, body, &format!("{what} response {status}")))
            }
            (Some(_), None) if x.status != 204 => {
                problems.push(format!("{what}: response {status} has no JSON body"))
            }
            (None, Some(b)) if !b.is_null() => {
                problems.push(format!("{what}: response {status} should have no body"))
            }
            _ => {}
        }
        problems
    }
}
