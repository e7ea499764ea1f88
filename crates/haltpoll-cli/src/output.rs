//! Writing reports: human units, stdout that tolerates a closed pipe (`| head`), and the JSON
//! and CSV every command writes the same way.

use std::io::{self, BufWriter, Write};

use serde::Serialize;

/// The version of the shape of every `--json` document, written as its top-level
/// `schema_version` (the shapes are in docs/json.md). Renaming or removing a field, or changing
/// its type, unit or meaning, raises it; adding a field does not.
pub const SCHEMA_VERSION: u32 = 1;

/// A JSON document with `schema_version` in front of its own fields.
#[derive(Serialize)]
struct Versioned<'a, T: ?Sized> {
    schema_version: u32,
    #[serde(flatten)]
    doc: &'a T,
}

/// Writes `doc` (a struct or a map) as one pretty-printed JSON document carrying
/// `schema_version`, and a newline.
pub fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, doc: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &Versioned { schema_version: SCHEMA_VERSION, doc })?;
    writeln!(out)
}

/// Writes `doc` (a struct or a map) as one line of JSON Lines carrying `schema_version`: each
/// line of a stream is a document of its own.
pub fn write_json_line<T: Serialize + ?Sized>(out: &mut dyn Write, doc: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Versioned { schema_version: SCHEMA_VERSION, doc })?;
    writeln!(out)
}

/// Writes `rows` as CSV with a header line taken from the first row's field names. Fields are
/// quoted where they need it (a comma, a quote, a line break); `None` is an empty field.
pub fn write_csv<T: Serialize>(out: &mut dyn Write, rows: impl IntoIterator<Item = T>) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    for row in rows {
        csv.serialize(row).map_err(csv_error)?;
    }
    csv.flush()
}

/// A CSV error as an I/O error of the same kind (a closed pipe stays a closed pipe).
fn csv_error(e: csv::Error) -> io::Error {
    let kind = match e.kind() {
        csv::ErrorKind::Io(io) => io.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, e)
}

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

/// The most characters of a file's or a person's text an error message quotes.
pub const QUOTE_CHARS: usize = 80;

/// `text` quoted for a message, cut to its first [`QUOTE_CHARS`] characters (with its length)
/// when longer: a line of a trace or a file in sysfs can be megabytes long.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes in all)", &text[..cut], text.len()),
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
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "é".repeat(100);
        assert_eq!(quote(&long), format!("{:?}... (200 bytes in all)", "é".repeat(80)));
    }

    #[derive(Serialize)]
    struct Doc {
        name: &'static str,
        values: Vec<u32>,
    }

    #[test]
    fn json_carries_the_schema_version_first() {
        let doc = Doc { name: "x", values: vec![1, 2] };
        let mut line = Vec::new();
        write_json_line(&mut line, &doc).unwrap();
        assert_eq!(String::from_utf8(line).unwrap(), "{\"schema_version\":1,\"name\":\"x\",\"values\":[1,2]}\n");
        let mut pretty = Vec::new();
        write_json(&mut pretty, &serde_json::json!({ "a": { "b": 2 } })).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
        assert_eq!(parsed, serde_json::json!({ "schema_version": SCHEMA_VERSION, "a": { "b": 2 } }));
        assert!(pretty.ends_with(b"}\n"));
    }

    #[derive(Serialize)]
    struct Row {
        variant: &'static str,
        value: Option<f64>,
        note: &'static str,
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let rows = [
            Row { variant: "busy", value: Some(0.5), note: "driver refused: no REALTIME hint, halts at once" },
            Row { variant: "say \"hi\"", value: None, note: "two\nlines" },
        ];
        let mut out = Vec::new();
        write_csv(&mut out, rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "variant,value,note\n\
             busy,0.5,\"driver refused: no REALTIME hint, halts at once\"\n\
             \"say \"\"hi\"\"\",,\"two\nlines\"\n"
        );
        // And a CSV reader gets the fields back whole.
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&records[0][2], "driver refused: no REALTIME hint, halts at once");
        assert_eq!((&records[1][0], &records[1][1], &records[1][2]), ("say \"hi\"", "", "two\nlines"));
    }
}
