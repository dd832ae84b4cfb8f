//! `cargo xtask fuzz --seconds N [--sanitizer S] [TARGET...]`: runs the
//! cargo-fuzz targets in `fuzz/` one after the other, each for N seconds in
//! a single libFuzzer process, prints each one's execution count, and fails
//! if any target crashes.
//!
//! cargo-fuzz needs nightly flags; on a stable toolchain this sets
//! `RUSTC_BOOTSTRAP=1` for it. New inputs go to a scratch corpus under the
//! target dir; the committed seeds in `fuzz/corpus/<target>` are only read.
//! Crash inputs land in `fuzz/artifacts/<target>/` (git-ignored).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Every fuzz target, in the order they run.
pub const TARGETS: [&str; 9] = [
    "access_token",
    "dpop_proof",
    "device_yml",
    "pem_key",
    "token_response",
    "response_errors",
    "jwt_validate",
    "ones_json",
    "ciba_poller",
];

const INSTALL: &str = "cargo-fuzz is not installed; install it with

    cargo install cargo-fuzz --locked

(it runs on stable: this task sets RUSTC_BOOTSTRAP=1 for it)";

struct Outcome {
    target: String,
    seconds: f64,
    executions: Option<u64>,
    exec_per_sec: Option<u64>,
    crashed: bool,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds: Option<u64> = None;
    let mut sanitizer: Option<String> = None;
    let mut targets: Vec<String> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = iter.next().ok_or("--seconds needs a value")?;
                seconds = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--seconds {value:?} is not a number"))?,
                );
            }
            "--sanitizer" | "-s" => {
                sanitizer = Some(iter.next().ok_or("--sanitizer needs a value")?.clone());
            }
            name if TARGETS.contains(&name) => targets.push(name.to_string()),
            other => {
                return Err(format!(
                    "unknown fuzz argument {other:?}; usage: cargo xtask fuzz --seconds N \
                     [--sanitizer address|none] [TARGET...]; targets: {}",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    let seconds = seconds.ok_or("usage: cargo xtask fuzz --seconds N [TARGET...]")?;
    if seconds == 0 {
        return Err("--seconds must be at least 1".into());
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let installed = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return Err(INSTALL.into());
    }

    let root = crate::workspace_root();
    let fuzz_dir = root.join("fuzz");
    let scratch = scratch_dir(&fuzz_dir);
    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_target(
            &root,
            &fuzz_dir,
            &scratch,
            target,
            seconds,
            sanitizer.as_deref(),
        )?);
    }

    eprintln!("\nxtask: fuzz summary ({seconds} s per target)");
    for o in &outcomes {
        let execs = o.executions.map_or("?".to_string(), |n| n.to_string());
        let rate = o
            .exec_per_sec
            .or_else(|| o.executions.map(|n| (n as f64 / o.seconds) as u64))
            .map_or("?".to_string(), |n| n.to_string());
        eprintln!(
            "  {:<16} {:>12} executions  {:>8} exec/s  {:>6.0} s  {}",
            o.target,
            execs,
            rate,
            o.seconds,
            if o.crashed { "CRASHED" } else { "ok" }
        );
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz target(s) crashed: {}; inputs are in fuzz/artifacts/",
            crashed.join(", ")
        ))
    }
}

/// Where libFuzzer writes the inputs it finds: under the target dir, so the
/// committed seed corpus stays small.
fn scratch_dir(fuzz_dir: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fuzz_dir.join("target"))
        .join("fuzz-corpus")
}

fn run_target(
    root: &Path,
    fuzz_dir: &Path,
    scratch: &Path,
    target: &str,
    seconds: u64,
    sanitizer: Option<&str>,
) -> Result<Outcome, String> {
    let work = scratch.join(target);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let seeds = fuzz_dir.join("corpus").join(target);
    let mut args: Vec<String> = vec!["fuzz".into(), "run".into()];
    if let Some(s) = sanitizer {
        args.extend(["--sanitizer".into(), s.into()]);
    }
    args.extend([
        target.to_string(),
        work.display().to_string(),
        seeds.display().to_string(),
        "--".into(),
        // One in-process fuzzer (no -jobs/-workers: those fork extra processes).
        format!("-max_total_time={seconds}"),
        "-timeout=10".into(),
        "-rss_limit_mb=2048".into(),
        "-print_final_stats=1".into(),
    ]);
    eprintln!("xtask: cargo {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(cargo())
        .args(&args)
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let mut executions = None;
    let mut exec_per_sec = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(n) = parse_executions(&line) {
                executions = Some(n);
            }
            if let Some(n) = line.strip_prefix("stat::average_exec_per_sec:") {
                exec_per_sec = n.trim().parse().ok();
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let executions_text = executions.map_or("unknown".into(), |n| n.to_string());
    eprintln!("xtask: {target}: {executions_text} executions in {elapsed:.0} s ({status})");
    Ok(Outcome {
        target: target.to_string(),
        seconds: elapsed.min(seconds as f64).max(1.0),
        executions,
        exec_per_sec,
        crashed: !status.success(),
    })
}

/// The execution count in libFuzzer's `stat::number_of_executed_units: N`
/// or a status line such as `#12345 DONE cov: ...`.
fn parse_executions(line: &str) -> Option<u64> {
    if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
        return n.trim().parse().ok();
    }
    let rest = line.strip_prefix('#')?;
    let (count, tail) = rest.split_once(char::is_whitespace)?;
    let kind = tail.split_whitespace().next()?;
    if matches!(kind, "DONE" | "pulse" | "NEW" | "REDUCE" | "INITED") {
        count.parse().ok()
    } else {
        None
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::parse_executions;

    #[test]
    fn reads_libfuzzer_counts() {
        assert_eq!(
            parse_executions("#1234567\tDONE   cov: 812 ft: 2301 corp: 240/12Kb exec/s: 4115"),
            Some(1_234_567)
        );
        assert_eq!(
            parse_executions("stat::number_of_executed_units: 987"),
            Some(987)
        );
        assert_eq!(parse_executions("#2\tINITED cov: 3"), Some(2));
        assert_eq!(parse_executions("INFO: Seed: 42"), None);
    }
}
