//! A file written beside its target and renamed onto it once whole (`record -o`), so that a
//! failure never truncates, replaces or deletes what the target path held before.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why the output cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StagedError {
    /// The target exists and is not a regular file: a device, a FIFO, a directory.
    #[error("{0} is not a regular file (a device, a FIFO or a directory): give a file path, or - for standard output")]
    NotAFile(PathBuf),
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
    /// Writing or renaming failed.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
}

/// An output being written: `DIR/NAME.haltpoll-PID.partial` until [`StagedFile::commit`]
/// renames it to `DIR/NAME`.
#[derive(Debug)]
pub struct StagedFile {
    target: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl StagedFile {
    /// Creates the file beside `target`; refuses a target that exists and is not a regular
    /// file. `target` itself is not opened.
    pub fn create(target: &Path) -> Result<StagedFile, StagedError> {
        match fs::metadata(target) {
            Ok(meta) if !meta.is_file() => return Err(StagedError::NotAFile(target.to_owned())),
            _ => {}
        }
        let name = target.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let temp = target.with_file_name(format!("{name}.haltpoll-{}.partial", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|error| StagedError::Create { path: temp.clone(), target: target.to_owned(), error })?;
        Ok(StagedFile { target: target.to_owned(), temp, out: Some(BufWriter::new(file)) })
    }

    /// Where the content goes until it is committed.
    pub fn writer(&mut self) -> &mut dyn Write {
        self.out.as_mut().expect("a staged file is writable until committed or kept")
    }

    /// Flushes the file and renames it onto the target.
    pub fn commit(mut self) -> Result<(), StagedError> {
        let out = self.out.take().expect("committed once");
        let write_err = |error| StagedError::Write { path: self.temp.clone(), error };
        let file = out.into_inner().map_err(|e| write_err(e.into_error()))?;
        file.sync_all().map_err(write_err)?;
        fs::rename(&self.temp, &self.target).map_err(write_err)
    }

    /// After a failure: keeps what was written (its path), or removes the file if it is empty.
    pub fn keep(mut self) -> Option<PathBuf> {
        if let Some(mut out) = self.out.take() {
            let _ = out.flush();
        }
        let len = fs::metadata(&self.temp).map_or(0, |m| m.len());
        if len == 0 {
            let _ = fs::remove_file(&self.temp);
            return None;
        }
        Some(std::mem::take(&mut self.temp))
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        // Neither committed nor kept (a panic): the file is ours, and half-made.
        if self.out.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
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
    }

    #[test]
    fn devices_and_directories_are_refused() {
        for path in ["/dev/full", "/dev/null", "/tmp"] {
            assert!(matches!(StagedFile::create(Path::new(path)), Err(StagedError::NotAFile(_))), "{path}");
        }
    }
}
