//! `make infra-check`: run the checks on `infra/` and print every violation
//! (`--output json` for machines). Exit status 1 when anything fails.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut root = PathBuf::from("infra");
    let mut json = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--output" => json = args.next().as_deref() == Some("json"),
            other => root = PathBuf::from(other),
        }
    }
    let report = platform::checks::check_tree(&root);
    if json {
        let out = serde_json::json!({
            "objects": report.objects,
            "kustomizations": report.kustomizations,
            "violations": report.violations,
        });
        println!("{out}");
    } else {
        for v in &report.violations {
            println!("{v}");
        }
        println!(
            "{} objects, {} kustomizations checked: {} violation(s)",
            report.objects,
            report.kustomizations,
            report.violations.len()
        );
    }
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
