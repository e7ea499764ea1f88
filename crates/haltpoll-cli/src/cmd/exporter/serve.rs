//! A small HTTP/1.1 server for scrapes, bounded in every dimension a client controls: a fixed
//! number of worker threads, a fixed number of connections held, a request head of at most
//! [`MAX_HEAD`] bytes whose first byte must come within [`FIRST_BYTE_DEADLINE`] of the accept and
//! the whole within [`HEAD_DEADLINE`] of it however slowly it trickles, and a response written
//! within [`WRITE_DEADLINE`] however slowly it is read.
//! One request per connection (`Connection: close`), GET and HEAD only. The request head is
//! parsed by `httparse`.
//!
//! One thread (the reactor) accepts and reads every request head, over nonblocking sockets and
//! `poll(2)`: a client that trickles costs a slot and a buffer, never a thread, so the workers
//! only ever run the handler and write. A complete head goes to the workers in arrival order;
//! when they are all busy and the queue is full, the reactor waits for one to take it rather
//! than close a request read whole (new connections wait in the kernel's backlog meanwhile).
//! When the slots are full, or the process is out of file descriptors, the connection accepted
//! longest ago is closed to make room: a scrape sends its head at once, so it is never the
//! oldest for long, while a connection that has held a slot for a while is silent or trickling.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

/// The longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// The time a client has to send the first byte of its request: Prometheus sends at once.
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(1);
/// The time a client has to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// The time a response may take to write, first byte to last: a client that reads a byte at
/// a time cannot hold a worker longer, however steadily it reads.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections whose request head is being read, per worker.
pub const READING_PER_WORKER: usize = 4;
/// File descriptors kept free for the rest of the process: stdio, the listener, and per
/// worker its connection and the sysfs files a scrape opens.
const FDS_KEPT: u64 = 5;
const FDS_PER_WORKER: u64 = 4;

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

/// The pause after a failure that the next try cannot fix at once (no descriptor free, `poll`
/// failing): a busy loop would take a CPU from the workers.
const RETRY: Duration = Duration::from_millis(10);

/// Serves `listener` with `workers` threads until the process ends.
pub fn serve(listener: TcpListener, workers: usize, handler: Arc<Handler>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let queue = Arc::new(Queue::new(workers));
    for i in 0..workers {
        let queue = Arc::clone(&queue);
        let handler = Arc::clone(&handler);
        std::thread::Builder::new().name(format!("scrape-{i}")).spawn(move || {
            loop {
                let (stream, head) = queue.take();
                answer(stream, head, &*handler);
            }
        })?;
    }
    Reactor { listener, reading: VecDeque::new(), slots: slots(workers), queue }.run()
}

/// How many request heads are read at once: [`READING_PER_WORKER`] per worker, fewer when the
/// file descriptor limit would not leave the workers theirs, and at least 2.
fn slots(workers: usize) -> usize {
    let wanted = (workers * READING_PER_WORKER).max(2);
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let kept = FDS_KEPT + FDS_PER_WORKER * u64::try_from(workers).unwrap_or(u64::MAX);
    let free = limit.map_or(u64::MAX, |limit| limit.saturating_sub(kept));
    usize::try_from(free).unwrap_or(usize::MAX).clamp(2, wanted)
}

/// A connection whose request head is being read.
struct Reading {
    stream: TcpStream,
    accepted: Instant,
    head: Vec<u8>,
}

impl Reading {
    /// When its head must be whole, counted from the accept: bytes that trickle in do not
    /// move it. A client that has sent nothing has less time.
    fn deadline(&self) -> Instant {
        self.accepted + if self.head.is_empty() { FIRST_BYTE_DEADLINE } else { HEAD_DEADLINE }
    }

