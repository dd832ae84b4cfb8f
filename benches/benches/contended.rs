//! Item 1, reported beside the target: `access_token()` on a valid token
//! from 1, 2 and 4 OS threads at once on one manager (the reference count
//! every reader touches is shared). Per thread count, five runs of
//! 2,000,000 calls per thread; the median of the runs' mean ns per call.
//!
//! Prints `CONTENDED<TAB>threads<TAB>ns per call` for `cargo xtask bench`.
//!
//! `cargo bench -p onesoidc-benches --bench contended`

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use onesoidc_benches::{day_long_tokens, measuring_run, median, ready};
use onesoidc_tokens::{TokenManager, refresh_fn};

const CALLS: u32 = 2_000_000;
const RUNS: usize = 5;

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
    if !measuring_run() {
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
        .initial_tokens(day_long_tokens())
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
