//! Delivering a stream of events to a C callback, on a thread of its own,
//! with cancellation that C can rely on.
//!
//! Each started login (and each manager subscription) gets one thread,
//! named `onesoidc-events`. It waits for the next event (driving only the
//! receiving end; the flow itself runs on the runtime's workers), then
//! calls the callback with it, outside the runtime, so the callback may
//! make blocking onesoidc calls. Callbacks therefore run one at a time and
//! in order.
//!
//! The contract with C: once `cancel` returns, no callback is running and
//! none will start, so the caller may free its `user_data`. A callback runs
//! while holding the `gate` mutex, and `cancel` takes that mutex after
//! raising the flag, so it waits for a callback in progress. Called from
//! the callback itself (same thread), `cancel` only raises the flag: the
//! running callback is the caller's own, and no further one starts.
//! Dropping a [`Listener`] cancels, then joins the thread (or, from the
//! callback's own thread, leaves it to end by itself after the callback).

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_stream::{Stream, StreamExt};

use crate::boundary::{
    FfiError, ONESOIDC_CANCELLED, ONESOIDC_ERROR, ONESOIDC_INVALID_ARGUMENT, ONESOIDC_OK,
    ONESOIDC_PENDING,
};
use crate::events::{onesoidc_event, onesoidc_event_callback};
use crate::runtime::runtime;

/// The C side of a subscription: a callback and the pointer it gets.
pub(crate) struct Callback {
    function: onesoidc_event_callback,
    user_data: *mut c_void,
}

// SAFETY: the functions taking a callback document that it and its
// `user_data` are called from the library's event thread; sending them
// there is what the C caller asked for.
unsafe impl Send for Callback {}

impl Callback {
    pub(crate) fn new(function: onesoidc_event_callback, user_data: *mut c_void) -> Self {
        Callback {
            function,
            user_data,
        }
    }

    fn call(&self, event: &onesoidc_event) {
        if let Some(function) = self.function {
            // SAFETY: the C caller promised a function that may be called
            // with its user_data and a borrowed event from this thread until
            // the login or subscription is cancelled, which has not
            // happened (the gate is held and the flag checked).
            unsafe { function(self.user_data, event) }
        }
    }
}

/// What the event thread and the handle share.
struct Shared {
    cancelled: AtomicBool,
    /// Wakes the event thread when cancelled (a stored permit, so a cancel
    /// between the flag check and the wait is not lost).
    wake: Notify,
    /// Held while a callback runs.
    gate: Mutex<()>,
    /// The event thread, once it runs.
    thread: OnceLock<ThreadId>,
    /// The final status, once the last callback has returned.
    finished: Mutex<Option<c_int>>,
    done: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn on_event_thread(&self) -> bool {
        self.thread.get() == Some(&std::thread::current().id())
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if !self.on_event_thread() {
            // Wait for a callback in progress to return.
            drop(lock(&self.gate));
        }
    }

    /// Calls `callback` with `event` unless cancelled; false when cancelled.
    fn deliver(&self, callback: &Callback, event: &onesoidc_event) -> bool {
        let _gate = lock(&self.gate);
        if self.cancelled.load(Ordering::SeqCst) {
            return false;
        }
        callback.call(event);
        true
    }

    /// Records the final status (the first one recorded stays).
    fn finish(&self, status: c_int) {
        let mut finished = lock(&self.finished);
        if finished.is_none() {
            *finished = Some(status);
        }
        self.done.notify_all();
    }
}

/// A stream of events delivered to a callback on its own thread.
pub(crate) struct Listener {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts delivering `events` to `callback`. The stream must have been
    /// made inside the runtime's context. A login's stream ends after its
    /// last event; the status of that event becomes the final status.
    pub(crate) fn spawn<S>(events: S, callback: Callback) -> Result<Listener, FfiError>
    where
        S: Stream + Send + Unpin + 'static,
        S::Item: Into<onesoidc_event>,
    {
        let runtime = runtime()?;
        let shared = Arc::new(Shared {
            cancelled: AtomicBool::new(false),
            wake: Notify::new(),
            gate: Mutex::new(()),
            thread: OnceLock::new(),
            finished: Mutex::new(None),
            done: Condvar::new(),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("onesoidc-events".into())
            .spawn(move || {
                let shared = thread_shared;
                let _ = shared.thread.set(std::thread::current().id());
                let mut events = events;
                let status = loop {
                    if shared.cancelled.load(Ordering::SeqCst) {
                        break ONESOIDC_CANCELLED;
                    }
                    let next = runtime.block_on(async {
                        tokio::select! {
                            biased;
                            () = shared.wake.notified() => None,
                            item = events.next() => Some(item),
                        }
                    });
                    let event: onesoidc_event = match next {
                        None => break ONESOIDC_CANCELLED,
                        Some(None) => break ONESOIDC_OK,
                        Some(Some(item)) => item.into(),
                    };
                    if !shared.deliver(&callback, &event) {
                        break ONESOIDC_CANCELLED;
                    }
                    if event.last {
                        break event.status();
                    }
                };
                // Dropping the stream cancels the flow (its task is aborted).
                drop(events);
                shared.finish(status);
            })
            .map_err(|e| {
                FfiError::new(
                    ONESOIDC_ERROR,
                    format!("cannot start the event thread: {e}"),
                )
            })?;
        Ok(Listener {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops delivery: when this returns, no callback runs or will start
    /// (from the callback itself: no further one starts).
    pub(crate) fn cancel(&self) {
        self.shared.cancel();
    }

    /// Waits up to `timeout` for the last callback to have returned; its
    /// status, or [`ONESOIDC_PENDING`] when the time is up.
    pub(crate) fn wait(&self, timeout: Duration) -> Result<c_int, FfiError> {
        if self.shared.on_event_thread() {
            return Err(FfiError::new(
                ONESOIDC_INVALID_ARGUMENT,
                "called from this login's own callback, it would wait for itself; return from the callback instead",
            ));
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut finished = lock(&self.shared.finished);
        loop {
            if let Some(status) = *finished {
                return Ok(status);
            }
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Ok(ONESOIDC_PENDING),
                },
                None => Duration::from_secs(3600),
            };
            finished = self
                .shared
                .done
                .wait_timeout(finished, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.cancel();
        if let Some(thread) = self.thread.take()
            && !self.shared.on_event_thread()
        {
            // The thread catches nothing that could panic; a panic there
            // has already been reported by the panic hook.
            let _ = thread.join();
        }
        // From the callback's own thread the handle is dropped unjoined:
        // the thread ends by itself once the callback returns.
    }
}
