//! A registry of 10,000 managers whose tokens expire at the same moment:
//! how their refreshes spread over 1-second windows (target: no window over
//! 5 %), and resident memory per idle manager (target: at most 4 KiB).
//!
//! Runs on tokio's paused clock, so the hour of simulated time takes well
//! under a second; the spread comes from each manager's jitter, not from
//! the scheduler. Default settings (skew 60 s, jitter 30 s, random jitter).
//!
//! `cargo bench -p onesoidc-tokens --bench fleet`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use onesoidc_core::TokenSet;
use onesoidc_tokens::{TokenManager, TokenManagerRegistry, refresh_fn};
use tokio::time::Instant;

const MANAGERS: usize = 10_000;
const LIFETIME: Duration = Duration::from_secs(3600);

/// Resident set size in bytes, from /proc/self/statm (pages of 4 KiB).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn tokens(i: usize, expires_at: SystemTime) -> TokenSet {
    TokenSet {
        access_token: format!("access-token-{i:05}").into(),
        token_type: "Bearer".into(),
        expires_at: Some(expires_at),
        refresh_token: None,
        id_token: None,
        scope: None,
        dpop_jkt: None,
    }
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too:
    // keep it quick either way.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let start = Instant::now();
        let refreshed_at = Arc::new(Mutex::new(Vec::<Duration>::with_capacity(MANAGERS)));
        let recorder = refreshed_at.clone();
        let refresh = refresh_fn(move |_| {
            recorder.lock().unwrap().push(start.elapsed());
            async move { Ok(tokens(0, SystemTime::now() + 24 * LIFETIME)) }
        });
        let expires_at = SystemTime::now() + LIFETIME;
        settle().await;

        let before = rss();
        let registry = TokenManagerRegistry::new();
        for i in 0..MANAGERS {
            let manager = TokenManager::builder(format!("manager-{i:05}"), refresh.clone())
                .initial_tokens(tokens(i, expires_at))
                .build();
            registry.insert(manager).unwrap();
        }
        // Every background task runs once and goes to sleep on its timer.
        settle().await;
        let after = rss();
        match (before, after) {
            (Some(before), Some(after)) => {
                let per = after.saturating_sub(before) as f64 / MANAGERS as f64;
                println!(
                    "memory: RSS {:.1} MiB -> {:.1} MiB for {MANAGERS} idle managers (registry, task, timer, tokens): {:.0} bytes = {:.2} KiB per manager (target <= 4 KiB)",
                    before as f64 / 1048576.0,
                    after as f64 / 1048576.0,
                    per,
                    per / 1024.0
                );
            }
            _ => println!("memory: /proc/self/statm is not available here"),
        }

        // Let the hour pass.
        tokio::time::sleep(LIFETIME + Duration::from_secs(1)).await;
        let times = refreshed_at.lock().unwrap().clone();
        assert_eq!(times.len(), MANAGERS, "every manager refreshed once");
        let mut windows: BTreeMap<u64, usize> = BTreeMap::new();
        for t in &times {
            *windows.entry(t.as_secs()).or_default() += 1;
        }
        let (&busiest, &most) = windows.iter().max_by_key(|(_, n)| **n).unwrap();
        let first = *windows.keys().next().unwrap();
        let last = *windows.keys().last().unwrap();
        println!(
            "spread: {MANAGERS} refreshes of tokens expiring together at t = {} s fell in {} one-second windows, t = {first}..{last} s ({}..{} s before expiry)",
            LIFETIME.as_secs(),
            windows.len(),
            LIFETIME.as_secs() - first,
            LIFETIME.as_secs() - last,
        );
        println!(
            "spread: busiest window t = {busiest} s with {most} refreshes = {:.2} % (target <= 5 %); mean {:.2} %",
            most as f64 * 100.0 / MANAGERS as f64,
            100.0 / windows.len() as f64
        );
        let histogram: Vec<String> = windows.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        println!("spread: per window (t:count) {}", histogram.join(" "));
        registry.shutdown().await;
    });
}
