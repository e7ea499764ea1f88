//! Writing reports: human units, stdout that tolerates a closed pipe (`| head`), the JSON and
//! CSV every command writes the same way, stderr lines that never end the program, and the
//! files a command writes after its work, checked and created beside their target before it.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::staged_file::{StagedError, StagedFile, kept_note};

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
#[cfg(feature = "bench")]
pub fn write_csv<T: Serialize>(out: &mut dyn Write, rows: impl IntoIterator<Item = T>) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    for row in rows {
        csv.serialize(row).map_err(csv_error)?;
    }
    csv.flush()
}

/// A CSV error as an I/O error of the same kind (a closed pipe stays a closed pipe).
#[cfg(feature = "bench")]
fn csv_error(e: csv::Error) -> io::Error {
    let kind = match e.kind() {
        csv::ErrorKind::Io(io) => io.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, e)
}

/// Runs `f` on a buffered stdout. A closed pipe ends the output quietly, as `head` expects; a
/// write that fails otherwise (a full disk) is named as a write to standard output.
pub fn write_stdout(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(Watched { inner: stdout.lock(), failed: false });
    match f(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) if out.get_ref().failed => Err(anyhow::anyhow!("cannot write to standard output: {e}")),
        other => Ok(other?),
    }
}

/// A writer that remembers whether one of its own writes failed: an error `f` returns may be
/// another of its own (a sysfs read between two reports), which is not a write's.
struct Watched<W> {
    inner: W,
    failed: bool,
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf);
        self.failed |= written.as_ref().is_err_and(|e| e.kind() != io::ErrorKind::Interrupted);
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = self.inner.flush();
        self.failed |= flushed.is_err();
        flushed
    }
}

/// Writes one line to stderr. A stderr that cannot take it (a full disk, `2>/dev/full`) loses
/// the line: a diagnostic is never worth ending the program over, as `eprintln!` would (it
/// panics when the write fails).
pub fn stderr_line(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Prints `haltpoll: note: ...` to stderr.
pub fn note(note: impl fmt::Display) {
    stderr_line(format_args!("haltpoll: note: {note}"));
}

/// Prints what a reader skipped or guessed to stderr, one `note:` line each.
pub fn print_notes(notes: &[String]) {
    notes.iter().for_each(note);
}

/// A file a command writes once its work is done (a plot, a trace). It is checked and created
/// beside its target before the work starts, so that a path that cannot be written fails at
/// once rather than after a long run, and renamed onto the target once written whole
/// ([`StagedFile`]): a failure leaves what the target held as it was. Never standard output
/// (`-`): the command's report goes there.
#[derive(Debug)]
pub struct OutputFile {
    what: &'static str,
    path: PathBuf,
    staged: StagedFile,
}

/// Why an output file cannot be opened or written, in one sentence.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// It cannot be created.
    #[error(
        "cannot write the {what} to {path}: {error}; give a path in a directory that exists and that you may \
         write to"
    )]
    Open {
        /// What it was to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The path is refused as it is (a device, a directory, standard output): a usage error.
    #[error("cannot write the {what}: {reason}")]
    Refused {
        /// What it was to hold.
        what: &'static str,
        /// Why, naming the path.
        reason: String,
    },
    /// Writing it failed (a full disk, say); the target is as it was.
    #[error("cannot write the {what} to {path}: {error}{}", kept_note(path, kept.as_deref()))]
    Write {
        /// What it was to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
        /// Where what was written before the failure is kept, if anything was.
        kept: Option<PathBuf>,
    },
}

impl OutputError {
    /// Whether the path was refused before anything ran: exit code 2.
    pub fn is_usage(&self) -> bool {
        matches!(self, OutputError::Refused { .. })
    }
}

