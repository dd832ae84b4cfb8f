//! Item 6: CIBA, from the person's approval to tokens in hand.
//!
//! The dev IdP on loopback with `ciba_interval` 1 s; a provisioned device
//! starts a login with `OnesIdClient::ciba_start` and waits with
//! `ciba_wait`. The harness approves through the provider's control API
//! after a pseudo-random delay (printed, with its seed), and measures from
//! the approval to `ciba_wait` returning (target ≤ interval + 50 ms) and
//! the polls the provider counted for the request (target ≤
//! ceil(wait / interval) + 1, where wait is `ciba_start` returning to
//! tokens in hand). Several runs; the worst is reported.
//!
//! `cargo run --release -p onesoidc-benches --bin bench-ciba [-- --runs N]`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onesoidc_benches::{ProviderThread, Summary, arg, row};
use onesoidc_core::KeyType;
use onesoidc_devidp::DevIdpConfig;
use onesoidc_flows::{CibaRequest, OnesIdClient};
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_RUNS: usize = 6;
/// Approvals come 0.1 s to 3.1 s after the request.
const MIN_DELAY_MS: u64 = 100;
const DELAY_SPAN_MS: u64 = 3000;
const SLACK: Duration = Duration::from_millis(50);
/// Bound on one login.
const PATIENCE: Duration = Duration::from_secs(30);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A small xorshift generator: the delays only need to be spread out and
/// reproducible from the printed seed.
struct Delays(u64);

impl Delays {
    fn next(&mut self) -> Duration {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        Duration::from_millis(MIN_DELAY_MS + x % DELAY_SPAN_MS)
    }
}

struct Run {
    delay: Duration,
    approval_to_tokens: Duration,
    wait: Duration,
    polls: u64,
    bound: u64,
}

fn main() -> Result<(), BoxError> {
    let runs = match arg("--runs") {
        Some(n) => n.parse::<usize>()?.max(1),
        None => DEFAULT_RUNS,
    };
    let seed = match arg("--seed") {
        Some(s) => s.parse::<u64>()?,
        None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 | 1,
    };
    let provider = ProviderThread::start(DevIdpConfig {
        ciba_interval: INTERVAL,
        ..DevIdpConfig::default()
    })?;
    let dir = tempfile::tempdir()?;
    let paths = provider
        .idp()
        .provision_device(dir.path(), KeyType::EccP256)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "ciba: interval {} ms, {runs} runs, approval delays from seed {seed}; load average {}",
        INTERVAL.as_millis(),
        onesoidc_benches::load_average().unwrap_or_default()
    );
    let mut delays = Delays(seed);
    let results = runtime.block_on(async {
        let client = OnesIdClient::from_paths(&paths)?;
        // Discovery and the provider's keys once, as a long-lived client would.
        client.provider_metadata().await?;
        let mut results = Vec::new();
        for i in 1..=runs {
            let delay = delays.next();
            let request =
                CibaRequest::for_username("alice").binding_message(format!("bench run {i}"));
            let started = client.ciba_start(&request).await?;
            let interval = started.interval;
            let waiting_since = Instant::now();
            let wait = client.ciba_wait(&started);
            tokio::pin!(wait);
            // Approve after `delay`, while `ciba_wait` runs.
            let approved_at = tokio::select! {
                result = &mut wait => {
                    return Err(format!("ciba_wait ended before the approval: {:?}", result.map(|_| ())).into());
                }
                () = tokio::time::sleep(delay) => {
                    provider.idp().approve_ciba(&started.auth_req_id)?;
                    Instant::now()
                }
            };
            tokio::time::timeout(PATIENCE, &mut wait).await??;
            let done = Instant::now();
            let wait = done - waiting_since;
            let polls = provider.idp().stats().ciba_polls(&started.auth_req_id);
            let bound = (wait.as_secs_f64() / interval.as_secs_f64()).ceil() as u64 + 1;
            let run = Run {
                delay,
                approval_to_tokens: done - approved_at,
                wait,
                polls,
                bound,
            };
            println!(
                "ciba: run {i}: approved {:.0} ms after the request; tokens {:.1} ms after the approval (target ≤ {} ms); wait {:.0} ms, {} polls (bound ceil(wait/interval)+1 = {})",
                run.delay.as_secs_f64() * 1e3,
                run.approval_to_tokens.as_secs_f64() * 1e3,
                (interval + SLACK).as_millis(),
                run.wait.as_secs_f64() * 1e3,
                run.polls,
                run.bound
            );
            results.push(run);
        }
        Ok::<_, BoxError>(results)
    })?;
    drop(runtime);
    drop(provider);

    let latencies: Vec<Duration> = results.iter().map(|r| r.approval_to_tokens).collect();
    let latency = Summary::of_ms(&latencies).ok_or("no runs")?;
    let target_ms = (INTERVAL + SLACK).as_secs_f64() * 1e3;
    row(
        "6",
        "CIBA: approval → tokens in hand",
        &format!(
            "max {:.1} ms (median {:.1}; {} runs, interval {} ms)",
            latency.max,
            latency.median,
            latency.n,
            INTERVAL.as_millis()
        ),
        &format!("≤ interval + 50 ms = {target_ms:.0} ms"),
        Some(latency.max <= target_ms),
    );
    let worst = results
        .iter()
        .max_by_key(|r| r.polls as i64 - r.bound as i64)
        .ok_or("no runs")?;
    let over = results.iter().filter(|r| r.polls > r.bound).count();
    row(
        "6",
        "CIBA: polls",
        &format!(
            "worst run {} polls for a {:.2} s wait (bound {}); runs over the bound: {over}",
            worst.polls,
            worst.wait.as_secs_f64(),
            worst.bound
        ),
        "≤ ceil(wait / interval) + 1",
        Some(over == 0),
    );
    Ok(())
}
