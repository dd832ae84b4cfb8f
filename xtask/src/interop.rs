//! `cargo xtask interop`: onesoidc against the stock `oidc-provider`.
//!
//! 1. Finds node and npm. Without them it prints a skip message and
//!    succeeds, except under CI (env `CI` set), where that is an error.
//! 2. Installs `interop/package.json` + `package-lock.json` (oidc-provider,
//!    pinned) with `npm ci` into `<target dir>/interop/`, unless the same
//!    lock is already installed there.
//! 3. Builds the `onesoidc` binary and the interop tests, then starts
//!    `interop/provider.mjs` twice on free loopback ports, once with the
//!    package's default DPoP configuration and once with `--dpop-nonce`
//!    (server nonces required), and waits for their `READY <issuer>` lines.
//! 4. Runs `cargo test -p onesoidc-interop -- --ignored` against them
//!    (with `--features tpm`, the tests of a device whose key lives in a
//!    swtpm, when the TPM packages are here: see `tpm.rs`), and
//!    always stops the providers afterwards (their logs stay in
//!    `<target dir>/interop/provider.log` and `provider-dpop-nonce.log`).
//!
//! `ONESOIDC_INTEROP_NODE` names another node binary (e.g. a Node 22 LTS,
//! the runtime oidc-provider 9 asks for).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the provider may take to print its READY line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Oldest node the suite runs on (oidc-provider 9 asks for 22 LTS and warns
/// on 20, which it still runs on; the machines here have 20).
const MIN_NODE_MAJOR: u32 = 20;

/// Concurrent tests: most of their time is spent waiting for CIBA polls.
const TEST_THREADS: &str = "--test-threads=8";

