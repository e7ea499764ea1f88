//! A build without the benchmarks (`--no-default-features`, the operator command) answers a
//! request for them with a usage error that names the cargo feature to rebuild with, where clap
//! would only say "unrecognized subcommand"; and it leaves them out of its help and man pages.
#![cfg(all(not(feature = "vm"), target_os = "linux", target_arch = "x86_64"))]

use assert_cmd::Command;
use predicates::prelude::*;

fn haltpoll() -> Command {
    Command::cargo_bin("haltpoll").unwrap()
}

#[test]
fn the_vm_commands_name_their_feature() {
    for args in [&["vm", "pingpong", "--json"][..], &["vm", "--help"], &["vm"]] {
        haltpoll()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("`haltpoll vm` is not in this build"))
            .stderr(predicate::str::contains("cargo feature `vm`"));
    }
}

#[cfg(not(feature = "bench"))]
#[test]
fn the_benchmarks_name_their_feature() {
    haltpoll()
        .args(["bench", "threads", "--repetitions", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cargo feature `bench`"));
}

#[test]
fn what_is_left_out_is_not_offered() {
    let help = haltpoll().arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("  status ") && !help.contains("  vm "), "{help}");
    let dir = tempfile::tempdir().unwrap();
    haltpoll().args(["man", "--out"]).arg(dir.path()).assert().code(0);
    assert!(dir.path().join("haltpoll-status.1").exists());
    assert!(!dir.path().join("haltpoll-vm.1").exists() && !dir.path().join("haltpoll-vm-pingpong.1").exists());
    let bash = haltpoll().args(["completions", "bash"]).output().unwrap();
    assert!(!String::from_utf8(bash.stdout).unwrap().contains("haltpoll__vm"));
}
