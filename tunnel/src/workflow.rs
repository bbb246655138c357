//! A structural check of GitHub Actions workflows (the subset of the
//! workflow syntax this repo uses), run by `cargo test` because actionlint
//! cannot be installed from the package registries reachable here.
//!
//! Checks: known keys at every level we use, `on` triggers, every job has
//! `runs-on` and non-empty `steps`, each step has exactly one of `uses` /
//! `run`, actions are pinned to a ref, `needs` names existing jobs, `${{ }}`
//! expressions are closed, secrets are referenced only through `env:` (never
//! spliced into a `run:` script) and only in jobs limited to pushes to main.

use std::collections::BTreeSet;

use serde_yaml::Value;

const TOP: &[&str] = &[
    "name",
    "run-name",
    "on",
    "permissions",
    "env",
    "defaults",
    "concurrency",
    "jobs",
];
const TRIGGERS: &[&str] = &[
    "push",
    "pull_request",
    "workflow_dispatch",
    "schedule",
    "merge_group",
];
const TRIGGER_FILTERS: &[&str] = &[
    "branches",
    "branches-ignore",
    "tags",
    "tags-ignore",
    "paths",
    "paths-ignore",
    "types",
];
const JOB: &[&str] = &[
    "name",
    "needs",
    "if",
    "runs-on",
    "permissions",
    "environment",
    "concurrency",
    "outputs",
    "env",
    "defaults",
    "steps",
    "timeout-minutes",
    "strategy",
    "continue-on-error",
    "services",
];
const STEP: &[&str] = &[
    "id",
    "if",
    "name",
    "uses",
    "run",
    "shell",
    "with",
    "env",
    "working-directory",
    "continue-on-error",
    "timeout-minutes",
];
const PERMISSION_SCOPES: &[&str] = &[
    "actions",
    "checks",
    "contents",
    "deployments",
    "id-token",
    "issues",
    "packages",
    "pages",
    "pull-requests",
    "statuses",
];

fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| {
            m.keys()
                .map(|k| {
                    k.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| format!("{k:?}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn unknown(v: &Value, allowed: &[&str], at: &str, out: &mut Vec<String>) {
    for k in keys(v) {
        if !allowed.contains(&k.as_str()) {
            out.push(format!(
                "{at}: unknown key {k:?} (allowed: {})",
                allowed.join(", ")
            ));
        }
    }
}

fn scan_expressions(s: &str, at: &str, out: &mut Vec<String>) {
    let mut rest = s;
    while let Some(i) = rest.find("${{") {
        match rest[i..].find("}}") {
            Some(j) => rest = &rest[i + j + 2..],
            None => {
                out.push(format!("{at}: unclosed ${{{{ expression"));
                return;
            }
        }
    }
}

fn walk_strings(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::String(s) => scan_expressions(s, at, out),
        Value::Sequence(seq) => seq.iter().for_each(|x| walk_strings(x, at, out)),
        Value::Mapping(m) => m.values().for_each(|x| walk_strings(x, at, out)),
        _ => {}
    }
}

fn uses_secrets(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("secrets."),
        Value::Sequence(seq) => seq.iter().any(uses_secrets),
        Value::Mapping(m) => m.values().any(uses_secrets),
        _ => false,
    }
}

/// Checks one workflow's text; returns the problems found (empty = valid).
pub fn check_workflow(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("not valid YAML: {e}")],
    };
    if !doc.is_mapping() {
        return vec!["a workflow must be a mapping".into()];
    }
    unknown(&doc, TOP, "workflow", &mut out);
    walk_strings(&doc, "workflow", &mut out);
    match doc.get("on") {
        None => out.push("workflow: missing `on`".into()),
        Some(on) => {
            if on.is_mapping() {
                unknown(on, TRIGGERS, "on", &mut out);
                for t in keys(on) {
                    if let Some(f) = on.get(t.as_str()).filter(|f| f.is_mapping()) {
                        unknown(f, TRIGGER_FILTERS, &format!("on.{t}"), &mut out);
                    }
                }
            } else if let Some(s) = on.as_str() {
                if !TRIGGERS.contains(&s) {
                    out.push(format!("on: unknown trigger {s:?}"));
                }
            }
        }
    }
    if let Some(p) = doc.get("permissions").filter(|p| p.is_mapping()) {
        unknown(p, PERMISSION_SCOPES, "permissions", &mut out);
    }
    let Some(jobs) = doc.get("jobs").and_then(|j| j.as_mapping()) else {
        out.push("workflow: missing `jobs`".into());
        return out;
    };
    if jobs.is_empty() {
        out.push("jobs: empty".into());
    }
    let job_ids: BTreeSet<String> = jobs
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    for (id, job) in jobs {
        let id = id.as_str().unwrap_or("?");
        let at = format!("jobs.{id}");
        unknown(job, JOB, &at, &mut out);
        if job.get("runs-on").is_none() {
            out.push(format!("{at}: missing `runs-on`"));
        }
        if let Some(needs) = job.get("needs") {
            let list: Vec<&str> = match needs {
                Value::String(s) => vec![s.as_str()],
                Value::Sequence(s) => s.iter().filter_map(|x| x.as_str()).collect(),
                _ => {
                    out.push(format!("{at}.needs: must be a job id or a list"));
                    vec![]
                }
            };
            for n in list {
                if !job_ids.contains(n) || n == id {
                    out.push(format!("{at}.needs: no job {n:?} to depend on"));
                }
            }
        }
        if uses_secrets(job) {
            let cond = job.get("if").and_then(|c| c.as_str()).unwrap_or("");
            if !(cond.contains("refs/heads/main") && cond.contains("push")) {
                out.push(format!(
                    "{at}: uses secrets but is not limited to pushes to main (add `if: github.event_name == 'push' && github.ref == 'refs/heads/main'`)"
                ));
            }
        }
        let steps = job.get("steps").and_then(|s| s.as_sequence());
        match steps {
            None => out.push(format!("{at}: missing `steps`")),
            Some(s) if s.is_empty() => out.push(format!("{at}: empty `steps`")),
            Some(steps) => {
                for (i, step) in steps.iter().enumerate() {
                    let sat = format!("{at}.steps[{i}]");
                    unknown(step, STEP, &sat, &mut out);
                    let uses = step.get("uses").and_then(|u| u.as_str());
                    let run = step.get("run").and_then(|u| u.as_str());
                    match (uses, run) {
                        (Some(_), Some(_)) => out.push(format!("{sat}: has both `uses` and `run`")),
                        (None, None) => out.push(format!("{sat}: needs `uses` or `run`")),
                        (Some(u), None) => {
                            let pinned = u
                                .split_once('@')
                                .is_some_and(|(repo, r)| !r.is_empty() && repo.contains('/'));
                            if !pinned && !u.starts_with("./") && !u.starts_with("docker://") {
                                out.push(format!(
                                    "{sat}: action {u:?} must be pinned as owner/repo@ref"
                                ));
                            }
                        }
                        (None, Some(r)) => {
                            if r.contains("secrets.") {
                                out.push(format!(
                                    "{sat}: a secret is spliced into the `run` script; pass it through `env:` instead"
                                ));
                            }
                            if step.get("with").is_some() {
                                out.push(format!("{sat}: `with` is only valid with `uses`"));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: ci
on:
  pull_request:
  push:
    branches: [main]
jobs:
  test:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: make test
  deploy:
    needs: test
    if: github.event_name == 'push' && github.ref == 'refs/heads/main'
    runs-on: ubuntu-24.04
    steps:
      - run: echo deploying
        env:
          TOKEN: ${{ secrets.TOKEN }}
"#;

    #[test]
    fn good_workflow_passes() {
        assert_eq!(check_workflow(GOOD), Vec::<String>::new());
    }

    #[test]
    fn mistakes_are_found() {
        let cases = [
            (
                GOOD.replace(
                    "runs-on: ubuntu-24.04\n    steps:\n      - uses",
                    "steps:\n      - uses",
                ),
                "missing `runs-on`",
            ),
            (
                GOOD.replace("actions/checkout@v4", "actions/checkout"),
                "pinned",
            ),
            (
                GOOD.replace("needs: test", "needs: tset"),
                "no job \"tset\"",
            ),
            (
                GOOD.replace("run: echo deploying", "run: echo ${{ secrets.TOKEN }}"),
                "spliced",
            ),
            (
                GOOD.replace(
                    "    if: github.event_name == 'push' && github.ref == 'refs/heads/main'\n",
                    "",
                ),
                "not limited",
            ),
            (
                GOOD.replace(
                    "runs-on: ubuntu-24.04\n    steps:\n      - uses",
                    "runs_on: x\n    runs-on: y\n    steps:\n      - uses",
                ),
                "unknown key \"runs_on\"",
            ),
            (
                GOOD.replace("${{ secrets.TOKEN }}", "${{ secrets.TOKEN"),
                "unclosed",
            ),
            ("jobs: [".to_string(), "not valid YAML"),
        ];
        for (text, want) in cases {
            let problems = check_workflow(&text);
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "want {want:?} in {problems:?}"
            );
        }
    }
}
