//! Item 1, reported beside the target: `access_token()` on a valid token
//! from 1, 2 and 4 OS threads at once on one manager (the reference count
//! every reader touches is shared). Per thread count, five runs of
//! 2,000,000 calls per thread; the median of the runs' mean ns per call.
//!
//! Prints `CONTENDED<TAB>threads<TAB>ns per call` for `cargo xtask bench`.
//!
//! `cargo bench -p onesoidc-benches --bench contended`

use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use onesoidc_benches::median;
use onesoidc_core::TokenSet;
use onesoidc_tokens::{TokenManager, refresh_fn};

const CALLS: u32 = 2_000_000;
const RUNS: usize = 5;

/// Polls a future once: a valid token must be ready without waiting.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("access_token() had to wait on a valid token"),
    }
}

/// Mean ns per call over `threads` threads calling at once.
fn run(manager: &TokenManager, runtime: &tokio::runtime::Runtime, threads: usize) -> f64 {
    let start = Arc::new(Barrier::new(threads));
    let readers: Vec<_> = (0..threads)
        .map(|_| {
            let (manager, start, handle) =
                (manager.clone(), start.clone(), runtime.handle().clone());
            std::thread::spawn(move || {
                let _entered = handle.enter();
                start.wait();
                let began = Instant::now();
                for _ in 0..CALLS {
                    black_box(ready(manager.access_token())).ok();
                }
                began.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS)
            })
        })
        .collect();
    let per_thread: Vec<f64> = readers
        .into_iter()
        .map(|reader| reader.join().expect("reader thread"))
        .collect();
    per_thread.iter().sum::<f64>() / per_thread.len() as f64
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to measure.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("runtime");
    let manager = {
        let _entered = runtime.enter();
        TokenManager::builder(
            "device",
            refresh_fn(|_| async { unreachable!("the token is valid") }),
        )
        .initial_tokens(TokenSet {
            access_token: "eyJhbGciOiJFUzI1NiJ9.device.token".to_string().into(),
            token_type: "Bearer".into(),
            expires_at: Some(SystemTime::now() + Duration::from_secs(24 * 3600)),
            refresh_token: None,
            id_token: None,
            scope: None,
        })
        .build()
    };
    for threads in [1, 2, 4] {
        let runs: Vec<f64> = (0..RUNS)
            .map(|_| run(&manager, &runtime, threads))
            .collect();
        let ns = median(&runs);
        println!(
            "contended: {threads} thread(s) reading one manager: {ns:.1} ns per call (median of {RUNS} runs)"
        );
        println!("CONTENDED\t{threads}\t{ns:.1}");
    }
}
