//! Item 5: `onesoidc device-token` end to end, against the equivalent
//! openid-client (Node) script, both as whole processes (start to exit).
//!
//! The dev IdP runs in this process (on its own thread, loopback); a device
//! identity (ES256, px-device-identity layout) is provisioned in a temporary
//! directory. Each round runs, alternately:
//!
//! 1. `onesoidc device-token --config DIR/device.yml --key-dir DIR
//!    --no-cache`, timed (without `--no-cache` every run after the first
//!    would print the cached token: item 8 measures that);
//! 2. `node device_token.mjs ISSUER CLIENT_ID DIR/private.pem ES256`, timed;
//! 3. and 4. the same two under `/usr/bin/time -f %M` for their peak RSS
//!    (separate runs, so the wrapper's own start does not count as wall time).
//!
//! Both do the same work: discovery, one client-credentials request with a
//! private_key_jwt assertion signed by the device key, print the token.
//! Targets: onesoidc's median wall ≤ 1/10 and median peak RSS ≤ 1/5 of Node's.
//!
//! ```text
//! bench-e2e --onesoidc target/release/onesoidc --node node \
//!     --script target/bench-node/device_token.mjs [--rounds 12]
//! ```
//! `--alt LABEL=PATH` measures another onesoidc build in the same rounds
//! (e.g. one built with `AWS_LC_SYS_NO_JITTER_ENTROPY=1`; see BENCHMARKS.md).
//! Without `--script` (no node/npm), only onesoidc is measured. With
//! `--serve-for SECONDS` it prints both commands and keeps the provider up
//! that long instead of measuring (to look at one run by hand).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use onesoidc_benches::{ProviderThread, Summary, arg, row, times};
use onesoidc_core::KeyType;
use onesoidc_devidp::DevIdpConfig;

const DEFAULT_ROUNDS: usize = 12;
const TIME: &str = "/usr/bin/time";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    onesoidc: PathBuf,
    node: String,
    script: Option<PathBuf>,
    rounds: usize,
    /// Serve this long for manual runs instead of measuring.
    serve_for: Option<u64>,
    /// Another onesoidc build to measure alongside (label, path).
    alt: Option<(String, PathBuf)>,
}

fn parse_args() -> Result<Args, BoxError> {
    Ok(Args {
        onesoidc: arg("--onesoidc")
            .ok_or("--onesoidc PATH (the release binary) is required")?
            .into(),
        node: arg("--node").unwrap_or_else(|| "node".into()),
        script: arg("--script").map(PathBuf::from),
        rounds: match arg("--rounds") {
            Some(n) => n.parse::<usize>()?.max(1),
            None => DEFAULT_ROUNDS,
        },
        serve_for: arg("--serve-for").map(|s| s.parse()).transpose()?,
        alt: match arg("--alt") {
            Some(alt) => {
                let (label, path) = alt.split_once('=').ok_or("--alt takes LABEL=PATH")?;
                Some((label.to_string(), path.into()))
            }
            None => None,
        },
    })
}

/// One client run: wall time, and peak RSS in KiB when run under `time`.
struct Sample {
    wall: Duration,
    peak_kib: Option<u64>,
}

/// Runs `program args` to completion; checks it printed a token.
fn run(program: &Path, args: &[&str], measure_rss: bool) -> Result<Sample, BoxError> {
    let rss_file = tempfile::NamedTempFile::new()?;
    let mut command = if measure_rss {
        let mut c = Command::new(TIME);
        c.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(rss_file.path())
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = command.output()?;
    let wall = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let token = String::from_utf8_lossy(&output.stdout);
    if token.trim().split('.').count() < 2 {
        return Err(format!("{} printed no token: {token:?}", program.display()).into());
    }
    let peak_kib = if measure_rss {
        let text = std::fs::read_to_string(rss_file.path())?;
        Some(
            text.lines()
                .rev()
                .find_map(|l| l.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("{TIME} wrote no peak RSS: {text:?}"))?,
        )
    } else {
        None
    };
    Ok(Sample { wall, peak_kib })
}

#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    peak_kib: Vec<f64>,
}

impl Samples {
    fn add(&mut self, s: Sample) {
        match s.peak_kib {
            Some(kib) => self.peak_kib.push(kib as f64),
            None => self.wall.push(s.wall),
        }
    }

    fn report(&self, name: &str) -> (Option<Summary>, Option<Summary>) {
        let wall = Summary::of_ms(&self.wall);
        let rss = Summary::of(&self.peak_kib).map(|s| Summary {
            n: s.n,
            min: s.min / 1024.0,
            median: s.median / 1024.0,
            p90: s.p90 / 1024.0,
            max: s.max / 1024.0,
        });
        if let Some(w) = wall {
            println!(
                "e2e: {name}: wall median {:.1} ms (min {:.1}, p90 {:.1}, max {:.1}; n = {})",
                w.median, w.min, w.p90, w.max, w.n
            );
        }
        if let Some(r) = rss {
            println!(
                "e2e: {name}: peak RSS median {:.1} MiB (min {:.1}, max {:.1}; n = {})",
                r.median, r.min, r.max, r.n
            );
        }
        (wall, rss)
    }
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let has_time = Path::new(TIME).exists();
    if !has_time {
        println!("e2e: {TIME} is missing (Debian package `time`): peak memory is not measured");
    }
    let provider = ProviderThread::start(DevIdpConfig::default())?;
    let dir = tempfile::tempdir()?;
    let paths = provider
        .idp()
        .provision_device(dir.path(), KeyType::EccP256)?;
    let config = onesoidc_flows::load_device_config(&paths.config)?;
    let client_id = config.client_id.clone().ok_or("no client id")?;
    let issuer = provider.idp().issuer();
    let key = paths.private_key();

