//! One writer of the module parameters at a time: `set` (and anything else that writes them)
//! holds an exclusive `flock(2)` on a lock file for its read-plan-write-verify-rollback, so two
//! writers cannot interleave their writes and leave a mix of both settings, or undo each
//! other's.
//!
//! The lock file is [`RUN_LOCK`] for the real sysfs (`/sys`), and [`FIXTURE_LOCK`] inside any
//! other root (a fixture tree): writers of different trees do not wait for each other.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

use crate::sysfs::{self, Sysfs};

/// The lock file of the real sysfs.
pub const RUN_LOCK: &str = "/run/haltpoll.lock";

/// The lock file's name inside a sysfs root other than `/sys`.
pub const FIXTURE_LOCK: &str = ".haltpoll.lock";

/// How often a waiting writer tries the lock again.
const RETRY: Duration = Duration::from_millis(10);

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another writer held it for longer than we were to wait.
    #[error(
        "another haltpoll is writing the parameters (it holds {path}) and did not finish within {waited:.1} s: \
         try again, or wait longer with --wait"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long we waited, in seconds.
        waited: f64,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot lock {path}: {error}{hint}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

/// The lock file for the parameters under `sys`.
pub fn path(sys: &Sysfs) -> PathBuf {
    if sys.root() == Path::new(sysfs::DEFAULT_ROOT) { PathBuf::from(RUN_LOCK) } else { sys.path(FIXTURE_LOCK) }
}

/// Takes the lock of the parameters under `sys`, waiting at most `wait` for another writer.
pub fn acquire(sys: &Sysfs, wait: Duration) -> Result<WriteLock, LockError> {
    let path = path(sys);
    let io_err = |error: io::Error| {
        let hint = if error.kind() == io::ErrorKind::PermissionDenied {
            "; writing kernel parameters needs root (run it with sudo)"
        } else {
            ""
        };
        LockError::Io { path: path.clone(), error, hint }
    };
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err)?;
    let start = Instant::now();
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(WriteLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(io_err(e.into())),
        }
        if start.elapsed() >= wait {
            return Err(LockError::Busy { path, waited: wait.as_secs_f64() });
        }
        std::thread::sleep(RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_then_fails_and_gets_it_once_free() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Sysfs::open(dir.path()).unwrap();
        assert_eq!(path(&sys), dir.path().join(FIXTURE_LOCK));
        let held = acquire(&sys, Duration::ZERO).unwrap();
        let err = acquire(&sys, Duration::from_millis(30)).unwrap_err();
        assert!(matches!(err, LockError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("another haltpoll is writing"), "{err}");
        drop(held);
        acquire(&sys, Duration::ZERO).unwrap();
    }

    #[test]
    fn the_real_sysfs_locks_under_run() {
        assert_eq!(path(&Sysfs::open(Path::new("/sys")).unwrap()), Path::new(RUN_LOCK));
    }
}
