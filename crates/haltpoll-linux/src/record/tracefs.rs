//! The kernel's tracing file system, touched as little as a recording allows: mounted only if
//! it is not (and unmounted again), and one instance of our own (`instances/haltpoll-PID`, a
//! trace buffer apart from the global one and from every other user's) with the one event
//! enabled in it. Guards undo each step when dropped, on success, error or interruption alike.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where tracefs lives on current kernels.
pub const DEFAULT_ROOT: &str = "/sys/kernel/tracing";
/// The event, under `events/`.
pub const EVENT_DIR: &str = "events/power/cpu_idle";
/// Our instances are `haltpoll-PID`.
pub const INSTANCE_PREFIX: &str = "haltpoll-";
/// The trace clock `perf` uses (`local_clock`), so that our timestamps and perf's agree.
pub const PERF_CLOCK: &str = "perf";

/// Why tracefs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    /// The mount point does not exist.
    #[error(
        "{0} does not exist: this kernel has no tracefs (CONFIG_TRACING), or the path is wrong \
         (--tracefs names where tracefs is mounted)"
    )]
    NoTracefs(PathBuf),
    /// Reading, mounting or writing needs privileges this process lacks.
    #[error(
        "{what} {path}: permission denied; recording kernel events through tracefs needs root \
         (run it with sudo)"
    )]
    NeedsRoot {
        /// What was tried.
        what: &'static str,
        /// Where.
        path: PathBuf,
    },
    /// The kernel cannot mount tracefs.
    #[error("cannot mount tracefs on {path}: {error} (a kernel without CONFIG_TRACING?)")]
    Mount {
        /// Where.
        path: PathBuf,
        /// What the kernel said (in the message, not a `source`, so a chain says it once).
        error: io::Error,
    },
    /// The directory is something else than tracefs.
    #[error(
        "{0} is not tracefs (no events/ in it): give the directory tracefs is mounted on, or an empty \
         directory to mount it on"
    )]
    NotTracefs(PathBuf),
    /// The kernel has no such tracepoint.
    #[error(
        "{0} does not exist: this kernel has no power:cpu_idle tracepoint (it needs CONFIG_CPU_IDLE and \
         CONFIG_EVENT_TRACING), so there is nothing to record"
    )]
    NoTracepoint(PathBuf),
    /// tracefs has no instances (kernels before 3.16 lack them).
    #[error("{0} does not exist: this tracefs has no instances, and haltpoll records only in an instance of its own")]
    NoInstances(PathBuf),
    /// Our instance exists already.
    #[error(
        "{0} exists already: another haltpoll with this process id is recording, or one was killed \
         before it could clean up (remove it with rmdir if no haltpoll runs)"
    )]
    InstanceExists(PathBuf),
    /// Something else went wrong with a file.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was tried.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What the system said (in the message, not a `source`, so a chain says it once).
        error: io::Error,
    },
}

fn io_error(what: &'static str, path: &Path, source: io::Error) -> TracefsError {
    match source.kind() {
        io::ErrorKind::PermissionDenied => TracefsError::NeedsRoot { what, path: path.to_owned() },
        _ => TracefsError::Io { what, path: path.to_owned(), error: source },
    }
}

/// Where a recording that mounts tracefs leaves a marker for the mount point (a file named by
/// the mount point's hash, holding its path): every recording on that mount holds a shared
/// `flock(2)` on it, and the one that finds itself the last (an exclusive lock succeeds)
/// unmounts it. A mount a killed recording left has a marker nobody holds: the next recording
/// on it adopts it, and unmounts it when it ends.
pub const MOUNT_MARKERS: &str = "/run/haltpoll-tracefs";

/// tracefs at a root, mounted by a recording (this one, or one before it) if it was not.
#[derive(Debug)]
pub struct Tracefs {
    root: PathBuf,
    /// A recording mounted it: the marker we hold a shared lock on, to unmount it if we are
    /// the last on it.
    mounted: Option<MountMarker>,
}

/// The marker of a mount a recording made, locked shared while held.
#[derive(Debug)]
struct MountMarker {
    path: PathBuf,
    file: fs::File,
}

