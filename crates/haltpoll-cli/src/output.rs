//! Writing reports: human units, and stdout that tolerates a closed pipe (`| head`).

use std::io::{self, BufWriter, Write};

/// Runs `f` on a buffered stdout. A closed pipe ends the output quietly, as `head` expects.
pub fn write_stdout(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match f(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Prints what a reader skipped or guessed to stderr, one `note:` line each.
pub fn print_notes(notes: &[String]) {
    for note in notes {
        eprintln!("haltpoll: note: {note}");
    }
}

/// A duration in ns with a unit a person reads at a glance: "850 ns", "12.5 us", "3.20 ms", "1.50 s".
pub fn fmt_ns(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", f / 1e6),
        _ => format!("{:.2} s", f / 1e9),
    }
}

/// "1 CPU", "2 CPUs".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// A share as a percentage with one decimal.
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(fmt_ns(0), "0 ns");
        assert_eq!(fmt_ns(999), "999 ns");
        assert_eq!(fmt_ns(12_500), "12.5 us");
        assert_eq!(fmt_ns(3_200_000), "3.20 ms");
        assert_eq!(fmt_ns(1_500_000_000), "1.50 s");
        assert_eq!(percent(0.25), "25.0%");
        assert_eq!(count(1, "CPU"), "1 CPU");
        assert_eq!(count(0, "CPU"), "0 CPUs");
    }
}
