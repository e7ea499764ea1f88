//! A file written beside its target and renamed onto it once whole (`record -o`, `--plot`,
//! `--trace`, `man`), so that a failure never truncates, replaces or deletes what the target
//! path held before, and what was written before a failure is kept under a name the message
//! gives.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why the output cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StagedError {
    /// The target exists and is not a regular file: a device, a FIFO, a directory.
    #[error("{0} is not a regular file (a device, a FIFO or a directory): give the path of a file")]
    NotAFile(PathBuf),
    /// The target is the file this process's standard output or error goes to: replacing it
    /// would lose what the shell sends there.
    #[error("{path} is where this command's {stream} goes: give another file")]
    OwnStream {
        /// The target.
        path: PathBuf,
        /// "standard output" or "standard error".
        stream: &'static str,
    },
    /// The target exists and cannot be written (read-only, or a link that cannot be followed).
    #[error("cannot write {target}: {error}")]
    Unwritable {
        /// The target.
        target: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file beside the target cannot be created.
    #[error("cannot create {path} (written there, then renamed onto {target}): {error}")]
    Create {
        /// The file beside the target.
        path: PathBuf,
        /// Where it goes.
        target: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// Writing or renaming failed; the target is as it was.
    #[error("cannot write {target}: {error}{}", kept_note(target, kept.as_deref()))]
    Write {
        /// The target.
        target: PathBuf,
        /// Why.
        error: io::Error,
        /// Where what was written is kept, if anything was.
        kept: Option<PathBuf>,
    },
}

impl StagedError {
    /// Whether the path itself is refused, before anything was tried: a usage error.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StagedError::NotAFile(_) | StagedError::OwnStream { .. })
    }
}

/// What a failure message adds about the target and what was written before the failure.
pub fn kept_note(target: &Path, kept: Option<&Path>) -> String {
    kept.map_or_else(String::new, |kept| {
        format!("; {} is left as it was, and what was written is kept in {}", target.display(), kept.display())
    })
}

