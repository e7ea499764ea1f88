//! Changing the haltpoll governor's module parameters: the assignments a person gives, planned
//! against what sysfs holds into a whole set that is checked before anything is written, then
//! written all or none (a write that fails, or that the kernel does not hold, has the ones
//! before it written back).

use std::io;

use haltpoll::ParamError;

use crate::module_params::{ModuleParams, Param, ParamsError, Reading};
use crate::sysfs::{Sysfs, SysfsError};

/// One requested change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The parameter.
    pub param: Param,
    /// The value before, if it could be read.
    pub old: Option<String>,
    /// The value to write.
    pub new: String,
}

impl Change {
    /// The old value, or "unreadable".
    pub fn old_text(&self) -> &str {
        self.old.as_deref().unwrap_or("unreadable")
    }

    /// Whether the parameter holds the new value already.
    pub fn is_noop(&self) -> bool {
        self.old.as_ref() == Some(&self.new)
    }
}

/// Why assignments cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// An assignment without `=`.
    #[error("{0:?} is not PARAM=VALUE (e.g. guest_halt_poll_ns=400000)")]
    NotAssignment(String),
    /// A name that is no haltpoll parameter.
    #[error("unknown parameter {name:?}: the haltpoll parameters are {known}")]
    UnknownParam {
        /// The name given.
        name: String,
        /// Every parameter's names.
        known: String,
    },
    /// A parameter assigned twice.
    #[error("{0} is given twice")]
    Twice(Param),
    /// A value the kernel would not hold.
    #[error("{0}")]
    Value(String),
    /// A parameter that cannot be read and is not given: the set written would not be whole.
    #[error("{error}; give {param} a value as well to repair it, e.g. {}={default} (Linux's default)", param.short())]
    Unreadable {
        /// The parameter.
        param: Param,
        /// Why it cannot be read.
        error: String,
        /// Linux's default for it.
        default: String,
    },
    /// The resulting set does not work.
    #[error("refusing to write {set}")]
    Invalid {
        /// The set, as `haltpoll set` arguments.
        set: String,
        /// What is wrong with it.
        source: ParamError,
    },
}