    /// Reads what has arrived: the head once it is whole (or refused), `None` while it is not.
    fn read_arrived(&mut self) -> Option<Head> {
        let mut chunk = [0u8; 1024];
        loop {
            let room = (MAX_HEAD - self.head.len()).min(chunk.len());
            match self.stream.read(&mut chunk[..room]) {
                Ok(0) => return Some(Head::Gone),
                Ok(n) => {
                    // The buffer is allocated once, at its bound, by the first bytes: a silent
                    // connection costs none.
                    self.head.reserve_exact(MAX_HEAD - self.head.len());
                    self.head.extend_from_slice(&chunk[..n]);
                    if let Some(head) = parse(&self.head) {
                        return Some(head);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(_) => return Some(Head::Gone),
            }
        }
    }
}

/// The thread that accepts connections and reads their request heads, oldest accept first.
struct Reactor {
    listener: TcpListener,
    reading: VecDeque<Reading>,
    slots: usize,
    queue: Arc<Queue>,
}

impl Reactor {
    fn run(mut self) -> io::Result<()> {
        loop {
            let (listener_ready, ready) = self.wait();
            self.read_ready(&ready);
            self.expire(Instant::now());
            if listener_ready {
                self.accept();
            }
        }
    }

    /// Waits until the listener or a connection is readable, or the nearest deadline; says
    /// whether the listener is, and which connections are.
    fn wait(&self) -> (bool, Vec<bool>) {
        let nearest = self.reading.iter().map(Reading::deadline).min();
        let timeout = nearest.and_then(|d| Timespec::try_from(d.saturating_duration_since(Instant::now())).ok());
        let mut fds = Vec::with_capacity(1 + self.reading.len());
        fds.push(PollFd::new(&self.listener, PollFlags::IN));
        fds.extend(self.reading.iter().map(|r| PollFd::new(&r.stream, PollFlags::IN)));
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => std::thread::sleep(RETRY),
        }
        // Hang-ups and errors count as readable: the read that follows says which.
        let mut ready = fds.iter().map(|fd| !fd.revents().is_empty());
        (ready.next().unwrap_or(false), ready.collect())
    }

    /// Reads the connections that are readable; hands each whole head to the workers.
    fn read_ready(&mut self, ready: &[bool]) {
        let done = self.take_finished(|i, r| if ready.get(i) == Some(&true) { r.read_arrived() } else { None });
        self.dispatch(done);
    }

    /// Closes the connections past their deadline; one that had sent part of a head is told.
    fn expire(&mut self, now: Instant) {
        let late = self.take_finished(|_, r| {
            (r.deadline() <= now).then(|| {
                if r.head.is_empty() {
                    Head::Gone
                } else {
                    Head::Refused(Response::text(408, "request head too slow\n"))
                }
            })
        });
        self.dispatch(late);
    }

    /// Takes out the connections for which `finished` gives an outcome, keeping the rest in
    /// their order.
    fn take_finished(
        &mut self,
        mut finished: impl FnMut(usize, &mut Reading) -> Option<Head>,
    ) -> Vec<(TcpStream, Head)> {
        let mut done = Vec::new();
        let mut kept = VecDeque::with_capacity(self.reading.capacity());
        for (i, mut r) in self.reading.drain(..).enumerate() {
            match finished(i, &mut r) {
                Some(head) => done.push((r.stream, head)),
                None => kept.push_back(r),
            }
        }
        self.reading = kept;
        done
    }

    /// Hands what is to be answered to the workers; closes the rest.
    fn dispatch(&self, done: Vec<(TcpStream, Head)>) {
        for (stream, head) in done {
            if !matches!(head, Head::Gone) {
                self.queue.push(stream, head);
            }
        }
    }

    /// Accepts the connections waiting, at most a slot's worth per round so that heads that
    /// arrived are read between, closing the oldest one held when the slots are full.
    fn accept(&mut self) {
        for _ in 0..self.slots {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Out of file descriptors: the oldest connection held gives up its own so
                // that the next accept has one; with none held, the workers hold them all
                // for a moment.
                Err(e) if out_of_fds(&e) => {
                    if self.reading.pop_front().is_none() {
                        std::thread::sleep(RETRY);
                        return;
                    }
                }
                // None waiting, or one reset before it was accepted: none ends the server.
                Err(_) => return,
            }
        }
    }

    fn admit(&mut self, stream: TcpStream) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        if self.reading.len() >= self.slots {
            self.reading.pop_front();
        }
        self.reading.push_back(Reading { stream, accepted: Instant::now(), head: Vec::new() });
    }
}

fn out_of_fds(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(Errno::from_io_error(e), Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM))
}

