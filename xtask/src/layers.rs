//! The layering checks of `cargo xtask test` (ARCHITECTURE.md, "Layers"):
//!
//! - `onesoidc-core/src` does no I/O: no `std::fs`, `std::process`,
//!   `std::env`, `std::net`, `SystemTime::now()` or `Instant::now()`
//!   outside tests and doc comments.
//! - With default features off, `onesoidc-core`, `-http`, `-flows`,
//!   `-tokens` and `-resource` pull in no reqwest, hyper, image or png, and
//!   `-resource` no axum or tower either (`cargo tree -e normal`),
//!   and the hyper example backend (`examples/hyper-backend`) no reqwest.
//! - Each of them compiles alone (`cargo check`: the same errors as a
//!   build, without code generation, and its dependencies' metadata is
//!   what clippy reuses) with `--no-default-features` and with
//!   `--all-features`.
//! - `cargo doc --no-deps --all-features` has no warnings.

use std::path::Path;
use std::process::Command;

/// The library crates a user picks from.
const LIBRARIES: [&str; 5] = [
    "onesoidc-core",
    "onesoidc-http",
    "onesoidc-flows",
    "onesoidc-tokens",
    "onesoidc-resource",
];

/// What the core must not name (outside tests and doc comments).
const CORE_FORBIDDEN: [&str; 6] = [
    "std::fs",
    "std::process",
    "std::env",
    "std::net",
    "SystemTime::now",
    "Instant::now",
];

/// `tpm`: whether the TSS libraries are here (`tpm.rs`); without them the
/// `tpm` feature is left out of the `--all-features` builds and the docs.
pub fn run(tpm: bool) -> Result<(), String> {
    let root = super::workspace_root();
    core_does_no_io(&root.join("onesoidc-core/src"))?;
    for krate in LIBRARIES {
        let heavy = heavy_dependencies(&root, krate)?;
        if !heavy.is_empty() {
            return Err(format!(
                "{krate} without default features depends on {}; gate them behind a feature",
                heavy.join(", ")
            ));
        }
    }
    let example = dependency_tree(&root, "onesoidc-example-hyper-backend", true)?;
    if example.iter().any(|name| name == "reqwest") {
        return Err(
            "examples/hyper-backend depends on reqwest; it must show a build without it".into(),
        );
    }
    for krate in LIBRARIES {
        super::cargo(&["check", "--quiet", "-p", krate, "--no-default-features"])?;
        if tpm {
            super::cargo(&["check", "--quiet", "-p", krate, "--all-features"])?;
        } else {
            let features = crate::tpm::features_but_tpm(&root.join(krate).join("Cargo.toml"))?;
            let features = features.join(",");
            super::cargo(&["check", "--quiet", "-p", krate, "--features", &features])?;
        }
    }
    docs_without_warnings(&root, tpm)
}

/// Fails naming file and line when the core's sources name an I/O API.
fn core_does_no_io(src: &Path) -> Result<(), String> {
    let mut hits = Vec::new();
    for file in rust_files(src)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for (number, line) in outside_tests(&text) {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let grouped = grouped_std_import(code);
            for name in CORE_FORBIDDEN {
                let module = name.strip_prefix("std::");
                if code.contains(name) || module.is_some_and(|m| grouped.contains(&m)) {
                    hits.push(format!("{}:{number}: {name}", file.display()));
                }
            }
        }
    }
    if hits.is_empty() {
        eprintln!("xtask: onesoidc-core/src does no I/O");
        Ok(())
    } else {
        Err(format!(
            "onesoidc-core is sans-IO, but its sources name I/O APIs (move this to onesoidc-fs or onesoidc-flows):\n  {}",
            hits.join("\n  ")
        ))
    }
}

/// The lines of `text` before its first `#[cfg(test)]`, numbered from 1
/// (test modules come last in this workspace's files).
fn outside_tests(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
}

/// The modules named in a `use std::{a, b::c}` line.
fn grouped_std_import(code: &str) -> Vec<&str> {
    let Some(rest) = code.split("std::{").nth(1) else {
        return Vec::new();
    };
    let group = rest.split('}').next().unwrap_or_default();
    group
        .split(',')
        .map(|item| item.trim().split("::").next().unwrap_or_default())
        .filter(|module| !module.is_empty())
        .collect()
}

fn rust_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The crates of `krate`'s normal dependency tree, with or without its
/// default features.
fn dependency_tree(
    root: &Path,
    krate: &str,
    default_features: bool,
) -> Result<Vec<String>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "tree", "--quiet", "-e", "normal", "--prefix", "none", "-f", "{p}",
        ])
        .args(["-p", krate])
        .current_dir(root);
    if !default_features {
        command.arg("--no-default-features");
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// reqwest, hyper*, axum*, tower*, image and png in `krate`'s tree without default
/// features; prints the crate counts with and without them.
fn heavy_dependencies(root: &Path, krate: &str) -> Result<Vec<String>, String> {
    let lean = dependency_tree(root, krate, false)?;
    let full = dependency_tree(root, krate, true)?;
    eprintln!(
        "xtask: {krate}: {} crates with default features, {} without",
        full.len(),
        lean.len()
    );
    Ok(lean
        .into_iter()
        .filter(|name| {
            name == "reqwest"
                || name.starts_with("hyper")
                || name.starts_with("axum")
                || name.starts_with("tower")
                || name == "image"
                || name == "png"
        })
        .collect())
}

/// `cargo doc --no-deps --all-features` with warnings as errors (without
/// the TSS libraries: every feature but `tpm`, and no onesoidc-tpm).
fn docs_without_warnings(root: &Path, tpm: bool) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let features = if tpm {
        vec!["--all-features".to_string()]
    } else {
        vec![
            "--exclude".into(),
            crate::tpm::CRATE.into(),
            "--features".into(),
            crate::tpm::workspace_features_but_tpm(root)?.join(","),
        ]
    };
    eprintln!(
        "xtask: cargo doc --no-deps {} (RUSTDOCFLAGS=-D warnings)",
        features.join(" ")
    );
    let status = Command::new(cargo)
        .args(["doc", "--quiet", "--workspace", "--no-deps"])
        .args(&features)
        .args(["--exclude", "xtask"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo doc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("`cargo doc` has warnings (broken links, missing docs): fix them".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_imports_are_seen() {
        assert_eq!(
            grouped_std_import("use std::{env, fs::File};"),
            ["env", "fs"]
        );
        assert!(grouped_std_import("use std::fmt;").is_empty());
    }

    #[test]
    fn test_modules_are_skipped() {
        let text = "fn a() {}\n#[cfg(test)]\nmod tests { use std::fs; }\n";
        let lines: Vec<_> = outside_tests(text).collect();
        assert_eq!(lines, [(1, "fn a() {}")]);
    }
}
