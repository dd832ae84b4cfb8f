//! The TPM signer's system packages: `onesoidc-tpm` (and the `tpm` feature
//! of flows and the CLI) links the TSS libraries (`libtss2-dev`), and its
//! tests run a private swtpm each (`swtpm`, `swtpm-tools`) with keys made
//! by `openssl genpkey -provider tpm2` (`tpm2-openssl`). Installed with
//! apt-get under CI; outside CI without them, `cargo xtask test` leaves the
//! TPM crate and feature out, saying so.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The crate that needs them.
pub const CRATE: &str = "onesoidc-tpm";

/// The cargo feature (of flows, the CLI and the C ABI) that pulls the
/// crate in.
pub const FEATURE: &str = "tpm";

/// What `cargo test --workspace` adds with the TSS libraries here: the
/// CLI built with `tpm`, so its end-to-end TPM test
/// (`onesoidc-cli/tests/tpm.rs`) runs the real binary on a swtpm.
pub const TEST_FEATURES: &str = "onesoidc-cli/tpm";

const PACKAGES: [&str; 5] = [
    "pkg-config",
    "libtss2-dev",
    "swtpm",
    "swtpm-tools",
    "tpm2-openssl",
];

/// Whether the TPM crate can be built and tested here (installing the
/// packages under CI); `false` after a notice outside CI.
pub fn ready() -> Result<bool, String> {
    crate::system::tools_ready(
        "tpm",
        "the TPM signer (onesoidc-tpm, the `tpm` feature and their swtpm tests)",
        &PACKAGES,
        missing,
    )
}

/// The TSS libraries the `tpm` feature links (tss-esapi-sys's link line;
/// also their pkg-config names).
pub const LIBRARIES: [&str; 4] = ["tss2-sys", "tss2-esys", "tss2-tctildr", "tss2-mu"];

/// Whether the TSS libraries and their pkg-config files (libtss2-dev) are
/// here, so the `tpm` feature builds.
pub fn libraries_present() -> bool {
    let mut args = vec!["--exists"];
    args.extend(LIBRARIES);
    crate::system::runs("pkg-config", &args)
}

/// What the TPM crate and its tests need and this machine lacks.
fn missing() -> Vec<&'static str> {
    let runs = crate::system::runs;
    let mut missing = Vec::new();
    if !libraries_present() {
        missing.push("libtss2-dev (pkg-config tss2-esys)");
    }
    if !runs("swtpm", &["--version"]) {
        missing.push("swtpm");
    }
    if !openssl_tpm2_provider() {
        missing.push("tpm2-openssl (the openssl tpm2 provider)");
    }
    missing
}

/// Whether OpenSSL's module directory holds the tpm2 provider (loading it
/// would need a running TPM).
fn openssl_tpm2_provider() -> bool {
    let Ok(output) = Command::new("openssl")
        .args(["version", "-m"])
        .stderr(Stdio::null())
        .output()
    else {
        return false;
    };
    // MODULESDIR: "/usr/lib/x86_64-linux-gnu/ossl-modules"
    let text = String::from_utf8_lossy(&output.stdout);
    text.split('"')
        .nth(1)
        .is_some_and(|dir| Path::new(dir).join("tpm2.so").exists())
}

/// A private swtpm (a new TPM 2.0 in software, its state in `state`) on
/// loopback TCP, for the C ABI's TPM check (`ffi.rs`); killed when dropped.
pub struct Swtpm {
    child: Child,
    port: u16,
}

impl Swtpm {
    /// Starts `swtpm socket --tpm2` on a free port pair with a fresh state
    /// directory `state`, waiting (10 s at most) until it listens.
    pub fn start(state: &Path) -> Result<Swtpm, String> {
        let _ = std::fs::remove_dir_all(state);
        std::fs::create_dir_all(state)
            .map_err(|e| format!("cannot create {}: {e}", state.display()))?;
        let port = free_port_pair()?;
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg(format!("--server=type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg(format!(
                "--ctrl=type=tcp,port={},bindaddr=127.0.0.1",
                port + 1
            ))
            .arg(format!("--tpmstate=dir={}", state.display()))
            .arg("--flags=startup-clear,not-need-init")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start swtpm: {e}"))?;
        let mut swtpm = Swtpm { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = swtpm.child.try_wait() {
                return Err(format!("swtpm exited at start ({status})"));
            }
            if TcpStream::connect(("127.0.0.1", port + 1)).is_ok() {
                return Ok(swtpm);
            }
            if Instant::now() > deadline {
                return Err(format!("swtpm did not listen on port {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its TCTI string (`TPM2TOOLS_TCTI`, `register --tcti`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port `p` with `p + 1` free as well (swtpm's control channel).
fn free_port_pair() -> Result<u16, String> {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind: {e}"))?;
        let port = first
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?
            .port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free pair of loopback ports for swtpm".into())
}

/// `[features]` of the crate whose manifest is `manifest`, but `default`
/// and [`FEATURE`]: what `--all-features` means on a machine without the
/// TSS libraries.
pub fn features_but_tpm(manifest: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    Ok(feature_names(&text)
        .into_iter()
        .filter(|name| name != "default" && name != FEATURE)
        .collect())
}

/// `crate/feature` for every feature of every workspace member but
/// `default` and [`FEATURE`], for `cargo doc --workspace --features`.
pub fn workspace_features_but_tpm(root: &Path) -> Result<Vec<String>, String> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let mut all = Vec::new();
    for member in workspace_members(&text) {
        let manifest = root.join(&member).join("Cargo.toml");
        let member_text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
        let Some(name) = package_name(&member_text) else {
            continue;
        };
        for feature in features_but_tpm(&manifest)? {
            all.push(format!("{name}/{feature}"));
        }
    }
    Ok(all)
}

/// The paths in the root manifest's `members = [...]`.
fn workspace_members(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("members = [") else {
        return Vec::new();
    };
    let list = &manifest[start + "members = [".len()..];
    let list = &list[..list.find(']').unwrap_or(list.len())];
    list.split(',')
        .map(|item| item.trim().trim_matches('"').to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The first `name = "..."` of a manifest (its `[package]` name).
fn package_name(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("name")?
            .trim_start()
            .strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_string())
    })
}

/// The names declared in a manifest's `[features]` table.
fn feature_names(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if in_features && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_come_from_the_features_table_only() {
        let manifest = "[package]\nname = \"x\"\n[features]\ndefault = [\"a\"]\n## doc\na = []\ntpm = [\"dep:t\"]\n[dependencies]\nb = \"1\"\n";
        assert_eq!(feature_names(manifest), ["default", "a", "tpm"]);
        assert_eq!(package_name(manifest).as_deref(), Some("x"));
    }

    #[test]
    fn members_are_read_from_the_root_manifest() {
        let root = "[workspace]\nmembers = [\n    \"a\",\n    \"ex/b\",\n]\n";
        assert_eq!(workspace_members(root), ["a", "ex/b"]);
    }
}
