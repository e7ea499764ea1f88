//! The haltpoll governor's module parameters, as the kernel holds them:
//! `/sys/module/haltpoll/parameters/guest_halt_poll_*`, four `uint`s and a `bool`.
//!
//! The kernel takes any value its type can hold; [`ModuleParams::params`] turns them into the
//! core crate's [`Params`], whose `validate` says which sets cannot work.

use std::fmt;

use haltpoll::{Params, WindowArithmetic};

use crate::finding::{Code, Finding};
use crate::procfs::KernelCmdline;
use crate::sysfs::{Sysfs, SysfsError};
use crate::units;
use crate::units::fmt_ns;

/// Where the parameters live, under the sysfs root.
pub const DIR: &str = "module/haltpoll/parameters";
/// The driver's `force` parameter (load without the REALTIME hint), under the sysfs root.
pub const FORCE: &str = "module/cpuidle_haltpoll/parameters/force";
/// The module the parameters belong to, as the kernel command line names it.
pub const MODULE: &str = "haltpoll";
/// The driver's module, as the kernel command line names it.
pub const DRIVER_MODULE: &str = "cpuidle_haltpoll";

/// One parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// `guest_halt_poll_ns`: the ceiling of the window.
    PollNs,
    /// `guest_halt_poll_grow`.
    Grow,
    /// `guest_halt_poll_grow_start`.
    GrowStart,
    /// `guest_halt_poll_shrink`.
    Shrink,
    /// `guest_halt_poll_allow_shrink`.
    AllowShrink,
}

impl Param {
    /// All five, in the kernel's order.
    pub const ALL: [Param; 5] = [Param::PollNs, Param::Grow, Param::GrowStart, Param::Shrink, Param::AllowShrink];

    /// The kernel's name.
    pub const fn name(self) -> &'static str {
        match self {
            Param::PollNs => "guest_halt_poll_ns",
            Param::Grow => "guest_halt_poll_grow",
            Param::GrowStart => "guest_halt_poll_grow_start",
            Param::Shrink => "guest_halt_poll_shrink",
            Param::AllowShrink => "guest_halt_poll_allow_shrink",
        }
    }

    /// The short name: the kernel's without `guest_halt_poll_` (`ns` is also `poll_ns`).
    pub fn short(self) -> &'static str {
        self.name().trim_start_matches("guest_halt_poll_")
    }

    /// The parameter a user means by `name`: the kernel's name or the short one, with `-` or `_`.
    pub fn from_name(name: &str) -> Option<Param> {
        let name = name.trim().replace('-', "_");
        let name = if name == "poll_ns" { "ns" } else { &name };
        Param::ALL.into_iter().find(|p| p.name() == name || p.short() == name)
    }

    /// The file under the sysfs root.
    pub fn path(self) -> String {
        format!("{DIR}/{}", self.name())
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The five values, with the kernel's types; as JSON, with the kernel's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModuleParams {
    /// `guest_halt_poll_ns`.
    pub guest_halt_poll_ns: u32,
    /// `guest_halt_poll_grow`.
    #[serde(rename = "guest_halt_poll_grow")]
    pub grow: u32,
    /// `guest_halt_poll_grow_start`.
    #[serde(rename = "guest_halt_poll_grow_start")]
    pub grow_start: u32,
    /// `guest_halt_poll_shrink`.
    #[serde(rename = "guest_halt_poll_shrink")]
    pub shrink: u32,
    /// `guest_halt_poll_allow_shrink`.
    #[serde(rename = "guest_halt_poll_allow_shrink")]
    pub allow_shrink: bool,
}

/// Why the parameters could not be read or set.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// The kernel has no haltpoll governor.
    #[error(
        "{0} does not exist: this kernel has no haltpoll governor (CONFIG_CPU_IDLE_GOV_HALTPOLL, \
         built with the cpuidle-haltpoll driver), or this is not Linux; `haltpoll status` says more"
    )]
    NotLoaded(String),
    /// A file could not be read, or holds nonsense.
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
}

/// What reading the parameters found: the values, and the parameters that could not be read.
#[derive(Debug)]
pub struct Reading {
    /// The values read; one that could not be read holds Linux's default here.
    pub known: ModuleParams,
    /// The parameters that could not be read, and why (empty, garbled, not a file...).
    pub unreadable: Vec<(Param, SysfsError)>,
}

