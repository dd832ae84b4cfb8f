//! Item 10: 20 processes, each with a device token manager, sharing one
//! token and one refresh through one Redis, for 60 s on 4 s tokens.
//!
//! The harness starts its own `redis-server` (on a unix socket in a
//! temporary directory; `--redis-server PATH`, else `$ONESOIDC_REDIS_SERVER`,
//! else `redis-server` on `PATH`; without one the item is not measured),
//! the dev IdP issuing 4 s access tokens behind a fault proxy, and 20
//! children: this binary run again with `ONESOIDC_BENCH_FLEET_CHILD` set
//! to their plan. Each child builds a `TokenManager` with `device_refresh`
//! on a `RedisTokenStore` (skew 1 s, jitter 0.5 s, refresh timeout 1 s),
//! calls `access_token()` every 50 ms for 60 s, and prints a report (calls,
//! failures, the longest call, its events).
//!
//! During the run:
//! - at 15 s the provider's token endpoint turns slow (30 s), so the next
//!   refresh holds the lease; once its request reaches the proxy, the
//!   harness reads the lease key (`<pid>:<random>`) in Redis, kills that
//!   process with SIGKILL and makes the provider fast again; the others
//!   take over when the lease's time limit passes (1 s + 2 s);
//! - at 35 s Redis is killed, and started again (empty) at 45 s: meanwhile
//!   every process refreshes alone, by design.
//!
//! One more child, on a provider of its own and with no store, runs the
//! same 60 s alone: 20 times its requests are what the fleet would cost
//! without sharing.
//!
//! Measured: token requests (total, and outside vs during the outage),
//! failed `access_token()` calls among the survivors (target 0), the
//! longest call. Target: requests ≤ 60 / 4 + 2 = 17.
//!
//! `bench-redis-fleet [--redis-server PATH] [--seconds 60] [--processes 20]`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use onesoidc_benches::{ProviderThread, arg, row};
use onesoidc_core::KeyType;
use onesoidc_devidp::DevIdpConfig;
use onesoidc_devidp::faults::Fault;
use onesoidc_flows::{DeviceIdentity, IdentityPaths, OnesIdClient};
use onesoidc_tokens::{RedisTokenStore, TokenEvent, TokenManager, TokenOwner, device_refresh};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

// The tests' private redis-server (one implementation for both); its way of
// finding the binary (`RedisServer::binary`) is not used here.
#[allow(dead_code)]
#[path = "../../../onesoidc-tokens/tests/support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

const CHILD: &str = "ONESOIDC_BENCH_FLEET_CHILD";
const TOKEN_PATH: &str = "/oidc/token";
const TTL: Duration = Duration::from_secs(4);
const SKEW_MS: u64 = 1000;
const JITTER_MS: u64 = 500;
const REFRESH_TIMEOUT_MS: u64 = 1000;
const EVERY_MS: u64 = 50;
const DEFAULT_SECONDS: u64 = 60;
const DEFAULT_PROCESSES: usize = 20;
/// When the lease holder is killed, and when Redis goes down and for how long.
const KILL_AT: Duration = Duration::from_secs(15);
const OUTAGE_AT: Duration = Duration::from_secs(35);
const OUTAGE: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a child does.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    /// The Redis URL, or none: alone.
    store: Option<String>,
    config: PathBuf,
    key_dir: PathBuf,
    run_ms: u64,
}

/// What a child saw.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Report {
    calls: u64,
    failures: Vec<String>,
    longest_call_ms: f64,
    /// When the longest call ended, ms since the Unix epoch.
    longest_call_at: u64,
    events: BTreeMap<String, u64>,
    /// When the manager announced its token expired, ms since the Unix epoch.
    expired_at: Vec<u64>,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn main() -> Result<(), BoxError> {
    if let Ok(plan) = std::env::var(CHILD) {
        return child(serde_json::from_str(&plan)?);
    }
    let seconds = match arg("--seconds") {
        Some(s) => s.parse::<u64>()?.max(50),
        None => DEFAULT_SECONDS,
    };
    let processes = match arg("--processes") {
        Some(n) => n.parse::<usize>()?.max(2),
        None => DEFAULT_PROCESSES,
    };
    let server = arg("--redis-server")
        .or_else(|| std::env::var("ONESOIDC_REDIS_SERVER").ok())
        .filter(|s| !s.is_empty())
        .or_else(|| on_path("redis-server"));
    let Some(server) = server else {
        println!("redis-fleet: no redis-server (--redis-server, $ONESOIDC_REDIS_SERVER or PATH)");
        row(
            "10",
            "20 processes on one Redis: token requests",
            "not measured: no redis-server (apt-get install redis-server, or set ONESOIDC_REDIS_SERVER)",
            "≤ 60/4 + 2 = 17",
            None,
        );
        return Ok(());
    };
    fleet(&server, seconds, processes)
}

