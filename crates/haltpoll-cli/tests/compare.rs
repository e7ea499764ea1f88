//! `haltpoll compare` on a committed trace of the corpus (a tuning trace): the structural claims
//! of docs/predictive.md, which are properties of the deterministic replay, not of timing. At
//! every budget the predictive governor keeps its polling within 1.1x the budget and catches no
//! fewer wakeups than Linux's best setting within the same budget, less a point; the clairvoyant
//! bound keeps its budget exactly.

use std::io::Read;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

#[test]
fn predictive_keeps_its_budget_and_never_trails_linux_on_a_corpus_trace() {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../traces/corpus/pgbench-select-2000.perf.txt.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()).read_to_string(&mut text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("pgbench-select-2000.perf.txt");
    std::fs::write(&trace, text).unwrap();
    let out = Command::cargo_bin("haltpoll")
        .unwrap()
        .args(["compare", "--json", "--budgets", "1%,2%,5%,10%"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let budgets = doc["traces"][0]["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 4);
    for b in budgets {
        let budget = b["budget"].as_f64().unwrap();
        let share = |who: &str, what: &str| b[who][what].as_f64().unwrap();
        assert!(share("predictive", "poll_share") <= 1.1 * budget, "{b}");
        assert!(share("linux_best", "poll_share") <= budget, "{b}");
        assert!(share("clairvoyant", "poll_share") <= budget, "{b}");
        assert!(share("predictive", "no_exit_share") >= share("linux_best", "no_exit_share") - 0.01, "{b}");
    }
    // And it is a comparison worth making: the bound is well above Linux's best at 2%.
    let two = &budgets[1];
    assert!(
        two["clairvoyant"]["no_exit_share"].as_f64().unwrap()
            >= two["linux_best"]["no_exit_share"].as_f64().unwrap() + 0.1
    );
}
