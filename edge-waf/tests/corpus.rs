//! Replays the storefront corpus (in the repo) and the CRS regression corpus
//! (from `../shared`, skipped with a notice when absent) through the WAF at
//! the default configuration.

#[path = "../src/corpus.rs"]
#[allow(dead_code)]
mod corpus;

use std::path::PathBuf;

use edge_waf::{Waf, WafConfig};

/// `../shared/<sub>` (same logic as `shopedge_tests::shared_data::shared_dir`).
fn shared_dir(sub: &str, what: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("SHOPEDGE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("..").join("shared"))
        .join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("notice: skipping {what}: {} not found (../shared is only present in the project's workplace)", dir.display());
        None
    }
}

#[test]
fn storefront_corpus_is_never_blocked() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/storefront");
    let (reqs, problems) = corpus::load(&dir).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        reqs.len() >= 60,
        "storefront corpus has {} requests",
        reqs.len()
    );
    assert!(reqs.iter().all(|r| r.kind == corpus::Kind::Benign));
    let waf = Waf::new(WafConfig::default()).unwrap();
    let report = corpus::replay(&waf, &reqs);
    println!("{}", corpus::render("storefront", &report));
    assert!(
        report.false_positives.is_empty(),
        "blocked storefront requests: {:#?}",
        report.false_positives
    );
}

fn crs_report() -> Option<corpus::Report> {
    let dir = shared_dir("waf-corpus/crs-regression", "CRS regression corpus replay")?;
    let (reqs, _problems) = corpus::load(&dir).unwrap();
    assert!(reqs.len() > 4000, "corpus has {} requests", reqs.len());
    let waf = Waf::new(WafConfig::default()).unwrap();
    let report = corpus::replay(&waf, &reqs);
    println!("{}", corpus::render("crs-regression", &report));
    Some(report)
}

/// Floors at the measured detection quality, so regressions fail.
#[test]
fn crs_corpus_detection_does_not_regress() {
    let Some(report) = crs_report() else { return };
    let app = corpus::subtotal(&report, &["REQUEST-93", "REQUEST-94"]);
    let tp = app.tp_rate().unwrap();
    let fp = app.fp_rate().unwrap();
    println!("93x+94x: TP {tp:.1}% FP {fp:.1}%");
    assert!(tp >= TP_FLOOR, "TP {tp:.1}% fell below {TP_FLOOR}%");
    assert!(fp <= FP_CEILING, "FP {fp:.1}% rose above {FP_CEILING}%");
}

// Measured: TP 90.27 % (3274 of 3627), FP 9.66 % (70 of 725) (93x + 94x).
const TP_FLOOR: f64 = 90.2;
const FP_CEILING: f64 = 9.8;

/// The targets: >= 90 % of 93x/94x attacks blocked, <= 1 % of the
/// corpus's benign fixtures blocked.
#[test]
#[ignore = "targets not met yet: see edge-waf/README.md for the measured rates"]
fn crs_corpus_meets_targets() {
    let Some(report) = crs_report() else { return };
    let app = corpus::subtotal(&report, &["REQUEST-93", "REQUEST-94"]);
    let mut all = corpus::Counts::default();
    for c in report.groups.values() {
        all.add(c);
    }
    assert!(app.tp_rate().unwrap() >= 90.0);
    assert!(all.fp_rate().unwrap() <= 1.0);
}

/// The plain-value fast path (skip normalisation when no rule can match a
/// plain token) must not change any decision: every request of both corpora
/// gets the same decision, score and matched rules with and without it.
#[test]
fn fast_path_changes_no_decision() {
    let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/storefront")];
    dirs.extend(shared_dir(
        "waf-corpus/crs-regression",
        "fast-path equivalence on the CRS corpus",
    ));
    let fast = Waf::new(WafConfig::default()).unwrap();
    let slow = Waf::new(WafConfig::default()).unwrap().without_fast_path();
    let mut compared = 0;
    for dir in dirs {
        let (reqs, _) = corpus::load(&dir).unwrap();
        for r in &reqs {
            let view = r.view();
            assert_eq!(
                fast.inspect(&view),
                slow.inspect(&view),
                "{}#{}",
                r.file,
                r.test_id
            );
            compared += 1;
        }
    }
    assert!(compared >= 90);
}
