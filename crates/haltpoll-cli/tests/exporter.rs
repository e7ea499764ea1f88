//! `haltpoll exporter`: what it serves, what it refuses, a scrape storm, and a sysfs tree that
//! changes between scrapes.

mod common;
mod exposition;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use exposition as metrics;
use predicates::prelude::*;

const WORKERS: usize = 4;

/// The exporter, ended when dropped.
struct Exporter {
    child: Child,
    addr: SocketAddr,
}

impl Exporter {
    fn start(root: &Path) -> Exporter {
        Exporter::launch(&assert_cmd::cargo::cargo_bin("haltpoll"), root, None)
    }

    /// `bin`'s exporter, with at most `fd_limit` open files (`ulimit -n`) if given.
    fn launch(bin: &Path, root: &Path, fd_limit: Option<u32>) -> Exporter {
        let limit = fd_limit.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("{limit}exec \"$0\" \"$@\""))
            .arg(bin)
            .args(["exporter", "--listen", "127.0.0.1:0", "--workers", &WORKERS.to_string(), "--sysfs-root"])
            .arg(root)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        let addr = first.split("http://").nth(1).and_then(|a| a.split('/').next()).expect(&first);
        // The rest of stderr drained, so the exporter never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Exporter { child, addr: addr.parse().unwrap() }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A line of `/proc/PID/status`, as a number (in kB for a size).
    fn proc_status(&self, key: &str) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let value = status.lines().find_map(|l| l.strip_prefix(key)).unwrap();
        value.split_whitespace().next().unwrap().parse().unwrap()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap().count()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A response: status code, headers (lowercase names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as it is and reads the reply until the server closes.
fn send(addr: SocketAddr, request: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.write_all(request)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other(format!("no head: {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.map(|l| l.split_once(": ").unwrap()).map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned())).collect();
    Ok(Reply { status, headers, body: body.to_owned() })
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    send(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n").as_bytes())
}

#[test]
fn serves_the_metrics_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let exporter = Exporter::start(dir.path());
    let a = exporter.addr;

    let r = get(a, "/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    let scrape = metrics::parse(&r.body);
    let poll1 = [("cpu", "1"), ("state", "POLL")];
    assert_eq!(metrics::value(&scrape, "haltpoll_cpuidle_state_usage_total", &poll1), Some(30_001.0));
    metrics::conventions(&r.body);

    // Read at every scrape: a change shows at the next one.
    common::put(dir.path(), "devices/system/cpu/cpu1/cpuidle/state0/usage", "30500");
    let r = get(a, "/metrics?x=1").unwrap();
    assert_eq!(metrics::value(&metrics::parse(&r.body), "haltpoll_cpuidle_state_usage_total", &poll1), Some(30_500.0));

    let head = send(a, b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head.header("content-length").unwrap().parse::<usize>().unwrap() > 1000);
    assert_eq!(get(a, "/").unwrap().status, 200);
    assert_eq!(get(a, "/nope").unwrap().status, 404);
    let post = send(a, b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(send(a, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n").unwrap().status, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(send(a, huge.as_bytes()).unwrap().status, 431);
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(send(a, format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap().status, 431);
}

#[test]
fn a_client_that_trickles_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let exporter = Exporter::start(dir.path());
    let start = Instant::now();
    let mut s = TcpStream::connect(exporter.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // One byte every 300 ms: each read returns in time, the whole head never does.
    let mut raw = Vec::new();
    for b in b"GET /metrics HTTP/1.1\r\nHost: slow".iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never cut off");
        std::thread::sleep(Duration::from_millis(300));
    }
    let reply = String::from_utf8_lossy(&raw);
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply:?}");
    assert!(start.elapsed() >= Duration::from_secs(4), "cut off at the head deadline, not before");
}

#[test]
fn survives_a_scrape_storm() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let mut exporter = Exporter::start(dir.path());
    let a = exporter.addr;
    assert_eq!(get(a, "/metrics").unwrap().status, 200);
    let threads_idle = exporter.proc_status("Threads:");
    assert_eq!(threads_idle, 1 + WORKERS, "the reader of request heads and the workers");

    // 300 clients that connect and say nothing, 50 that send garbage and leave, and 8 that
    // scrape as Prometheus does, all at once.
    let silent: Vec<TcpStream> = (0..300).filter_map(|_| TcpStream::connect(a).ok()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let garbage = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < 50 {
                if let Ok(mut s) = TcpStream::connect(a) {
                    let _ = s.write_all(b"\x00\xff\xfe NOT HTTP\r\n\r\n");
                }
                sent += 1;
            }
        })
    };
    let (ok, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let scrapers: Vec<_> = (0..8)
        .map(|_| {
            let (ok, refused) = (Arc::clone(&ok), Arc::clone(&refused));
            std::thread::spawn(move || {
                for _ in 0..10 {
                    match get(a, "/metrics") {
                        // A scrape that is answered is answered whole.
                        Ok(r) => {
                            assert_eq!(r.status, 200);
                            metrics::parse(&r.body);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        // Closed unanswered: see below.
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let mut max_threads = 0;
    let mut max_fds = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while scrapers.iter().any(|s| !s.is_finished()) && Instant::now() < deadline {
        max_threads = max_threads.max(exporter.proc_status("Threads:"));
        max_fds = max_fds.max(exporter.open_fds());
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in scrapers {
        s.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    garbage.join().unwrap();
    eprintln!(
        "storm: {} scrapes answered, {} closed unanswered; at most {max_threads} threads and {max_fds} open files \
         (idle: {threads_idle} threads)",
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    assert!(exporter.alive(), "the exporter died in the storm");
    // A request read whole waits for a worker, however many: it is never closed to make room
    // (`serve::tests::a_request_read_whole_is_answered_however_long_the_workers_take`). A
    // scrape is closed unanswered only when 16 newer connections were accepted (the oldest held
    // is closed to make room) between its connect and its request, which takes its client
    // being descheduled there: timing, so reported.
    #[cfg(target_arch = "x86_64")]
    haltpoll_vmm::testing::timing_check(ok.load(Ordering::Relaxed) == 80, || {
        format!("only {} of 80 scrapes answered in the storm", ok.load(Ordering::Relaxed))
    });
    assert_eq!(max_threads, threads_idle, "no thread per connection");
    // The workers' connections, the queue, the listener, stdio: never the 300 silent ones.
    assert!(max_fds <= WORKERS * 5 + 12, "{max_fds} open files");
    drop(silent);
    // After the storm, scrapes are answered again.
    let recovered = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        get(a, "/metrics").is_ok_and(|r| r.status == 200)
    });
    assert!(recovered, "no scrape answered after the storm");
}

#[test]
fn survives_a_tree_that_changes_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    common::polling_guest(&root);
    let mut exporter = Exporter::start(&root);
    let a = exporter.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mutator = {
        let (stop, root) = (Arc::clone(&stop), root.clone());
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let cpu1 = root.join("devices/system/cpu/cpu1");
                match round % 6 {
                    0 => std::fs::remove_dir_all(&cpu1).unwrap_or(()), // a CPU goes offline
                    1 => common::put(&root, "devices/system/cpu/cpu1/cpuidle/state0/usage", "garbage"),
                    2 => std::fs::remove_dir_all(root.join("module")).unwrap_or(()), // module unloaded
                    3 => std::fs::remove_file(root.join("devices/system/cpu/cpu0/cpuidle/state1/name")).unwrap_or(()),
                    4 => common::put(&root, "module/haltpoll/parameters/guest_halt_poll_ns", "-1"),
                    _ => {
                        std::fs::remove_dir_all(root.join("devices")).unwrap_or(());
                        std::fs::remove_dir_all(root.join("module")).unwrap_or(());
                        common::polling_guest(&root);
                    }
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    let (mut scrapes, mut cpuidle_failed) = (0, 0);
    // At least 20 scrapes, over at least 3 s of the tree changing (however slow a loaded
    // machine makes each).
    let start = Instant::now();
    while scrapes < 20 || start.elapsed() < Duration::from_secs(3) {
        let r = get(a, "/metrics").expect("every scrape is answered");
        assert_eq!(r.status, 200);
        let scrape = metrics::parse(&r.body);
        if metrics::value(&scrape, "haltpoll_read_success", &[("source", "cpuidle")]) == Some(0.0) {
            cpuidle_failed += 1;
        }
        scrapes += 1;
    }
    stop.store(true, Ordering::Relaxed);
    mutator.join().unwrap();
    eprintln!("changing tree: {scrapes} scrapes, cpuidle unreadable in {cpuidle_failed}");
    assert!(exporter.alive());
    // Whole again: everything reads.
    std::fs::remove_dir_all(root.join("devices")).unwrap_or(());
    std::fs::remove_dir_all(root.join("module")).unwrap_or(());
    common::polling_guest(&root);
    let scrape = metrics::parse(&get(a, "/metrics").unwrap().body);
    for source in ["cpuidle", "params", "force"] {
        assert_eq!(metrics::value(&scrape, "haltpoll_read_success", &[("source", source)]), Some(1.0));
    }
    assert_eq!(metrics::value(&scrape, "haltpoll_guest_halt_poll_ceiling_seconds", &[]), Some(0.0002));
}

#[test]
fn a_port_in_use_and_a_missing_tree_are_errors() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["exporter", "--listen", &taken.local_addr().unwrap().to_string(), "--sysfs-root"]).arg(dir.path());
    cmd.assert()
        .code(1)
        .stderr(predicates::str::contains("cannot listen on 127.0.0.1:").and(predicates::str::contains("in use")));
    let mut cmd = assert_cmd::Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["exporter", "--listen", "127.0.0.1:0", "--sysfs-root"]).arg(dir.path().join("nope"));
    cmd.assert().code(1).stderr(predicates::str::contains("does not exist"));
    let mut cmd = assert_cmd::Command::cargo_bin("haltpoll").unwrap();
    cmd.args(["exporter", "--workers", "0"]).assert().code(2);
}

/// The binary the figures are measured on: `HALTPOLL_EXPORTER_BIN` (another build, to compare),
/// or this one.
fn measured_bin() -> std::path::PathBuf {
    std::env::var_os("HALTPOLL_EXPORTER_BIN").map_or_else(|| assert_cmd::cargo::cargo_bin("haltpoll"), Into::into)
}

/// A slowloris on `addr` (loopback only), ended when dropped: `clients` threads that each send
/// a request head a byte a second and, once the server closes, reconnect after 1 s.
struct Slowloris {
    stop: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Slowloris {
    fn start(addr: SocketAddr, clients: usize) -> Slowloris {
        assert!(addr.ip().is_loopback(), "the attack only targets this machine");
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        trickle(addr, &stop);
                        std::thread::sleep(Duration::from_secs(1));
                    }
                })
            })
            .collect();
        Slowloris { stop, clients }
    }
}

impl Drop for Slowloris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients.drain(..) {
            client.join().unwrap();
        }
    }
}

/// One connection of the slowloris: a byte a second until the server closes it (or `stop`).
fn trickle(addr: SocketAddr, stop: &AtomicBool) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return };
    if s.set_read_timeout(Some(Duration::from_secs(1))).is_err() {
        return;
    }
    for b in b"GET /metrics HTTP/1.1\r\nHost: slow".iter().cycle() {
        if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
            return;
        }
        let mut buf = [0u8; 512];
        // A reply (the 408) or the close ends it; a read that times out is the second's wait.
        if s.read(&mut buf).is_ok() {
            return;
        }
    }
}

/// Up to `count` scrapes one after another, `gap` apart, none started after `budget`: the time
/// each took, `None` for those not answered with a 200.
fn scrape_times(addr: SocketAddr, count: usize, gap: Duration, budget: Duration) -> Vec<Option<Duration>> {
    let end = Instant::now() + budget;
    let mut times = Vec::with_capacity(count);
    while times.len() < count && Instant::now() < end {
        std::thread::sleep(gap);
        let start = Instant::now();
        let reply = get(addr, "/metrics").ok();
        times.push(reply.filter(|r| r.status == 200 && r.body.contains("haltpoll_")).map(|_| start.elapsed()));
    }
    times
}

#[test]
fn keeps_answering_under_a_slowloris() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let mut exporter = Exporter::start(dir.path());
    // The workers are started once a scrape is answered.
    assert_eq!(get(exporter.addr, "/metrics").unwrap().status, 200);
    let threads_idle = exporter.proc_status("Threads:");
    let attack = Slowloris::start(exporter.addr, 40);
    // Every client connected and trickling, some already cut off and back.
    std::thread::sleep(Duration::from_secs(3));
    let times = scrape_times(exporter.addr, 20, Duration::from_millis(200), Duration::from_secs(60));
    let fds = exporter.open_fds();
    let threads = exporter.proc_status("Threads:");
    drop(attack);
    let answered = times.iter().flatten().count();
    eprintln!("slowloris: {answered} of {} scrapes answered, {fds} open files", times.len());
    // Each trickling client holds a slot, never a worker: every scrape is read as it arrives.
    assert_eq!(answered, times.len(), "scrapes not answered under the slowloris: {times:?}");
    assert!(exporter.alive());
    assert_eq!(threads, threads_idle, "no thread per connection");
    assert!(fds <= WORKERS * 5 + 12, "{fds} open files");
}

#[test]
fn silent_connections_do_not_hold_the_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let exporter = Exporter::launch(&assert_cmd::cargo::cargo_bin("haltpoll"), dir.path(), Some(12));
    // 100 connections that say nothing: more than the 12 descriptors, queued by the kernel
    // ahead of the scrape.
    let silent: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(exporter.addr).ok()).collect();
    let r = get(exporter.addr, "/metrics").expect("a scrape behind 100 silent connections");
    assert_eq!(r.status, 200);
    // The sysfs files were read too: the silent connections left the workers their descriptors.
    let poll1 = [("cpu", "1"), ("state", "POLL")];
    let scrape = metrics::parse(&r.body);
    assert_eq!(metrics::value(&scrape, "haltpoll_cpuidle_state_usage_total", &poll1), Some(30_001.0));
    drop(silent);
}