/// Why the changes were not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A parameter's file cannot be opened for writing (nothing was written).
    #[error(transparent)]
    Open(#[from] SysfsError),
    /// A write failed, or the kernel holds another value: what was undone, and what every
    /// parameter reads now.
    #[error("{0}")]
    Undone(String),
    /// The parameters cannot be read back after the writes.
    #[error("reading the parameters back")]
    ReadBack(#[source] ParamsError),
}

/// Applies `assignments` (`PARAM=VALUE`) to what `current` read: the full resulting set,
/// validated, and the changes. A parameter that could not be read must be among the
/// assignments: the set written is then whole again.
pub fn plan(current: &Reading, assignments: &[String]) -> Result<(ModuleParams, Vec<Change>), PlanError> {
    let mut next = current.known;
    let mut seen = Vec::new();
    for a in assignments {
        let Some((name, value)) = a.split_once('=') else { return Err(PlanError::NotAssignment(a.clone())) };
        let param = Param::from_name(name).ok_or_else(|| {
            let names: Vec<_> = Param::ALL.iter().map(|p| format!("{} ({})", p.name(), p.short())).collect();
            PlanError::UnknownParam { name: name.to_owned(), known: names.join(", ") }
        })?;
        if seen.contains(&param) {
            return Err(PlanError::Twice(param));
        }
        seen.push(param);
        next.set(param, value).map_err(PlanError::Value)?;
    }
    if let Some((p, e)) = current.unreadable.iter().find(|(p, _)| !seen.contains(p)) {
        let default = ModuleParams::default().value(*p);
        return Err(PlanError::Unreadable { param: *p, error: e.to_string(), default });
    }
    next.params().validate().map_err(|source| PlanError::Invalid { set: next.set_args(), source })?;
    let changes = Param::ALL
        .into_iter()
        .filter(|p| seen.contains(p))
        .map(|param| Change {
            param,
            old: current.has(param).then(|| current.known.value(param)),
            new: next.value(param),
        })
        .collect();
    Ok((next, changes))
}

/// Writes `changes` to the parameters under `sys`, all or none: every file is opened before
/// any is written (a missing permission changes nothing), and a write that fails or that the
/// kernel does not hold has the changes before it written back.
pub fn write(sys: &Sysfs, changes: &[&Change]) -> Result<(), WriteError> {
    let mut files = changes.iter().map(|c| sys.open_for_write(c.param.path())).collect::<Result<Vec<_>, _>>()?;
    let params: Vec<Param> = changes.iter().map(|c| c.param).collect();
    let mut write = |p: Param, value: &str| {
        let i = params.iter().position(|&q| q == p).expect("only planned parameters are written");
        Sysfs::write(&mut files[i], value)
    };
    if let Err(failure) = apply(changes, &mut write) {
        return Err(WriteError::Undone(failure_message(&failure, ModuleParams::read_each(sys))));
    }
    // The kernel may take a write and hold another value: then undo the lot as well.
    let now = ModuleParams::read_each(sys).map_err(WriteError::ReadBack)?;
    if let Some(c) = changes.iter().find(|c| !now.has(c.param) || now.known.value(c.param) != c.new) {
        let held = if now.has(c.param) { now.known.value(c.param) } else { "unreadable".to_owned() };
        let cause = SysfsError::Write {
            path: sys.path(c.param.path()),
            cause: io::Error::other(format!("wrote {} but it reads {held}: the kernel did not take it", c.new)),
        };
        let failure = undo(changes, (c.param, cause), &mut write);
        return Err(WriteError::Undone(failure_message(&failure, ModuleParams::read_each(sys))));
    }
    Ok(())
}

/// How a write that failed was undone.
#[derive(Debug)]
struct Failure {
    /// The change whose write failed, and why.
    failed: (Param, SysfsError),
    /// Changes written before it and written back to their old values.
    restored: Vec<Param>,
    /// Changes written before it that could not be written back, and why.
    not_restored: Vec<(Param, String)>,
}

/// Writes `changes` in order with `write`. On the first failure it writes the old values of
/// the changes already written back, so that all or none of them take effect.
fn apply(changes: &[&Change], mut write: impl FnMut(Param, &str) -> Result<(), SysfsError>) -> Result<(), Failure> {
    for (i, c) in changes.iter().enumerate() {
        if let Err(e) = write(c.param, &c.new) {
            return Err(undo(&changes[..i], (c.param, e), &mut write));
        }
    }
    Ok(())
}

/// Writes the old values of `done` back, newest first, after `failed`.
fn undo(
    done: &[&Change],
    failed: (Param, SysfsError),
    write: &mut impl FnMut(Param, &str) -> Result<(), SysfsError>,
) -> Failure {
    let mut failure = Failure { failed, restored: Vec::new(), not_restored: Vec::new() };
    for c in done.iter().rev() {
        match &c.old {
            None => failure.not_restored.push((c.param, "its old value could not be read".to_owned())),
            Some(old) => match write(c.param, old) {
                Ok(()) => failure.restored.push(c.param),
                Err(e) => failure.not_restored.push((c.param, e.to_string())),
            },
        }
    }
    failure
}

/// The message for a failed set: what failed, what was undone, and what every parameter is now.
fn failure_message(f: &Failure, now: Result<Reading, ParamsError>) -> String {
    let (param, cause) = &f.failed;
    let mut msg = format!("{cause}");
    let restored: Vec<_> = f.restored.iter().map(|p| p.name()).collect();
    if !restored.is_empty() {
        msg += &format!("; wrote back the old value of {}", restored.join(", "));
    }
    for (p, why) in &f.not_restored {
        msg += &format!("; could not write back the old value of {p}: {why}");
    }
    msg += &match now {
        Ok(now) => format!("; the parameters now read {}", now.describe()),
        Err(e) => format!("; the parameters cannot be read back: {e}"),
    };
    if f.not_restored.is_empty() {
        // The failed parameter is among the restored when the kernel took its write and held
        // another value; otherwise its write never happened.
        if f.restored.contains(param) {
            msg += " (nothing changed)";
        } else {
            msg += &format!(" ({param} was not written: nothing changed)");
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn read(known: ModuleParams) -> Reading {
        Reading { known, unreadable: Vec::new() }
    }

    #[test]
    fn plans_the_full_set() {
        let current = read(ModuleParams { guest_halt_poll_ns: 0, ..ModuleParams::default() });
        let (next, changes) = plan(&current, &args(&["grow_start=100us", "guest_halt_poll_ns=400000"])).unwrap();
        assert_eq!((next.guest_halt_poll_ns, next.grow_start), (400_000, 100_000));
        let params: Vec<_> = changes.iter().map(|c| (c.param, c.old_text(), c.new.as_str())).collect();
        assert_eq!(params, vec![(Param::PollNs, "0", "400000"), (Param::GrowStart, "50000", "100000")]);
    }

    #[test]
    fn validates_the_resulting_set() {
        let d = read(ModuleParams::default());
        let err = plan(&d, &args(&["grow_start=0"])).unwrap_err();
        assert!(err.to_string().starts_with("refusing to write guest_halt_poll_ns=200000"), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("grow_start must be at least 1 ns"), "{cause}");
        // The SAP HANA guide's on/off setting is allowed.
        assert!(plan(&d, &args(&["ns=2.4ms", "grow_start=24ms"])).is_ok());
    }

    #[test]
    fn rejects_what_the_kernel_would_not_hold() {
        let d = read(ModuleParams::default());
        let err = |a: &[&str]| plan(&d, &args(a)).unwrap_err().to_string();
        assert!(err(&["ns=5s"]).contains("32-bit unsigned int"));
        assert!(err(&["allow_shrink=2"]).contains("not a bool"));
        assert!(err(&["halt_poll_ns=1"]).contains("unknown parameter \"halt_poll_ns\""));
        assert!(err(&["grow"]).contains("is not PARAM=VALUE"));
        assert!(err(&["grow=4", "guest_halt_poll_grow=3"]).contains("guest_halt_poll_grow is given twice"));
        assert!(err(&["ns=-5"]).contains("is negative"));
    }

    #[test]
    fn an_unreadable_parameter_must_be_given_to_repair_it() {
        let path = std::path::PathBuf::from("/x/guest_halt_poll_grow_start");
        let broken = || Reading {
            known: ModuleParams::default(),
            unreadable: vec![(
                Param::GrowStart,
                SysfsError::Malformed { path: path.clone(), text: String::new(), expected: "a whole number" },
            )],
        };
        let err = plan(&broken(), &args(&["ns=400us"])).unwrap_err().to_string();
        assert!(err.contains("found nothing (the file is empty)"), "{err}");
        assert!(
            err.ends_with(
                "give guest_halt_poll_grow_start a value as well to repair it, e.g. grow_start=50000 (Linux's default)"
            ),
            "{err}"
        );
        let (_, changes) = plan(&broken(), &args(&["ns=400us", "grow_start=50000"])).unwrap();
        assert_eq!(changes[1].old, None, "the old value is unknown");
    }

    /// A fake store: the kernel's parameters in memory, refusing the values `refuse` names
    /// with EINVAL, as the kernel refuses a value its parser rejects.
    struct Fake {
        values: Vec<(Param, String)>,
        refuse: Vec<&'static str>,
    }

    impl Fake {
        fn write(&mut self, p: Param, v: &str) -> Result<(), SysfsError> {
            if self.refuse.contains(&v) {
                let path = std::path::PathBuf::from(p.name());
                return Err(SysfsError::Write { path, cause: io::Error::from_raw_os_error(22) });
            }
            self.values.iter_mut().find(|(q, _)| *q == p).unwrap().1 = v.to_owned();
            Ok(())
        }
    }

    #[test]
    fn a_value_the_kernel_did_not_hold_is_not_called_unwritten() {
        let current = read(ModuleParams::default());
        let (_, changes) = plan(&current, &args(&["ns=400us"])).unwrap();
        let to_write: Vec<&Change> = changes.iter().collect();
        let cause = SysfsError::Write { path: "guest_halt_poll_ns".into(), cause: io::Error::other("reads 7") };
        let failure = undo(&to_write, (Param::PollNs, cause), &mut |_, _| Ok(()));
        let msg = failure_message(&failure, Ok(read(current.known)));
        assert!(msg.contains("; wrote back the old value of guest_halt_poll_ns;"), "{msg}");
        assert!(msg.ends_with(" (nothing changed)") && !msg.contains("was not written"), "{msg}");
    }

    #[test]
    fn a_failed_write_undoes_the_ones_before_it() {
        let current = read(ModuleParams { guest_halt_poll_ns: 0, ..ModuleParams::default() });
        let (_, changes) = plan(&current, &args(&["ns=400us", "grow_start=100us", "shrink=4"])).unwrap();
        let before: Vec<(Param, String)> = Param::ALL.iter().map(|&p| (p, current.known.value(p))).collect();
        let mut fake = Fake { values: before.clone(), refuse: vec!["100000"] };
        let to_write: Vec<&Change> = changes.iter().collect();
        let failure = apply(&to_write, |p, v| fake.write(p, v)).unwrap_err();
        assert_eq!(failure.failed.0, Param::GrowStart);
        assert_eq!(failure.restored, vec![Param::PollNs]);
        assert!(failure.not_restored.is_empty());
        assert_eq!(fake.values, before, "all or nothing: nothing");
        let msg = failure_message(&failure, Ok(read(current.known)));
        assert!(msg.starts_with("cannot write guest_halt_poll_grow_start: Invalid argument (os error 22)"), "{msg}");
        assert!(msg.contains("; wrote back the old value of guest_halt_poll_ns;"), "{msg}");
        assert!(msg.contains("the parameters now read guest_halt_poll_ns=0 "), "{msg}");
        assert!(msg.ends_with("(guest_halt_poll_grow_start was not written: nothing changed)"), "{msg}");
        // A restore that fails too is said, with what the parameter holds now.
        let mut fake = Fake { values: before.clone(), refuse: vec!["4", "0"] };
        let failure = apply(&to_write, |p, v| fake.write(p, v)).unwrap_err();
        assert_eq!(failure.failed.0, Param::Shrink);
        assert_eq!(failure.restored, vec![Param::GrowStart]);
        assert_eq!(failure.not_restored.len(), 1);
        let mut now = current.known;
        now.guest_halt_poll_ns = 400_000;
        let msg = failure_message(&failure, Ok(read(now)));
        assert!(msg.contains("could not write back the old value of guest_halt_poll_ns: cannot write"), "{msg}");
        assert!(msg.contains("now read guest_halt_poll_ns=400000 "), "{msg}");
        assert!(!msg.contains("nothing changed"), "{msg}");
        // Every write that succeeds: every value is the new one.
        let mut fake = Fake { values: before, refuse: vec![] };
        apply(&to_write, |p, v| fake.write(p, v)).unwrap();
        assert_eq!(fake.values[0].1, "400000");
        assert_eq!(fake.values[3].1, "4");
    }
}