impl Reading {
    /// Whether `p` was read.
    pub fn has(&self, p: Param) -> bool {
        !self.unreadable.iter().any(|(q, _)| *q == p)
    }

    /// Every parameter as `name=value`, an unreadable one as `name=(unreadable)`.
    pub fn describe(&self) -> String {
        let value = |p: Param| if self.has(p) { self.known.value(p) } else { "(unreadable)".to_owned() };
        Param::ALL.iter().map(|&p| format!("{p}={}", value(p))).collect::<Vec<_>>().join(" ")
    }
}

impl ModuleParams {
    /// Reads the current values, each on its own: one that cannot be read (a write cut short
    /// left it empty, it is not a file...) is reported in [`Reading::unreadable`] and the
    /// others are still read, so that `status` can show and `set` can repair such a tree.
    pub fn read_each(sys: &Sysfs) -> Result<Reading, ParamsError> {
        if !sys.path(DIR).is_dir() {
            return Err(ParamsError::NotLoaded(sys.path(DIR).display().to_string()));
        }
        let mut reading = Reading { known: ModuleParams::default(), unreadable: Vec::new() };
        for p in Param::ALL {
            let value = match p {
                Param::AllowShrink => sys.read_bool(p.path()).map(|b| b.map(u32::from)),
                _ => sys.read_parsed(p.path(), |s| s.parse::<u32>().ok(), "a whole number below 2^32 (a kernel uint)"),
            };
            match value {
                Ok(Some(v)) => reading.known.put(p, v),
                Ok(None) => reading.unreadable.push((p, missing(sys, p))),
                Err(e) => reading.unreadable.push((p, e)),
            }
        }
        Ok(reading)
    }

    /// Sets `p` to the kernel's value `v` (0 or 1 for the bool).
    fn put(&mut self, p: Param, v: u32) {
        match p {
            Param::PollNs => self.guest_halt_poll_ns = v,
            Param::Grow => self.grow = v,
            Param::GrowStart => self.grow_start = v,
            Param::Shrink => self.shrink = v,
            Param::AllowShrink => self.allow_shrink = v != 0,
        }
    }

    /// As the core crate's parameters (with the current shrink rule).
    pub fn params(&self) -> Params {
        Params {
            guest_halt_poll_ns: self.guest_halt_poll_ns.into(),
            grow: self.grow,
            grow_start: self.grow_start.into(),
            shrink: self.shrink,
            allow_shrink: self.allow_shrink,
            ..Params::DEFAULT
        }
    }

    /// The kernel's values for `params`, if each fits the kernel's type.
    pub fn from_params(params: &Params) -> Result<ModuleParams, String> {
        if params.block_time != haltpoll::BlockTime::HaltOnly {
            return Err("Linux counts only the halt as block time: --block-time poll-and-halt is ours, \
                        not a kernel parameter"
                .to_owned());
        }
        if params.arithmetic != WindowArithmetic::Kernel {
            return Err(
                "Linux's window is 32 bits wide: --window-arithmetic saturating is ours, not the kernel's".to_owned()
            );
        }
        let uint = |p: Param, v: u64| u32::try_from(v).map_err(|_| too_large(p, v));
        Ok(ModuleParams {
            guest_halt_poll_ns: uint(Param::PollNs, params.guest_halt_poll_ns)?,
            grow: params.grow,
            grow_start: uint(Param::GrowStart, params.grow_start)?,
            shrink: params.shrink,
            allow_shrink: params.allow_shrink,
        })
    }

    /// The value of `p` as the kernel shows it (`Y`/`N` for the bool).
    pub fn value(&self, p: Param) -> String {
        match p {
            Param::PollNs => self.guest_halt_poll_ns.to_string(),
            Param::Grow => self.grow.to_string(),
            Param::GrowStart => self.grow_start.to_string(),
            Param::Shrink => self.shrink.to_string(),
            Param::AllowShrink => (if self.allow_shrink { "Y" } else { "N" }).to_owned(),
        }
    }

