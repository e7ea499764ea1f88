//! `haltpoll exporter`: the metrics of [`haltpoll_linux::metrics`] over HTTP for Prometheus, read from
//! sysfs at every scrape.

mod serve;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use haltpoll_linux::metrics::{self, Facts};
use haltpoll_linux::sysfs::Sysfs;
use serve::Response;

use crate::options::{SysfsRoot, SystemRoots};

/// Arguments of `haltpoll exporter`.
#[derive(Args, Debug)]
#[command(
    long_about = "Serve the cpuidle and haltpoll metrics over HTTP for Prometheus.

sysfs is read at every scrape; no root is needed. A Prometheus scrape config for it:

  scrape_configs:
    - job_name: haltpoll
      static_configs:
        - targets: ['127.0.0.1:9864']

The metrics and their meaning: docs/operators.md.",
    after_help = "\
Examples:
  # this machine's metrics on http://127.0.0.1:9864/metrics, until stopped
  haltpoll exporter
  # for a Prometheus on another machine (no TLS, no authentication: keep it behind a firewall)
  haltpoll exporter --listen 0.0.0.0:9864"
)]
pub struct ExporterArgs {
    /// Address (or host name, e.g. localhost) and port to listen on (port 0: any free port,
    /// printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9864", value_parser = parse_listen)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub sysfs: SysfsRoot,
    #[command(flatten)]
    pub system: SystemRoots,
    /// Scrapes answered at once. One more thread reads the request heads, of up to 4
    /// connections per worker at once (beyond that the oldest is closed).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
}

/// Runs `haltpoll exporter` until the process is ended.
pub fn run(args: &ExporterArgs) -> Result<()> {
    let sys = Sysfs::open(&args.sysfs.sysfs_root)?;
    let roots = args.system.roots();
    if args.listen.ip().is_unspecified() {
        crate::output::stderr_line(format_args!(
            "haltpoll: warning: listening on {}, every network interface: the metrics are open to the \
             network (no TLS, no authentication), so keep the port behind a firewall",
            args.listen
        ));
    }
    let listener = TcpListener::bind(args.listen).with_context(|| {
        format!("cannot listen on {}: is the port in use, or the address not this machine's?", args.listen)
    })?;
    let addr = listener.local_addr().context("the listening address")?;
    crate::output::stderr_line(format_args!(
        "haltpoll: serving the metrics of {} on http://{addr}/metrics",
        sys.root().display()
    ));
    let last_problems = Mutex::new(Vec::new());
    let handler = move |path: &str| match path {
        "/metrics" => {
            let facts = Facts::read(&sys, &roots);
            report_problems(&last_problems, facts.problems());
            Response { status: 200, content_type: metrics::CONTENT_TYPE, body: metrics::render(&facts) }
        }
        "/" => Response::text(200, "haltpoll exporter: the metrics are at /metrics\n"),
        _ => Response::text(404, "not found: the metrics are at /metrics\n"),
    };
    serve::serve(listener, usize::from(args.workers), Arc::new(handler)).context("serving the metrics")
}

/// `--listen`: an address and port, or a host name and port resolved to its first address
/// (`localhost:9864`, as a browser or Prometheus takes it).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?} is not an address and port this machine resolves (e.g. 127.0.0.1:9864): {e}"))?;
    addrs.next().ok_or_else(|| format!("{text:?} resolves to no address: give one, e.g. 127.0.0.1:9864"))
}

/// Says on stderr what could not be read, when that changes (not at every scrape).
fn report_problems(last: &Mutex<Vec<String>>, now: Vec<String>) {
    let mut last = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *last != now {
        for problem in &now {
            crate::output::stderr_line(format_args!(
                "haltpoll: warning: {problem} (its metrics are left out until it reads again)"
            ));
        }
        if now.is_empty() {
            crate::output::stderr_line(format_args!("haltpoll: every source reads again"));
        }
        *last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_and_host_names() {
        assert_eq!(parse_listen("127.0.0.1:9864"), Ok(SocketAddr::from(([127, 0, 0, 1], 9864))));
        assert!(parse_listen("localhost:9864").unwrap().ip().is_loopback());
        assert!(parse_listen("localhost").unwrap_err().contains("is not an address and port"));
        assert!(parse_listen("9864").is_err());
    }
}
