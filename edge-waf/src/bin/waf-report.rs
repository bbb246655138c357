//! `waf-report`: replay YAML corpora (CRS regression-test format) through
//! the WAF and print true- and false-positive rates per group.

#[path = "../corpus.rs"]
mod corpus;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use edge_waf::{Waf, WafConfig};

#[derive(Parser)]
#[command(
    about = "Replay WAF corpora and report blocked attacks (TP) and blocked benign requests (FP)"
)]
struct Args {
    /// Corpus directories (YAML files in CRS regression-test format, searched recursively).
    #[arg(required = true)]
    corpus: Vec<PathBuf>,
    /// Paranoia level (1-4).
    #[arg(long, default_value_t = 1)]
    paranoia: u8,
    /// Anomaly threshold.
    #[arg(long, default_value_t = 5)]
    threshold: u32,
    /// Also list the blocked benign and the missed attack requests.
    #[arg(long)]
    verbose: bool,
    /// Write one JSON line per replayed request (rules, scores, locations)
    /// to this file; with several corpora, each corpus appends its lines.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = WafConfig {
        paranoia: args.paranoia,
        threshold: args.threshold,
        ..WafConfig::default()
    };
    let waf = match Waf::new(cfg) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.jsonl {
        if let Err(e) = std::fs::write(path, "") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    for dir in &args.corpus {
        let (reqs, problems) = match corpus::load(dir) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e} (pass a directory containing *.yaml test files)");
                return ExitCode::from(2);
            }
        };
        for p in &problems {
            eprintln!("warning: skipped {p}");
        }
        let report = corpus::replay(&waf, &reqs);
        print!(
            "{}",
            corpus::render(
                &format!(
                    "{} ({} requests, paranoia {}, threshold {})",
                    dir.display(),
                    reqs.len(),
                    args.paranoia,
                    args.threshold
                ),
                &report
            )
        );
        if let Some(path) = &args.jsonl {
            use std::io::Write as _;
            let written = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(corpus::outcomes_jsonl(&report).as_bytes()));
            if let Err(e) = written {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        if args.verbose {
            for fp in &report.false_positives {
                println!("FP {fp}");
            }
            for fnn in &report.false_negatives {
                println!("FN {fnn}");
            }
        }
        println!();
    }
    println!(
        "TP: attacks (expect_ids) blocked. FP: benign fixtures (only no_expect_ids) blocked, \
         over all benign fixtures. twins: benign fixtures identical (method, URI, headers, body) \
         to an attack fixture of the same corpus; FP-twins: FP over the benign fixtures without a twin."
    );
    ExitCode::SUCCESS
}
