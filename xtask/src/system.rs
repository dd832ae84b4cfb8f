//! System programs a test needs (a browser, redis-server): found in the
//! environment or on `PATH`, installed with apt-get under CI (as root), or
//! skipped with a notice outside CI.

use std::path::Path;
use std::process::{Command, Stdio};

/// `program`'s path when an executable of that name is on `PATH`.
pub fn on_path(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .map(|found| found.display().to_string())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether `program ARGS` runs and exits 0 (its output discarded).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether nothing is `missing` (installing `packages` under CI), naming
/// what lacks under `label`; `false` after the skip notice of `what`
/// outside CI ([`find_or_install`]).
pub fn tools_ready(
    label: &str,
    what: &str,
    packages: &[&str],
    missing: impl Fn() -> Vec<&'static str>,
) -> Result<bool, String> {
    let lacking = missing();
    if !lacking.is_empty() {
        eprintln!("xtask: {label}: missing {}", lacking.join(", "));
    }
    let found = find_or_install(what, packages, || missing().is_empty().then_some(()))?;
    Ok(found.is_some())
}

/// What to do when `find` finds nothing: outside CI, say which test skips
/// (`Ok(None)`); under CI as root, `apt-get install -y PACKAGES` and look
/// again; under CI otherwise, an error naming the packages.
pub fn find_or_install<T>(
    what: &str,
    packages: &[&str],
    find: impl Fn() -> Option<T>,
) -> Result<Option<T>, String> {
    if let Some(found) = find() {
        return Ok(Some(found));
    }
    let list = packages.join(" ");
    if !crate::interop::in_ci() {
        eprintln!("xtask: {what} will skip: apt-get install {list} to run it");
        return Ok(None);
    }
    if !is_root() {
        return Err(format!(
            "CI runs {what}, which needs {list}; install as root: apt-get install -y {list}"
        ));
    }
    apt_install(packages)?;
    find()
        .map(Some)
        .ok_or_else(|| format!("installed {list} but still cannot find what {what} needs"))
}

/// `apt-get install -y PACKAGES`, updating the package lists first if the
/// install fails with the lists at hand.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    let apt = |args: &[&str]| -> Result<bool, String> {
        eprintln!("xtask: apt-get {}", args.join(" "));
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .map_err(|e| format!("cannot run apt-get: {e}"))
    };
    let install: Vec<&str> = ["install", "-y"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    if apt(&install)? {
        return Ok(());
    }
    if !apt(&["update"])? {
        return Err("apt-get update failed".into());
    }
    if apt(&install)? {
        Ok(())
    } else {
        Err(format!("apt-get install -y {} failed", packages.join(" ")))
    }
}

/// The installed `cargo SUBCOMMAND`'s version line, e.g. `cargo-deny 0.20.2`.
fn cargo_subcommand_version(subcommand: &str) -> Option<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([subcommand, "--version"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether `cargo SUBCOMMAND` (crate `cargo-SUBCOMMAND`) is there to run,
/// installing `version` with `cargo install --locked` into cargo's own bin
/// directory when it is missing, so only a fresh machine pays for that
/// build. `Ok(false)`: the install failed outside CI (no registry at hand),
/// said once on stderr; under CI that is an error naming what CI does with
/// it (`ci_use`).
pub fn cargo_subcommand(subcommand: &str, version: &str, ci_use: &str) -> Result<bool, String> {
    if let Some(installed) = cargo_subcommand_version(subcommand) {
        eprintln!("xtask: {installed}");
        return Ok(true);
    }
    let pinned = format!("cargo-{subcommand}@{version}");
    eprintln!("xtask: cargo-{subcommand} is not installed; installing {pinned} (once per machine)");
    match crate::cargo(&["install", "--locked", &pinned]) {
        Ok(()) if cargo_subcommand_version(subcommand).is_some() => Ok(true),
        Ok(()) => Err(format!(
            "installed {pinned}, but `cargo {subcommand} --version` still fails: is cargo's bin directory ($CARGO_HOME/bin) on PATH?"
        )),
        Err(e) if crate::interop::in_ci() => Err(format!(
            "CI {ci_use} with cargo-{subcommand}, and installing it failed: {e}"
        )),
        Err(e) => {
            eprintln!(
                "xtask: {e}; skipping what needs it (cargo install --locked {pinned} when the registry is reachable)"
            );
            Ok(false)
        }
    }
}
