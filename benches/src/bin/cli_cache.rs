//! Items 8, 9 and 11: `onesoidc device-token` with its cache, as whole
//! processes against the dev IdP (on its own thread, loopback), a device
//! identity (ES256) provisioned in a temporary directory and a temporary
//! cache directory (`--cache-dir`).
//!
//! - Item 8, a token served from the cache: the cache is filled once, then
//!   each round runs, in random order, `device-token --cache-dir DIR`
//!   (cached), `device-token --no-cache` (discovery and a token request,
//!   the whole flow) and `onesoidc --version` (process start, for scale),
//!   each timed from spawn to exit. Targets: the cached run's median ≤ 3 ms
//!   and ≤ 1/4 of the `--no-cache` median of the same rounds. The
//!   provider's token-request counter checks that the cached runs asked
//!   for nothing.
//! - Item 9, 50 processes at once on an empty cache directory: 50 threads
//!   released together each spawn one `device-token --cache-dir DIR`; every
//!   process must print a token, and the provider must see exactly one
//!   token request. Several rounds, a fresh cache directory each; on
//!   loopback, then with the provider behind a proxy adding a 100 ms round
//!   trip (so that every process is still fetching its discovery document
//!   when the last one starts, and all 50 meet at the lease).
//! - Item 11, a cold `device-token` across a network: the provider behind
//!   a [`DelayProxy`](onesoidc_benches::DelayProxy) adding a 50 ms round
//!   trip to every exchange and one more to each new connection. Measured:
//!   no cached token but a cached discovery document (the token files are
//!   deleted before each run): target ≤ 2.5 round trips (the connection,
//!   the token request, and our own time); and, reported beside it, the
//!   same with a root store of one certificate (as in item 8), an empty
//!   cache directory (discovery fetched), `--no-cache`, and the
//!   openid-client script (when `--script` is given), through the same
//!   proxy.
//! - Item 15, DPoP: `device-token --no-cache --dpop` vs `--no-cache`
//!   (bearer), whole processes on loopback, interleaved in random order:
//!   target ≤ 1.1× the bearer run's wall time (median of per-round ratios).
//!   Then through item 11's 50 ms proxy: a cold run with cached discovery,
//!   `--dpop` beside bearer (round trips per run); and, with the dev IdP
//!   requiring DPoP nonces, one long-lived client (the flows in process)
//!   asking for ten tokens in a row: the first is answered
//!   `use_dpop_nonce` and retried once, each later one must take no
//!   extra round trip (no challenge; as many RTTs as a bearer client's).
//!
//! ```text
//! bench-cli-cache --onesoidc target/release/onesoidc [--items 8,9,11,15]
//!     [--runs 30] [--rounds 5] [--node node --script target/bench-node/device_token.mjs]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use onesoidc_benches::{Coin, ProviderThread, Summary, arg, row, times};
use onesoidc_core::KeyType;
use onesoidc_devidp::DevIdpConfig;
use onesoidc_flows::IdentityPaths;

const DEFAULT_RUNS: usize = 30;
const WARM_UP: usize = 3;
const TARGET_CACHED_MS: f64 = 3.0;
const TARGET_CACHED_RATIO: f64 = 0.25;
/// Item 9.
const PROCESSES: usize = 50;
const DEFAULT_ROUNDS: usize = 5;
/// Item 9's second series: a provider this far away.
const STAMPEDE_RTT: Duration = Duration::from_millis(100);
/// Item 11.
const RTT: Duration = Duration::from_millis(50);
const TARGET_RTTS: f64 = 2.5;
const COLD_RUNS: usize = 8;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    onesoidc: PathBuf,
    items: Vec<String>,
    runs: usize,
    rounds: usize,
    node: String,
    script: Option<PathBuf>,
}

