//! Reading and writing Linux's sysfs under a root directory: `/sys` on a real system, a fixture
//! tree in tests. Every error names the file and says what was expected.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The default root.
pub const DEFAULT_ROOT: &str = "/sys";

/// The most a sysfs attribute holds: one page, and pages are at most 64 KiB (arm64's
/// largest). A file that holds more is not an attribute (a link to /dev/zero, a stray large
/// file in a copy), and reading on would only cost memory and time.
pub const MAX_ATTRIBUTE_BYTES: u64 = 64 * 1024;

/// Why sysfs could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// The root itself is missing.
    #[error("the sysfs root {0} does not exist (give the directory sysfs is mounted on, /sys by default)")]
    NoRoot(PathBuf),
    /// The root is there but is a file or a device.
    #[error("the sysfs root {0} is not a directory (give the directory sysfs is mounted on, /sys by default)")]
    RootNotDir(PathBuf),
    /// A file could not be read. (The cause is part of the message, not a `source`: the
    /// command prints the chain of sources, which would say it twice.)
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        cause: io::Error,
    },
    /// A file that should be there is not.
    #[error("{path} is missing: {why}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// Why it should be there.
        why: &'static str,
    },
    /// Something else than a file where an attribute should be (a directory, a device, a FIFO).
    #[error("{path} is {kind}, not a sysfs attribute file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is ("a directory").
        kind: &'static str,
    },
    /// A file holds more than an attribute can.
    #[error(
        "{path} holds more than {MAX_ATTRIBUTE_BYTES} bytes, more than any sysfs attribute (one page): \
         not a sysfs file; read no further"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A file holds something else than its kind of value.
    #[error("{path}: expected {expected}, found {}", found(text))]
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
    /// Root was refused: sudo would not help.
    #[error(
        "cannot write {path}: refused even to root ({cause}): is the file immutable (lsattr), the mount \
         read-only, or writing locked down?"
    )]
    RefusedToRoot {
        /// The file.
        path: PathBuf,
        /// What the system said.
        cause: io::Error,
    },
    /// A file could not be written for another reason.
    #[error("cannot write {path}: {cause}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        cause: io::Error,
    },
}

/// What a file held, for a message: quoted (in part, if long), or said to be empty.
fn found(text: &str) -> String {
    if text.is_empty() { "nothing (the file is empty)".to_owned() } else { crate::quote(text) }
}