/// Whole request heads waiting for a worker, in arrival order: at most `capacity`. A head that
/// finds the queue full waits for a worker to take one: a request read whole came from a client
/// that sent it at once, the one the server is for, so it is answered late rather than closed.
struct Queue {
    waiting: Mutex<VecDeque<(TcpStream, Head)>>,
    /// A request was queued: a worker may take it.
    ready: Condvar,
    /// A request was taken: the reactor may queue the next.
    room: Condvar,
    capacity: usize,
}

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            waiting: Mutex::new(VecDeque::with_capacity(capacity)),
            ready: Condvar::new(),
            room: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(TcpStream, Head)>> {
        // A worker that panicked left the queue as it was: still a queue of connections.
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a request, once there is room. The wait is bounded: each worker finishes its
    /// request within the handler's time and [`WRITE_DEADLINE`]. Meanwhile the reactor accepts
    /// nothing, so new connections wait in the kernel's backlog rather than cost a descriptor.
    fn push(&self, stream: TcpStream, head: Head) {
        let mut waiting = self.lock();
        while waiting.len() >= self.capacity {
            waiting = self.room.wait(waiting).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        waiting.push_back((stream, head));
        self.ready.notify_one();
    }

    /// The oldest waiting request, once there is one.
    fn take(&self) -> (TcpStream, Head) {
        let mut waiting = self.lock();
        loop {
            if let Some(request) = waiting.pop_front() {
                // Only the reactor pushes, so one waiter at most.
                self.room.notify_one();
                return request;
            }
            waiting = self.ready.wait(waiting).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Answers one request, on a blocking socket, within [`WRITE_DEADLINE`] of the first byte.
fn answer(mut stream: TcpStream, head: Head, handler: &Handler) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let (response, head_only) = match head {
        Head::Request { head_only, path } => (handler(&path), head_only),
        Head::Refused(r) => (r, false),
        Head::Gone => return,
    };
    // A client that went away or reads too slowly gets nothing more; the server goes on.
    let _ = write_response(&mut stream, &response, head_only, Instant::now() + WRITE_DEADLINE);
}

enum Head {
    /// A request to answer.
    Request { head_only: bool, path: String },
    /// A request to refuse with this response.
    Refused(Response),
    /// The client went away, or sent nothing in time: nothing to answer.
    Gone,
}

/// The request in `buf` once its head is whole, or its refusal; `None` while more may come.
fn parse(buf: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let refused = match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("/");
            let path = path.split_once('?').map_or(path, |(p, _)| p).to_owned();
            return Some(match request.method {
                Some("GET") => Head::Request { head_only: false, path },
                Some("HEAD") => Head::Request { head_only: true, path },
                _ => Head::Refused(Response::text(405, "only GET and HEAD\n")),
            });
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            Response::text(431, format!("request head over {MAX_HEAD} bytes\n"))
        }
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => Response::text(431, "too many headers\n"),
        Err(e) => Response::text(400, format!("not an HTTP request: {e}\n")),
    };
    Some(Head::Refused(refused))
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

/// Writes `r` by `deadline`, then closes the writing side.
fn write_response(stream: &mut TcpStream, r: &Response, head_only: bool, deadline: Instant) -> io::Result<()> {
    let allow = if r.status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    let body = if head_only { "" } else { r.body.as_str() };
    write_all_by(stream, head.as_bytes(), deadline)?;
    write_all_by(stream, body.as_bytes(), deadline)?;
    stream.shutdown(Shutdown::Write)
}

/// Writes all of `bytes` by `deadline`. Each write may block only for the time left: a socket
/// write timeout alone restarts with every write that makes progress, so a reader taking a
/// byte at a time would extend it forever.
fn write_all_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn a_reader_that_trickles_cannot_hold_a_worker_past_the_write_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        // A client that reads 256 KiB at most every 10 ms: the 64 MiB take it at least 2.5 s,
        // and each of the server's writes makes progress (the kernel wakes a blocked writer
        // only once a good part of its buffer is free, so a reader of a few bytes at a time
        // would make a per-write timeout fire as well).
        let reader = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                let (mut got, mut chunk) = (0, vec![0u8; 256 << 10]);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                got
            }
        });
        let (mut stream, _) = listener.accept().unwrap();
        // More than any socket buffers hold, so the writes must wait for the reader.
        let response = Response::text(200, "x".repeat(64 << 20));
        let deadline = Instant::now() + Duration::from_millis(300);
        let err = write_response(&mut stream, &response, false, deadline).unwrap_err();
        assert!(matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock), "{err}");
        stop.store(true, Ordering::Relaxed);
        drop(stream);
        assert!(reader.join().unwrap() < response.body.len(), "the response was cut off, not written whole");
    }

    #[test]
    fn a_request_read_whole_is_answered_however_long_the_workers_take() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // One worker whose handler waits for the gate: the first request holds it, the second
        // fills the queue, the third and fourth find it full.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let handler = {
            let gate = Arc::clone(&gate);
            move |_: &str| {
                let (open, opened) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = opened.wait(open).unwrap();
                }
                Response::text(200, "answered\n")
            }
        };
        std::thread::spawn(move || serve(listener, 1, Arc::new(handler)));
        let clients: Vec<TcpStream> = (0..4)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                s
            })
            .collect();
        // Time for the reactor to read every head (a queue that closed the oldest when full
        // would have closed two by now); an answer does not depend on it.
        std::thread::sleep(Duration::from_millis(300));
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        for (i, mut s) in clients.into_iter().enumerate() {
            let mut reply = String::new();
            let read = s.read_to_string(&mut reply);
            assert!(read.is_ok() && reply.starts_with("HTTP/1.1 200 OK\r\n"), "request {i}: {read:?} {reply:?}");
        }
    }

    #[test]
    fn a_reader_that_reads_gets_the_whole_response() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            TcpStream::connect(addr).unwrap().read_to_string(&mut text).unwrap();
            text
        });
        let (mut stream, _) = listener.accept().unwrap();
        let body = "y".repeat(1 << 20);
        write_response(&mut stream, &Response::text(200, body.clone()), false, Instant::now() + WRITE_DEADLINE)
            .unwrap();
        drop(stream);
        let text = reader.join().unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with(&body), "{}", &text[..80]);
    }
}
