//! Managers in many processes sharing one token and one refresh, through a
//! directory (OS file locks) and through Redis: the provider sees one
//! refresh per token lifetime however many processes use it, a lease holder
//! killed with SIGKILL is taken over, Redis going down and coming back
//! never fails a caller, and rotated refresh tokens are never reused (the
//! provider revokes the grant when they are).
//!
//! The children are this test binary run again with `ONESOIDC_SHARED_CHILD`
//! set to their plan: each builds a manager on the shared store, calls
//! `access_token()` every few milliseconds for a while, and prints a report.
//! So this test has its own `main` (`harness = false` in Cargo.toml).

#[path = "../support/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onesoidc_core::KeyType;
use onesoidc_devidp::faults::{Fault, FaultProxy, start_behind_proxy};
use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_flows::{CibaRequest, DeviceIdentity, IdentityPaths, OnesIdClient};
use onesoidc_tokens::{
    FileTokenStore, RedisTokenStore, SaveMode, StoreKey, TokenEvent, TokenManager, TokenOwner,
    TokenStore, device_refresh, user_refresh,
};
use redis_server::RedisServer;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

const CHILD: &str = "ONESOIDC_SHARED_CHILD";
const TOKEN_PATH: &str = "/oidc/token";
/// Token lifetime in these tests, and the managers' skew and jitter: a
/// manager refreshes 1–1.5 s before expiry, so a token is replaced every
/// 2.5–3 s.
const TTL: Duration = Duration::from_secs(4);
const SKEW_MS: u64 = 1000;
const JITTER_MS: u64 = 500;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
enum Kind {
    Device,
    User,
}

/// What a child does.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    store: String,
    config: PathBuf,
    key_dir: PathBuf,
    kind: Kind,
    run_ms: u64,
    every_ms: u64,
    refresh_timeout_ms: u64,
}

/// What a child saw.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Report {
    calls: u64,
    failures: Vec<String>,
    events: Vec<String>,
}

impl Report {
    fn count(&self, prefix: &str) -> usize {
        self.events.iter().filter(|e| e.starts_with(prefix)).count()
    }
}