/// A sysfs tree.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// The tree at `root`, which must exist.
    pub fn open(root: &Path) -> Result<Sysfs, SysfsError> {
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(SysfsError::RootNotDir(root.to_owned())),
            Err(_) => return Err(SysfsError::NoRoot(root.to_owned())),
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

    /// The trimmed contents of `rel`, or `None` if it does not exist. Reads regular files
    /// only (every sysfs attribute is one), and at most [`MAX_ATTRIBUTE_BYTES`].
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Option<String>, SysfsError> {
        let path = self.path(rel);
        let file = match attribute(&path, |p| fs::File::open(p), |path, cause| SysfsError::Read { path, cause }) {
            Ok(file) => file,
            Err(Opened::Absent) => return Ok(None),
            Err(Opened::Failed(e)) => return Err(e),
        };
        let read_error = |cause| SysfsError::Read { path: path.clone(), cause };
        let mut bytes = Vec::new();
        file.take(MAX_ATTRIBUTE_BYTES + 1).read_to_end(&mut bytes).map_err(read_error)?;
        if bytes.len() as u64 > MAX_ATTRIBUTE_BYTES {
            return Err(SysfsError::TooLarge { path });
        }
        let text = String::from_utf8_lossy(&bytes);
        Ok(Some(text.trim().to_owned()))
    }

    /// The contents of `rel`, which must exist for the reason `why`.
    pub fn read_required(&self, rel: impl AsRef<Path>, why: &'static str) -> Result<String, SysfsError> {
        let path = self.path(&rel);
        self.read(rel)?.ok_or(SysfsError::Missing { path, why })
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
            Err(cause) => return Err(SysfsError::Read { path, cause }),
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|cause| SysfsError::Read { path: path.clone(), cause })?;
            let name = entry.file_name();
            let number = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|n| n.parse::<u32>().ok());
            if let Some(n) = number.filter(|_| entry.path().is_dir()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Opens an existing attribute file for writing; [`Sysfs::write`] writes it. Opening
    /// changes nothing, so a caller opens every file it will write before it writes any, and
    /// a missing permission shows before anything has changed.
    pub fn open_for_write(&self, rel: impl AsRef<Path>) -> Result<Attribute, SysfsError> {
        let path = self.path(rel);
        // No truncate, no create: a sysfs attribute exists or it does not.
        match attribute(&path, |p| fs::OpenOptions::new().write(true).open(p), write_error) {
            Ok(file) => Ok(Attribute { path, file }),
            Err(Opened::Absent) => Err(write_error(path, io::ErrorKind::NotFound.into())),
            Err(Opened::Failed(e)) => Err(e),
        }
    }

    /// Writes `value` to an attribute in one write, as sysfs wants.
    ///
    /// Nothing is truncated before the write: sysfs replaces the value as a whole and ignores
    /// truncation, and a failed write must leave the old value. A regular file (a fixture
    /// tree, a copy) is trimmed to what was written only after the write succeeded.
    ///
    /// A regular file can take part of a write and then fail (a full disk); sysfs cannot,
    /// which is why only sysfs is promised all or nothing.
    pub fn write(attr: &mut Attribute, value: &str) -> Result<(), SysfsError> {
        use std::os::unix::fs::FileExt;
        let line = format!("{value}\n");
        // At offset 0, so a second write to the same file (a restore) replaces the first;
        // sysfs ignores the offset.
        attr.file.write_all_at(line.as_bytes(), 0).map_err(|e| write_error(attr.path.clone(), e))?;
        // Trim what a longer old value left behind. Best effort: sysfs ignores it, and `set`
        // reads every value back anyway.
        attr.file.set_len(line.len() as u64).ok();
        Ok(())
    }
}

/// An attribute file open for writing, with its path for messages.
#[derive(Debug)]
pub struct Attribute {
    path: PathBuf,
    file: fs::File,
}

enum Opened {
    Absent,
    Failed(SysfsError),
}

/// Opens `path` with `open` if it is a regular file; `failed` words an error of the open.
/// What else is there is refused before it is opened: a FIFO would block the open, a device
/// (/dev/zero) would never end.
fn attribute(
    path: &Path,
    open: impl FnOnce(&Path) -> io::Result<fs::File>,
    failed: impl FnOnce(PathBuf, io::Error) -> SysfsError,
) -> Result<fs::File, Opened> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Opened::Absent),
        Err(cause) => return Err(Opened::Failed(SysfsError::Read { path: path.to_owned(), cause })),
    };
    if !meta.is_file() {
        return Err(Opened::Failed(SysfsError::NotAFile { path: path.to_owned(), kind: kind(&meta.file_type()) }));
    }
    open(path).map_err(|e| Opened::Failed(failed(path.to_owned(), e)))
}

/// What a file type is, for a message.
fn kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// A failed write, with the one cause a user fixes differently singled out.
fn write_error(path: PathBuf, cause: io::Error) -> SysfsError {
    write_error_as(path, cause, is_root())
}

/// [`write_error`] for a process that is root or not: a refusal is a lack of permission to
/// anyone else, and to root a file that takes no writes (`chattr +i`, lockdown).
fn write_error_as(path: PathBuf, cause: io::Error, root: bool) -> SysfsError {
    match cause.kind() {
        io::ErrorKind::PermissionDenied if root => SysfsError::RefusedToRoot { path, cause },
        io::ErrorKind::PermissionDenied => SysfsError::NeedsRoot { path },
        _ => SysfsError::Write { path, cause },
    }
}

