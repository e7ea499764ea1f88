//! The machine-readable outputs as a script reads them: every `--json` document carries
//! `schema_version`, and docs/json.md documents exactly the fields the commands emit, with
//! their JSON types (a field emitted but not documented, documented but never emitted, or of
//! another type fails); the CSV of `bench threads` reads back with a CSV reader.
//!
//! The commands that need KVM (`bench vm`, `vm pingpong`) run where KVM can be used, and are
//! skipped elsewhere unless HALTPOLL_REQUIRE_KVM=1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// The `schema_version` every document must carry (docs/json.md says when it changes).
const SCHEMA_VERSION: u64 = 1;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs haltpoll with `args` from the repository's root; its JSON documents (one, or one per
/// line for JSON Lines).
fn documents(args: &[&str]) -> Vec<Value> {
    let out = Command::cargo_bin("haltpoll").unwrap().current_dir(repo()).args(args).output().unwrap();
    assert!(out.status.success(), "haltpoll {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = match serde_json::from_str(&text) {
        Ok(doc) => vec![doc],
        Err(_) => text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect(),
    };
    assert!(!docs.is_empty(), "haltpoll {}: no JSON", args.join(" "));
    docs
}

/// A JSON type as docs/json.md names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Integer,
    Number,
    String,
    Boolean,
    Object,
    Array,
    Null,
}

impl Kind {
    fn parse(word: &str) -> Option<Kind> {
        Some(match word.trim_end_matches('s') {
            "integer" => Kind::Integer,
            "number" => Kind::Number,
            "string" => Kind::String,
            "boolean" => Kind::Boolean,
            "object" => Kind::Object,
            "array" => Kind::Array,
            "null" => Kind::Null,
            _ => return None,
        })
    }

    fn admits(self, v: &Value) -> bool {
        match self {
            Kind::Integer => v.is_u64() || v.is_i64(),
            Kind::Number => v.is_number(),
            Kind::String => v.is_string(),
            Kind::Boolean => v.is_boolean(),
            Kind::Object => v.is_object(),
            Kind::Array => v.is_array(),
            Kind::Null => v.is_null(),
        }
    }
}

/// The types of a type cell: "integer or null", "array of integers", "object: [shape](#shape)"
/// (the first word of each alternative), and the shapes it links to.
fn parse_type(cell: &str) -> (Vec<Kind>, Vec<String>) {
    let (kinds, detail) = cell.split_once(':').unwrap_or((cell, ""));
    let kinds = kinds
        .split(" or ")
        .map(|alt| {
            let word = alt.split_whitespace().next().unwrap_or("");
            Kind::parse(word).unwrap_or_else(|| panic!("docs/json.md: unknown type {alt:?} in {cell:?}"))
        })
        .collect();
    let shapes = detail.split("](#").skip(1).map(|rest| rest.split(')').next().unwrap().to_owned()).collect();
    (kinds, shapes)
}

/// docs/json.md: the fields of each document (keyed by the command in its heading), with the
/// shared shapes' fields spliced in where a field links to one.
fn documented() -> BTreeMap<String, BTreeMap<String, Vec<Kind>>> {
    let text = std::fs::read_to_string(repo().join("docs/json.md")).unwrap();
    // Rows per heading: (path, type cell).
    let mut by_heading: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ").or_else(|| line.strip_prefix("### ")) {
            by_heading.push((heading.trim().to_owned(), Vec::new()));
        } else if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split(" | ").collect();
            let path = cells[0].trim_end_matches('`').to_owned();
            let (_, rows) = by_heading.last_mut().expect("a table under a heading");
            rows.push((path, cells.get(1).copied().unwrap_or("").trim().to_owned()));
        }
    }
    let slug = |h: &str| -> String {
        h.to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
            .collect::<String>()
            .replace(' ', "-")
    };
    let shapes: BTreeMap<String, Vec<(String, String)>> =
        by_heading.iter().filter(|(h, _)| !h.starts_with('`')).map(|(h, rows)| (slug(h), rows.clone())).collect();
    fn expand(
        prefix: &str,
        rows: &[(String, String)],
        shapes: &BTreeMap<String, Vec<(String, String)>>,
        out: &mut BTreeMap<String, Vec<Kind>>,
    ) {
        for (path, cell) in rows {
            let full = if prefix.is_empty() { path.clone() } else { format!("{prefix}.{path}") };
            let (kinds, linked) = parse_type(cell);
            // An array's shape is that of its objects.
            let inner = if kinds.contains(&Kind::Array) { format!("{full}[]") } else { full.clone() };
            for shape in linked {
                let fields = shapes.get(&shape).unwrap_or_else(|| panic!("docs/json.md: no shape #{shape}"));
                expand(&inner, fields, shapes, out);
            }
            assert!(out.insert(full.clone(), kinds).is_none(), "docs/json.md: {full} documented twice");
        }
    }
    by_heading
        .iter()
        .filter_map(|(h, rows)| {
            let command = h.strip_prefix('`')?.split('`').next()?.to_owned();
            let mut fields = BTreeMap::new();
            expand("", rows, &shapes, &mut fields);
            Some((command, fields))
        })
        .collect()
}

