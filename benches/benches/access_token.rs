//! The read path: `access_token()` on a valid token, against the floor it is
//! built on (an arc-swap load plus an `Arc` clone), in the same run.
//!
//! `cargo bench -p onesoidc-tokens --bench access_token`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use criterion::{Criterion, criterion_group, criterion_main};
use onesoidc_core::TokenSet;
use onesoidc_tokens::{TokenManager, refresh_fn};

fn tokens() -> TokenSet {
    TokenSet {
        access_token: "eyJhbGciOiJFUzI1NiJ9.device.token".to_string().into(),
        token_type: "Bearer".into(),
        expires_at: Some(SystemTime::now() + Duration::from_secs(24 * 3600)),
        refresh_token: None,
        id_token: None,
        scope: None,
    }
}

/// Polls a future once: a valid token must be ready without waiting.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("access_token() had to wait on a valid token"),
    }
}

fn read_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let manager = TokenManager::builder(
        "device",
        refresh_fn(|_| async { unreachable!("the token is valid") }),
    )
    .initial_tokens(tokens())
    .build();
    // Let the background task start and go to sleep.
    runtime.block_on(tokio::task::yield_now());
    let bare: ArcSwapOption<TokenSet> = ArcSwapOption::from_pointee(tokens());

    let mut group = c.benchmark_group("read_path");
    group.bench_function("bare_arc_swap_load_full", |b| {
        b.iter(|| black_box(bare.load_full()))
    });
    group.bench_function("access_token", |b| {
        b.iter(|| black_box(ready(manager.access_token())))
    });
    group.bench_function("tokens", |b| b.iter(|| black_box(ready(manager.tokens()))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = read_path
}
criterion_main!(benches);
