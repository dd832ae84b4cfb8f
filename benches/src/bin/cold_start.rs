//! Item 7: `onesoidc --version`, process start to exit.
//!
//! Five warm-up runs, then at least 50 timed ones (stdout to a pipe that is
//! read, as a shell's `$(...)` would). Target: median ≤ 5 ms. For scale,
//! `/bin/true` is run the same way, alternately: the cost of starting any
//! process on this machine, which onesoidc cannot go below.
//!
//! `bench-cold-start --onesoidc target/release/onesoidc [--runs 60]`

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use onesoidc_benches::{Summary, arg, row};

const WARM_UP: usize = 5;
const DEFAULT_RUNS: usize = 60;
const TARGET_MS: f64 = 5.0;
const FLOOR: &str = "/bin/true";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let binary = PathBuf::from(arg("--onesoidc").ok_or("--onesoidc PATH is required")?);
    let runs = match arg("--runs") {
        Some(n) => n.parse::<usize>()?.max(50),
        None => DEFAULT_RUNS,
    };
    let floor = || -> Option<f64> {
        let started = Instant::now();
        let status = Command::new(FLOOR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .ok()?
            .status;
        status
            .success()
            .then(|| started.elapsed().as_secs_f64() * 1e3)
    };
    let once = || -> Result<f64, BoxError> {
        let started = Instant::now();
        let output = Command::new(&binary)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if !output.status.success() || !output.stdout.starts_with(b"onesoidc") {
            return Err(format!(
                "`{} --version` failed ({}): {:?}",
                binary.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout)
            )
            .into());
        }
        Ok(ms)
    };
    for _ in 0..WARM_UP {
        once()?;
        floor();
    }
    let mut samples = Vec::with_capacity(runs);
    let mut floors = Vec::with_capacity(runs);
    for _ in 0..runs {
        samples.push(once()?);
        floors.extend(floor());
    }
    let s = Summary::of(&samples).ok_or("no runs")?;
    let f = Summary::of(&floors);
    if let Some(f) = f {
        println!(
            "cold-start: `{FLOOR}` (any process): median {:.2} ms, p90 {:.2} ms (min {:.2}; n = {})",
            f.median, f.p90, f.min, f.n
        );
    }
    println!(
        "cold-start: `onesoidc --version`: median {:.2} ms, p90 {:.2} ms (min {:.2}, max {:.2}; n = {}); load average {}",
        s.median,
        s.p90,
        s.min,
        s.max,
        s.n,
        onesoidc_benches::load_average().unwrap_or_default()
    );
    row(
        "7",
        "onesoidc --version cold start",
        &format!(
            "median {:.2} ms, p90 {:.2} ms (n = {}; {FLOOR}: median {})",
            s.median,
            s.p90,
            s.n,
            f.map_or("n/a".into(), |f| format!("{:.2} ms", f.median))
        ),
        &format!("median ≤ {TARGET_MS:.0} ms"),
        Some(s.median <= TARGET_MS),
    );
    Ok(())
}