impl MountMarker {
    /// The marker's path for the mount point `root`, in `markers`.
    fn path(markers: &Path, root: &Path) -> PathBuf {
        use std::hash::{Hash, Hasher};
        // One marker whichever way the mount point is written (relative, with `..`).
        let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        root.hash(&mut h);
        markers.join(format!("{:016x}", h.finish()))
    }

    /// Takes a shared lock on the marker of `root`: created if `create` (we just mounted it),
    /// else only if a recording made it before (`None`: tracefs was mounted by someone else).
    fn hold(markers: &Path, root: &Path, create: bool) -> Result<Option<MountMarker>, TracefsError> {
        use rustix::fs::{FlockOperation, flock};
        let path = Self::path(markers, root);
        let opened = if create {
            fs::create_dir_all(markers)
                .and_then(|()| fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path))
        } else {
            match fs::OpenOptions::new().write(true).open(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                other => other,
            }
        };
        let mut file = opened.map_err(|e| io_error("cannot open the mount marker", &path, e))?;
        flock(&file, FlockOperation::LockShared).map_err(|e| io_error("cannot lock", &path, e.into()))?;
        if create {
            use std::io::Write;
            let _ = writeln!(file, "{}", root.display());
        }
        Ok(Some(MountMarker { path, file }))
    }

    /// Whether no other recording holds the marker (the lock becomes exclusive).
    fn last(&self) -> bool {
        use rustix::fs::{FlockOperation, flock};
        flock(&self.file, FlockOperation::NonBlockingLockExclusive).is_ok()
    }
}

impl Tracefs {
    /// Opens tracefs at `root`: as it is if it is mounted (has `events/`), or mounted on it if
    /// `root` is an empty directory (the mount point of an unmounted tracefs).
    pub fn open(root: &Path) -> Result<Tracefs, TracefsError> {
        if !root.is_dir() {
            return Err(TracefsError::NoTracefs(root.to_owned()));
        }
        let mut entries = fs::read_dir(root).map_err(|e| io_error("cannot read", root, e))?;
        let empty = entries.next().is_none();
        if empty {
            mount(root)?;
        }
        // A tracefs mounted by another recording (running, or killed) has a marker.
        let mounted = match MountMarker::hold(Path::new(MOUNT_MARKERS), root, empty) {
            Ok(marker) => marker,
            Err(e) if empty => {
                let _ = rustix::mount::unmount(root, rustix::mount::UnmountFlags::empty());
                return Err(e);
            }
            Err(_) => None,
        };
        let fs = Tracefs { root: root.to_owned(), mounted };
        if !fs.path("events").is_dir() {
            return Err(TracefsError::NotTracefs(root.to_owned()));
        }
        Ok(fs)
    }

    /// The path of `rel` under the root.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Checks that the kernel has the `power:cpu_idle` tracepoint and instances to record it in.
    pub fn check_event(&self) -> Result<(), TracefsError> {
        let event = self.path(EVENT_DIR);
        if !event.is_dir() {
            return Err(TracefsError::NoTracepoint(event));
        }
        let instances = self.path("instances");
        if !instances.is_dir() {
            return Err(TracefsError::NoInstances(instances));
        }
        Ok(())
    }

    /// Removes the instances of recordings that were killed (SIGKILL leaves no way to clean up):
    /// `haltpoll-PID` whose process is gone. Returns their names, or what failed.
    pub fn remove_stale_instances(&self) -> Vec<Result<String, String>> {
        let Ok(entries) = fs::read_dir(self.path("instances")) else { return Vec::new() };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(INSTANCE_PREFIX).and_then(|p| p.parse::<u32>().ok()) else { continue };
            if Path::new("/proc").join(pid.to_string()).exists() {
                continue; // recording now (or a reused pid: left alone either way)
            }
            let stale = Instance { _tracefs: self, dir: entry.path(), closed: false };
            out.push(stale.close().map(|()| name));
        }
        out
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        // Another recording on the mount unmounts it when it ends.
        let Some(marker) = self.mounted.take().filter(MountMarker::last) else { return };
        let _ = fs::remove_file(&marker.path);
        if let Err(e) = rustix::mount::unmount(&self.root, rustix::mount::UnmountFlags::empty()) {
            warn(format_args!(
                "haltpoll: warning: could not unmount the tracefs mounted on {} for the recording: {e} \
                 (unmount it with `umount {}`)",
                self.root.display(),
                self.root.display()
            ));
        }
    }
}

