//! Running `haltpoll` as a child and interrupting it as a terminal would (SIGINT, SIGTERM), for
//! the tests of Ctrl-C. A signal for a benchmark of VMs is sent once the child runs its second
//! VM ([`interrupt_in_vm`]), whatever the host's load made the first take; the others after
//! fixed delays chosen with seconds of margin on either side of what the command is doing then
//! (a short first run done, a long second one going). Nothing here measures how fast the
//! command is.

#![allow(dead_code)] // each test binary uses its own part

use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// How long a child gets to end after its last signal before the test kills it and fails.
const END_WITHIN: Duration = Duration::from_secs(60);

/// `haltpoll args...`, started with stdout and stderr captured.
pub fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_haltpoll"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the haltpoll binary starts")
}

/// Sends `signals` to `child`, each after its delay, then waits for it to end.
pub fn interrupt(child: Child, signals: &[(Duration, Signal)]) -> Output {
    for &(after, signal) in signals {
        thread::sleep(after);
        send(&child, signal);
    }
    wait(child)
}

/// Sends `signal` to `child` once it runs its `nth` VM (counted from 1), then waits for it to
/// end. A VM is seen by its first vCPU thread, which the VMM names `vcpu0`: a new thread id
/// under that name is a new VM. Each VM before the `nth` must live long enough to be seen (a
/// few milliseconds: the tests' runs take a second or more).
pub fn interrupt_in_vm(child: Child, nth: usize, signal: Signal) -> Output {
    let since = Instant::now();
    let mut vms: Vec<String> = Vec::new();
    while vms.len() < nth {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", child.id())).expect("the child's threads");
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let tid = task.file_name().to_string_lossy().into_owned();
            if comm.trim_end() == "vcpu0" && !vms.contains(&tid) {
                vms.push(tid);
            }
        }
        assert!(since.elapsed() < END_WITHIN, "haltpoll ran {} VMs in {END_WITHIN:?}, not {nth}", vms.len());
        thread::sleep(Duration::from_millis(1));
    }
    send(&child, signal);
    wait(child)
}

fn send(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    kill_process(pid, signal).expect("the child is there to signal");
}

/// Waits for `child` to end (killing it and failing the test after [`END_WITHIN`]).
fn wait(mut child: Child) -> Output {
    let since = Instant::now();
    while child.try_wait().expect("waiting for the child").is_none() {
        if since.elapsed() > END_WITHIN {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "haltpoll did not end within {END_WITHIN:?} of its interrupt; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the child's output")
}

/// stdout and stderr as text.
pub fn texts(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}
