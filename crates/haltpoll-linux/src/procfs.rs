//! What `/proc` says about guest halt polling: the kernel command line (where a parameter was
//! set at boot) and steal time (how long the vCPUs waited for a host CPU). The root is
//! configurable, as sysfs's is, so that fixture trees stand in for it in tests.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sysfs::{Sysfs, SysfsError};

/// Where procfs is mounted.
pub const DEFAULT_ROOT: &str = "/proc";

/// The kernel's command line, as `/proc/cmdline` has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    /// Its parameters before `--` (what follows goes to init, not the kernel), in order.
    params: Vec<(String, Option<String>)>,
}

impl KernelCmdline {
    /// Splits `text` as the kernel does: on blanks, with double quotes grouping.
    pub fn parse(text: &str) -> KernelCmdline {
        let mut params = Vec::new();
        for word in split_quoted(text) {
            if word == "--" {
                break;
            }
            match word.split_once('=') {
                Some((name, value)) => params.push((name.to_owned(), Some(value.trim_matches('"').to_owned()))),
                None => params.push((word, None)),
            }
        }
        KernelCmdline { params }
    }

    /// The value of `module.param` (the last one given wins, as in the kernel; `-` and `_` are
    /// the same in names): `Some(None)` for a bare `module.param` without `=`.
    pub fn get(&self, module: &str, param: &str) -> Option<Option<&str>> {
        let want = normalize(&format!("{module}.{param}"));
        self.params.iter().rev().find(|(name, _)| normalize(name) == want).map(|(_, v)| v.as_deref())
    }
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Words separated by blanks, where a double-quoted stretch keeps its blanks.
fn split_quoted(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted) = (String::new(), false);
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Steal time since boot, from the `cpu` line of `/proc/stat`: the time the vCPUs were ready
/// to run while the host ran something else.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Steal {
    /// Steal, in clock ticks (USER_HZ), summed over the CPUs.
    pub steal_ticks: u64,
    /// All the CPUs' time, in clock ticks: user, nice, system, idle, iowait, irq, softirq and
    /// steal (guest time is inside user and nice already).
    pub total_ticks: u64,
    /// Steal as a share of that time since boot.
    pub share_since_boot: f64,
}

impl Steal {
    /// Reads the `cpu` line of `stat` (`None`: a kernel that does not count steal).
    pub fn parse(stat: &str) -> Option<Steal> {
        let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
        let fields: Vec<u64> = line.split_whitespace().skip(1).map_while(|w| w.parse().ok()).collect();
        let steal_ticks = *fields.get(7)?;
        let total_ticks = fields.iter().take(8).fold(0u64, |sum, &v| sum.saturating_add(v));
        Some(Steal { steal_ticks, total_ticks, share_since_boot: haltpoll::share(steal_ticks, total_ticks) })
    }
}

/// A procfs tree: `/proc`, or a fixture.
#[derive(Clone, Debug)]
pub struct Procfs {
    files: Sysfs,
}

impl Procfs {
    /// The procfs at `root`, which must be a directory.
    pub fn open(root: &Path) -> Result<Procfs, SysfsError> {
        Ok(Procfs { files: Sysfs::open(root)? })
    }

    /// Where it is.
    pub fn root(&self) -> PathBuf {
        self.files.root().to_owned()
    }

    /// The kernel's command line (`None`: no `cmdline` file).
    pub fn cmdline(&self) -> Result<Option<KernelCmdline>, SysfsError> {
        Ok(self.files.read("cmdline")?.map(|t| KernelCmdline::parse(&t)))
    }

    /// Steal time since boot (`None`: no `stat`, or one without a steal column).
    pub fn steal(&self) -> Result<Option<Steal>, SysfsError> {
        // Only the first line, the `cpu` total: the whole file (an `intr` line with a count
        // per interrupt) can be far longer than any attribute on a large machine.
        let path = self.files.path("stat");
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => return Err(SysfsError::Read { path, cause }),
        };
        let mut line = String::new();
        BufReader::new(file.take(4096)).read_line(&mut line).map_err(|cause| SysfsError::Read { path, cause })?;
        Ok(Steal::parse(&line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_as_the_kernel_reads_it() {
        let line = "console=ttyS0 cpuidle-haltpoll.force=1 haltpoll.guest_halt_poll_ns=0 \
                    foo=\"a b\" haltpoll.guest_halt_poll_ns=400 haltpoll.guest_halt_poll_allow_shrink \
                    -- haltpoll.guest_halt_poll_grow=4";
        let c = KernelCmdline::parse(line);
        assert_eq!(c.get("haltpoll", "guest_halt_poll_ns"), Some(Some("400")), "the last one wins");
        assert_eq!(c.get("cpuidle_haltpoll", "force"), Some(Some("1")), "- and _ alike");
        assert_eq!(c.get("haltpoll", "guest_halt_poll_allow_shrink"), Some(None));
        assert_eq!(c.get("haltpoll", "guest_halt_poll_grow"), None, "after -- is init's");
        assert_eq!(c.get("foo", "bar"), None);
        assert!(c.params.contains(&("foo".to_owned(), Some("a b".to_owned()))));
    }

    #[test]
    fn steal_since_boot() {
        let stat = "cpu  1473952 62475 181314 345587 7902 0 2280 1243 101798 2232\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let s = Steal::parse(stat).unwrap();
        assert_eq!(s.steal_ticks, 1243);
        assert_eq!(s.total_ticks, 1473952 + 62475 + 181314 + 345587 + 7902 + 2280 + 1243);
        assert!((s.share_since_boot - 1243.0 / 2_074_753.0).abs() < 1e-12);
        assert_eq!(Steal::parse("cpu  1 2 3 4 5 6 7\n"), None, "a kernel without the column");
        assert_eq!(Steal::parse("intr 5\n"), None);
    }

    proptest::proptest! {
        /// Whatever /proc holds (a fixture, a copy cut short), reading it never panics, and a
        /// share stays a share.
        #[test]
        fn any_text_reads_without_panic(text in "[ -~\n\"=.\\-]{0,200}", first in "cpu [0-9 ]{0,80}") {
            let c = KernelCmdline::parse(&text);
            let _ = c.get("haltpoll", "guest_halt_poll_ns");
            for stat in [&text, &first] {
                if let Some(s) = Steal::parse(stat) {
                    proptest::prop_assert!((0.0..=1.0).contains(&s.share_since_boot));
                }
            }
        }
    }
}
