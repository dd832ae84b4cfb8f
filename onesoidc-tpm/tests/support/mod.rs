//! A private swtpm per test (a real TPM 2.0 in software, no mocks), and
//! keys made by another tool (tpm2-openssl) in it.
//!
//! swtpm listens on loopback TCP (tss-esapi 7 cannot name a unix socket);
//! each test's swtpm has its own state directory and ports and is killed
//! when the test ends. Without swtpm the tests print a notice and pass,
//! unless `CI` is set: then they fail (`cargo xtask test` installs it).

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Named through flows (which re-exports this crate with its `tpm`
// feature), so the CLI's tests can include this file too.
use onesoidc_flows::tpm::Tcti;

/// A running swtpm, killed on drop.
pub struct Swtpm {
    child: Child,
    running: bool,
    port: u16,
    pub dir: tempfile::TempDir,
}

/// Whether swtpm and tpm2-openssl are here; `false` prints why (and
/// panics under CI, where they must be).
pub fn available() -> bool {
    let swtpm = Command::new("swtpm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // The provider's module file (loading it would need a running TPM).
    let provider = Command::new("openssl")
        .args(["version", "-m"])
        .output()
        .is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            text.split('"')
                .nth(1)
                .is_some_and(|dir| Path::new(dir).join("tpm2.so").exists())
        });
    if swtpm && provider {
        return true;
    }
    let missing =
        "swtpm or tpm2-openssl is not installed (apt-get install swtpm swtpm-tools tpm2-openssl)";
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("{missing}; CI must run the TPM tests (cargo xtask test installs them)");
    }
    eprintln!("notice: skipping a TPM test: {missing}");
    false
}

impl Swtpm {
    /// Starts a fresh swtpm (new state: a new TPM) or `None` when swtpm
    /// is not installed outside CI.
    pub fn start() -> Option<Swtpm> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        Some(Self::start_in(dir))
    }

    /// Starts swtpm on the state in `dir`.
    pub fn start_in(dir: tempfile::TempDir) -> Swtpm {
        let mut last_error = String::new();
        for _ in 0..10 {
            let port = free_port_pair();
            let mut child = Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg(format!("--server=type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg(format!(
                    "--ctrl=type=tcp,port={},bindaddr=127.0.0.1",
                    port + 1
                ))
                .arg(format!("--tpmstate=dir={}", dir.path().display()))
                .arg("--flags=startup-clear,not-need-init")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("swtpm runs");
            match wait_listening(&mut child, port + 1) {
                Ok(()) => {
                    return Swtpm {
                        child,
                        running: true,
                        port,
                        dir,
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        panic!("swtpm did not start: {last_error}");
    }

    /// The TCTI string for this swtpm.
    pub fn tcti_string(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn tcti(&self) -> Tcti {
        self.tcti_string().parse().expect("swtpm TCTI parses")
    }

    /// `openssl genpkey -provider tpm2` with `args`, writing `name` in the
    /// state directory: a key made by another tool.
    pub fn openssl_genpkey(&self, args: &[&str], name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        let output = Command::new("openssl")
            .args(["genpkey", "-provider", "tpm2", "-provider", "base"])
            .args(args)
            .arg("-out")
            .arg(&out)
            .env("TPM2OPENSSL_TCTI", self.tcti_string())
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl genpkey {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        out
    }

    /// The public key of a tpm2-openssl key, as SPKI DER, from openssl.
    pub fn openssl_public_der(&self, key: &Path) -> Vec<u8> {
        let output = Command::new("openssl")
            .args([
                "pkey",
                "-provider",
                "tpm2",
                "-provider",
                "base",
                "-pubout",
                "-outform",
                "DER",
                "-in",
            ])
            .arg(key)
            .env("TPM2OPENSSL_TCTI", self.tcti_string())
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl pkey: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// Kills swtpm (the TPM goes away).
    pub fn kill(&mut self) {
        if std::mem::take(&mut self.running) {
            signal(self.child.id(), "-CONT");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Stops swtpm without closing its sockets (a TPM that hangs).
    pub fn freeze(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// Resumes a frozen swtpm.
    pub fn thaw(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// Stops this swtpm and gives back its state directory.
    pub fn into_state(mut self) -> tempfile::TempDir {
        self.kill();
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A port `p` with `p + 1` free as well (swtpm's control channel).
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = first.local_addr().expect("addr").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Waits (10 s at most) until swtpm accepts connections on `port`.
fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Err(format!("swtpm exited ({status}): {}", stderr.trim()));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("swtpm did not listen on port {port} within 10 s"))
}