fn mount(root: &Path) -> Result<(), TracefsError> {
    use rustix::mount::{MountFlags, mount};
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount("tracefs", root, "tracefs", flags, c"").map_err(|errno| {
        let source = io::Error::from(errno);
        match errno {
            rustix::io::Errno::PERM | rustix::io::Errno::ACCESS => {
                TracefsError::NeedsRoot { what: "cannot mount tracefs on", path: root.to_owned() }
            }
            _ => TracefsError::Mount { path: root.to_owned(), error: source },
        }
    })
}

/// Our own trace instance: created empty, the one event enabled while recording; disabled and
/// removed on drop.
#[derive(Debug)]
pub struct Instance<'a> {
    _tracefs: &'a Tracefs,
    dir: PathBuf,
    /// Already removed by [`Instance::close`].
    closed: bool,
}

impl<'a> Instance<'a> {
    /// Creates `instances/NAME`.
    pub fn create(tracefs: &'a Tracefs, name: &str) -> Result<Instance<'a>, TracefsError> {
        let dir = tracefs.path("instances").join(name);
        fs::create_dir(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => TracefsError::InstanceExists(dir.clone()),
            _ => io_error("cannot create the trace instance", &dir, e),
        })?;
        Ok(Instance { _tracefs: tracefs, dir, closed: false })
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Selects `clock` if the kernel offers it, and returns the clock in use.
    pub fn use_clock(&self, clock: &str) -> Result<String, TracefsError> {
        let path = self.dir.join("trace_clock");
        // `[local] global counter uptime perf mono ...`: the current one in brackets.
        let offered = read_small(&path)?;
        if offered.split_whitespace().any(|c| c.trim_matches(['[', ']']) == clock) {
            write(&path, clock)?;
        }
        let now = read_small(&path)?;
        Ok(now
            .split_whitespace()
            .find_map(|c| c.strip_prefix('[').and_then(|c| c.strip_suffix(']')))
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Enables or disables the event in this instance.
    pub fn set_enabled(&self, on: bool) -> Result<(), TracefsError> {
        write(&self.dir.join(EVENT_DIR).join("enable"), if on { "1" } else { "0" })
    }

    /// Disables the event and removes the instance, saying what could not be undone.
    fn remove(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let enable = self.dir.join(EVENT_DIR).join("enable");
        if enable.exists()
            && let Err(e) = self.set_enabled(false)
        {
            problems.push(e.to_string());
        }
        // The kernel refuses (EBUSY) while a file of the instance is open; ours are closed by
        // now, but a reader elsewhere (`cat trace_pipe`) may hold one: try a few times.
        let mut last = None;
        for _ in 0..20 {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) };
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if let Some(e) = last {
            problems.push(format!("cannot remove {}: {e} (remove it with rmdir)", self.dir.display()));
        }
        Err(problems.join("; "))
    }

    /// Disables the event and removes the instance now, returning what failed.
    pub fn close(mut self) -> Result<(), String> {
        self.closed = true;
        self.remove()
    }
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if let Err(problems) = self.remove() {
            warn(format_args!("haltpoll: warning: cleaning up the trace instance: {problems}"));
        }
    }
}

/// A warning from a destructor, which has no caller to return it to: one line on stderr, lost
/// if stderr cannot take it (a failed write must not panic in a drop).
fn warn(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Writes `value` to a tracefs file in one write.
fn write(path: &Path, value: &str) -> Result<(), TracefsError> {
    fs::write(path, value).map_err(|e| io_error("cannot write", path, e))
}

/// Reads a small tracefs control file (a few hundred bytes at most).
fn read_small(path: &Path) -> Result<String, TracefsError> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|e| io_error("cannot read", path, e))?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_root_and_a_directory_that_is_not_tracefs() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tracefs::open(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("does not exist: this kernel has no tracefs"), "{err}");
        fs::write(dir.path().join("file"), "x").unwrap();
        let err = Tracefs::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not tracefs (no events/ in it)"), "{err}");
    }

    #[test]
    fn the_last_holder_of_a_mount_marker_knows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (markers, root) = (dir.path().join("markers"), dir.path().join("mnt"));
        fs::create_dir(&root).unwrap();
        assert!(MountMarker::hold(&markers, &root, false).unwrap().is_none(), "not mounted by a recording");
        let first = MountMarker::hold(&markers, &root, true).unwrap().unwrap();
        // Another recording on it, named by another path to the same directory.
        let second = MountMarker::hold(&markers, &dir.path().join("mnt/../mnt"), false).unwrap().unwrap();
        assert_eq!(first.path, second.path);
        assert!(!first.last(), "the second still records");
        drop(first);
        assert!(second.last());
        // A marker nobody holds (a killed recording's) is adopted.
        drop(second);
        let adopted = MountMarker::hold(&markers, &root, false).unwrap().unwrap();
        assert!(adopted.last());
    }

    #[test]
    fn a_fixture_without_the_tracepoint() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("events/sched")).unwrap();
        fs::create_dir_all(dir.path().join("instances")).unwrap();
        let fs = Tracefs::open(dir.path()).unwrap();
        assert!(fs.mounted.is_none());
        let err = fs.check_event().unwrap_err().to_string();
        assert!(err.contains("events/power/cpu_idle does not exist: this kernel has no power:cpu_idle"), "{err}");
    }

    #[test]
    fn the_instance_goes_away_on_drop_and_on_close() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("events/power/cpu_idle")).unwrap();
        fs::create_dir_all(dir.path().join("instances")).unwrap();
        let fs = Tracefs::open(dir.path()).unwrap();
        fs.check_event().unwrap();
        {
            let instance = Instance::create(&fs, "haltpoll-test").unwrap();
            assert!(instance.dir().is_dir());
            let again = Instance::create(&fs, "haltpoll-test").unwrap_err().to_string();
            assert!(again.contains("exists already"), "{again}");
            // A fixture instance has none of the kernel's files: enabling fails, and says where.
            let err = instance.set_enabled(true).unwrap_err().to_string();
            assert!(err.contains("haltpoll-test/events/power/cpu_idle/enable"), "{err}");
        }
        assert!(!dir.path().join("instances/haltpoll-test").exists());
        let instance = Instance::create(&fs, "haltpoll-test").unwrap();
        instance.close().unwrap();
        assert!(!dir.path().join("instances/haltpoll-test").exists());
    }

    #[test]
    fn instances_of_killed_recordings_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("events/power/cpu_idle")).unwrap();
        // No process has pid 4000000000 (above Linux's pid_max); this test's process is alive.
        let alive = format!("instances/haltpoll-{}", std::process::id());
        for d in ["instances/haltpoll-4000000000", "instances/haltpoll-x", "instances/trace-cmd", alive.as_str()] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let fs = Tracefs::open(dir.path()).unwrap();
        assert_eq!(fs.remove_stale_instances(), vec![Ok("haltpoll-4000000000".to_owned())]);
        let mut left: Vec<String> = fs::read_dir(dir.path().join("instances"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec!["haltpoll-x".to_owned(), "trace-cmd".to_owned(), alive[10..].to_owned()];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn clocks() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("events/power/cpu_idle")).unwrap();
        fs::create_dir_all(dir.path().join("instances/haltpoll-clock")).unwrap();
        fs::write(dir.path().join("instances/haltpoll-clock/trace_clock"), "[local] global perf mono\n").unwrap();
        let fs = Tracefs::open(dir.path()).unwrap();
        // A fixture file keeps what is written (the kernel would show `local [perf] ...`).
        let instance = Instance { _tracefs: &fs, dir: dir.path().join("instances/haltpoll-clock"), closed: false };
        assert_eq!(instance.use_clock("perf").unwrap(), "unknown");
        assert_eq!(std::fs::read_to_string(instance.dir().join("trace_clock")).unwrap(), "perf");
        fs::write(instance.dir().join("trace_clock"), "[local] global\n").unwrap();
        assert_eq!(instance.use_clock("perf").unwrap(), "local", "not offered: left as it is");
        fs::remove_file(instance.dir().join("trace_clock")).unwrap();
        drop(instance);
    }
}