/// The figures of docs/reliability.md: a slowloris of 40 clients for 100 scrapes (or a minute), and a
/// scrape behind 100 silent connections under `ulimit -n 12`. Prints the figures, asserts none.
/// `HALTPOLL_EXPORTER_BIN=path cargo test -p haltpoll-cli --test exporter -- --ignored
/// --nocapture slowloris_figures` measures another build.
#[test]
#[ignore = "prints figures; about a minute"]
fn slowloris_figures() {
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let bin = measured_bin();
    let exporter = Exporter::launch(&bin, dir.path(), None);
    let attack = Slowloris::start(exporter.addr, 40);
    std::thread::sleep(Duration::from_secs(3));
    let times = scrape_times(exporter.addr, 100, Duration::from_millis(200), Duration::from_secs(60));
    drop(attack);
    let mut answered: Vec<Duration> = times.iter().flatten().copied().collect();
    answered.sort();
    let in_time = answered.iter().filter(|t| **t < Duration::from_secs(10)).count();
    let pct = |p: usize| answered.get((answered.len() * p).div_ceil(100).saturating_sub(1)).copied();
    eprintln!(
        "{}: slowloris of 40: {} of {} scrapes answered ({in_time} within 10 s), p50 {:?}, p99 {:?}",
        bin.display(),
        answered.len(),
        times.len(),
        pct(50),
        pct(99)
    );
    drop(exporter);

    let exporter = Exporter::launch(&bin, dir.path(), Some(12));
    let silent: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(exporter.addr).ok()).collect();
    let start = Instant::now();
    let r = get(exporter.addr, "/metrics");
    eprintln!(
        "ulimit -n 12, {} silent connections: the scrape {} after {:?}",
        silent.len(),
        r.map_or_else(|e| format!("failed ({e})"), |r| format!("got a {}", r.status)),
        start.elapsed()
    );
}

