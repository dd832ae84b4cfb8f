//! Item 8: a device token through the C API (`libonesoidc`) against the
//! same through Rust (`OnesIdClient::device_token`), same process kind,
//! alternating.
//!
//! The dev IdP runs in this process (its own thread, loopback); a device
//! (ES256) is provisioned in a temporary directory. Each round runs two
//! processes, in an order a coin picks:
//!
//! - the C driver (`benches/c/ffi_device_token.c`, linked with
//!   `libonesoidc.so`): makes a client, gets one token untimed, then
//!   `--calls` tokens one after the other, each timed;
//! - this binary with `--rust-driver`: the same loop in Rust, `.await`ing
//!   `device_token()` on a multi-thread tokio runtime.
//!
//! Each prints its per-call times and the CPU time all its threads spent
//! in the loop (`/proc/self/task/*/schedstat`); a round's figure is each
//! side's median, and the result is the median of the per-round ratios
//! C / Rust. Target: ≤ 1.05× for the latency. The CPU time per token is
//! reported beside it: it does not depend on how the shared machine
//! schedules the threads.
//!
//! ```text
//! bench-ffi --c-driver target/bench-ffi/ffi_device_token [--rounds 30] [--calls 20]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use onesoidc_benches::{Coin, ProviderThread, arg, median, row};
use onesoidc_core::KeyType;
use onesoidc_devidp::DevIdpConfig;
use onesoidc_flows::{IdentityPaths, OnesIdClient};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Many short rounds: the machine is shared, and a burst of someone else's
/// load then lands in a few rounds, which the median of the ratios ignores.
const DEFAULT_ROUNDS: usize = 30;
const DEFAULT_CALLS: usize = 20;

fn main() -> Result<(), BoxError> {
    if std::env::args().any(|a| a == "--rust-driver") {
        return rust_driver();
    }
    let c_driver = PathBuf::from(
        arg("--c-driver")
            .ok_or("--c-driver PATH (benches/c/ffi_device_token.c, built) is required")?,
    );
    let rounds = arg("--rounds").map_or(Ok(DEFAULT_ROUNDS), |n| n.parse())?;
    let calls = arg("--calls").map_or(Ok(DEFAULT_CALLS), |n| n.parse())?;

    let provider = ProviderThread::start(DevIdpConfig::default())?;
    let dir = tempfile::tempdir()?;
    let paths = provider
        .idp()
        .provision_device(dir.path(), KeyType::EccP256)?;
    let config = paths.config.to_string_lossy().into_owned();
    let key_dir = paths.key_dir.to_string_lossy().into_owned();
    let calls_arg = calls.to_string();
    let me = std::env::current_exe()?;

    let mut coin = Coin::seeded();
    let (mut c_medians, mut rust_medians, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut c_cpu, mut rust_cpu) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let c_args = [config.as_str(), key_dir.as_str(), calls_arg.as_str()];
        let rust_args = [
            "--rust-driver",
            "--config",
            config.as_str(),
            "--key-dir",
            key_dir.as_str(),
            "--calls",
            calls_arg.as_str(),
        ];
        let (c, rust) = if coin.flip() {
            let c = samples(&c_driver, &c_args)?;
            (c, samples(&me, &rust_args)?)
        } else {
            let rust = samples(&me, &rust_args)?;
            (samples(&c_driver, &c_args)?, rust)
        };
        if round == 1 {
            println!("ffi: the C driver runs on {}", c.library);
        }
        c_cpu.push(c.cpu_ns / calls as f64 / 1e3);
        rust_cpu.push(rust.cpu_ns / calls as f64 / 1e3);
        let (c, rust) = (median(&c.us), median(&rust.us));
        println!(
            "ffi: round {round}: C API {:.0} µs, Rust {:.0} µs per token ({:.3}×); CPU {:.0} / {:.0} µs per token",
            c,
            rust,
            c / rust,
            c_cpu[c_cpu.len() - 1],
            rust_cpu[rust_cpu.len() - 1]
        );
        c_medians.push(c);
        rust_medians.push(rust);
        ratios.push(c / rust);
    }
    let (c, rust, ratio) = (median(&c_medians), median(&rust_medians), median(&ratios));
    println!(
        "ffi: device token: C API median {c:.0} µs, Rust median {rust:.0} µs; median per-round ratio {ratio:.3}× ({rounds} rounds of {calls} calls)"
    );
    let (cpu_c, cpu_rust) = (median(&c_cpu), median(&rust_cpu));
    println!(
        "ffi: CPU time per token (all threads): C API median {cpu_c:.0} µs, Rust median {cpu_rust:.0} µs"
    );
    row(
        "12",
        "(info) CPU time per token, all threads: C API / Rust",
        &format!(
            "{cpu_c:.0} µs / {cpu_rust:.0} µs = {:.3}× (medians of {rounds} rounds)",
            cpu_c / cpu_rust
        ),
        "",
        None,
    );
    row(
        "12",
        "device token through the C API / through Rust (same process kind, alternating)",
        &format!(
            "{:.2} ms / {:.2} ms per token; median per-round ratio {ratio:.3}× ({rounds} rounds × {calls} calls)",
            c / 1e3,
            rust / 1e3
        ),
        "≤ 1.05×",
        Some(ratio <= 1.05),
    );
    Ok(())
}

/// What a driver measured.
struct Samples {
    /// Each call's time, µs.
    us: Vec<f64>,
    /// CPU time of all the driver's threads during the loop, ns.
    cpu_ns: f64,
    /// The C driver's libonesoidc (empty for the Rust driver).
    library: String,
}

/// Runs a driver; what it measured.
fn samples(program: &Path, args: &[&str]) -> Result<Samples, BoxError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", program.display(), output.status).into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let values: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("US"))
        .ok_or_else(|| format!("{} printed no US line: {text:?}", program.display()))?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if values.is_empty() {
        return Err(format!("{} timed no call", program.display()).into());
    }
    let cpu_ns = text
        .lines()
        .find_map(|l| l.strip_prefix("CPU_NS "))
        .ok_or_else(|| format!("{} printed no CPU_NS line", program.display()))?
        .trim()
        .parse()?;
    let library = text
        .lines()
        .find_map(|l| l.strip_prefix("LIB "))
        .unwrap_or_default()
        .to_string();
    Ok(Samples {
        us: values,
        cpu_ns,
        library,
    })
}

/// CPU time of all this process's threads so far, in ns
/// (`/proc/self/task/*/schedstat`, as the C driver reads it).
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The Rust twin of the C driver: one untimed token, then `--calls` timed.
fn rust_driver() -> Result<(), BoxError> {
    let config = arg("--config").ok_or("--config")?;
    let key_dir = arg("--key-dir").ok_or("--key-dir")?;
    let calls: usize = arg("--calls").ok_or("--calls")?.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let times = runtime.block_on(async {
        let client = OnesIdClient::builder()
            .identity_paths(IdentityPaths::new(config, key_dir))
            .build()?;
        client.device_token().await?;
        let cpu_before = cpu_ns();
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            let tokens = client.device_token().await?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
            drop(tokens);
        }
        Ok::<_, BoxError>((times, cpu_ns() - cpu_before))
    })?;
    let (times, cpu) = times;
    let line: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
    println!("US {}", line.join(" "));
    println!("CPU_NS {cpu}");
    Ok(())
}