/// Whether this process runs as root (its effective user id is 0).
fn is_root() -> bool {
    #[cfg(target_os = "linux")]
    return rustix::process::geteuid().is_root();
    #[cfg(not(target_os = "linux"))]
    return false;
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
        fs::write(dir.path().join("empty"), "").unwrap();
        let sys = Sysfs::open(dir.path()).unwrap();
        assert_eq!(sys.read_u64("n").unwrap(), Some(42));
        assert_eq!(sys.read_u64("missing").unwrap(), None);
        assert_eq!(sys.read_bool("b").unwrap(), Some(true));
        assert_eq!(sys.numbered("a", "cpu").unwrap(), vec![0, 1]);
        assert_eq!(sys.numbered("nowhere", "cpu").unwrap(), Vec::<u32>::new());
        let err = sys.read_u64("bad").unwrap_err().to_string();
        assert!(err.ends_with("bad: expected a whole number, found \"4x2\""), "{err}");
        let err = sys.read_u64("empty").unwrap_err().to_string();
        assert!(err.ends_with("empty: expected a whole number, found nothing (the file is empty)"), "{err}");
        let err = sys.read_required("missing", "every state has one").unwrap_err().to_string();
        assert!(err.ends_with("missing is missing: every state has one"), "{err}");
        assert!(matches!(Sysfs::open(&dir.path().join("nope")), Err(SysfsError::NoRoot(_))));
        let err = Sysfs::open(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(err.contains("/dev/zero is not a directory"), "{err}");
    }

    #[test]
    fn what_is_not_an_attribute_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let sys = Sysfs::open(dir.path()).unwrap();
        let err = sys.read_u64("dir").unwrap_err().to_string();
        assert!(err.ends_with("dir is a directory, not a sysfs attribute file"), "{err}");
        assert!(!err.contains("os error"), "the cause once, in words: {err}");
        let err = sys.read_u64("zero").unwrap_err().to_string();
        assert!(err.ends_with("zero is a character device, not a sysfs attribute file"), "{err}");
        let err = sys.open_for_write("dir").unwrap_err().to_string();
        assert!(err.ends_with("dir is a directory, not a sysfs attribute file"), "{err}");
    }

    #[test]
    fn a_large_file_is_read_no_further_than_an_attribute_can_be() {
        let dir = tempfile::tempdir().unwrap();
        let big = fs::File::create(dir.path().join("big")).unwrap();
        big.set_len(50 << 20).unwrap(); // 50 MB (sparse): reading it whole would take it all
        fs::write(dir.path().join("long"), format!("{}\n", "7".repeat(10_000))).unwrap();
        let sys = Sysfs::open(dir.path()).unwrap();
        let err = sys.read_u64("big").unwrap_err().to_string();
        assert!(err.contains("big holds more than 65536 bytes"), "{err}");
        let err = sys.read_u64("long").unwrap_err().to_string();
        assert!(err.len() < 300, "the text is quoted in part: {err}");
        assert!(err.ends_with("... (10000 bytes in all)"), "{err}");
    }

    #[test]
    fn writes_replace_the_value() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("p"), "200000\n").unwrap();
        let sys = Sysfs::open(dir.path()).unwrap();
        let mut attr = sys.open_for_write("p").unwrap();
        Sysfs::write(&mut attr, "7").unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("p")).unwrap(), "7\n", "trimmed after the write");
        Sysfs::write(&mut attr, "123456789").unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("p")).unwrap(), "123456789\n");
        let err = sys.open_for_write("absent").unwrap_err().to_string();
        assert!(err.starts_with("cannot write") && err.contains("absent"), "{err}");
        // Tests may run as root, when the kernel never says EACCES: check the messages directly.
        let denied = write_error_as("/sys/x".into(), io::Error::from_raw_os_error(13), false).to_string();
        assert_eq!(
            denied,
            "cannot write /sys/x: permission denied; writing kernel parameters needs root (run it with sudo)"
        );
        let eperm = write_error_as("/sys/x".into(), io::Error::from_raw_os_error(1), false);
        assert!(matches!(eperm, SysfsError::NeedsRoot { .. }), "EPERM too");
        let immutable = write_error_as("/sys/x".into(), io::Error::from_raw_os_error(1), true).to_string();
        assert!(immutable.contains("refused even to root") && !immutable.contains("sudo"), "{immutable}");
    }
}