/// An output being written: `DIR/NAME.haltpoll-PID.partial` until [`StagedFile::commit`]
/// renames it to `DIR/NAME`.
#[derive(Debug)]
pub struct StagedFile {
    /// The path as given, for messages.
    target: PathBuf,
    /// The file the rename replaces: the target, or the file a link at the target points to
    /// (the link stays a link).
    dest: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl StagedFile {
    /// Creates the file beside `target`; refuses a target that exists and is not a regular
    /// file, or that this process's standard output or error goes to. `target` itself is not
    /// opened.
    pub fn create(target: &Path) -> Result<StagedFile, StagedError> {
        let dest = destination(target)?;
        let name = dest.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let temp = dest.with_file_name(format!("{name}.haltpoll-{}.partial", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|error| StagedError::Create { path: temp.clone(), target: target.to_owned(), error })?;
        Ok(StagedFile { target: target.to_owned(), dest, temp, out: Some(BufWriter::new(file)) })
    }

    /// Where the content goes until it is committed.
    pub fn writer(&mut self) -> &mut dyn Write {
        self.out.as_mut().expect("a staged file is writable until committed or kept")
    }

    /// Flushes the file and renames it onto the target. On a failure the target is as it
    /// was, and what was written is kept (the error names it).
    pub fn commit(mut self) -> Result<(), StagedError> {
        self.finish().map_err(|error| StagedError::Write { target: self.target.clone(), error, kept: self.keep() })
    }

    /// Flushes the file and renames it onto the target; after a failure, [`StagedFile::keep`]
    /// says what is left.
    pub fn finish(&mut self) -> io::Result<()> {
        let out = self.out.take().expect("finished once");
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&self.temp, &self.dest)
    }

    /// After a failure: keeps what was written (its path), or removes the file if it is empty.
    pub fn keep(&mut self) -> Option<PathBuf> {
        if let Some(mut out) = self.out.take() {
            let _ = out.flush();
        }
        let len = fs::metadata(&self.temp).map_or(0, |m| m.len());
        if len == 0 {
            let _ = fs::remove_file(&self.temp);
            return None;
        }
        Some(self.temp.clone())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        // Neither committed nor kept (nothing was written, or a panic): the file is ours, and
        // empty or half-made.
        if self.out.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// The file a commit replaces. A path that does not exist (or cannot be looked at: creating
/// beside it says why) is itself; an existing one must be a regular file that is not this
/// process's stdout or stderr, and a link is followed so that it stays a link.
fn destination(target: &Path) -> Result<PathBuf, StagedError> {
    let Ok(meta) = fs::metadata(target) else { return Ok(target.to_owned()) };
    if !meta.is_file() {
        return Err(StagedError::NotAFile(target.to_owned()));
    }
    let streams =
        [(same_file(io::stdout(), &meta), "standard output"), (same_file(io::stderr(), &meta), "standard error")];
    if let Some((_, stream)) = streams.into_iter().find(|(same, _)| *same) {
        return Err(StagedError::OwnStream { path: target.to_owned(), stream });
    }
    let cannot = |error| StagedError::Unwritable { target: target.to_owned(), error };
    let is_link = fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink());
    let dest = if is_link { fs::canonicalize(target).map_err(cannot)? } else { target.to_owned() };
    // A file the user may not write (read-only) is not replaced behind its back, as a rename
    // in a writable directory would: opening it for writing, without truncating, asks.
    OpenOptions::new().write(true).open(&dest).map_err(cannot)?;
    Ok(dest)
}

/// Whether `fd` is open on the file `meta` describes.
fn same_file(fd: impl AsFd, meta: &fs::Metadata) -> bool {
    let open = fd.as_fd().try_clone_to_owned().and_then(|fd| File::from(fd).metadata());
    open.is_ok_and(|open| (open.dev(), open.ino()) == (meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_the_target_only_when_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("idle.txt");
        fs::write(&target, "precious\n").unwrap();
        let mut staged = StagedFile::create(&target).unwrap();
        staged.writer().write_all(b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n", "untouched while writing");
        staged.commit().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no file is left beside it");
    }

    #[test]
    fn a_failure_keeps_the_target_and_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("idle.txt");
        fs::write(&target, "precious\n").unwrap();
        let mut staged = StagedFile::create(&target).unwrap();
        staged.writer().write_all(b"half").unwrap();
        let kept = staged.keep().unwrap();
        assert_eq!(fs::read_to_string(&kept).unwrap(), "half");
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
        // Nothing written: nothing kept.
        assert_eq!(StagedFile::create(&dir.path().join("empty.txt")).unwrap().keep(), None);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        // Neither committed nor kept: nothing is left either.
        drop(StagedFile::create(&dir.path().join("dropped.txt")).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_failed_rename_keeps_what_was_written_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub").join("idle.txt");
        fs::create_dir(dir.path().join("sub")).unwrap();
        let mut staged = StagedFile::create(&target).unwrap();
        staged.writer().write_all(b"recorded").unwrap();
        // The target becomes a directory while it is written: the rename cannot replace it.
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), "x").unwrap();
        let err = staged.commit().unwrap_err();
        let StagedError::Write { kept: Some(kept), .. } = &err else { panic!("{err}") };
        assert_eq!(fs::read_to_string(kept).unwrap(), "recorded");
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot write {}: ", target.display())), "{text}");
        assert!(text.ends_with(&format!("is left as it was, and what was written is kept in {}", kept.display())));
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("full.svg");
        std::os::unix::fs::symlink("/dev/full", &link).unwrap();
        for path in [Path::new("/dev/full"), Path::new("/dev/null"), Path::new("/tmp"), &link] {
            let err = StagedFile::create(path).unwrap_err();
            assert!(matches!(err, StagedError::NotAFile(_)) && err.is_refusal(), "{path:?}: {err}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "nothing is created beside a refused path");
    }

    #[test]
    fn a_file_the_user_may_not_write_is_not_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("read-only.txt");
        fs::write(&target, "kept").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o444)).unwrap();
        match StagedFile::create(&target) {
            // Root may write any file, as it could before.
            Ok(staged) => assert!(rustix::process::geteuid().is_root(), "a read-only file was taken: {staged:?}"),
            Err(err) => {
                assert!(
                    matches!(&err, StagedError::Unwritable { error, .. } if error.kind() == io::ErrorKind::PermissionDenied)
                );
                assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "nothing is created beside it");
            }
        }
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept");
    }

    #[test]
    fn a_link_stays_a_link_to_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        let link = dir.path().join("link.txt");
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut staged = StagedFile::create(&link).unwrap();
        staged.writer().write_all(b"new").unwrap();
        staged.commit().unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
    }
}