/// Every field of `doc` with its value: `a.b` for an object's field, `a[].b` for a field of
/// the objects in array `a`.
fn fields<'a>(prefix: &str, doc: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match doc {
        Value::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.push((path.clone(), value));
                fields(&path, value, out);
            }
        }
        Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_object()) {
                fields(&format!("{prefix}[]"), item, out);
            }
        }
        _ => {}
    }
}

/// Checks the documents of `command` (its docs/json.md heading) against the documentation:
/// every document carries the schema version; every field is documented, with its type; every
/// documented field appeared in one of the documents.
fn check(command: &str, docs: &[Value]) {
    let documented = documented();
    let Some(known) = documented.get(command) else {
        panic!("docs/json.md has no section `{command}`; it has {:?}", documented.keys().collect::<Vec<_>>())
    };
    let mut seen = BTreeSet::new();
    let mut problems = BTreeSet::new();
    for doc in docs {
        assert_eq!(doc["schema_version"], SCHEMA_VERSION, "{command}: {doc}");
        let mut found = Vec::new();
        fields("", doc, &mut found);
        for (path, value) in found {
            // A map's keys are documented as `map.*`.
            let wildcard = path.rsplit_once('.').map(|(map, _)| format!("{map}.*"));
            let Some((key, kinds)) =
                known.get_key_value(&path).or_else(|| wildcard.as_ref().and_then(|w| known.get_key_value(w)))
            else {
                problems.insert(format!("{path} is emitted but not documented"));
                continue;
            };
            if !kinds.iter().any(|k| k.admits(value)) {
                problems.insert(format!("{path} is documented as {kinds:?} but is {value}"));
            }
            seen.insert(key.clone());
        }
    }
    for path in known.keys().filter(|p| !seen.contains(*p)) {
        problems.insert(format!("{path} is documented but was never emitted"));
    }
    let problems: Vec<String> = problems.into_iter().collect();
    assert!(problems.is_empty(), "docs/json.md, `{command}`:\n  {}", problems.join("\n  "));
}

#[test]
fn every_documented_command_is_checked() {
    let mut checked = vec![
        "haltpoll status --json",
        "haltpoll status --watch SECONDS --json",
        "haltpoll replay --json",
        "haltpoll tune --json",
        "haltpoll compare --json",
        "haltpoll bench threads --json",
    ];
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        checked.extend(["haltpoll bench vm --json", "haltpoll vm pingpong --json"]);
    }
    let documented: Vec<String> = documented().into_keys().collect();
    let mut checked: Vec<String> = checked.into_iter().map(str::to_owned).collect();
    checked.sort();
    assert_eq!(documented, checked, "docs/json.md's sections and the documents this test runs");
}

#[test]
fn status() {
    let dir = tempfile::tempdir().unwrap();
    let trees = ["haltpoll", "polling", "bare", "empty"].map(|name| dir.path().join(name));
    common::haltpoll_guest(&trees[0]);
    common::polling_guest(&trees[1]);
    common::bare_metal(&trees[2]);
    std::fs::create_dir_all(&trees[3]).unwrap();
    let docs: Vec<Value> = trees
        .iter()
        .flat_map(|root| documents(&["status", "--json", "--sysfs-root", root.to_str().unwrap()]))
        .collect();
    check("haltpoll status --json", &docs);
}

#[test]
fn status_watch() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let root = dir.path().to_str().unwrap();
    let docs = documents(&["status", "--watch", "0.01", "--count", "2", "--json", "--sysfs-root", root]);
    assert_eq!(docs.len(), 2, "a line per interval");
    check("haltpoll status --watch SECONDS --json", &docs);
}

