//! Running `haltpoll` as a child and interrupting it as a terminal would (SIGINT, SIGTERM), for
//! the tests of Ctrl-C. The signals are sent after fixed delays chosen with seconds of margin on
//! either side of what the command is doing then (a short first run done, a long second one
//! going); nothing here measures how fast the command is.

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
pub fn interrupt(mut child: Child, signals: &[(Duration, Signal)]) -> Output {
    for &(after, signal) in signals {
        thread::sleep(after);
        let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
        kill_process(pid, signal).expect("the child is there to signal");
    }
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
