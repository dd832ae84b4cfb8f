//! The supply-chain check of `cargo xtask test`: `cargo deny check` with the
//! policy in `deny.toml` (licences, banned and duplicate crates, sources,
//! and advisories when a database is at hand).
//!
//! - Without cargo-deny, `cargo install --locked cargo-deny@CARGO_DENY_VERSION`
//!   installs it into cargo's own bin directory first, so only a fresh
//!   machine pays for that build (about 4 minutes on 2 cores). If that
//!   install fails, CI fails; elsewhere (no registry at hand) one line says
//!   the check was skipped.
//! - The RustSec advisory database lives on GitHub, which CI cannot reach.
//!   cargo-deny runs `--offline`, so it never tries: advisories are checked
//!   only when a copy is already in the `db-path` of `deny.toml`
//!   (`$CARGO_HOME/advisory-dbs`, as `cargo deny fetch` leaves it).
//! - `--offline` also covers the crates cargo-deny reads licences from, so
//!   `cargo fetch` first downloads every crate of every platform (from the
//!   package registry, which CI reaches).

use std::path::{Path, PathBuf};

/// The cargo-deny that a machine without one gets (its `deny.toml` format
/// is the one this repository's file follows).
const CARGO_DENY_VERSION: &str = "0.20.2";

pub fn run() -> Result<(), String> {
    if !crate::system::cargo_subcommand("deny", CARGO_DENY_VERSION, "checks the supply chain")? {
        return Ok(());
    }
    super::cargo(&["fetch"])?;
    let mut args = vec!["deny", "--offline", "check"];
    let db = advisory_db();
    if has_database(&db) {
        args.push("advisories");
    } else {
        eprintln!(
            "xtask: no advisory database in {}; checking licences, bans and sources only",
            db.display()
        );
    }
    args.extend(["licenses", "bans", "sources"]);
    super::cargo(&args)
}

/// `$CARGO_HOME/advisory-dbs`, where `deny.toml` tells cargo-deny to look.
fn advisory_db() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cargo")
        });
    cargo_home.join("advisory-dbs")
}

/// Whether `dir` holds a clone (cargo-deny names them `advisory-db-<hash>`).
fn has_database(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("advisory-db-")
        })
    })
}
