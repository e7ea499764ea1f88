//! The sysfs readers: the haltpoll module parameters and the cpuidle state files, from a
//! fixture tree whose files hold the input, split at 0xff bytes (sysfs text never has one).
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use haltpoll_fuzz::cpuidle::{Cpuidle, Rates};
use haltpoll_fuzz::module_params::{self, ModuleParams};
use haltpoll_fuzz::sysfs::Sysfs;

/// The files the input fills, in order.
const FILES: [&str; 12] = [
    "module/haltpoll/parameters/guest_halt_poll_ns",
    "module/haltpoll/parameters/guest_halt_poll_grow",
    "module/haltpoll/parameters/guest_halt_poll_grow_start",
    "module/haltpoll/parameters/guest_halt_poll_shrink",
    "module/haltpoll/parameters/guest_halt_poll_allow_shrink",
    "devices/system/cpu/cpuidle/current_driver",
    "devices/system/cpu/cpu0/cpuidle/state0/name",
    "devices/system/cpu/cpu0/cpuidle/state0/usage",
    "devices/system/cpu/cpu0/cpuidle/state0/time",
    "devices/system/cpu/cpu0/cpuidle/state1/name",
    "devices/system/cpu/cpu0/cpuidle/state1/usage",
    "devices/system/cpu/cpu0/cpuidle/state1/time",
];

/// One tree for the whole run, its files rewritten each time (in a directory of our own).
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("haltpoll-fuzz-sysfs-{}", std::process::id()));
        for file in FILES {
            fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
        }
        root
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let root = root();
    let mut parts = data.split(|&b| b == 0xff);
    for file in FILES {
        fs::write(root.join(file), parts.next().unwrap_or(b"")).unwrap();
    }
    let sys = Sysfs::open(root).unwrap();
    let check = |message: String| {
        assert!(message.len() <= haltpoll_fuzz::MAX_MESSAGE_BYTES, "{} bytes: {message:.200}", message.len());
    };
    match ModuleParams::read_each(&sys) {
        Ok(reading) => {
            reading.unreadable.iter().for_each(|(_, e)| check(e.to_string()));
            let _ = reading.known.warnings();
            let _ = module_params::wrap_warning(&reading.known.params());
        }
        Err(e) => check(e.to_string()),
    }
    match Cpuidle::read(&sys) {
        Ok(Some(idle)) => {
            let rates = Rates::between(&idle, &idle, 1.0);
            assert!((0.0..=1.0).contains(&rates.total.poll_share_of_idle()));
            assert!((0.0..=1.0).contains(&rates.total.poll_to_halt_share_max()));
        }
        Ok(None) => {}
        Err(e) => check(e.to_string()),
    }
});