    /// Sets `p` from what a user typed: a whole number (with a unit for the two times, e.g.
    /// `400us`), or for `allow_shrink` Y/N/1/0/true/false/on/off.
    pub fn set(&mut self, p: Param, text: &str) -> Result<(), String> {
        let uint = |v: u64| u32::try_from(v).map_err(|_| too_large(p, v));
        match p {
            Param::PollNs | Param::GrowStart => {
                let ns = units::parse_ns(text).map_err(|e| format!("{p}: {e}"))?;
                let ns = uint(ns)?;
                if p == Param::PollNs { self.guest_halt_poll_ns = ns } else { self.grow_start = ns }
            }
            Param::Grow | Param::Shrink => {
                let n = text.trim().parse::<u64>().map_err(|_| format!("{p}: {text:?} is not a whole number"))?;
                let n = uint(n)?;
                if p == Param::Grow { self.grow = n } else { self.shrink = n }
            }
            Param::AllowShrink => {
                self.allow_shrink = match text.trim().to_ascii_lowercase().as_str() {
                    "y" | "yes" | "1" | "true" | "on" => true,
                    "n" | "no" | "0" | "false" | "off" => false,
                    _ => return Err(format!("{p}: {text:?} is not a bool (Y or N)")),
                }
            }
        }
        Ok(())
    }

    /// What is odd or risky about these values, one sentence each (empty for sane ones).
    pub fn warnings(&self) -> Vec<String> {
        self.findings().into_iter().map(|f| f.text).collect()
    }

    /// [`ModuleParams::warnings`], each under its code.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let params = self.params();
        if let Err(e) = params.validate() {
            out.push(Finding::new(Code::ParamsInvalid, format!("these parameters cannot work: {e}")));
        }
        if self.guest_halt_poll_ns == 0 {
            out.push(Finding::new(
                Code::PollingOff,
                "guest polling is off: guest_halt_poll_ns=0 holds every CPU's window at 0, so every idle entry halts \
                 (a VM exit, and an IPI for whoever wakes it); `haltpoll tune` on a perf trace of this guest \
                 suggests a value",
            ));
            return out;
        }
        if params.is_on_off() {
            out.push(Finding::new(
                Code::OnOffWindow,
                format!(
                    "grow_start ({}) exceeds guest_halt_poll_ns ({}): the window is on/off, either 0 or {}",
                    self.grow_start,
                    self.guest_halt_poll_ns,
                    fmt_ns(self.guest_halt_poll_ns.into())
                ),
            ));
        }
        if !self.allow_shrink {
            out.push(Finding::new(
                Code::NeverShrinks,
                format!(
                    "the window never shrinks: once grown, a CPU polls up to {} before every halt, however long it sleeps",
                    fmt_ns(self.guest_halt_poll_ns.into())
                ),
            ));
        }
        out.extend(wrap_warning(&params).map(|w| Finding::new(Code::WindowWraps, w)));
        if u64::from(self.guest_halt_poll_ns) > 1_000_000 {
            out.push(Finding::new(
                Code::LargeCeiling,
                format!(
                    "a ceiling of {} can keep CPUs busy polling on an otherwise idle guest: mind the host's other tenants",
                    fmt_ns(self.guest_halt_poll_ns.into())
                ),
            ));
        }
        out
    }

    /// The parameters as `haltpoll set` arguments (`guest_halt_poll_ns=... ...`).
    pub fn set_args(&self) -> String {
        Param::ALL.iter().map(|&p| format!("{p}={}", self.value(p))).collect::<Vec<_>>().join(" ")
    }

    /// The parameters as kernel command-line options (`haltpoll.guest_halt_poll_ns=... ...`).
    pub fn cmdline(&self) -> String {
        Param::ALL.iter().map(|&p| format!("{MODULE}.{p}={}", self.value(p))).collect::<Vec<_>>().join(" ")
    }
}

impl Default for ModuleParams {
    /// Linux's defaults.
    fn default() -> Self {
        ModuleParams::from_params(&Params::DEFAULT).expect("the defaults fit the kernel's types")
    }
}

