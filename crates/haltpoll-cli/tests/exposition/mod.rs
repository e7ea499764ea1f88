//! The text exposition format read back by an independent parser (prometheus-parse), and
//! Prometheus's naming conventions checked.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;

use prometheus_parse::{Scrape, Value};

/// Parses the exposition text, failing on anything the parser rejects.
pub fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid text exposition format")
}

/// The value of the one sample of `name` with `labels`.
pub fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{name}: not a counter or gauge"),
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {} samples", found.len());
    found.first().copied()
}

/// Prometheus's naming conventions: counters end in `_total`, every metric has HELP and TYPE,
/// times are in seconds.
pub fn conventions(text: &str) {
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
            assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP");
            assert!(name.starts_with("haltpoll_"), "{name}: one prefix for every metric");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
            let words: Vec<&str> = name.split('_').collect();
            assert!(
                !["us", "ns", "ms", "microseconds", "milliseconds"].iter().any(|u| words.contains(u)),
                "{name}: base units"
            );
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(types.contains_key(name), "{name} has no TYPE line before it");
        }
    }
    assert!(types.len() >= 10, "{types:?}");
}