fn on_path(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .map(|found| found.display().to_string())
}

/// The process id in the refresh lease (`<pid>:<random>`), if one is held.
fn lease_holder(redis: &RedisServer) -> Result<Option<u32>, BoxError> {
    let client = redis::Client::open(redis.url())?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("onesoidc:*:lease")
        .query(&mut connection)?;
    for key in keys {
        let value: Option<String> = redis::cmd("GET").arg(&key).query(&mut connection)?;
        if let Some(pid) = value.and_then(|v| v.split(':').next()?.parse().ok()) {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// A running child and its report to come.
struct Running {
    child: Child,
    report: Receiver<Report>,
}

fn spawn(plan: &Plan) -> Result<Running, BoxError> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD, serde_json::to_string(plan)?)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix("report ")
                && let Ok(report) = serde_json::from_str(json)
            {
                let _ = tx.send(report);
            }
        }
    });
    Ok(Running { child, report: rx })
}

impl Running {
    fn finish(mut self, patience: Duration) -> Option<Report> {
        let report = self.report.recv_timeout(patience).ok();
        if report.is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        report
    }
}

fn requests(provider: &ProviderThread) -> u64 {
    provider.idp().stats().token_requests.client_credentials
}

fn fleet(server: &str, seconds: u64, processes: usize) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut redis = RedisServer::start(server.to_string())?;
    let config = || DevIdpConfig {
        access_token_ttl: TTL,
        ..DevIdpConfig::default()
    };
    let (provider, proxy) = ProviderThread::start_behind_fault_proxy(config())?;
    let dir = tempfile::tempdir()?;
    let paths = provider
        .idp()
        .provision_device(dir.path(), KeyType::EccP256)?;
    // The baseline: one process alone, on a provider of its own.
    let lone_provider = ProviderThread::start(config())?;
    let lone_dir = tempfile::tempdir()?;
    let lone_paths = lone_provider
        .idp()
        .provision_device(lone_dir.path(), KeyType::EccP256)?;

    let run_ms = seconds * 1000;
    let plan = Plan {
        store: Some(redis.url()),
        config: paths.config.clone(),
        key_dir: paths.key_dir.clone(),
        run_ms,
    };
    println!(
        "redis-fleet: {processes} processes on {} for {seconds} s, {} s tokens, skew {SKEW_MS} ms, jitter {JITTER_MS} ms, refresh timeout {REFRESH_TIMEOUT_MS} ms; load average {}",
        redis.url(),
        TTL.as_secs(),
        onesoidc_benches::load_average().unwrap_or_default()
    );
    let started = Instant::now();
    let started_ms = epoch_ms();
    let mut children = Vec::new();
    for _ in 0..processes {
        children.push(Some(spawn(&plan)?));
    }
    let lone = spawn(&Plan {
        store: None,
        config: lone_paths.config.clone(),
        key_dir: lone_paths.key_dir.clone(),
        run_ms,
    })?;
    let at = |t: Duration| started + t;
    let since = |t: Instant| (t - started).as_secs_f64();

    // The lease holder killed in its refresh.
    std::thread::sleep(at(KILL_AT).saturating_duration_since(Instant::now()));
    let before_kill = requests(&provider);
    let seen = proxy.requests_to(TOKEN_PATH);
    runtime.block_on(proxy.set_for(
        TOKEN_PATH,
        Fault::Slow {
            delay: Duration::from_secs(30),
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.requests_to(TOKEN_PATH) == seen {
        if Instant::now() > deadline {
            return Err("no refresh reached the provider within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let in_refresh = Instant::now();
    let mut holder = None;
    while holder.is_none() && in_refresh.elapsed() < Duration::from_millis(500) {
        holder = lease_holder(&redis)?;
    }
    let holder = holder.ok_or("a refresh is under way but nobody holds the lease")?;
    let index = children
        .iter()
        .position(|c| c.as_ref().is_some_and(|c| c.child.id() == holder))
        .ok_or_else(|| format!("the lease holder {holder} is not one of the children"))?;
    let mut victim = children[index].take().ok_or("gone")?;
    victim.child.kill()?;
    let _ = victim.child.wait();
    let killed = Instant::now();
    runtime.block_on(proxy.set_for(TOKEN_PATH, Fault::Forward));
    println!(
        "redis-fleet: at {:.2} s a refresh reached the provider; killed its lease holder (pid {holder}, child {index}) {:.1} ms later; provider fast again",
        since(in_refresh),
        (killed - in_refresh).as_secs_f64() * 1e3
    );

    // Redis down for a while.
    std::thread::sleep(at(OUTAGE_AT).saturating_duration_since(Instant::now()));
    let before_outage = requests(&provider);
    redis.stop();
    let down = Instant::now();
    std::thread::sleep(OUTAGE);
    let during_outage = requests(&provider) - before_outage;
    redis.restart()?;
    let up = Instant::now();
    println!(
        "redis-fleet: Redis down from {:.2} s to {:.2} s; {during_outage} token requests meanwhile",
        since(down),
        since(up)
    );

    let patience = Duration::from_millis(run_ms) + Duration::from_secs(30);
    let reports: Vec<Option<Report>> = children
        .into_iter()
        .flatten()
        .map(|c| c.finish(patience.saturating_sub(started.elapsed())))
        .collect();
    let lone_report = lone.finish(Duration::from_secs(30));
    let ended = Instant::now();
    let total = requests(&provider);
    let lone_requests = requests(&lone_provider);
    drop(proxy);
    drop(provider);
    drop(lone_provider);

    let survivors = reports.len();
    let reported: Vec<&Report> = reports.iter().flatten().collect();
    let calls: u64 = reported.iter().map(|r| r.calls).sum();
    let failures: Vec<&String> = reported.iter().flat_map(|r| &r.failures).collect();
    let longest = reported
        .iter()
        .map(|r| r.longest_call_ms)
        .fold(0.0, f64::max);
    // Seconds since the start, from a child's epoch milliseconds.
    let at_s = |ms: u64| ms.saturating_sub(started_ms) as f64 / 1e3;
    let longest_at = reported
        .iter()
        .max_by(|a, b| a.longest_call_ms.total_cmp(&b.longest_call_ms))
        .map_or(0.0, |r| at_s(r.longest_call_at));
    let expired: Vec<f64> = reported
        .iter()
        .flat_map(|r| r.expired_at.iter().map(|&ms| at_s(ms)))
        .collect();
    let expired_text = match (
        expired.iter().copied().reduce(f64::min),
        expired.iter().copied().reduce(f64::max),
    ) {
        (Some(first), Some(last)) => format!(
            "{} Expired events between {first:.1} s and {last:.1} s",
            expired.len()
        ),
        _ => "no Expired event".into(),
    };
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    for report in &reported {
        for (name, n) in &report.events {
            *events.entry(name.clone()).or_default() += n;
        }
    }
    let events_text = events
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let outside = total - during_outage;
    let run_s = seconds as f64;
    let outside_s = run_s - OUTAGE.as_secs_f64();
    let ttl_s = TTL.as_secs_f64();
    let bound = run_s / ttl_s + 2.0;
    let outside_bound = outside_s / ttl_s + 2.0;
    let lead_s = (SKEW_MS + JITTER_MS) as f64 / 1e3;
    println!(
        "redis-fleet: ran {:.1} s; {total} token requests: {} before the kill, {} from the kill to the outage, {during_outage} during the outage, {} after; survivors' events: {events_text}",
        since(ended),
        before_kill,
        before_outage - before_kill,
        total - before_outage - during_outage,
    );
    println!(
        "redis-fleet: {} of {survivors} survivors reported; {calls} calls, {} failed, longest {longest:.0} ms (ended at {longest_at:.1} s); {expired_text}; alone: {lone_requests} requests ({})",
        reported.len(),
        failures.len(),
        lone_report.as_ref().map_or("no report".into(), |r| format!(
            "{} calls, {} failed",
            r.calls,
            r.failures.len()
        )),
    );
    for failure in failures.iter().take(5) {
        println!("redis-fleet: failure: {failure}");
    }
    let alone = lone_requests * processes as u64;
    row(
        "10",
        "20 processes on one Redis, 4 s tokens, 60 s: token requests",
        &format!(
            "{total} in all: {outside} outside the 10 s outage + {during_outage} during it (alone: 20 × {lone_requests} = {alone})"
        ),
        &format!("≤ 60/4 + 2 = {bound:.0}"),
        Some(total as f64 <= bound),
    );
    row(
        "10",
        "token requests outside the Redis outage (50 s)",
        &format!(
            "{outside} (the bound pro rata: 50/4 + 2 = {outside_bound:.1}; one per refresh interval of {:.1}–{:.1} s would be {:.1})",
            ttl_s - lead_s,
            ttl_s - SKEW_MS as f64 / 1e3,
            outside_s / (ttl_s - lead_s) + 1.0,
        ),
        &format!("≤ {outside_bound:.1}"),
        Some(outside as f64 <= outside_bound),
    );
    row(
        "10",
        "failed access_token() calls among the survivors",
        &format!(
            "{} of {calls} ({} of {survivors} survivors reported; lease holder SIGKILLed at {:.1} s, Redis down {:.1}–{:.1} s; longest call {longest:.0} ms, ending at {longest_at:.1} s; {expired_text})",
            failures.len(),
            reported.len(),
            since(killed),
            since(down),
            since(up)
        ),
        "0",
        Some(failures.is_empty() && reported.len() == survivors),
    );
    row(
        "10",
        "(info) survivors' manager events",
        &events_text,
        "",
        None,
    );
    Ok(())
}

/// A child: one manager, called every `EVERY_MS` for `run_ms`; prints
/// `report {json}`.
fn child(plan: Plan) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let paths = IdentityPaths::new(&plan.config, &plan.key_dir);
        let client = OnesIdClient::builder()
            .identity(DeviceIdentity::load(&paths)?)
            .build()?;
        let mut builder = TokenManager::builder("device", device_refresh(client.clone()))
            .refresh_skew(Duration::from_millis(SKEW_MS))
            .jitter(Duration::from_millis(JITTER_MS))
            .refresh_timeout(Duration::from_millis(REFRESH_TIMEOUT_MS));
        if let Some(url) = &plan.store {
            builder = builder.store(
                Arc::new(RedisTokenStore::open(url)?),
                TokenOwner::of(&client),
            );
        }
        let manager = builder.build();
        let mut events = manager.events();
        let seen = tokio::spawn(async move {
            let mut seen = BTreeMap::<String, u64>::new();
            let mut expired_at = Vec::new();
            while let Some(event) = events.next().await {
                if matches!(event, TokenEvent::Expired) {
                    expired_at.push(epoch_ms());
                }
                *seen.entry(event_name(&event).into()).or_default() += 1;
            }
            (seen, expired_at)
        });
        let mut report = Report::default();
        let until = Instant::now() + Duration::from_millis(plan.run_ms);
        loop {
            report.calls += 1;
            let called = Instant::now();
            if let Err(error) = manager.access_token().await {
                report.failures.push(error.to_string());
            }
            let took = called.elapsed().as_secs_f64() * 1e3;
            if took > report.longest_call_ms {
                report.longest_call_ms = took;
                report.longest_call_at = epoch_ms();
            }
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(EVERY_MS)).await;
        }
        manager.shutdown().await;
        drop(manager);
        (report.events, report.expired_at) = seen.await?;
        Ok::<Report, BoxError>(report)
    })?;
    println!("report {}", serde_json::to_string(&report)?);
    Ok(())
}

fn event_name(event: &TokenEvent) -> &'static str {
    match event {
        TokenEvent::Refreshed { .. } => "Refreshed",
        TokenEvent::Loaded { .. } => "Loaded",
        TokenEvent::Stored { .. } => "Stored",
        TokenEvent::RefreshFailed { .. } => "RefreshFailed",
        TokenEvent::Expired => "Expired",
        TokenEvent::Cleared => "Cleared",
        TokenEvent::StoreUnavailable { .. } => "StoreUnavailable",
        TokenEvent::StoreAvailable => "StoreAvailable",
        _ => "Other",
    }
}