/// A soak: `HALTPOLL_SOAK_SCRAPES` scrapes (20,000 by default: 83 hours of Prometheus at one
/// scrape every 15 s), compressed into minutes, in bursts of [`SOAK_BURST`] from [`WORKERS`]
/// clients at once with a pause between bursts. After a warm-up, the exporter's resident memory
/// (VmRSS), open files and threads are sampled after every burst: each must stay flat, and every
/// scrape must be answered whole. Prints the figures of docs/reliability.md. Run by
/// `.ci/reliability`.
#[test]
#[ignore = "a soak of minutes; run by .ci/reliability"]
fn soak_leaves_memory_and_files_flat() {
    let total: usize = std::env::var("HALTPOLL_SOAK_SCRAPES").map_or(20_000, |n| n.parse().expect("a count"));
    let dir = tempfile::tempdir().unwrap();
    common::polling_guest(dir.path());
    let exporter = Exporter::launch(&measured_bin(), dir.path(), None);
    let settled = |exporter: &Exporter| {
        std::thread::sleep(Duration::from_millis(200));
        (exporter.proc_status("VmRSS:"), exporter.open_fds(), exporter.proc_status("Threads:"))
    };
    // The warm-up: the workers started, the allocator's arenas and buffers made (resident
    // memory still creeps up by a few hundred kB over the next thousands of scrapes, as the
    // workers' arenas settle, then stays: 12256 kB at most in the first quarter of 100,000
    // scrapes, 12280 kB in the last).
    for _ in 0..20 {
        assert_eq!(soak_burst(exporter.addr).0, SOAK_BURST, "a warm-up scrape was not answered");
    }
    let (rss_start, fds_start, threads_start) = settled(&exporter);
    let started = Instant::now();
    let (mut answered, mut times, mut samples) = (0, Vec::with_capacity(total), Vec::new());
    while answered < total {
        let (ok, burst_times) = soak_burst(exporter.addr);
        assert_eq!(ok, SOAK_BURST, "after {answered} scrapes, a burst had {ok} of {SOAK_BURST} answered");
        answered += ok;
        times.extend(burst_times);
        samples.push((exporter.proc_status("VmRSS:"), exporter.open_fds(), exporter.proc_status("Threads:")));
        if samples.len() % 10 == 0 {
            eprintln!("DBG {} {:?}", samples.len(), samples.last());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let (rss_end, fds_end, threads_end) = settled(&exporter);
    times.sort();
    let pct = |p: usize| times[(times.len() * p).div_ceil(100).saturating_sub(1)];
    let quarter = samples.len().div_ceil(4);
    let first_max = samples[..quarter].iter().map(|s| s.0).max().unwrap();
    let last_max = samples[samples.len() - quarter..].iter().map(|s| s.0).max().unwrap();
    let rss_max = samples.iter().map(|s| s.0).max().unwrap();
    let fds_max = samples.iter().map(|s| s.1).max().unwrap();
    let threads_max = samples.iter().map(|s| s.2).max().unwrap();
    eprintln!(
        "soak: {answered} scrapes in {:.0?} ({:.0}/s), in {} bursts of {SOAK_BURST}; a scrape p50 {:?}, p99 {:?}, \
         max {:?}; VmRSS {rss_start} kB after the warm-up, {first_max} kB at most in the first quarter, \
         {last_max} kB in the last, {rss_max} kB at most, {rss_end} kB at the end; open files {fds_start}, at most \
         {fds_max}, {fds_end} at the end; threads {threads_start}, at most {threads_max}, {threads_end} at the end",
        elapsed,
        answered as f64 / elapsed.as_secs_f64(),
        samples.len(),
        pct(50),
        pct(99),
        times.last().unwrap()
    );
    // Flat: what the last quarter of the scrapes needs, the first already had, with 256 kB for
    // the allocator's own moves (a leak of one request head per scrape would be 40 MB); no file
    // or thread held after the last burst that was not before the first.
    assert!(last_max <= first_max + 256, "VmRSS grew: {first_max} kB in the first quarter, {last_max} kB in the last");
    assert_eq!(fds_end, fds_start, "open files after the soak");
    assert_eq!(threads_max, threads_start, "threads during the soak");
    assert!(
        fds_max <= fds_start + 2 * WORKERS,
        "{fds_max} open files during the soak (after the warm-up: {fds_start})"
    );
}

/// Scrapes in one burst of the soak: 25 from each client.
const SOAK_BURST: usize = 25 * WORKERS;

/// [`SOAK_BURST`] scrapes from [`WORKERS`] clients at once: how many were answered whole (a 200
/// with the metrics), and the time each took.
fn soak_burst(addr: SocketAddr) -> (usize, Vec<Duration>) {
    let clients: Vec<_> = (0..WORKERS)
        .map(|_| {
            std::thread::spawn(move || {
                (0..SOAK_BURST / WORKERS)
                    .filter_map(|_| {
                        let start = Instant::now();
                        let reply = get(addr, "/metrics").ok()?;
                        (reply.status == 200 && reply.body.contains("haltpoll_")).then(|| start.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let times: Vec<Duration> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    (times.len(), times)
}