/// Runs the interop suite; `filters` go to the test binary (e.g. `ciba`,
/// `--nocapture`).
pub fn run(filters: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let root = crate::workspace_root();
    let Some(node) = find_node()? else {
        return Ok(());
    };
    let target = crate::target_dir(&root);
    let cache = target.join("interop");
    install(&root, &cache)?;

    // private_key_jwt with a TPM key: under CI the packages are installed,
    // elsewhere without them the TPM tests are left out, saying so.
    let features: &[&str] = if crate::tpm::ready()? {
        &["--features", crate::tpm::FEATURE]
    } else {
        eprintln!("interop: the TPM tests (onesoidc-interop/tests/interop/tpm.rs) are left out");
        &[]
    };

    // Build before the provider starts, so it only runs while tests do.
    crate::cargo(&["build", "--package", "onesoidc-cli", "--bin", "onesoidc"])?;
    let mut build = vec!["test", "--package", "onesoidc-interop", "--no-run"];
    build.extend(features);
    crate::cargo(&build)?;
    let cli = target
        .join("debug")
        .join(format!("onesoidc{}", std::env::consts::EXE_SUFFIX));

    let provider = Provider::start(&node, &cache, &root, DpopNonces::Default)?;
    eprintln!("interop: oidc-provider ready at {}", provider.issuer);
    let nonce_provider = Provider::start(&node, &cache, &root, DpopNonces::Required)?;
    eprintln!(
        "interop: oidc-provider requiring DPoP nonces ready at {}",
        nonce_provider.issuer
    );
    let result = run_tests(&root, [&provider, &nonce_provider], &cli, features, filters);
    if result.is_err() {
        provider.print_log_tail(60);
        nonce_provider.print_log_tail(30);
    }
    drop(provider);
    drop(nonce_provider);
    eprintln!(
        "interop: took {:.1}s in all",
        started.elapsed().as_secs_f64()
    );
    result
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The node binary, or `None` (after the skip message) when node or npm is
/// missing outside CI.
fn find_node() -> Result<Option<String>, String> {
    let node = std::env::var("ONESOIDC_INTEROP_NODE").unwrap_or_else(|_| "node".into());
    let version = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let problem = match (version(&node), version(npm())) {
        (Some(v), Some(_)) => match node_major(&v) {
            Some(major) if major >= MIN_NODE_MAJOR => {
                eprintln!("interop: using node {v}");
                return Ok(Some(node));
            }
            _ => format!("node {v} is too old (need {MIN_NODE_MAJOR} or later)"),
        },
        _ => "node/npm not found".to_string(),
    };
    if in_ci() {
        Err(format!(
            "interop: {problem}, and CI is set: the interop suite must run in CI (install nodejs and npm)"
        ))
    } else {
        eprintln!("interop: skipped ({problem})");
        Ok(None)
    }
}

pub(crate) fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

fn node_major(version: &str) -> Option<u32> {
    version
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Copies the provider's package into `cache` and runs `npm ci` there,
/// unless this exact package.json + lock is already installed.
fn install(root: &Path, cache: &Path) -> Result<(), String> {
    npm_install(
        "interop",
        &root.join("interop"),
        &["package.json", "package-lock.json", "provider.mjs"],
        "oidc-provider",
        cache,
    )
}

/// Copies `files` (package.json, package-lock.json and scripts) from `src`
/// into `cache` and runs `npm ci` there, unless `package` is installed from
/// this exact package.json + lock already (a stamp file remembers them).
/// `who` prefixes the progress lines.
pub(crate) fn npm_install(
    who: &str,
    src: &Path,
    files: &[&str],
    package: &str,
    cache: &Path,
) -> Result<(), String> {
    let read = |name: &str| {
        let from = src.join(name);
        fs::read(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))
    };
    let mut wanted = read("package.json")?;
    wanted.extend(read("package-lock.json")?);
    fs::create_dir_all(cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    for name in files {
        fs::copy(src.join(name), cache.join(name))
            .map_err(|e| format!("cannot copy {name} to {}: {e}", cache.display()))?;
    }
    let stamp = cache.join("node_modules").join(".onesoidc-installed");
    let installed = cache
        .join("node_modules")
        .join(package)
        .join("package.json")
        .exists();
    if installed && fs::read(&stamp).is_ok_and(|s| s == wanted) {
        eprintln!("{who}: {package} already installed in {}", cache.display());
        return Ok(());
    }
    eprintln!("{who}: npm ci in {}", cache.display());
    let started = Instant::now();
    let status = Command::new(npm())
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(cache)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`npm ci` in {} failed ({status}); the npm registry must be reachable on a first run",
            cache.display()
        ));
    }
    fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    eprintln!("{who}: npm ci took {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// How a provider instance treats DPoP nonces (RFC 9449 §8).
#[derive(Clone, Copy, PartialEq, Eq)]
enum DpopNonces {
    /// oidc-provider's default: no server nonces.
    Default,
    /// `--dpop-nonce`: every proof needs a nonce the server issued.
    Required,
}

/// The running provider; stopped when dropped, whatever happened.
struct Provider {
    child: Child,
    issuer: String,
    host: String,
    log: PathBuf,
}

impl Provider {
    fn start(node: &str, cache: &Path, root: &Path, nonces: DpopNonces) -> Result<Self, String> {
        let fixtures = root.join("onesoidc-core/tests/fixtures/px-device-identity");
        let (log, flags): (_, &[&str]) = match nonces {
            DpopNonces::Default => (cache.join("provider.log"), &[]),
            DpopNonces::Required => (cache.join("provider-dpop-nonce.log"), &["--dpop-nonce"]),
        };
        let log_file =
            fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = Command::new(node)
            .arg(cache.join("provider.mjs"))
            .arg("--fixtures")
            .arg(&fixtures)
            .args(["--port", "0"])
            .args(flags)
            .current_dir(cache)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start node: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut provider = Provider {
            child,
            issuer: String::new(),
            host: String::new(),
            log,
        };

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("READY ") {
                    let _ = tx.send(issuer.trim().to_string());
                } else {
                    eprintln!("provider: {line}");
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(issuer) => {
                let Some(host) = issuer.strip_suffix("/oidc") else {
                    return Err(format!("the provider's issuer {issuer} is not HOST/oidc"));
                };
                provider.host = host.to_string();
                provider.issuer = issuer;
                Ok(provider)
            }
            Err(e) => {
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not say READY within {READY_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => "exited before it was ready".into(),
                };
                provider.print_log_tail(40);
                Err(format!(
                    "interop: the provider {why}; its log: {}",
                    provider.log.display()
                ))
            }
        }
    }

    fn print_log_tail(&self, lines: usize) {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        eprintln!("interop: last lines of {}:", self.log.display());
        for line in &all[all.len().saturating_sub(lines)..] {
            eprintln!("  {line}");
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_tests(
    root: &Path,
    [provider, nonce_provider]: [&Provider; 2],
    cli: &Path,
    features: &[&str],
    filters: &[String],
) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "test".to_string(),
        "--package".into(),
        "onesoidc-interop".into(),
    ];
    args.extend(features.iter().map(|f| f.to_string()));
    args.extend(["--".into(), "--ignored".into(), TEST_THREADS.into()]);
    // `cargo xtask interop -- --nocapture ciba` and `... interop ciba` alike.
    let filters = filters.strip_prefix(&["--".to_string()]).unwrap_or(filters);
    args.extend(filters.iter().cloned());
    eprintln!("xtask: cargo {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(cargo)
        .args(&args)
        .current_dir(root)
        .env("ONESOIDC_INTEROP_HOST", &provider.host)
        .env(
            "ONESOIDC_INTEROP_CONTROL",
            format!("{}/control", provider.host),
        )
        .env("ONESOIDC_INTEROP_NONCE_HOST", &nonce_provider.host)
        .env(
            "ONESOIDC_INTEROP_NONCE_CONTROL",
            format!("{}/control", nonce_provider.host),
        )
        .env("ONESOIDC_INTEROP_CLI", cli)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!(
        "xtask: interop tests took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("interop tests failed ({status})"))
    }
}