#[test]
fn replay() {
    // One CPU (the final window in the summary) and several.
    let mut docs = documents(&["replay", "--json", "examples/traces/mixed.txt"]);
    docs.extend(documents(&["replay", "--json", "examples/traces/perf-idle.txt"]));
    docs.extend(documents(&["replay", "--json", "--governor", "predictive", "examples/traces/perf-idle.txt"]));
    check("haltpoll replay --json", &docs);
}

#[test]
fn tune() {
    // A perf trace (wall time, CPUs) and a text trace (idle time only).
    let mut docs = documents(&["tune", "--json", "examples/traces/perf-idle.txt"]);
    docs.extend(documents(&["tune", "--json", "examples/traces/mixed.txt", "--ceilings", "0,100us"]));
    // Waits of 3 s, then two of 4.2 s: a 3.5 s ceiling (an on/off window) catches the first,
    // so the grid extends to the kernel's largest, which catches the others, and stops there
    // (a grid extension, and an edge).
    let mut long = tempfile::NamedTempFile::new().unwrap();
    let waits = "3000000000\n".repeat(20) + &"4200000000\n".repeat(2);
    std::io::Write::write_all(&mut long, waits.as_bytes()).unwrap();
    let path = long.path().to_str().unwrap();
    let at_the_limit = ["--ceilings", "3500000000", "--grow-starts", "4294967295", "--max-poll-share", "100%"];
    docs.extend(documents(&[&["tune", "--json", path][..], &at_the_limit].concat()));
    assert!(docs.last().unwrap()["edge"].is_object(), "{}", docs.last().unwrap());
    check("haltpoll tune --json", &docs);
}

#[test]
fn compare() {
    // Linux's best catches none at 0% (ratio null), some at 5%; text and perf traces.
    let docs = documents(&[
        "compare",
        "--json",
        "--budgets",
        "0%,5%",
        "examples/traces/perf-idle.txt",
        "examples/traces/mixed.txt",
    ]);
    check("haltpoll compare --json", &docs);
}

/// A quick `bench threads`: two repetitions of three variants without think time.
#[cfg(target_os = "linux")]
fn quick_threads(format: &str) -> Vec<&str> {
    let options = "bench threads --repetitions 2 --min-round-trips 20 --max-round-trips 20 --warmup 5 --think 0";
    options.split_whitespace().chain(["--variants", "spin,haltpoll,std", format]).collect()
}

#[cfg(target_os = "linux")]
#[test]
fn bench_threads() {
    check("haltpoll bench threads --json", &documents(&quick_threads("--json")));
}

#[cfg(target_os = "linux")]
#[test]
fn bench_threads_csv_reads_back() {
    let out = Command::cargo_bin("haltpoll").unwrap().args(quick_threads("--csv")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[..3], ["think_ns", "variant", "repetition"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 6, "3 variants x 2 repetitions");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let std = records.iter().find(|r| &r[column("variant")] == "std").unwrap();
    assert_eq!(&std[column("no_syscall_share")], "", "std cannot tell: an empty field");
    // Each line is one repetition's: 20 round trips, spin's too.
    assert!(records.iter().all(|r| &r[column("wakes")] == "20"), "{records:?}");
    assert!(records.iter().any(|r| &r[column("variant")] == "spin" && &r[column("wake_vs_spin")] == "1.0"));
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod kvm {
    use super::*;
    use haltpoll_vmm::testing::kvm_or_skip;

    #[test]
    fn bench_vm() {
        let Some(_vm) = kvm_or_skip("bench_vm") else { return };
        let mut docs = documents(&[
            "bench",
            "vm",
            "--repetitions",
            "1",
            "--round-trips",
            "60",
            "--warmup",
            "20",
            "--think",
            "0,300us",
            "--variants",
            "busy,guest-haltpoll,no-polling",
            "--json",
        ]);
        // The think trace's fields, and the predictive variant's.
        let traced = ["bench", "vm", "--repetitions", "1", "--round-trips", "40", "--warmup", "10"];
        let variants = ["--variants", "guest-haltpoll,guest-predictive", "--json"];
        docs.extend(documents(&[&traced[..], &variants, &["--think-trace", "examples/traces/mixed.txt"]].concat()));
        check("haltpoll bench vm --json", &docs);
    }

    #[test]
    fn vm_pingpong() {
        let Some(_vm) = kvm_or_skip("vm_pingpong") else { return };
        let docs = documents(&["vm", "pingpong", "--idle", "haltpoll", "-n", "100", "-r", "2", "--json"]);
        check("haltpoll vm pingpong --json", &docs);
    }
}
