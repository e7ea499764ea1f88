//! Reading and writing Linux's sysfs under a root directory: `/sys` on a real system, a fixture
//! tree in tests. Every error names the file and says what was expected.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The default root.
pub const DEFAULT_ROOT: &str = "/sys";

/// Why sysfs could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// The root itself is missing.
    #[error("the sysfs root {0} does not exist (give the directory sysfs is mounted on, /sys by default)")]
    NoRoot(PathBuf),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file holds something else than its kind of value.
    #[error("{path}: expected {expected}, found {text:?}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it holds, trimmed.
        text: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// A file could not be written for lack of permission.
    #[error("cannot write {path}: permission denied; writing kernel parameters needs root (run it with sudo)")]
    NeedsRoot {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be written for another reason.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// A sysfs tree.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// The tree at `root`, which must exist.
    pub fn open(root: &Path) -> Result<Sysfs, SysfsError> {
        if !root.is_dir() {
            return Err(SysfsError::NoRoot(root.to_owned()));
        }
        Ok(Sysfs { root: root.to_owned() })
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `rel`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// The trimmed contents of `rel`, or `None` if it does not exist.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Option<String>, SysfsError> {
        let path = self.path(rel);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysfsError::Read { path, source }),
        }
    }

    /// The contents of `rel`, which must exist.
    pub fn read_required(&self, rel: impl AsRef<Path>) -> Result<String, SysfsError> {
        let path = self.path(&rel);
        self.read(rel)?.ok_or_else(|| SysfsError::Read { path, source: io::ErrorKind::NotFound.into() })
    }

    /// `rel` as a value of `T`, or `None` if it does not exist.
    pub fn read_parsed<T>(
        &self,
        rel: impl AsRef<Path>,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: &'static str,
    ) -> Result<Option<T>, SysfsError> {
        let rel = rel.as_ref();
        match self.read(rel)? {
            None => Ok(None),
            Some(text) => match parse(&text) {
                Some(v) => Ok(Some(v)),
                None => Err(SysfsError::Malformed { path: self.path(rel), text, expected }),
            },
        }
    }

    /// `rel` as a whole number, or `None` if it does not exist.
    pub fn read_u64(&self, rel: impl AsRef<Path>) -> Result<Option<u64>, SysfsError> {
        self.read_parsed(rel, |s| s.parse().ok(), "a whole number")
    }

    /// `rel` as a kernel `bool` parameter (`Y` or `N`), or `None` if it does not exist.
    pub fn read_bool(&self, rel: impl AsRef<Path>) -> Result<Option<bool>, SysfsError> {
        self.read_parsed(rel, parse_bool, "Y or N")
    }

    /// The numbered entries `PREFIXn` of directory `rel`, ascending by number; empty if `rel`
    /// does not exist.
    pub fn numbered(&self, rel: impl AsRef<Path>, prefix: &str) -> Result<Vec<u32>, SysfsError> {
        let path = self.path(rel);
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(SysfsError::Read { path, source }),
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SysfsError::Read { path: path.clone(), source })?;
            let name = entry.file_name();
            let number = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|n| n.parse::<u32>().ok());
            if let Some(n) = number.filter(|_| entry.path().is_dir()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Opens existing files for writing, all before any is written, so that a missing
    /// permission shows before anything has changed.
    pub fn open_for_write(&self, rel: impl AsRef<Path>) -> Result<(PathBuf, fs::File), SysfsError> {
        let path = self.path(rel);
        // No truncate, no create: a sysfs attribute exists or it does not, and opening it
        // changes nothing; the write below replaces its value as a whole.
        match fs::OpenOptions::new().write(true).open(&path) {
            Ok(file) => Ok((path, file)),
            Err(e) => Err(write_error(&path, e)),
        }
    }

    /// Writes `value` to a file from [`Sysfs::open_for_write`] in one `write`, as sysfs wants.
    pub fn write(path: &Path, file: &mut fs::File, value: &str) -> Result<(), SysfsError> {
        // A regular file (a fixture) keeps any longer old contents past what is written.
        file.set_len(0).ok();
        file.write_all(format!("{value}\n").as_bytes()).map_err(|e| write_error(path, e))
    }
}

/// A failed write, with the one cause a user fixes differently singled out.
fn write_error(path: &Path, source: io::Error) -> SysfsError {
    match source.kind() {
        io::ErrorKind::PermissionDenied => SysfsError::NeedsRoot { path: path.to_owned() },
        _ => SysfsError::Write { path: path.to_owned(), source },
    }
}

/// A kernel `bool` parameter as sysfs shows it (`Y`/`N`; `1`/`0` from older kernels).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "Y" | "y" | "1" => Some(true),
        "N" | "n" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_and_names_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/cpu1")).unwrap();
        fs::create_dir_all(dir.path().join("a/cpu0")).unwrap();
        fs::create_dir_all(dir.path().join("a/cpufreq")).unwrap();
        fs::write(dir.path().join("a/cpu10"), "a file, not a cpu").unwrap();
        fs::write(dir.path().join("n"), "42\n").unwrap();
        fs::write(dir.path().join("b"), "Y\n").unwrap();
        fs::write(dir.path().join("bad"), "4x2\n").unwrap();
        let sys = Sysfs::open(dir.path()).unwrap();
        assert_eq!(sys.read_u64("n").unwrap(), Some(42));
        assert_eq!(sys.read_u64("missing").unwrap(), None);
        assert_eq!(sys.read_bool("b").unwrap(), Some(true));
        assert_eq!(sys.numbered("a", "cpu").unwrap(), vec![0, 1]);
        assert_eq!(sys.numbered("nowhere", "cpu").unwrap(), Vec::<u32>::new());
        let err = sys.read_u64("bad").unwrap_err().to_string();
        assert!(err.ends_with("bad: expected a whole number, found \"4x2\""), "{err}");
        let err = sys.read_required("missing").unwrap_err().to_string();
        assert!(err.starts_with("cannot read ") && err.contains("missing"), "{err}");
        assert!(matches!(Sysfs::open(&dir.path().join("nope")), Err(SysfsError::NoRoot(_))));
    }

    #[test]
    fn writes_replace_the_value() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("p"), "200000\n").unwrap();
        let sys = Sysfs::open(dir.path()).unwrap();
        let (path, mut file) = sys.open_for_write("p").unwrap();
        Sysfs::write(&path, &mut file, "7").unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("p")).unwrap(), "7\n");
        let err = sys.open_for_write("absent").unwrap_err().to_string();
        assert!(err.starts_with("cannot write") && err.contains("absent"), "{err}");
        // Tests run as root here, so the kernel never says EACCES: check the message directly.
        let denied = write_error(Path::new("/sys/x"), io::Error::from_raw_os_error(13)).to_string();
        assert_eq!(
            denied,
            "cannot write /sys/x: permission denied; writing kernel parameters needs root (run it with sudo)"
        );
        let eperm = write_error(Path::new("/sys/x"), io::Error::from_raw_os_error(1));
        assert!(matches!(eperm, SysfsError::NeedsRoot { .. }), "EPERM too");
    }
}
