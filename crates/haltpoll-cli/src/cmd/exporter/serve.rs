//! A small HTTP/1.1 server for scrapes, bounded in every dimension a client controls: a fixed
//! number of worker threads, a fixed backlog of accepted connections, a request head of at most
//! [`MAX_HEAD`] bytes whose first byte must come within [`FIRST_BYTE_DEADLINE`] and the whole
//! within [`HEAD_DEADLINE`] however slowly it trickles, and writes that time out. One request
//! per connection (`Connection: close`), GET and HEAD only. The request head is parsed by
//! `httparse`.
//!
//! Under overload the backlog serves the newest connection first and closes the oldest
//! waiting one to make room: a scrape that just arrived is live, while a connection that has
//! waited for seconds has likely been given up by its client, or never meant to send anything.
//! So a burst of silent connections delays scrapes by at most the first-byte deadline instead
//! of locking them out; a flood that never stops still can (that takes a firewall).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// The time a client has to send the first byte of its request: Prometheus sends at once.
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(1);
/// The time a client has to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// The time a write may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted and waiting for a worker, per worker.
const BACKLOG_PER_WORKER: usize = 4;

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

/// What answers a GET for a path (without the query).
pub type Handler = dyn Fn(&str) -> Response + Send + Sync;

/// Serves `listener` with `workers` threads until the process ends.
pub fn serve(listener: TcpListener, workers: usize, handler: Arc<Handler>) -> io::Result<()> {
    let backlog = Arc::new(Backlog::new(workers * BACKLOG_PER_WORKER));
    for i in 0..workers {
        let backlog = Arc::clone(&backlog);
        let handler = Arc::clone(&handler);
        std::thread::Builder::new().name(format!("scrape-{i}")).spawn(move || {
            loop {
                handle(backlog.take(), &*handler);
            }
        })?;
    }
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => backlog.push(stream),
            // Out of file descriptors, or a connection reset before it was accepted: wait a
            // little and go on; none of these ends the server.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(())
}

/// Accepted connections waiting for a worker: at most `capacity`, newest served first.
struct Backlog {
    waiting: Mutex<VecDeque<TcpStream>>,
    ready: Condvar,
    capacity: usize,
}

impl Backlog {
    fn new(capacity: usize) -> Backlog {
        Backlog { waiting: Mutex::new(VecDeque::with_capacity(capacity)), ready: Condvar::new(), capacity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<TcpStream>> {
        // A worker that panicked left the queue as it was: still a queue of connections.
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a connection, closing the oldest waiting one if the backlog is full.
    fn push(&self, stream: TcpStream) {
        let mut waiting = self.lock();
        if waiting.len() == self.capacity {
            waiting.pop_front();
        }
        waiting.push_back(stream);
        self.ready.notify_one();
    }

    /// The newest waiting connection, once there is one.
    fn take(&self) -> TcpStream {
        let mut waiting = self.lock();
        loop {
            if let Some(stream) = waiting.pop_back() {
                return stream;
            }
            waiting = self.ready.wait(waiting).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Reads one request head, within the limits, and answers it.
fn handle(mut stream: TcpStream, handler: &Handler) {
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let (response, head_only) = match read_head(&mut stream) {
        Head::Request { head_only, path } => (handler(&path), head_only),
        Head::Refused(r) => (r, false),
        Head::Gone => return,
    };
    write_response(&mut stream, &response, head_only);
}

enum Head {
    /// A request to answer.
    Request { head_only: bool, path: String },
    /// A request to refuse with this response.
    Refused(Response),
    /// The client went away, or sent nothing in time: nothing to answer.
    Gone,
}

fn read_head(stream: &mut TcpStream) -> Head {
    let start = Instant::now();
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let deadline = start + if len == 0 { FIRST_BYTE_DEADLINE } else { HEAD_DEADLINE };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return if len == 0 { Head::Gone } else { Head::Refused(Response::text(408, "request head too slow\n")) };
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Head::Gone,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(_) => return Head::Gone,
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let path = request.path.unwrap_or("/");
                let path = path.split_once('?').map_or(path, |(p, _)| p).to_owned();
                return match request.method {
                    Some("GET") => Head::Request { head_only: false, path },
                    Some("HEAD") => Head::Request { head_only: true, path },
                    _ => Head::Refused(Response::text(405, "only GET and HEAD\n")),
                };
            }
            Ok(httparse::Status::Partial) if len == MAX_HEAD => {
                return Head::Refused(Response::text(431, format!("request head over {MAX_HEAD} bytes\n")));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Head::Refused(Response::text(431, "too many headers\n")),
            Err(e) => return Head::Refused(Response::text(400, format!("not an HTTP request: {e}\n"))),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response, head_only: bool) {
    let allow = if r.status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    let body = if head_only { "" } else { r.body.as_str() };
    // A client that went away or stopped reading gets nothing more; the server goes on.
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}
