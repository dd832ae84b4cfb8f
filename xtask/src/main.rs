//! Project automation: `cargo xtask test` runs what CI runs.
//!
//! - `cargo xtask test`: `cargo fmt --check`, cargo-deny (installed, pinned,
//!   when missing; see `deny.rs`), the layering
//!   checks (`layers.rs`: a core without I/O, crates without heavy
//!   dependencies when their default features are off, every feature set
//!   builds, docs without warnings), `cargo clippy --workspace --all-targets
//!   -- -D warnings`, `cargo test --workspace` (doctests included; with
//!   Chromium for the dev IdP console's browser test, see `browser.rs`, and
//!   redis-server for the shared-store tests, see `redis.rs`), the fuzz
//!   crate's tests (its targets built, every corpus file replayed), `cargo
//!   package` of every publishable crate (`package.rs`), the Debian package's
//!   contents (`deb.rs`), the C ABI's checks (`ffi.rs`: the header, the C/C++/Qt examples and the C
//!   test under valgrind, and again built with ASan+UBSan and TSan with the C++/Qt lifetime
//!   tests), then `cargo xtask interop`.
//! - `cargo xtask ffi-header`: regenerates `onesoidc-ffi/include/onesoidc.h`.
//! - `cargo xtask ffi-test`: only the C ABI's checks of `test`.
//! - `cargo xtask ffi-install --prefix DIR [--release] [--tpm]`: the C
//!   library (with `--tpm`, with the TPM signer), headers, pkg-config file
//!   and CMake package config under DIR.
//! - `cargo xtask interop [FILTER...]`: the library and CLI against the stock
//!   oidc-provider (node + npm; see `interop.rs`).
//! - `cargo xtask fuzz --seconds N [TARGET...]`: each cargo-fuzz target in
//!   `fuzz/` for N seconds, one after the other (see `fuzz.rs`).
#![forbid(unsafe_code)]

mod bench;
mod browser;
mod deb;
mod deny;
mod ffi;
mod fuzz;
mod interop;
mod layers;
mod package;
mod redis;
mod system;
mod tpm;

use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test      fmt --check, cargo-deny, clippy -D warnings, every test (with Chromium, Redis),
            cargo package, the .deb, the C ABI, interop (what CI runs)
  interop   library and CLI against the stock oidc-provider (needs node + npm)
  fuzz      --seconds N [TARGET...]: each cargo-fuzz target for N s (needs cargo-fuzz)
  bench     [ITEM...]: the benchmarks of BENCHMARKS.md, each figure next to its target
  deb       [--debug | --check]: the Debian package, target/deb/onesoidc_<version>_<arch>.deb
  ffi-header               regenerate onesoidc-ffi/include/onesoidc.h (cbindgen)
  ffi-test                 the C ABI's part of `test`: header check, C/C++/Qt examples and tests,
                           the C test under valgrind, all again under ASan+UBSan and TSan
  ffi-install --prefix DIR [--release] [--tpm]
                           libonesoidc (--tpm: with the TPM signer), headers, onesoidc.pc and
                           the CMake package under DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("interop") => interop::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("deb") => deb::run(&args[1..]),
        Some("ffi-header") => ffi::write_header(),
        Some("ffi-install") => ffi::install_command(&args[1..]),
        Some("ffi-test") => ffi::test(),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn test() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    deny::run()?;
    // Without the TSS libraries (outside CI), leave the TPM crate out;
    // with them, build the CLI with `tpm` for its end-to-end TPM test.
    let tpm = tpm::ready()?;
    let tpm_args: &[&str] = if tpm {
        &["--features", tpm::TEST_FEATURES]
    } else {
        &["--exclude", tpm::CRATE]
    };
    layers::run(tpm)?;
    let mut clippy = vec!["clippy", "--workspace", "--all-targets"];
    clippy.extend(tpm_args);
    if tpm {
        // The interop suite's TPM tests (run by `interop::run`) are linted too.
        clippy.extend(["--features", "onesoidc-interop/tpm"]);
    }
    clippy.extend(["--", "-D", "warnings"]);
    cargo(&clippy)?;
    let browser = browser::test_env()?;
    let mut env = browser.clone();
    env.extend(redis::test_env()?);
    let mut test = vec!["test", "--workspace"];
    test.extend(tpm_args);
    cargo_with_env(&test, &env)?;
    // The fuzz crate is outside the workspace (cargo-fuzz builds it with
    // nightly flags): build its targets and replay every corpus file.
    cargo(&["test", "--manifest-path", "fuzz/Cargo.toml"])?;
    package::check(tpm)?;
    deb::check()?;
    if !browser.is_empty() {
        let shots = browser::screenshot_dir(&target_dir(&workspace_root()));
        eprintln!(
            "xtask: the console's screenshots are in {}",
            shots.display()
        );
    }
    ffi::test()?;
    interop::run(&[])?;
    Ok(())
}

/// Runs `cargo ARGS` at the workspace root, failing on a non-zero exit.
pub(crate) fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with_env(args, &[])
}

/// [`cargo`] with extra environment variables.
fn cargo_with_env(args: &[&str], env: &[(&str, String)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = workspace_root();
    eprintln!("xtask: cargo {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!(
        "xtask: cargo {} took {:.1}s",
        args[0],
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}

/// Cargo's target directory, as cargo itself resolves it (honours
/// `CARGO_TARGET_DIR` and config).
pub(crate) fn target_dir(root: &std::path::Path) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output();
    let from_metadata = output.ok().and_then(|o| {
        let text = String::from_utf8(o.stdout).ok()?;
        let start = text.find("\"target_directory\":\"")? + "\"target_directory\":\"".len();
        let end = start + text[start..].find('"')?;
        Some(std::path::PathBuf::from(
            text[start..end].replace("\\\\", "\\"),
        ))
    });
    from_metadata.unwrap_or_else(|| root.join("target"))
}
