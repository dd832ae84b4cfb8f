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

use crate::system::on_path;

const DRIVER_VAR: &str = "ONESOIDC_CHROMEDRIVER";
const BROWSER_VAR: &str = "ONESOIDC_CHROMIUM";

/// Names the browser goes by, in order of preference.
const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// The Debian packages with the browser and its driver.
const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// The variables for the test run (empty: the browser test skips).
pub fn test_env() -> Result<Vec<(&'static str, String)>, String> {
    Ok(
        crate::system::find_or_install("the console's browser test", &PACKAGES, find)?
            .unwrap_or_default(),
    )
}

/// The environment's or PATH's chromedriver and browser, when both exist.
fn find() -> Option<Vec<(&'static str, String)>> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let driver = from_env(DRIVER_VAR).or_else(|| on_path("chromedriver"))?;
    let browser = from_env(BROWSER_VAR).or_else(|| BROWSERS.iter().find_map(|b| on_path(b)))?;
    eprintln!("xtask: the console's browser test uses {browser} through {driver}");
    Some(vec![(DRIVER_VAR, driver), (BROWSER_VAR, browser)])
}

/// Where the test leaves its screenshots.
pub fn screenshot_dir(target: &Path) -> PathBuf {
    target.join("console-screenshots")
}
