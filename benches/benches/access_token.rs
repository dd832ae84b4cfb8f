//! Item 1: the read path, `TokenManager::access_token()` on a valid token,
//! against the floor it is built on (an arc-swap load plus an `Arc` clone),
//! in the same run, single thread.
//!
//! Criterion measures `bare_arc_swap_load_full`, `access_token` and
//! `tokens` one after the other in the group `read_path`. On a shared
//! machine its medians drift by 10–30 % between functions, more than the
//! difference being measured, so `--bench` runs then also time the floor
//! and `access_token` interleaved in short batches (`paired`); those
//! medians are the figures `cargo xtask bench` checks.
//!
//! `cargo bench -p onesoidc-benches --bench access_token`

use std::hint::black_box;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use criterion::{Criterion, criterion_group};
use onesoidc_benches::{Coin, batch_ns, batch_size, day_long_tokens, median, ready};
use onesoidc_core::TokenSet;
use onesoidc_tokens::{TokenManager, refresh_fn};

/// A manager holding a valid token (its background task asleep), and the
/// floor: a bare `ArcSwapOption` holding the same tokens.
struct Subject {
    runtime: tokio::runtime::Runtime,
    manager: TokenManager,
    bare: ArcSwapOption<TokenSet>,
}

impl Subject {
    fn new() -> Subject {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let manager = {
            let _entered = runtime.enter();
            TokenManager::builder(
                "device",
                refresh_fn(|_| async { unreachable!("the token is valid") }),
            )
            .initial_tokens(day_long_tokens())
            .build()
        };
        // Let the background task start and go to sleep.
        runtime.block_on(tokio::task::yield_now());
        let bare = ArcSwapOption::from_pointee(day_long_tokens());
        Subject {
            runtime,
            manager,
            bare,
        }
    }
}

fn read_path(c: &mut Criterion) {
    let subject = Subject::new();
    let _entered = subject.runtime.enter();
    let mut group = c.benchmark_group("read_path");
    group.bench_function("bare_arc_swap_load_full", |b| {
        b.iter(|| black_box(subject.bare.load_full()))
    });
    group.bench_function("access_token", |b| {
        b.iter(|| black_box(ready(subject.manager.access_token())))
    });
    group.bench_function("tokens", |b| {
        b.iter(|| black_box(ready(subject.manager.tokens())))
    });
    group.finish();
}

/// The floor and `access_token()` in interleaved batches of about 2 ms (in
/// random order), `PAIRED_ROUNDS` times: the medians of each and of the
/// per-round ratio.
///
/// Prints `PAIRED<TAB>access_token<TAB>access_token ns<TAB>floor ns<TAB>ratio` for
/// `cargo xtask bench`.
fn paired() {
    const PAIRED_ROUNDS: usize = 300;
    const BATCH: Duration = Duration::from_millis(2);
    let subject = Subject::new();
    let _entered = subject.runtime.enter();
    let floor = || subject.bare.load_full();
    let token = || ready(subject.manager.access_token());
    let n = batch_size(BATCH, floor);
    for _ in 0..10 {
        batch_ns(n, floor);
        batch_ns(n, token);
    }
    let (mut tokens, mut floors, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut coin = Coin::seeded();
    for _ in 0..PAIRED_ROUNDS {
        let (t, f) = if coin.flip() {
            let t = batch_ns(n, token);
            (t, batch_ns(n, floor))
        } else {
            let f = batch_ns(n, floor);
            (batch_ns(n, token), f)
        };
        tokens.push(t);
        floors.push(f);
        ratios.push(t / f);
    }
    let (t, f, q) = (median(&tokens), median(&floors), median(&ratios));
    println!(
        "paired: access_token {t:.1} ns, bare load_full {f:.1} ns, ratio {q:.2} (median of {PAIRED_ROUNDS} interleaved rounds of {n})"
    );
    println!("PAIRED\taccess_token\t{t:.2}\t{f:.2}\t{q:.4}");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = read_path
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if onesoidc_benches::measuring_run() {
        paired();
    }
}