fn main() {
    if let Ok(plan) = std::env::var(CHILD) {
        let plan: Plan = serde_json::from_str(&plan).expect("the child's plan");
        return child(plan);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(parent());
}

async fn parent() {
    let redis = RedisServer::binary();
    let started = Instant::now();
    let temp = tempfile::tempdir().unwrap();
    let dir_store = || {
        temp.path()
            .join(format!("store-{}", uuid_like()))
            .display()
            .to_string()
    };

    run(
        "files: many processes, one refresh per lifetime",
        many_processes_one_refresh(dir_store()),
    )
    .await;
    run(
        "files: the lease holder killed",
        lease_holder_killed(dir_store()),
    )
    .await;
    run(
        "files: rotated refresh tokens under contention",
        rotated_refresh_tokens(dir_store()),
    )
    .await;
    if let Some(binary) = redis {
        let mut server = RedisServer::start(binary).expect("redis-server starts");
        let url = server.url();
        run(
            "redis: many processes, one refresh per lifetime",
            many_processes_one_refresh(url.clone()),
        )
        .await;
        run(
            "redis: the lease holder killed",
            lease_holder_killed(url.clone()),
        )
        .await;
        run(
            "redis: rotated refresh tokens under contention",
            rotated_refresh_tokens(url.clone()),
        )
        .await;
        run("redis: down and back", redis_down_and_back(&mut server)).await;
    }
    eprintln!(
        "shared: all passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn run(name: &str, scenario: impl std::future::Future<Output = ()>) {
    eprintln!("shared: {name} ...");
    let started = Instant::now();
    // A broken build fails in bounded time instead of hanging CI.
    tokio::time::timeout(Duration::from_secs(60), scenario)
        .await
        .unwrap_or_else(|_| panic!("{name}: did not finish within 60 s"));
    eprintln!(
        "shared: {name}: ok ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

fn uuid_like() -> u64 {
    rand::random()
}

/// A provider issuing `TTL` tokens (behind a proxy) and one device on it.
async fn provider() -> (DevIdp, FaultProxy, tempfile::TempDir, IdentityPaths) {
    let (idp, proxy) = start_behind_proxy(DevIdpConfig {
        access_token_ttl: TTL,
        ciba_interval: Duration::from_millis(50),
        auto_approve: Some(AutoApprove::approve_after(Duration::ZERO)),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    (idp, proxy, dir, paths)
}

fn plan(store: &str, paths: &IdentityPaths, kind: Kind, run_ms: u64) -> Plan {
    Plan {
        store: store.to_string(),
        config: paths.config.clone(),
        key_dir: paths.key_dir.clone(),
        kind,
        run_ms,
        every_ms: 20,
        refresh_timeout_ms: 3000,
    }
}

/// A running child.
struct Running {
    child: Child,
    report: std::sync::mpsc::Receiver<Report>,
}

fn spawn(plan: &Plan) -> Running {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, serde_json::to_string(plan).unwrap())
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix("report ") {
                let _ = tx.send(serde_json::from_str(json).unwrap());
            }
        }
    });
    Running { child, report: rx }
}

impl Running {
    /// Waits (bounded) for the child's report.
    async fn finish(mut self) -> Report {
        tokio::task::spawn_blocking(move || {
            let report = self
                .report
                .recv_timeout(Duration::from_secs(45))
                .expect("the child reports within 45 s");
            let _ = self.child.wait();
            report
        })
        .await
        .unwrap()
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

async fn finish_all(children: Vec<Running>) -> Vec<Report> {
    let mut reports = Vec::new();
    for child in children {
        reports.push(child.finish().await);
    }
    reports
}

fn assert_no_failures(reports: &[Report]) {
    for (i, report) in reports.iter().enumerate() {
        assert!(report.calls > 0, "child {i} made no call: {report:?}");
        assert!(
            report.failures.is_empty(),
            "child {i}: {} of {} calls failed: {:?}",
            report.failures.len(),
            report.calls,
            report.failures
        );
    }
}

/// Six processes for 8 s on 4 s tokens: alone they would make about 20
/// token requests (each refreshes every 2.5–3 s); sharing, at most one per
/// 2.5 s plus the first.
async fn many_processes_one_refresh(store: String) {
    let (idp, _proxy, _dir, paths) = provider().await;
    let run_ms = 8000;
    let children: Vec<_> = (0..6)
        .map(|_| spawn(&plan(&store, &paths, Kind::Device, run_ms)))
        .collect();
    let reports = finish_all(children).await;
    assert_no_failures(&reports);
    let requests = idp.stats().token_requests.client_credentials;
    let most = run_ms / 2500 + 2;
    assert!(
        (1..=most).contains(&requests),
        "{requests} token requests for 6 processes over {run_ms} ms (at most {most}): {reports:?}"
    );
    let loaded: usize = reports.iter().map(|r| r.count("Loaded")).sum();
    eprintln!(
        "shared:   {requests} token requests (at most {most}); {loaded} tokens taken from the store"
    );
    assert!(loaded > 0, "some process took another's token: {reports:?}");
}

/// A process takes the lease and hangs in its refresh; it is killed with
/// SIGKILL. Two others take over: exactly one of them refreshes.
async fn lease_holder_killed(store: String) {
    let (idp, proxy, _dir, paths) = provider().await;
    proxy
        .set_for(
            TOKEN_PATH,
            Fault::Slow {
                delay: Duration::from_secs(30),
            },
        )
        .await;
    let mut holder = spawn(&plan(&store, &paths, Kind::Device, 500));
    // The holder is in its refresh (holding the lease) once its request
    // reaches the proxy.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.requests_to(TOKEN_PATH) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first process never asked for a token"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.set_for(TOKEN_PATH, Fault::Forward).await;
    let others: Vec<_> = (0..2)
        .map(|_| spawn(&plan(&store, &paths, Kind::Device, 500)))
        .collect();
    holder.kill();
    let reports = finish_all(others).await;
    assert_no_failures(&reports);
    assert_eq!(
        idp.stats().token_requests.client_credentials,
        1,
        "the killed holder's request never arrived; one of the others refreshed: {reports:?}"
    );
}

/// Five processes share a person's tokens for 9 s on 4 s access tokens;
/// the provider rotates the refresh token on every use and revokes the
/// grant when a rotated one comes back. None ever does.
async fn rotated_refresh_tokens(store_spec: String) {
    let (idp, _proxy, _dir, paths) = provider().await;
    let client = OnesIdClient::builder()
        .identity(DeviceIdentity::load(&paths).unwrap())
        .build()
        .unwrap();
    let login = client
        .ciba(&CibaRequest::for_username("alice").scope("openid offline_access"))
        .await
        .unwrap();
    assert!(login.tokens.refresh_token.is_some());
    let store = open_store(&store_spec);
    store
        .save(
            &StoreKey::new("ciba_user", TokenOwner::of(&client)),
            &login.tokens,
            SaveMode::Replace,
        )
        .await
        .unwrap();
    let run_ms = 9000;
    let children: Vec<_> = (0..5)
        .map(|_| spawn(&plan(&store_spec, &paths, Kind::User, run_ms)))
        .collect();
    let reports = finish_all(children).await;
    assert_no_failures(&reports);
    let stats = idp.stats();
    assert_eq!(
        stats.rejected("invalid_grant"),
        0,
        "no refresh token was reused: {stats:?}"
    );
    let refreshes = stats.token_requests.refresh_token;
    let most = run_ms / 2500 + 2;
    eprintln!("shared:   {refreshes} refreshes (at most {most}), 0 reused refresh tokens");
    assert!(
        (1..=most).contains(&refreshes),
        "{refreshes} refreshes for 5 processes over {run_ms} ms (at most {most})"
    );
}

/// Redis stops for 3 s and comes back while four processes run: no call
/// fails (each refreshes alone meanwhile), and they say so.
async fn redis_down_and_back(server: &mut RedisServer) {
    let (_idp, _proxy, _dir, paths) = provider().await;
    let url = server.url();
    let children: Vec<_> = (0..4)
        .map(|_| spawn(&plan(&url, &paths, Kind::Device, 11_000)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().expect("redis-server starts again");
    let reports = finish_all(children).await;
    assert_no_failures(&reports);
    for (i, report) in reports.iter().enumerate() {
        let down = report.count("StoreUnavailable");
        let back = report.count("StoreAvailable");
        assert!(down <= 1 && back <= down, "child {i}: {report:?}");
    }
    assert!(
        reports
            .iter()
            .any(|r| r.count("StoreUnavailable") == 1 && r.count("StoreAvailable") == 1),
        "some process saw Redis go and come back: {reports:?}"
    );
}

fn open_store(spec: &str) -> Arc<dyn TokenStore> {
    if spec.starts_with("redis") {
        Arc::new(RedisTokenStore::open(spec).unwrap())
    } else {
        Arc::new(FileTokenStore::new(spec))
    }
}

/// A child: one manager on the shared store, called every `every_ms` for
/// `run_ms`; prints `report {json}`.
fn child(plan: Plan) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let paths = IdentityPaths::new(&plan.config, &plan.key_dir);
        let client = OnesIdClient::builder()
            .identity(DeviceIdentity::load(&paths).unwrap())
            .build()
            .unwrap();
        let (name, refresh) = match plan.kind {
            Kind::Device => ("device", device_refresh(client.clone())),
            Kind::User => ("ciba_user", user_refresh(client.clone())),
        };
        let manager = TokenManager::builder(name, refresh)
            .store(open_store(&plan.store), TokenOwner::of(&client))
            .refresh_skew(Duration::from_millis(SKEW_MS))
            .jitter(Duration::from_millis(JITTER_MS))
            .refresh_timeout(Duration::from_millis(plan.refresh_timeout_ms))
            .build();
        let mut events = manager.events();
        let seen = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(event) = events.next().await {
                seen.push(event_name(&event));
            }
            seen
        });
        let mut report = Report::default();
        let until = Instant::now() + Duration::from_millis(plan.run_ms);
        loop {
            report.calls += 1;
            if let Err(error) = manager.access_token().await {
                report.failures.push(error.to_string());
            }
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(plan.every_ms)).await;
        }
        manager.shutdown().await;
        drop(manager);
        report.events = seen.await.unwrap();
        report
    });
    println!("report {}", serde_json::to_string(&report).unwrap());
}

fn event_name(event: &TokenEvent) -> String {
    let name = match event {
        TokenEvent::Refreshed { .. } => "Refreshed",
        TokenEvent::Loaded { .. } => "Loaded",
        TokenEvent::Stored { .. } => "Stored",
        TokenEvent::RefreshFailed { .. } => "RefreshFailed",
        TokenEvent::Expired => "Expired",
        TokenEvent::Cleared => "Cleared",
        TokenEvent::StoreUnavailable { .. } => "StoreUnavailable",
        TokenEvent::StoreAvailable => "StoreAvailable",
        _ => "Other",
    };
    format!("{name}: {event}")
}