/// Where a parameter's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The kernel command line set it (`haltpoll.guest_halt_poll_ns=...`), and it still holds
    /// that value.
    CommandLine,
    /// Linux's default: the command line does not set it, and nothing changed it.
    Default,
    /// Changed since boot (`haltpoll set`, a write to sysfs); `command_line` is what the
    /// command line said, if it said anything.
    Runtime {
        /// The command line's value, as written there.
        command_line: Option<String>,
    },
    /// Given as the module loaded (modprobe's options): `cpuidle_haltpoll.force`, which cannot
    /// change afterwards.
    LoadOption,
}

impl Origin {
    /// The name in JSON and in `status`.
    pub const fn name(&self) -> &'static str {
        match self {
            Origin::CommandLine => "command_line",
            Origin::Default => "default",
            Origin::Runtime { .. } => "runtime",
            Origin::LoadOption => "load_option",
        }
    }
}

impl ModuleParams {
    /// Where the value of `p` came from, given the kernel's command line.
    pub fn origin(&self, p: Param, cmdline: &KernelCmdline) -> Origin {
        let current = self.value(p);
        let given = cmdline.get(MODULE, p.name());
        let parsed = given.map(|text| match p {
            Param::AllowShrink => kernel_bool(text).map(|b| ModuleParams { allow_shrink: b, ..*self }.value(p)),
            _ => text.and_then(kernel_uint).map(|v| v.to_string()),
        });
        match (given, parsed) {
            (Some(_), Some(Some(v))) if v == current => Origin::CommandLine,
            (Some(text), _) => Origin::Runtime { command_line: Some(text.unwrap_or("").to_owned()) },
            (None, _) if current == ModuleParams::default().value(p) => Origin::Default,
            (None, _) => Origin::Runtime { command_line: None },
        }
    }
}

/// Where `cpuidle_haltpoll.force`'s value `force` came from, given the kernel's command line.
pub fn force_origin(force: bool, cmdline: &KernelCmdline) -> Origin {
    match cmdline.get(DRIVER_MODULE, "force") {
        Some(text) if kernel_bool(text) == Some(force) => Origin::CommandLine,
        _ if !force => Origin::Default,
        _ => Origin::LoadOption,
    }
}

/// A `uint` parameter as the kernel parses it (`kstrtouint`, base 0: `0x` hex, a leading `0`
/// octal, else decimal).
fn kernel_uint(text: &str) -> Option<u32> {
    let text = text.strip_prefix('+').unwrap_or(text);
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse().ok()
    }
}

/// A `bool` parameter as the kernel parses it (`kstrtobool`; a bare name without `=` is true).
fn kernel_bool(text: Option<&str>) -> Option<bool> {
    let Some(text) = text else { return Some(true) };
    let lower = text.to_ascii_lowercase();
    match lower.as_bytes() {
        [b'y' | b'1', ..] => Some(true),
        [b'n' | b'0', ..] => Some(false),
        [b'o', b'n', ..] => Some(true),
        [b'o', b'f', ..] => Some(false),
        _ => None,
    }
}

/// What to say when the kernel's window wraps under `params` (see
/// [`haltpoll::governor::kernel_window_wrap`]), if it does.
pub fn wrap_warning(params: &Params) -> Option<String> {
    let wrap = haltpoll::governor::kernel_window_wrap(params)?;
    Some(format!(
        "the kernel's window wraps under guest_halt_poll_ns={} grow_start={} grow={}: a grow from {} gives {}, \
         beyond its 32-bit unsigned int, so the window becomes {} instead of {}; a smaller grow or ceiling avoids it",
        params.guest_halt_poll_ns,
        params.grow_start,
        params.grow,
        wrap.from,
        wrap.product,
        wrap.to,
        wrap.product.min(params.guest_halt_poll_ns)
    ))
}

fn missing(sys: &Sysfs, p: Param) -> SysfsError {
    SysfsError::Missing { path: sys.path(p.path()), why: "the other haltpoll parameters are there" }
}

