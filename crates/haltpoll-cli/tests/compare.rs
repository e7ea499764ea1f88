//! `haltpoll compare` on a committed trace of the corpus (a tuning trace): the structural claims
//! of docs/predictive.md, which are properties of the deterministic replay, not of timing. At
//! every budget the predictive governor keeps its polling within 1.1x the budget and catches no
//! fewer wakeups than Linux's best setting within the same budget, less a point; the clairvoyant
//! bound keeps its budget exactly. `--frontier` on small traces: each point held to the right
//! Linux setting, and `--check`'s exit status.

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

fn haltpoll(args: &[&str], dir: &Path) -> std::process::Output {
    Command::cargo_bin("haltpoll").unwrap().current_dir(dir).args(args).output().unwrap()
}

/// `--frontier --json` on a perf trace: both planes, timer-first on and off at every budget, and
/// each point held to Linux's best within the larger of its budget and its own x, with the
/// verdict the half-point rule gives.
#[test]
fn the_frontier_holds_each_point_to_linux_within_its_x() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = haltpoll(
        &["compare", "--frontier", "--json", "--budgets", "1%,5%,50%", "examples/traces/perf-idle.txt"],
        &repo,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let planes = doc["traces"][0]["planes"].as_array().unwrap();
    let costs: Vec<u64> = planes.iter().map(|p| p["halt_cost_ns"].as_u64().unwrap()).collect();
    assert_eq!(costs, [0, 50_000], "all polling, then net of the default 50 us per catch");
    for plane in planes {
        let points = plane["points"].as_array().unwrap();
        let modes: Vec<(f64, bool)> =
            points.iter().map(|p| (p["budget"].as_f64().unwrap(), p["timer_first"].as_bool().unwrap())).collect();
        assert_eq!(modes, [(0.01, true), (0.01, false), (0.05, true), (0.05, false), (0.5, true), (0.5, false)]);
        let steps = plane["linux_frontier"].as_array().unwrap();
        let xs: Vec<f64> = steps.iter().map(|s| s["x"].as_f64().unwrap()).collect();
        let caught: Vec<f64> = steps.iter().map(|s| s["result"]["no_exit_share"].as_f64().unwrap()).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]) && caught.windows(2).all(|w| w[0] < w[1]), "{xs:?} {caught:?}");
        let mut on = 0;
        for p in points {
            let limit = p["budget"].as_f64().unwrap().max(p["predictive"]["x"].as_f64().unwrap());
            let linux = &p["linux_best"];
            assert!(linux["x"].as_f64().unwrap() <= limit + 1e-9, "{p}");
            // The best step within the limit: the next step (if any) lies beyond it.
            let i = xs.iter().position(|&x| x == linux["x"].as_f64().unwrap()).unwrap();
            assert!(xs.get(i + 1).is_none_or(|&next| next > limit - 1e-9), "{p}");
            let shortfall = p["shortfall"].as_f64().unwrap();
            let expected = linux["result"]["no_exit_share"].as_f64().unwrap()
                - p["predictive"]["result"]["no_exit_share"].as_f64().unwrap();
            assert!((shortfall - expected).abs() < 1e-12, "{p}");
            let verdict = p["verdict"].as_str().unwrap();
            assert_eq!(verdict == "below", shortfall > 0.005 + 1e-12, "{p}");
            on += usize::from(verdict == "on or above");
        }
        assert_eq!(plane["on_or_above"].as_u64().unwrap() as usize, on);
        // Big wins: over the points where the bound catches 10 points more than Linux's best.
        let hits = |p: &Value, who: &str| p[who]["result"]["poll_hits"].as_u64().unwrap();
        let room: Vec<&Value> = points
            .iter()
            .filter(|p| {
                let periods = p["predictive"]["result"]["periods"].as_u64().unwrap();
                hits(p, "clairvoyant").saturating_sub(hits(p, "linux_best")) * 10 >= periods
            })
            .collect();
        let wins = room
            .iter()
            .filter(|p| match hits(p, "linux_best") {
                0 => hits(p, "predictive") > 0,
                l => hits(p, "predictive") as f64 / l as f64 >= 1.5,
            })
            .count();
        assert_eq!(plane["big_wins"]["points"].as_u64().unwrap() as usize, room.len(), "{plane}");
        assert_eq!(plane["big_wins"]["at_ratio"].as_u64().unwrap() as usize, wins, "{plane}");
    }
}

/// `--check`: exit 0 when no point falls short, 1 with each shortfall named otherwise. The
/// traces make the outcome independent of how the predictive governor predicts: nothing can
/// catch a 10 ms period within Linux's or its ceilings, and a 1 us ceiling catches no 30 us one
/// where Linux's defaults catch nearly all.
#[test]
fn check_fails_on_a_shortfall_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("long.txt"), "10000000\n".repeat(100)).unwrap();
    std::fs::write(dir.path().join("steady.txt"), "30000\n".repeat(300)).unwrap();
    let ok = haltpoll(&["compare", "--frontier", "--check", "--budgets", "5%,100%", "long.txt"], dir.path());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let text = String::from_utf8(ok.stdout).unwrap();
    assert_eq!(text.matches("on/above frontier: 4 of 4 points").count(), 2, "{text}");
    let args =
        ["compare", "--frontier", "--check", "--budgets", "100%", "--halt-cost", "20us", "--poll-ceiling", "1000"];
    let short = haltpoll(&[&args[..], &["steady.txt"]].concat(), dir.path());
    assert_eq!(short.status.code(), Some(1));
    let text = String::from_utf8(short.stdout).unwrap();
    assert_eq!(text.matches("on/above frontier: 0 of 2 points").count(), 2, "{text}");
    assert!(text.contains("plane: polling less 20.0 us per catch"), "--halt-cost sets the second plane: {text}");
    let err = String::from_utf8(short.stderr).unwrap();
    assert!(err.contains("4 points short of Linux's frontier"), "{err}");
    for plane in ["all polling", "polling less 20.0 us per catch"] {
        let line = format!("steady.txt: budget 100.00%, timer-first off, plane {plane}: below Linux's frontier");
        assert!(err.contains(&line), "{err}");
    }
    // Without --check the same shortfall is a report, not a failure; --check needs --frontier.
    let report = haltpoll(&[&args[..2], &args[3..], &["steady.txt"]].concat(), dir.path());
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    assert_eq!(haltpoll(&["compare", "--check", "steady.txt"], dir.path()).status.code(), Some(2));
}
