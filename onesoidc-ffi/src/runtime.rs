//! The one tokio runtime of the process, behind the C API.
//!
//! Created on first use (a `OnceLock`): a multi-thread runtime with
//! [`WORKER_THREADS`] worker threads named `onesoidc-rt`, which run the
//! flows' background tasks (a started login's polling, token managers'
//! refreshes) and the HTTP connections. It lives until the process ends.
//!
//! A blocking C call runs its future with `block_on` on the calling
//! thread: signing and parsing happen there, so callers on several threads
//! work in parallel. A call from a thread that is inside the runtime (which
//! no C program's thread is) is refused rather than left to deadlock.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::boundary::{FfiError, ONESOIDC_ERROR, ONESOIDC_INVALID_ARGUMENT};

/// Worker threads of the runtime: the flows wait on the network, so two
/// are plenty; blocking calls do their own work on the caller's thread.
pub(crate) const WORKER_THREADS: usize = 2;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process's runtime, created on first use.
pub(crate) fn runtime() -> Result<&'static Runtime, FfiError> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(WORKER_THREADS)
                .thread_name("onesoidc-rt")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start onesoidc's runtime threads: {e}"))
        })
        .as_ref()
        .map_err(|message| FfiError::new(ONESOIDC_ERROR, message.clone()))
}

/// Runs `future` to completion on the calling thread.
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output, FfiError> {
    if Handle::try_current().is_ok() {
        return Err(FfiError::new(
            ONESOIDC_INVALID_ARGUMENT,
            "a blocking call from a thread of an async runtime would stall it; call onesoidc from your own threads",
        ));
    }
    Ok(runtime()?.block_on(future))
}

/// Runs `f` inside the runtime's context (for what spawns a task: token
/// managers, event streams), without blocking.
pub(crate) fn in_runtime<T>(f: impl FnOnce() -> T) -> Result<T, FfiError> {
    let _context = runtime()?.enter();
    Ok(f())
}