fn too_large(p: Param, v: u64) -> String {
    format!("{p}={v} does not fit the kernel's parameter, a 32-bit unsigned int (at most {})", u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Reads the values, all of which must be readable.
    fn read(sys: &Sysfs) -> Result<ModuleParams, String> {
        let reading = ModuleParams::read_each(sys).map_err(|e| e.to_string())?;
        match reading.unreadable.into_iter().next() {
            Some((_, e)) => Err(e.to_string()),
            None => Ok(reading.known),
        }
    }

    fn fixture(values: [&str; 5]) -> (tempfile::TempDir, Sysfs) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(DIR)).unwrap();
        for (p, v) in Param::ALL.iter().zip(values) {
            fs::write(dir.path().join(p.path()), format!("{v}\n")).unwrap();
        }
        let sys = Sysfs::open(dir.path()).unwrap();
        (dir, sys)
    }

    #[test]
    fn names() {
        assert_eq!(Param::from_name("guest_halt_poll_ns"), Some(Param::PollNs));
        assert_eq!(Param::from_name("ns"), Some(Param::PollNs));
        assert_eq!(Param::from_name("poll-ns"), Some(Param::PollNs));
        assert_eq!(Param::from_name("grow"), Some(Param::Grow));
        assert_eq!(Param::from_name("grow-start"), Some(Param::GrowStart));
        assert_eq!(Param::from_name("shrink"), Some(Param::Shrink));
        assert_eq!(Param::from_name("allow_shrink"), Some(Param::AllowShrink));
        assert_eq!(Param::from_name("guest_halt_poll_allow_shrink"), Some(Param::AllowShrink));
        assert_eq!(Param::from_name("halt_poll_ns"), None, "the host's parameter, not ours");
        assert_eq!(Param::from_name("start"), None);
    }

    #[test]
    fn reads_what_the_kernel_shows() {
        let (_dir, sys) = fixture(["0", "2", "50000", "2", "Y"]);
        let p = read(&sys).unwrap();
        assert_eq!(p, ModuleParams { guest_halt_poll_ns: 0, ..ModuleParams::default() });
        assert_eq!(p.params().guest_halt_poll_ns, 0);
        assert_eq!(p.value(Param::AllowShrink), "Y");
    }

    #[test]
    fn malformed_and_missing_files_are_named() {
        let (_dir, sys) = fixture(["0", "2", "lots", "2", "Y"]);
        let err = read(&sys).unwrap_err();
        assert!(err.contains("guest_halt_poll_grow_start: expected a whole number below 2^32"), "{err}");
        let (_dir, sys) = fixture(["4294967296", "2", "1", "2", "Y"]);
        assert!(read(&sys).is_err(), "beyond a uint");
        let (_dir, sys) = fixture(["0", "2", "1", "2", "maybe"]);
        let err = read(&sys).unwrap_err();
        assert!(err.contains("guest_halt_poll_allow_shrink: expected Y or N, found \"maybe\""), "{err}");
        let (dir, sys) = fixture(["0", "2", "1", "2", "Y"]);
        fs::remove_file(dir.path().join(Param::Shrink.path())).unwrap();
        let err = read(&sys).unwrap_err();
        assert!(err.ends_with("guest_halt_poll_shrink is missing: the other haltpoll parameters are there"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = read(&Sysfs::open(empty.path()).unwrap()).unwrap_err();
        assert!(err.contains("this kernel has no haltpoll governor"), "{err}");
    }

    #[test]
    fn each_parameter_is_read_on_its_own() {
        let (dir, sys) = fixture(["400000", "", "1", "2", "Y"]);
        fs::remove_file(dir.path().join(Param::Shrink.path())).unwrap();
        let reading = ModuleParams::read_each(&sys).unwrap();
        assert_eq!(reading.known.guest_halt_poll_ns, 400_000, "the readable ones are read");
        let bad: Vec<Param> = reading.unreadable.iter().map(|(p, _)| *p).collect();
        assert_eq!(bad, vec![Param::Grow, Param::Shrink]);
        assert!(!reading.has(Param::Grow) && reading.has(Param::GrowStart));
        assert_eq!(
            reading.describe(),
            "guest_halt_poll_ns=400000 guest_halt_poll_grow=(unreadable) guest_halt_poll_grow_start=1 \
             guest_halt_poll_shrink=(unreadable) guest_halt_poll_allow_shrink=Y"
        );
        assert!(read(&sys).is_err(), "read wants them all");
    }

    #[test]
    fn warns_when_the_kernels_window_wraps() {
        let p = ModuleParams { grow: 65_536, grow_start: 65_536, ..ModuleParams::default() };
        let w = p.warnings();
        assert!(
            w.iter().any(|w| w.contains("a grow from 65536 gives 4294967296, beyond its 32-bit unsigned int")
                && w.contains("becomes 65536 instead of 200000")),
            "{w:?}"
        );
        assert!(!ModuleParams::default().warnings().iter().any(|w| w.contains("wraps")));
        let wide = Params { arithmetic: WindowArithmetic::Saturating, ..Params::DEFAULT };
        assert!(ModuleParams::from_params(&wide).unwrap_err().contains("32 bits"));
    }

    #[test]
    fn set_parses_units_types_and_bools() {
        let mut p = ModuleParams::default();
        p.set(Param::PollNs, "400us").unwrap();
        p.set(Param::GrowStart, "100000").unwrap();
        p.set(Param::Grow, "4").unwrap();
        p.set(Param::AllowShrink, "off").unwrap();
        assert_eq!(
            p.set_args(),
            "guest_halt_poll_ns=400000 guest_halt_poll_grow=4 guest_halt_poll_grow_start=100000 guest_halt_poll_shrink=2 guest_halt_poll_allow_shrink=N"
        );
        assert!(p.set(Param::PollNs, "5s").unwrap_err().contains("32-bit unsigned int"));
        assert!(p.set(Param::Grow, "-1").unwrap_err().contains("not a whole number"));
        assert!(p.set(Param::Shrink, "4294967296").unwrap_err().contains("32-bit"));
        assert!(p.set(Param::AllowShrink, "perhaps").unwrap_err().contains("not a bool"));
        assert!(p.set(Param::GrowStart, "1.5ns").unwrap_err().starts_with("guest_halt_poll_grow_start: "));
    }

    #[test]
    fn where_each_value_came_from() {
        let cmdline = KernelCmdline::parse(
            "cpuidle_haltpoll.force=1 haltpoll.guest_halt_poll_ns=0 haltpoll.guest_halt_poll_grow=0x4 \
             haltpoll.guest_halt_poll_shrink=3 haltpoll.guest_halt_poll_allow_shrink=off",
        );
        let p =
            ModuleParams { guest_halt_poll_ns: 0, grow: 4, grow_start: 100, allow_shrink: false, ..Default::default() };
        assert_eq!(p.origin(Param::PollNs, &cmdline), Origin::CommandLine);
        assert_eq!(p.origin(Param::Grow, &cmdline), Origin::CommandLine, "0x4 is 4 to the kernel");
        assert_eq!(p.origin(Param::GrowStart, &cmdline), Origin::Runtime { command_line: None });
        assert_eq!(p.origin(Param::Shrink, &cmdline), Origin::Runtime { command_line: Some("3".into()) });
        assert_eq!(p.origin(Param::AllowShrink, &cmdline), Origin::CommandLine);
        let none = KernelCmdline::parse("console=ttyS0");
        assert_eq!(ModuleParams::default().origin(Param::PollNs, &none), Origin::Default);
        assert_eq!(force_origin(true, &cmdline), Origin::CommandLine);
        assert_eq!(force_origin(false, &none), Origin::Default);
        assert_eq!(force_origin(true, &none), Origin::LoadOption);
        assert_eq!(kernel_uint("010"), Some(8));
        assert_eq!(kernel_uint("12x"), None);
        assert_eq!(kernel_bool(None), Some(true));
        assert_eq!(kernel_bool(Some("maybe")), None);
    }

    #[test]
    fn command_line_names_the_module() {
        assert_eq!(
            ModuleParams::default().cmdline(),
            "haltpoll.guest_halt_poll_ns=200000 haltpoll.guest_halt_poll_grow=2 haltpoll.guest_halt_poll_grow_start=50000 \
             haltpoll.guest_halt_poll_shrink=2 haltpoll.guest_halt_poll_allow_shrink=Y"
        );
        let big = Params { guest_halt_poll_ns: 1 << 32, ..Params::DEFAULT };
        assert!(ModuleParams::from_params(&big).unwrap_err().contains("guest_halt_poll_ns=4294967296"));
    }
}
