//! What the console's browser test (`onesoidc-cli/tests/console_browser.rs`)
//! needs: Chromium and chromedriver, passed to `cargo test` as
//! `ONESOIDC_CHROMIUM` and `ONESOIDC_CHROMEDRIVER`.
//!
//! 1. Already set in the environment: used as they are.
//! 2. Found on `PATH` (Debian: `/usr/bin/chromium`, `/usr/bin/chromedriver`):
//!    used.
//! 3. Missing under CI (env `CI` set) and running as root: installed with
//!    `apt-get install -y chromium chromium-driver` (after `apt-get update`
//!    when the first try fails). Missing under CI otherwise is an error.
//! 4. Missing outside CI: one line says so and the test skips itself.
//!
//! The test starts chromedriver itself, on a free loopback port, and stops
//! it afterwards; Chromium runs headless and only talks to loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DRIVER_VAR: &str = "ONESOIDC_CHROMEDRIVER";
const BROWSER_VAR: &str = "ONESOIDC_CHROMIUM";

/// Names the browser goes by, in order of preference.
const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// The Debian packages with the browser and its driver.
const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// The variables for the test run (empty: the browser test skips).
pub fn test_env() -> Result<Vec<(&'static str, String)>, String> {
    if let Some(found) = find() {
        return Ok(found);
    }
    if !crate::interop::in_ci() {
        eprintln!(
            "xtask: no chromium/chromedriver; the console's browser test will skip \
             (apt-get install chromium chromium-driver to run it)"
        );
        return Ok(Vec::new());
    }
    apt_install(&PACKAGES).map_err(|e| {
        format!("CI runs the console's browser test, which needs chromium and chromedriver: {e}")
    })?;
    find().ok_or_else(|| {
        format!(
            "installed {} but found no chromium and chromedriver on PATH",
            PACKAGES.join(" ")
        )
    })
}

/// The environment's or PATH's chromedriver and browser, when both exist.
fn find() -> Option<Vec<(&'static str, String)>> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let driver = from_env(DRIVER_VAR).or_else(|| on_path("chromedriver"))?;
    let browser = from_env(BROWSER_VAR).or_else(|| BROWSERS.iter().find_map(|b| on_path(b)))?;
    eprintln!("xtask: the console's browser test uses {browser} through {driver}");
    Some(vec![(DRIVER_VAR, driver), (BROWSER_VAR, browser)])
}

/// `program`'s path when an executable of that name is on `PATH`.
fn on_path(program: &str) -> Option<String> {
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

/// `apt-get install -y PACKAGES` as root (CI), updating the package lists
/// first if the install fails with the lists at hand. Also used for the C
/// ABI's tools (`ffi.rs`).
pub(crate) fn apt_install(packages: &[&str]) -> Result<(), String> {
    if !is_root() {
        return Err(format!(
            "install them as root: apt-get install -y {}",
            packages.join(" ")
        ));
    }
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

/// Where the test leaves its screenshots.
pub fn screenshot_dir(target: &Path) -> PathBuf {
    target.join("console-screenshots")
}