    let config_arg = paths.config.to_string_lossy().into_owned();
    let key_dir_arg = paths.key_dir.to_string_lossy().into_owned();
    // The whole flow every time: discovery and a token request, as the
    // Node script does (the token cache is item 8's).
    let rust_args = [
        "device-token",
        "--config",
        config_arg.as_str(),
        "--key-dir",
        key_dir_arg.as_str(),
        "--no-cache",
    ];
    let script_arg = args
        .script
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned());
    let key_arg = key.to_string_lossy().into_owned();
    let node_args: Option<[&str; 5]> = script_arg.as_deref().map(|script| {
        [
            script,
            issuer.as_str(),
            client_id.as_str(),
            key_arg.as_str(),
            "ES256",
        ]
    });
    let node = PathBuf::from(&args.node);
    println!(
        "e2e: {} rounds against {issuer}; onesoidc = {}; node = {}; load average {}",
        args.rounds,
        args.onesoidc.display(),
        if node_args.is_some() {
            args.node.as_str()
        } else {
            "(skipped)"
        },
        onesoidc_benches::load_average().unwrap_or_default()
    );

    if let Some(seconds) = args.serve_for {
        // For a look by hand (strace, perf): print the commands, keep serving.
        println!("e2e: {} {}", args.onesoidc.display(), rust_args.join(" "));
        if let Some(node_args) = &node_args {
            println!("e2e: {} {}", args.node, node_args.join(" "));
        }
        std::thread::sleep(Duration::from_secs(seconds));
        return Ok(());
    }
    // Warm-up: page cache, the provider's code paths.
    run(&args.onesoidc, &rust_args, false)?;
    if let Some(node_args) = &node_args {
        run(&node, node_args, false)?;
    }
    if let Some((_, path)) = &args.alt {
        run(path, &rust_args, false)?;
    }
    let before = provider.idp().stats().token_requests.client_credentials;
    let mut rust = Samples::default();
    let mut js = Samples::default();
    let mut alt = Samples::default();
    for _ in 0..args.rounds {
        let modes: &[bool] = if has_time { &[false, true] } else { &[false] };
        for &measure_rss in modes {
            rust.add(run(&args.onesoidc, &rust_args, measure_rss)?);
            if let Some(node_args) = &node_args {
                js.add(run(&node, node_args, measure_rss)?);
            }
            if let Some((_, path)) = &args.alt {
                alt.add(run(path, &rust_args, measure_rss)?);
            }
        }
    }
    let requests = provider.idp().stats().token_requests.client_credentials - before;
    println!("e2e: the provider saw {requests} client-credentials requests");

    let (rust_wall, rust_rss) = rust.report("onesoidc device-token");
    let (js_wall, js_rss) = js.report("openid-client (node)");
    if let Some((label, path)) = &args.alt {
        let (alt_wall, alt_rss) = alt.report(&format!("onesoidc ({label})"));
        if let Some(w) = alt_wall {
            let vs_node = js_wall.map_or(String::new(), |j| {
                format!(
                    " vs node {:.1} ms = {}",
                    j.median,
                    times(w.median / j.median)
                )
            });
            row(
                "5",
                &format!("(info) device-token wall, {label} build"),
                &format!(
                    "{:.1} ms{vs_node}; peak RSS {} ({})",
                    w.median,
                    alt_rss.map_or("n/a".into(), |r| format!("{:.1} MiB", r.median)),
                    path.display()
                ),
                "≤ 1/10 of node",
                js_wall.map(|j| w.median / j.median <= 0.1),
            );
        }
    }
    let rust_wall = rust_wall.ok_or("no onesoidc samples")?;
    match (js_wall, node_args.is_some()) {
        (Some(js_wall), true) => {
            let ratio = rust_wall.median / js_wall.median;
            row(
                "5",
                "device-token end to end: wall",
                &format!(
                    "{:.1} ms vs node {:.1} ms = {} (medians of {})",
                    rust_wall.median,
                    js_wall.median,
                    times(ratio),
                    rust_wall.n
                ),
                "≤ 1/10 (0.10×)",
                Some(ratio <= 0.1),
            );
        }
        _ => row(
            "5",
            "device-token end to end: wall",
            &format!(
                "{:.1} ms (node/npm missing: no comparison)",
                rust_wall.median
            ),
            "≤ 1/10 of node",
            None,
        ),
    }
    match (rust_rss, js_rss) {
        (Some(r), Some(j)) => {
            let ratio = r.median / j.median;
            row(
                "5",
                "device-token end to end: peak RSS",
                &format!(
                    "{:.1} MiB vs node {:.1} MiB = {} (medians of {})",
                    r.median,
                    j.median,
                    times(ratio),
                    r.n
                ),
                "≤ 1/5 (0.20×)",
                Some(ratio <= 0.2),
            );
        }
        (Some(r), None) => row(
            "5",
            "device-token end to end: peak RSS",
            &format!("{:.1} MiB (no node comparison)", r.median),
            "≤ 1/5 of node",
            None,
        ),
        _ => row(
            "5",
            "device-token end to end: peak RSS",
            "not measured (/usr/bin/time missing)",
            "≤ 1/5 of node",
            None,
        ),
    }
    drop(provider);
    Ok(())
}