fn parse_args() -> Result<Args, BoxError> {
    Ok(Args {
        onesoidc: arg("--onesoidc")
            .ok_or("--onesoidc PATH (the release binary) is required")?
            .into(),
        items: arg("--items")
            .unwrap_or_else(|| "8,9,11".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        runs: match arg("--runs") {
            Some(n) => n.parse::<usize>()?.max(5),
            None => DEFAULT_RUNS,
        },
        rounds: match arg("--rounds") {
            Some(n) => n.parse::<usize>()?.max(1),
            None => DEFAULT_ROUNDS,
        },
        node: arg("--node").unwrap_or_else(|| "node".into()),
        script: arg("--script").map(PathBuf::from),
    })
}

/// The provisioned device and the arguments that name it.
struct Device {
    _dir: tempfile::TempDir,
    paths: IdentityPaths,
    client_id: String,
}

impl Device {
    fn provision(provider: &ProviderThread) -> Result<Device, BoxError> {
        let dir = tempfile::tempdir()?;
        let paths = provider
            .idp()
            .provision_device(dir.path(), KeyType::EccP256)?;
        let config = onesoidc_flows::load_device_config(&paths.config)?;
        let client_id = config.client_id.clone().ok_or("no client id")?;
        Ok(Device {
            _dir: dir,
            paths,
            client_id: client_id.to_string(),
        })
    }

    /// `device-token --config … --key-dir …` then `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "device-token".to_string(),
            "--config".into(),
            self.paths.config.display().to_string(),
            "--key-dir".into(),
            self.paths.key_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

fn command(program: &Path, args: &[String]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        // The cache directory comes from the arguments only.
        .env_remove("ONESOIDC_CACHE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The token `output` printed, or why there is none.
fn token_of(program: &Path, output: &Output) -> Result<String, BoxError> {
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if token.split('.').count() < 2 {
        return Err(format!("{} printed no token: {token:?}", program.display()).into());
    }
    Ok(token)
}

/// Runs `program args` to completion, timed from spawn to exit; returns
/// the time and the token it printed.
fn run(program: &Path, args: &[String]) -> Result<(f64, String), BoxError> {
    timed(program, command(program, args))
}

fn timed(program: &Path, mut command: Command) -> Result<(f64, String), BoxError> {
    let started = Instant::now();
    let output = command.output()?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    Ok((ms, token_of(program, &output)?))
}

/// A root store of one certificate: the first of the system's bundle
/// (`$SSL_CERT_FILE`, else Debian's), written to a temporary file; `None`
/// when there is no bundle.
fn one_root_certificate() -> Option<tempfile::NamedTempFile> {
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let text = std::fs::read_to_string(bundle).ok()?;
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = begin + text[begin..].find(end_marker)? + end_marker.len();
    let file = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(file.path(), format!("{}\n", &text[begin..end])).ok()?;
    Some(file)
}

fn summary(name: &str, samples: &[f64]) -> Result<Summary, BoxError> {
    let s = Summary::of(samples).ok_or("no samples")?;
    println!(
        "cli-cache: {name}: median {:.2} ms (min {:.2}, p90 {:.2}, max {:.2}; n = {})",
        s.median, s.min, s.p90, s.max, s.n
    );
    Ok(s)
}

fn requests(provider: &ProviderThread) -> u64 {
    provider.idp().stats().token_requests.client_credentials
}

/// Deletes the cached tokens in `tokens_dir` (a cache directory's
/// `tokens/`), keeping the discovery document beside it.
fn forget_tokens(tokens_dir: &Path) -> Result<(), BoxError> {
    for entry in std::fs::read_dir(tokens_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Item 8: a token from the cache vs the whole flow, alternately.
fn cached(args: &Args) -> Result<(), BoxError> {
    let provider = ProviderThread::start(DevIdpConfig::default())?;
    let device = Device::provision(&provider)?;
    let cache = tempfile::tempdir()?;
    let cache_dir = cache.path().display().to_string();
    let cached = device.args(&["--cache-dir", &cache_dir]);
    let uncached = device.args(&["--no-cache"]);
    let version = vec!["--version".to_string()];
    let cli = &args.onesoidc;

    // Fills the cache (token and discovery), then warms the page cache.
    let (_, first) = run(cli, &cached)?;
    for _ in 0..WARM_UP {
        let (_, token) = run(cli, &cached)?;
        if token != first {
            return Err("a cached run printed another token than the first".into());
        }
        run(cli, &uncached)?;
    }
    // A diagnosis, reported beside: the cached run with a root store of
    // one certificate (each HTTP client the CLI builds loads the system's
    // root certificates: `$SSL_CERT_FILE` and `$SSL_CERT_DIR` when set, as
    // here, else the platform's bundle).
    let one_root = one_root_certificate();
    let cached_one_root = || {
        one_root.as_ref().map(|file| {
            let mut command = command(cli, &cached);
            command
                .env_remove("SSL_CERT_DIR")
                .env("SSL_CERT_FILE", file.path());
            command
        })
    };
    if let Some(command) = cached_one_root() {
        timed(cli, command)?;
    }
    let mut coin = Coin::seeded();
    let (mut hits, mut full, mut starts, mut one_root_hits) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let before = requests(&provider);
    let mut served_other = 0;
    for _ in 0..args.runs {
        // A random order each round (a few swaps of a fixed one).
        let mut order = [0u8, 1, 2, 3];
        for i in 0..3 {
            if coin.flip() {
                order.swap(i, i + 1);
            }
            if coin.flip() {
                order.swap(0, 3 - i);
            }
        }
        for which in order {
            match which {
                0 => {
                    let (ms, token) = run(cli, &cached)?;
                    served_other += usize::from(token != first);
                    hits.push(ms);
                }
                1 => full.push(run(cli, &uncached)?.0),
                3 => {
                    if let Some(command) = cached_one_root() {
                        let (ms, token) = timed(cli, command)?;
                        served_other += usize::from(token != first);
                        one_root_hits.push(ms);
                    }
                }
                _ => {
                    let started = Instant::now();
                    let output = command(cli, &version).output()?;
                    starts.push(started.elapsed().as_secs_f64() * 1e3);
                    if !output.status.success() {
                        return Err("onesoidc --version failed".into());
                    }
                }
            }
        }
    }
    let asked = requests(&provider) - before;
    let hit = summary("device-token from the cache", &hits)?;
    let whole = summary("device-token --no-cache", &full)?;
    let start = summary("onesoidc --version", &starts)?;
    let one_root_hit = if one_root_hits.is_empty() {
        None
    } else {
        Some(summary(
            "device-token from the cache, one root certificate",
            &one_root_hits,
        )?)
    };
    println!(
        "cli-cache: {asked} token requests during {} cached and {} --no-cache runs; load average {}",
        hits.len(),
        full.len(),
        onesoidc_benches::load_average().unwrap_or_default()
    );
    let ssl_env: Vec<&str> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    // Each --no-cache run asks once; the cached ones must not ask at all.
    let from_cache = asked == full.len() as u64 && served_other == 0;
    row(
        "8",
        "device-token served from the cache, process start to exit",
        &format!(
            "median {:.2} ms, p90 {:.2} ms (n = {}; token requests by the cached runs: {}{})",
            hit.median,
            hit.p90,
            hit.n,
            asked.saturating_sub(full.len() as u64),
            if served_other == 0 {
                ""
            } else {
                "; some printed another token"
            }
        ),
        &format!("median ≤ {TARGET_CACHED_MS} ms"),
        Some(hit.median <= TARGET_CACHED_MS && from_cache),
    );
    let ratio = hit.median / whole.median;
    row(
        "8",
        "cached / --no-cache, alternately in the same run",
        &format!(
            "{:.2} ms / {:.2} ms = {} (medians of {})",
            hit.median,
            whole.median,
            times(ratio),
            hit.n
        ),
        "≤ 1/4 (0.25×)",
        Some(ratio <= TARGET_CACHED_RATIO),
    );
    row(
        "8",
        "(info) cached, with a root store of one certificate (SSL_CERT_FILE = one certificate, SSL_CERT_DIR unset)",
        &match one_root_hit {
            Some(s) => format!(
                "median {:.2} ms (n = {}): the system's root certificates, loaded by each of the HTTP clients the cached path builds, cost the difference (environment here: {})",
                s.median,
                s.n,
                if ssl_env.is_empty() {
                    "no SSL_CERT_* set".to_string()
                } else {
                    format!("{} set", ssl_env.join(" and "))
                }
            ),
            None => "not measured: no certificate bundle".into(),
        },
        "",
        None,
    );
    row(
        "8",
        "(info) onesoidc --version in the same rounds",
        &format!(
            "median {:.2} ms: process start and exit, the floor of any run",
            start.median
        ),
        "",
        None,
    );
    Ok(())
}

/// Item 9: 50 processes at once on an empty cache directory, on loopback
/// and with the provider 100 ms away (then every process is still waiting
/// for its discovery document when the last one starts: all 50 meet at
/// the lease).
fn stampede(args: &Args) -> Result<(), BoxError> {
    let provider = ProviderThread::start(DevIdpConfig::default())?;
    stampede_on(args, &provider, "loopback")?;
    drop(provider);
    let (provider, _proxy) =
        ProviderThread::start_behind_delay(DevIdpConfig::default(), STAMPEDE_RTT)?;
    stampede_on(
        args,
        &provider,
        &format!("{} ms RTT proxy", STAMPEDE_RTT.as_millis()),
    )
}

/// One process of a stampede: when it started and ended, what it printed.
struct Exited {
    spawned: Instant,
    exited: Instant,
    output: Output,
}

fn stampede_on(args: &Args, provider: &ProviderThread, label: &str) -> Result<(), BoxError> {
    let device = Device::provision(provider)?;
    // Warm the page cache and the provider's code paths (no cache).
    run(&args.onesoidc, &device.args(&["--no-cache"]))?;
    let mut per_round = Vec::new();
    let mut all_ok = true;
    let (mut walls, mut overlaps) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let cache = tempfile::tempdir()?;
        let cache_dir = cache.path().display().to_string();
        let cli_args = device.args(&["--cache-dir", &cache_dir]);
        let before = requests(provider);
        // One thread per process, released together: each spawns its
        // process and waits for it.
        let barrier = Arc::new(Barrier::new(PROCESSES));
        let threads: Vec<_> = (0..PROCESSES)
            .map(|_| {
                let (barrier, program, cli_args) =
                    (barrier.clone(), args.onesoidc.clone(), cli_args.clone());
                std::thread::spawn(move || -> std::io::Result<Exited> {
                    barrier.wait();
                    let spawned = Instant::now();
                    let output = command(&program, &cli_args).spawn()?.wait_with_output()?;
                    Ok(Exited {
                        spawned,
                        exited: Instant::now(),
                        output,
                    })
                })
            })
            .collect();
        let mut exits = Vec::new();
        for thread in threads {
            exits.push(thread.join().map_err(|_| "a spawning thread panicked")??);
        }
        let first_spawn = exits.iter().map(|e| e.spawned).min().ok_or("none")?;
        let last_spawn = exits.iter().map(|e| e.spawned).max().ok_or("none")?;
        let first_exit = exits.iter().map(|e| e.exited).min().ok_or("none")?;
        let last_exit = exits.iter().map(|e| e.exited).max().ok_or("none")?;
        // Processes started before any had finished: they all met an
        // empty cache.
        let overlapping = exits.iter().filter(|e| e.spawned < first_exit).count();
        let mut tokens = Vec::new();
        let mut failures = Vec::new();
        for exit in &exits {
            match token_of(&args.onesoidc, &exit.output) {
                Ok(token) => tokens.push(token),
                Err(e) => failures.push(e.to_string()),
            }
        }
        let asked = requests(provider) - before;
        tokens.sort();
        tokens.dedup();
        let ms = |t: Instant| (t - first_spawn).as_secs_f64() * 1e3;
        println!(
            "cli-cache: {label}: round {round}: {PROCESSES} processes spawned within {:.1} ms; first exit at {:.1} ms ({overlapping} started before it), last at {:.1} ms: {} token request(s); {} printed a token ({} distinct); {} failed{}",
            ms(last_spawn),
            ms(first_exit),
            ms(last_exit),
            asked,
            PROCESSES - failures.len(),
            tokens.len(),
            failures.len(),
            failures
                .first()
                .map_or(String::new(), |f| format!(" (first: {f})"))
        );
        all_ok &= failures.is_empty() && tokens.len() == 1;
        per_round.push(asked);
        walls.push(ms(last_exit));
        overlaps.push(overlapping);
    }
    let (least, most) = (
        per_round.iter().copied().min().unwrap_or(0),
        per_round.iter().copied().max().unwrap_or(0),
    );
    let counts = if least == most {
        least.to_string()
    } else {
        format!("{least}–{most}")
    };
    let wall = Summary::of(&walls).ok_or("no rounds")?;
    let fewest = overlaps.iter().copied().min().unwrap_or(0);
    row(
        "9",
        &format!("50 concurrent device-token processes, empty cache ({label}): token requests"),
        &format!(
            "{counts} per round ({} rounds; every process printed the one token: {}; at least {fewest} of 50 started before the first exited; all done in {:.0} ms, median)",
            args.rounds,
            if all_ok { "yes" } else { "NO" },
            wall.median
        ),
        "exactly 1",
        Some(least == 1 && most == 1 && all_ok),
    );
    Ok(())
}

/// Item 11: a cold run across a 50 ms round trip.
fn cold(args: &Args) -> Result<(), BoxError> {
    let (provider, proxy) = ProviderThread::start_behind_delay(DevIdpConfig::default(), RTT)?;
    let device = Device::provision(&provider)?;
    let cli = &args.onesoidc;
    let cache = tempfile::tempdir()?;
    let cache_dir = cache.path().display().to_string();
    let tokens_dir = cache.path().join("tokens");
    let cached_discovery = device.args(&["--cache-dir", &cache_dir]);
    let no_cache = device.args(&["--no-cache"]);
    let issuer = provider.idp().issuer();
    let key = device.paths.private_key().display().to_string();
    let node_args: Option<Vec<String>> = args.script.as_ref().map(|script| {
        vec![
            script.display().to_string(),
            issuer.clone(),
            device.client_id.clone(),
            key,
            "ES256".into(),
        ]
    });
    let node = PathBuf::from(&args.node);

    // The first run fills the cache (discovery and token).
    run(cli, &cached_discovery)?;
    let discovery_cached = std::fs::read_dir(cache.path())?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("discovery-"));
    if !discovery_cached {
        return Err("the first run cached no discovery document".into());
    }
    // Warm-up of the other variants.
    run(cli, &no_cache)?;
    if let Some(node_args) = &node_args {
        run(&node, node_args)?;
    }

    #[derive(Default)]
    struct Variant {
        ms: Vec<f64>,
        connections: Vec<u64>,
    }
    let measure_command = |variant: &mut Variant, program: &Path, command: Command| {
        let before = proxy.connections();
        let (ms, _) = timed(program, command)?;
        variant.ms.push(ms);
        variant.connections.push(proxy.connections() - before);
        Ok::<(), BoxError>(())
    };
    let measure = |variant: &mut Variant, program: &Path, args: &[String]| {
        measure_command(variant, program, command(program, args))
    };
    // The diagnosis of item 8 here too: the cold run with a root store of
    // one certificate.
    let one_root = one_root_certificate();
    let (mut warm, mut empty, mut bare, mut js, mut warm_one_root) = Default::default();
    let before = requests(&provider);
    for _ in 0..COLD_RUNS {
        forget_tokens(&tokens_dir)?;
        measure(&mut warm, cli, &cached_discovery)?;
        if let Some(file) = &one_root {
            forget_tokens(&tokens_dir)?;
            let mut command = command(cli, &cached_discovery);
            command
                .env_remove("SSL_CERT_DIR")
                .env("SSL_CERT_FILE", file.path());
            measure_command(&mut warm_one_root, cli, command)?;
        }
        let fresh = tempfile::tempdir()?;
        let fresh_dir = fresh.path().display().to_string();
        measure(&mut empty, cli, &device.args(&["--cache-dir", &fresh_dir]))?;
        measure(&mut bare, cli, &no_cache)?;
        if let Some(node_args) = &node_args {
            measure(&mut js, &node, node_args)?;
        }
    }
    let asked = requests(&provider) - before;
    let rtt_ms = RTT.as_secs_f64() * 1e3;
    println!(
        "cli-cache: {asked} token requests through the {rtt_ms:.0} ms proxy; load average {}",
        onesoidc_benches::load_average().unwrap_or_default()
    );
    let describe = |name: &str, v: &Variant| -> Result<(Summary, String), BoxError> {
        let s = summary(name, &v.ms)?;
        let mut connections = v.connections.clone();
        connections.sort_unstable();
        connections.dedup();
        let connections = connections
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("/");
        Ok((
            s,
            format!(
                "median {:.1} ms = {:.2} RTT (min {:.1} ms; n = {}; {connections} connection(s) per run)",
                s.median,
                s.median / rtt_ms,
                s.min,
                s.n
            ),
        ))
    };
    let (cold, text) = describe("cold device-token, cached discovery", &warm)?;
    row(
        "11",
        "cold device-token (no token, cached discovery), 50 ms RTT proxy",
        &text,
        "≤ 2.5 RTT (125 ms)",
        Some(cold.median / rtt_ms <= TARGET_RTTS),
    );
    if one_root.is_some() {
        let (_, text) = describe(
            "cold device-token, cached discovery, one root certificate",
            &warm_one_root,
        )?;
        row(
            "11",
            "(info) same, with a root store of one certificate (as in item 8)",
            &text,
            "",
            None,
        );
    }
    let (_, text) = describe("cold device-token, empty cache directory", &empty)?;
    row(
        "11",
        "(info) same, empty cache directory (discovery fetched)",
        &text,
        "",
        None,
    );
    let (_, text) = describe("device-token --no-cache", &bare)?;
    row(
        "11",
        "(info) same, device-token --no-cache",
        &text,
        "",
        None,
    );
    if node_args.is_some() {
        let (_, text) = describe("openid-client (node)", &js)?;
        row(
            "11",
            "(info) openid-client (node), same proxy",
            &text,
            "",
            None,
        );
    } else {
        row(
            "11",
            "(info) openid-client (node), same proxy",
            "not measured: node/npm missing",
            "",
            None,
        );
    }
    Ok(())
}

/// Item 15: `device-token --dpop` vs bearer, on loopback and across 50 ms.
fn dpop(args: &Args) -> Result<(), BoxError> {
    let cli = &args.onesoidc;
    // Loopback, whole processes, the whole flow each time.
    let provider = ProviderThread::start(DevIdpConfig::default())?;
    let device = Device::provision(&provider)?;
    let bearer = device.args(&["--no-cache"]);
    let bound = device.args(&["--no-cache", "--dpop"]);
    let issued = || provider.idp().stats().dpop_bound_tokens_issued;
    let before = issued();
    for _ in 0..WARM_UP {
        run(cli, &bearer)?;
        run(cli, &bound)?;
    }
    if issued() - before != WARM_UP as u64 {
        return Err("device-token --dpop did not get bound tokens".into());
    }
    let mut coin = Coin::seeded();
    let (mut plain, mut dpop, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let (p, d) = if coin.flip() {
            let p = run(cli, &bearer)?.0;
            (p, run(cli, &bound)?.0)
        } else {
            let d = run(cli, &bound)?.0;
            (run(cli, &bearer)?.0, d)
        };
        plain.push(p);
        dpop.push(d);
        ratio.push(d / p);
    }
    let p = summary("device-token --no-cache (bearer)", &plain)?;
    let d = summary("device-token --no-cache --dpop", &dpop)?;
    let r = onesoidc_benches::median(&ratio);
    row(
        "15",
        "device-token --no-cache --dpop vs bearer, loopback, whole processes",
        &format!(
            "median {:.1} ms vs {:.1} ms; median per-round ratio {} (n = {})",
            d.median,
            p.median,
            times(r),
            d.n
        ),
        "≤ 1.1×",
        Some(r <= 1.1),
    );
    drop(provider);
    dpop_behind_proxy(args)?;
    dpop_nonce_round_trips()
}

/// Item 15 across item 11's proxy: cold runs (cached discovery, no token),
/// `--dpop` beside bearer.
fn dpop_behind_proxy(args: &Args) -> Result<(), BoxError> {
    let cli = &args.onesoidc;
    let (provider, proxy) = ProviderThread::start_behind_delay(DevIdpConfig::default(), RTT)?;
    let device = Device::provision(&provider)?;
    let cache = tempfile::tempdir()?;
    let cache_dir = cache.path().display().to_string();
    let tokens_dir = cache.path().join("tokens");
    let bearer = device.args(&["--cache-dir", &cache_dir]);
    let bound = device.args(&["--cache-dir", &cache_dir, "--dpop"]);
    // Fills the discovery cache (and warms up both).
    run(cli, &bearer)?;
    run(cli, &bound)?;
    let (mut plain, mut dpop) = (Vec::new(), Vec::new());
    let (mut plain_connections, mut dpop_connections) = (Vec::new(), Vec::new());
    let before = requests(&provider);
    for _ in 0..COLD_RUNS {
        forget_tokens(&tokens_dir)?;
        let opened = proxy.connections();
        plain.push(run(cli, &bearer)?.0);
        plain_connections.push(proxy.connections() - opened);
        forget_tokens(&tokens_dir)?;
        let opened = proxy.connections();
        dpop.push(run(cli, &bound)?.0);
        dpop_connections.push(proxy.connections() - opened);
    }
    let asked = requests(&provider) - before;
    let rtt_ms = RTT.as_secs_f64() * 1e3;
    let p = summary("cold device-token (bearer), 50 ms proxy", &plain)?;
    let d = summary("cold device-token --dpop, 50 ms proxy", &dpop)?;
    let most = |v: &[u64]| v.iter().copied().max().unwrap_or_default();
    row(
        "15",
        "cold device-token --dpop vs bearer (cached discovery), 50 ms RTT proxy",
        &format!(
            "median {:.1} ms = {:.2} RTT vs {:.1} ms = {:.2} RTT; {asked} token requests for {} runs; at most {} / {} connection(s) per run",
            d.median,
            d.median / rtt_ms,
            p.median,
            p.median / rtt_ms,
            2 * COLD_RUNS,
            most(&dpop_connections),
            most(&plain_connections),
        ),
        "no extra RTT",
        Some(d.median - p.median < 0.5 * rtt_ms && asked == 2 * COLD_RUNS as u64),
    );
    Ok(())
}

/// Item 15 with nonces required: one client, ten tokens in a row through
/// the 50 ms proxy; the nonce challenges and each call's round trips.
fn dpop_nonce_round_trips() -> Result<(), BoxError> {
    const CALLS: usize = 10;
    let config = DevIdpConfig {
        dpop_nonce: true,
        ..DevIdpConfig::default()
    };
    let (provider, _proxy) = ProviderThread::start_behind_delay(config, RTT)?;
    let device = Device::provision(&provider)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rtt_ms = RTT.as_secs_f64() * 1e3;
    let calls = |dpop: bool| -> Result<(Vec<f64>, Vec<u64>), BoxError> {
        let client = onesoidc_flows::OnesIdClient::builder()
            .identity_paths(device.paths.clone())
            .dpop(dpop)
            .build()?;
        let (mut ms, mut challenges) = (Vec::new(), Vec::new());
        for _ in 0..CALLS {
            let before = provider.idp().stats().dpop_nonce_challenges;
            let started = Instant::now();
            let tokens = runtime.block_on(client.device_token())?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            challenges.push(provider.idp().stats().dpop_nonce_challenges - before);
            if tokens.is_dpop_bound() != dpop {
                return Err(format!("token_type {} with dpop = {dpop}", tokens.token_type).into());
            }
        }
        Ok((ms, challenges))
    };
    let (plain, _) = calls(false)?;
    let (bound, challenges) = calls(true)?;
    let later = |ms: &[f64]| Summary::of(&ms[1..]).map(|s| s.median).unwrap_or(f64::NAN);
    let (p, d) = (later(&plain), later(&bound));
    let later_challenges: u64 = challenges[1..].iter().sum();
    println!(
        "cli-cache: nonce required, one client: first call {:.1} ms ({} challenge(s)) vs bearer {:.1} ms; later calls median {:.1} ms vs {:.1} ms",
        bound[0], challenges[0], plain[0], d, p
    );
    row(
        "15",
        "DPoP with nonces required, one client, 10 tokens in a row, 50 ms RTT proxy",
        &format!(
            "first call {:.2} RTT ({} nonce challenge, retried once; bearer {:.2} RTT); calls 2–{CALLS}: median {:.2} RTT vs bearer {:.2} RTT, {later_challenges} challenges",
            bound[0] / rtt_ms,
            challenges[0],
            plain[0] / rtt_ms,
            d / rtt_ms,
            p / rtt_ms
        ),
        "no extra RTT after the first nonce",
        Some(later_challenges == 0 && d - p < 0.5 * rtt_ms),
    );
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    println!(
        "cli-cache: items {}; onesoidc = {}; load average {}",
        args.items.join(","),
        args.onesoidc.display(),
        onesoidc_benches::load_average().unwrap_or_default()
    );
    for item in &args.items {
        match item.as_str() {
            "8" => cached(&args)?,
            "9" => stampede(&args)?,
            "11" => cold(&args)?,
            "15" => dpop(&args)?,
            other => return Err(format!("unknown item {other:?} (8, 9, 11 or 15)").into()),
        }
    }
    Ok(())
}
