//! Managers in many processes sharing one token and one refresh, through a
//! directory (OS file locks) and through Redis: the provider sees one
//! refresh per token lifetime however many processes use it, a lease holder
//! killed with SIGKILL is taken over, Redis going down and coming back
//! never fails a caller, and rotated refresh tokens are never reused (the
//! provider revokes the grant when they are): not under contention, not
//! when a holder is stopped (SIGSTOP) past its lease, not when Redis
//! pauses before a load and the refresh outlasts the lease. Then the races
//! of `tests/support/races.rs` (a logout or a login during a refresh;
//! generations and fencing numbers) against Redis.
//!
//! The children are this test binary run again with `ONESOIDC_SHARED_CHILD`
//! set to their plan: each builds a manager on the shared store, calls
//! `access_token()` every few milliseconds for a while, and prints a report.
//! So this test has its own `main` (`harness = false` in Cargo.toml).

#[path = "../support/hooked_store.rs"]
mod hooked_store;
#[path = "../support/races.rs"]
mod races;
#[path = "../support/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hooked_store::{Hooked, Hooks};
use onesoidc_core::{ExposeSecret, KeyType};
use onesoidc_devidp::faults::{Fault, FaultProxy, start_behind_proxy};
use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_flows::{CibaRequest, DeviceIdentity, IdentityPaths, OnesIdClient};
use onesoidc_tokens::{
    FileTokenStore, RedisTokenStore, SaveMode, StoreFuture, StoreKey, TokenEvent, TokenManager,
    TokenOwner, TokenStore, device_refresh, user_refresh,
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
    /// The store lease (renewed while held).
    lease_ms: u64,
    /// Stop this process (SIGSTOP) right after its `n`-th load from the
    /// store returns (the first is at start-up).
    stop_after_load: Option<u32>,
    /// DPoP on: tokens bound to the device key (every process sharing the
    /// identity has it), each use's headers checked.
    #[serde(default)]
    dpop: bool,
    /// With `dpop`, a freshly generated key instead: another device's key.
    #[serde(default)]
    other_dpop_key: bool,
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
    run(
        "files: a DPoP-bound token shared by the key's processes only",
        dpop_bound_token_shared(dir_store()),
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
        run(
            "redis: a DPoP-bound token shared by the key's processes only",
            dpop_bound_token_shared(url.clone()),
        )
        .await;
        run(
            "redis: a holder stopped past its lease",
            holder_stopped_past_its_lease(url.clone()),
        )
        .await;
        run(
            "redis: the lease covers a paused load and a refresh longer than it",
            lease_covers_the_work(url.clone()),
        )
        .await;
        run("redis: generations", races::generations(open_store(&url))).await;
        run("redis: fencing numbers", races::fencing(open_store(&url))).await;
        for who in [races::Who::Same, races::Who::Other] {
            run(
                &format!("redis: a logout during a refresh sticks ({who:?})"),
                races::logout_during_refresh(open_store(&url), who),
            )
            .await;
            run(
                &format!("redis: a login during a refresh wins ({who:?})"),
                races::login_during_refresh(open_store(&url), who),
            )
            .await;
        }
        run("redis: down and back", redis_down_and_back(&mut server)).await;
    }
    eprintln!(
        "shared: all passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs `scenario`, unless `ONESOIDC_SHARED_ONLY` is set and not part of
/// `name` (to run a few while working on them).
async fn run(name: &str, scenario: impl std::future::Future<Output = ()>) {
    if let Ok(only) = std::env::var("ONESOIDC_SHARED_ONLY")
        && !name.contains(&only)
    {
        eprintln!("shared: {name}: skipped (ONESOIDC_SHARED_ONLY={only})");
        return;
    }
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
        lease_ms: 1000,
        stop_after_load: None,
        dpop: false,
        other_dpop_key: false,
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

/// Three processes sharing the identity (so the device key) share one
/// DPoP-bound token: at most one token request per lifetime, every token
/// bound, each use's proof from the key the token is bound to. Then a
/// process with another DPoP key never adopts it: it gets its own.
async fn dpop_bound_token_shared(store: String) {
    let (idp, _proxy, _dir, paths) = provider().await;
    let run_ms = 5000;
    let bound = |run_ms, other_dpop_key| Plan {
        dpop: true,
        other_dpop_key,
        ..plan(&store, &paths, Kind::Device, run_ms)
    };
    let children: Vec<_> = (0..3).map(|_| spawn(&bound(run_ms, false))).collect();
    let reports = finish_all(children).await;
    assert_no_failures(&reports);
    let requests = idp.stats().token_requests.client_credentials;
    let most = run_ms / 2500 + 2;
    assert!(
        (1..=most).contains(&requests),
        "{requests} token requests for 3 processes over {run_ms} ms (at most {most}): {reports:?}"
    );
    assert_eq!(
        idp.stats().dpop_bound_tokens_issued,
        requests,
        "every token bound"
    );
    let loaded: usize = reports.iter().map(|r| r.count("Loaded")).sum();
    assert!(
        loaded > 0,
        "some process took another's bound token: {reports:?}"
    );

    let stranger = finish_all(vec![spawn(&bound(500, true))]).await;
    assert_no_failures(&stranger);
    assert_eq!(stranger[0].count("Loaded"), 0, "{stranger:?}");
    assert_eq!(
        idp.stats().token_requests.client_credentials,
        requests + 1,
        "the stranger got its own token"
    );
    eprintln!(
        "shared:   {requests} bound token requests (at most {most}); {loaded} taken from the store"
    );
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

/// Logs alice in (CIBA, with a refresh token) on the device of `paths` and
/// stores her tokens as `ciba_user` in `store_spec`; returns their owner.
async fn log_in_alice(store_spec: &str, paths: &IdentityPaths) -> TokenOwner {
    let client = OnesIdClient::builder()
        .identity(DeviceIdentity::load(paths).unwrap())
        .build()
        .unwrap();
    let login = client
        .ciba(&CibaRequest::for_username("alice").scope("openid offline_access"))
        .await
        .unwrap();
    assert!(login.tokens.refresh_token.is_some());
    let owner = TokenOwner::of(&client);
    open_store(store_spec)
        .save(
            &StoreKey::new("ciba_user", owner.clone()),
            &login.tokens,
            SaveMode::Replace,
        )
        .await
        .unwrap();
    owner
}

/// Five processes share a person's tokens for 9 s on 4 s access tokens;
/// the provider rotates the refresh token on every use and revokes the
/// grant when a rotated one comes back. None ever does.
async fn rotated_refresh_tokens(store_spec: String) {
    let (idp, _proxy, _dir, paths) = provider().await;
    log_in_alice(&store_spec, &paths).await;
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
    assert_eq!(stats.most_uses_of_a_refresh_token(), 1, "{stats:?}");
    let refreshes = stats.token_requests.refresh_token;
    let most = run_ms / 2500 + 2;
    eprintln!("shared:   {refreshes} refreshes (at most {most}), 0 reused refresh tokens");
    assert!(
        (1..=most).contains(&refreshes),
        "{refreshes} refreshes for 5 processes over {run_ms} ms (at most {most})"
    );
}

/// A person's tokens in Redis; process H takes the lease, loads, and is
/// stopped (SIGSTOP) before it spends the refresh token, past its 1 s
/// lease. W takes over and spends it; H, continued, must not spend it
/// again (it checks its lease first): every refresh token is spent once,
/// and the provider never revokes the grant.
async fn holder_stopped_past_its_lease(url: String) {
    let (idp, _proxy, _dir, paths) = provider().await;
    let owner = log_in_alice(&url, &paths).await;
    let holder_plan = Plan {
        stop_after_load: Some(2),
        ..plan(&url, &paths, Kind::User, 5000)
    };
    let holder = spawn(&holder_plan);
    let pid = holder.child.id();
    wait_for("the holder to stop itself", || {
        process_state(pid) == Some('T')
    })
    .await;
    let lease = format!("onesoidc:{{{}:ciba_user}}:lease", owner.fingerprint());
    let mut redis = redis_connection(&url).await;
    let mut lapsed = false;
    for _ in 0..300 {
        let held: Option<String> = redis::cmd("GET")
            .arg(&lease)
            .query_async(&mut redis)
            .await
            .unwrap();
        if held.is_none() {
            lapsed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(lapsed, "the stopped holder's lease never ran out");
    let taker = spawn(&plan(&url, &paths, Kind::User, 3000));
    wait_for("the other process to refresh", || {
        idp.stats().token_requests.refresh_token >= 1
    })
    .await;
    signal(pid, "-CONT");
    let reports = finish_all(vec![holder, taker]).await;
    let stats = idp.stats();
    eprintln!(
        "shared:   {} refreshes; refresh token uses {:?}",
        stats.token_requests.refresh_token, stats.refresh_token_uses
    );
    assert_eq!(
        stats.most_uses_of_a_refresh_token(),
        1,
        "a refresh token was spent twice: {stats:?}; first failures: {:?}",
        reports
            .iter()
            .map(|r| r.failures.first())
            .collect::<Vec<_>>()
    );
    assert_eq!(stats.rejected("invalid_grant"), 0, "{stats:?}");
    assert_no_failures(&reports);
}

/// The holder's load waits out `CLIENT PAUSE` (600 ms) and its refresh
/// takes 1.5 s: 2.1 s of work under a 1 s lease (as a 30 s refresh under
/// the 32 s lease of old, plus a slow load). The holder renews the lease,
/// so the other manager waits and uses its tokens: the refresh token is
/// spent once.
async fn lease_covers_the_work(url: String) {
    let holder_store = Arc::new(Hooked {
        inner: open_store(&url),
        hooks: PauseBeforeLoad {
            url: url.clone(),
            armed: AtomicBool::new(false),
        },
    });
    let other_store = open_store(&url);
    let (counter, refresh, mut started) = races::UserRefresh::new(Duration::from_millis(1500));
    let build = |store: Arc<dyn TokenStore>| {
        TokenManager::builder(races::NAME, refresh.clone())
            .store(store, races::owner())
            .store_lease(Duration::from_secs(1))
            .build()
    };
    let holder = build(holder_store.clone());
    holder
        .store(races::user_tokens("A", Duration::from_secs(3600)))
        .await;
    let other = build(other_store);
    assert_eq!(other.access_token().await.unwrap().expose_secret(), "A");
    holder_store.hooks.armed.store(true, Ordering::SeqCst);
    let holding = {
        let holder = holder.clone();
        tokio::spawn(async move { holder.force_refresh().await })
    };
    assert_eq!(started.recv().await.as_deref(), Some("A"));
    let waiting = {
        let other = other.clone();
        tokio::spawn(async move { other.force_refresh().await })
    };
    let held = holding.await.unwrap().unwrap();
    let waited = waiting.await.unwrap().unwrap();
    assert_eq!(held.access_token.expose_secret(), "A'");
    assert_eq!(
        waited.access_token.expose_secret(),
        "A'",
        "the other manager used the holder's tokens"
    );
    assert!(
        counter.spent_twice().is_empty(),
        "spent twice: {:?}",
        counter.spent_twice()
    );
    holder.shutdown().await;
    other.shutdown().await;
}

/// Pauses Redis (`CLIENT PAUSE 600 ALL`) right before the next load, once
/// armed.
#[derive(Debug)]
struct PauseBeforeLoad {
    url: String,
    armed: AtomicBool,
}

impl Hooks for PauseBeforeLoad {
    fn before(&self, call: &'static str) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if call == "load" && self.armed.swap(false, Ordering::SeqCst) {
                let mut redis = redis_connection(&self.url).await;
                redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(600)
                    .arg("ALL")
                    .query_async::<()>(&mut redis)
                    .await
                    .unwrap();
            }
            Ok(())
        })
    }
}

/// Stops this process (SIGSTOP) right after its `at`-th load returns.
#[derive(Debug)]
struct StopAfterLoad {
    loads: AtomicU32,
    at: u32,
}

impl Hooks for StopAfterLoad {
    fn after_load(&self) {
        if self.loads.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            signal(std::process::id(), "-STOP");
        }
    }
}

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Sends `signal` (`-STOP`, `-CONT`) to process `pid` with kill(1).
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// The state letter of process `pid` in /proc (`T`: stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits (up to 10 s, looking every 10 ms) until `done`.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
        let mut builder = OnesIdClient::builder().identity(DeviceIdentity::load(&paths).unwrap());
        if plan.dpop {
            builder = match plan.other_dpop_key {
                true => builder.dpop_key(onesoidc_core::DpopKey::generate().unwrap()),
                false => builder.dpop(true),
            };
        }
        let client = builder.build().unwrap();
        let dpop_key = client.dpop_key().await.unwrap().cloned();
        let (name, refresh) = match plan.kind {
            Kind::Device => ("device", device_refresh(client.clone())),
            Kind::User => ("ciba_user", user_refresh(client.clone())),
        };
        let mut store = open_store(&plan.store);
        if let Some(at) = plan.stop_after_load {
            store = Arc::new(Hooked {
                inner: store,
                hooks: StopAfterLoad {
                    loads: AtomicU32::new(0),
                    at,
                },
            });
        }
        let mut builder = TokenManager::builder(name, refresh);
        if let Some(key) = dpop_key.clone() {
            builder = builder.dpop_key(key);
        }
        let manager = builder
            .store(store, TokenOwner::of_client(&client).await.unwrap())
            .refresh_skew(Duration::from_millis(SKEW_MS))
            .jitter(Duration::from_millis(JITTER_MS))
            .refresh_timeout(Duration::from_millis(plan.refresh_timeout_ms))
            .store_lease(Duration::from_millis(plan.lease_ms))
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
            match manager.access_token().await {
                Err(error) => report.failures.push(error.to_string()),
                Ok(token) if plan.dpop => {
                    if let Err(problem) = check_bound(&token, dpop_key.as_ref().unwrap()).await {
                        report.failures.push(problem);
                    }
                }
                Ok(_) => {}
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

/// `token` is bound to `key`, and its headers carry `key`'s proof for it.
async fn check_bound(
    token: &onesoidc_tokens::AccessToken,
    key: &onesoidc_core::DpopKey,
) -> Result<(), String> {
    let tokens = token.tokens();
    if tokens.token_type != "DPoP" || tokens.dpop_jkt.as_deref() != Some(key.thumbprint()) {
        return Err(format!("not bound to this process's key: {tokens:?}"));
    }
    let url = url::Url::parse("https://app.example/api").unwrap();
    let headers = token
        .authorize("GET", &url)
        .await
        .map_err(|e| e.to_string())?;
    let expect = onesoidc_core::DpopProofExpectations::new("GET", &url)
        .access_token(token.expose_secret(), key.thumbprint());
    onesoidc_core::verify_dpop_proof(
        headers.dpop().unwrap_or_default(),
        &expect,
        std::time::SystemTime::now(),
    )
    .map(drop)
    .map_err(|e| e.to_string())
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