impl OutputFile {
    /// Checks `path` for writing `what` ("plot", "trace") and creates the file beside it that
    /// [`OutputFile::write`] fills; `path` itself is not touched yet.
    pub fn create(path: &Path, what: &'static str) -> Result<OutputFile, OutputError> {
        if path == Path::new("-") {
            let reason = "standard output (-) carries the command's report: give the path of a file".to_owned();
            return Err(OutputError::Refused { what, reason });
        }
        let staged = StagedFile::create(path).map_err(|e| match e {
            StagedError::Create { error, .. } | StagedError::Unwritable { error, .. } => {
                OutputError::Open { what, path: path.to_owned(), error }
            }
            refused => OutputError::Refused { what, reason: refused.to_string() },
        })?;
        Ok(OutputFile { what, path: path.to_owned(), staged })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what `f` writes to the file beside the target and renames it onto the target.
    pub fn write(mut self, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), OutputError> {
        let result = f(self.staged.writer()).and_then(|()| self.staged.finish());
        result.map_err(|error| OutputError::Write { what: self.what, path: self.path, error, kept: self.staged.keep() })
    }
}

pub use haltpoll_linux::units::{count, fmt_ns, percent, percent2};

/// Writes lines of `(label, value)` pairs, each label padded to `width`, after `indent`: the
/// key-value blocks of a report.
pub fn write_fields(out: &mut dyn Write, indent: &str, width: usize, fields: &[(&str, String)]) -> io::Result<()> {
    fields.iter().try_for_each(|(label, value)| writeln!(out, "{indent}{label:<width$}{value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[cfg(feature = "bench")]
    #[derive(Serialize)]
    struct Row {
        variant: &'static str,
        value: Option<f64>,
        note: &'static str,
    }

    #[cfg(feature = "bench")]
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

    #[test]
    fn an_output_file_is_checked_before_and_written_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let file = OutputFile::create(&path, "trace").unwrap();
        assert!(!path.exists(), "nothing at the target before the write");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the file beside it is created before the work");
        file.write(|out| out.write_all(b"new\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");

        std::fs::write(&path, "an older and longer content\n").unwrap();
        drop(OutputFile::create(&path, "trace").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 28, "untouched when nothing is written");
        OutputFile::create(&path, "trace").unwrap().write(|out| out.write_all(b"short\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\n", "the old content is replaced");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing is left beside it");
    }

    #[test]
    fn a_failed_write_leaves_the_target_and_keeps_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("front.svg");
        std::fs::write(&path, "an older picture").unwrap();
        let file = OutputFile::create(&path, "plot").unwrap();
        // A full disk halfway through, as the writer sees it.
        let err = file
            .write(|out| {
                out.write_all(b"<svg")?;
                out.flush()?;
                Err(io::Error::from(io::ErrorKind::StorageFull))
            })
            .unwrap_err();
        let OutputError::Write { kept: Some(kept), .. } = &err else { panic!("{err}") };
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "an older picture");
        assert_eq!(std::fs::read_to_string(kept).unwrap(), "<svg");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write the plot to {}: no storage space; {} is left as it was, and what was written is kept in {}",
                path.display(),
                path.display(),
                kept.display()
            )
        );
        assert!(!err.is_usage());
    }

    #[test]
    fn output_file_errors_are_one_sentence_naming_the_path() {
        let err = OutputFile::create(Path::new("/nonexistent/x.svg"), "plot").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write the plot to /nonexistent/x.svg: No such file or directory (os error 2); give a path in a \
             directory that exists and that you may write to"
        );
        assert!(std::error::Error::source(&err).is_none(), "the cause is said once");
        assert!(!err.is_usage());
    }

    #[test]
    fn devices_directories_and_standard_output_are_refused_as_usage_errors() {
        for path in ["/dev/full", "/dev/null", "/tmp", "-"] {
            let err = OutputFile::create(Path::new(path), "trace").unwrap_err();
            assert!(err.is_usage(), "{path}: {err}");
            assert!(err.to_string().starts_with("cannot write the trace: "), "{err}");
        }
        let err = OutputFile::create(Path::new("/dev/full"), "trace").unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot write the trace: /dev/full is not a regular file (a device, a FIFO or a directory): give the path \
             of a file"
        );
        assert!(Path::new("/dev/full").exists());
    }
}
