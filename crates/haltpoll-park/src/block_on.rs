//! `block_on`: run one future to completion on the calling thread, parked on a haltpoll
//! [`Parker`] between polls, for synchronous code that waits on asynchronous work.
//!
//! The future's waker unparks the parker (`std::task::Wake`, no unsafe): a wake while the
//! thread polls the future or spins in its poll window costs the waker one atomic RMW, no
//! system call, and the thread sees it within a poll step. Each thread keeps one parker (and
//! its waker) across calls, so its governor learns how long this thread's futures take to
//! wake; a nested `block_on` (a future that itself blocks on another) gets a fresh pair.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::{Parker, Unparker};

/// The waker: unparks the thread that runs the future.
struct Unpark(Unparker);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A parker and the waker that unparks it.
struct Runner {
    parker: Parker,
    waker: Waker,
}

impl Runner {
    fn new() -> Runner {
        let parker = Parker::new();
        let waker = Waker::from(Arc::new(Unpark(parker.unparker().clone())));
        Runner { parker, waker }
    }
}

thread_local! {
    /// This thread's runner while no `block_on` uses it.
    static RUNNER: RefCell<Option<Runner>> = const { RefCell::new(None) };
}

/// Runs `future` to completion on this thread and returns its output: polls it, and between
/// polls parks (polls, then sleeps) until its waker is woken.
///
/// ```
/// use std::sync::mpsc;
/// use std::thread;
///
/// // Any future; here one that another thread completes.
/// let (tx, rx) = mpsc::channel::<u32>();
/// let answer = haltpoll_park::block_on(async move {
///     thread::spawn(move || tx.send(42).unwrap());
///     std::future::poll_fn(|cx| match rx.try_recv() {
///         Ok(v) => std::task::Poll::Ready(v),
///         Err(_) => {
///             cx.waker().wake_by_ref(); // a real future registers the waker instead
///             std::task::Poll::Pending
///         }
///     })
///     .await
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    // Take this thread's runner (a nested call finds none and makes its own), and put it back
    // afterwards, even if the future panics: a stale token it may carry only costs the next
    // call one extra poll.
    let runner = RUNNER.with(|r| r.borrow_mut().take()).unwrap_or_else(Runner::new);
    let guard = PutBack(Some(runner));
    let runner = guard.0.as_ref().expect("set above");
    let mut cx = Context::from_waker(&runner.waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        runner.parker.park();
    }
}

/// Returns the runner to the thread when `block_on` ends, by return or by unwinding.
struct PutBack(Option<Runner>);

impl Drop for PutBack {
    fn drop(&mut self) {
        let runner = self.0.take();
        // A nested call ends first and leaves its runner; the outer one, which ends last,
        // replaces it with its own, the one whose governor has learned this thread. During
        // thread teardown the slot may be gone: then the runner is simply dropped.
        let _ = RUNNER.try_with(|r| *r.borrow_mut() = runner);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::thread;
    use std::time::Duration;

    /// A one-shot flag another thread sets, with the waker registered the usual way.
    #[derive(Default)]
    struct Flag {
        set: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Flag {
        fn set(&self) {
            self.set.store(true, SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }

        async fn wait(&self) {
            std::future::poll_fn(|cx| {
                *self.waker.lock().unwrap() = Some(cx.waker().clone());
                if self.set.load(SeqCst) { Poll::Ready(()) } else { Poll::Pending }
            })
            .await;
        }
    }

    #[test]
    fn ready_futures_return_at_once() {
        assert_eq!(block_on(async { 7 }), 7);
    }

    #[test]
    fn a_wake_from_another_thread_completes_the_future() {
        for delay in [Duration::ZERO, Duration::from_micros(50), Duration::from_millis(5)] {
            let flag = Arc::new(Flag::default());
            let setter = {
                let flag = flag.clone();
                thread::spawn(move || {
                    thread::sleep(delay);
                    flag.set();
                })
            };
            block_on(flag.wait());
            assert!(flag.set.load(SeqCst));
            setter.join().unwrap();
        }
    }

    #[test]
    fn the_thread_keeps_its_parker_and_nesting_gets_its_own() {
        block_on(async {});
        let before = RUNNER.with(|r| r.borrow().as_ref().map(|r| r.waker.data()));
        assert!(before.is_some(), "the runner went back to the thread");
        let nested = block_on(async { block_on(async { 3 }) + 1 });
        assert_eq!(nested, 4);
        let after = RUNNER.with(|r| r.borrow().as_ref().map(|r| r.waker.data()));
        assert_eq!(before, after, "the outer call's runner is the one kept");
    }

    #[test]
    fn a_panicking_future_leaves_a_working_runner() {
        let fail = || -> u32 { panic!("boom") };
        let caught = std::panic::catch_unwind(|| block_on(async move { fail() }));
        assert!(caught.is_err());
        assert!(RUNNER.with(|r| r.borrow().is_some()), "put back while unwinding");
        assert_eq!(block_on(async { 5 }), 5);
    }
}
