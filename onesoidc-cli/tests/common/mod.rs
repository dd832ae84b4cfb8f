//! Running the `onesoidc` binary from tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Every wait for the binary ends after this long.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// `onesoidc ARGS`, without the caller's identity or log settings.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_onesoidc"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ONESOIDC_DEVICE_CONFIG")
        .env_remove("ONESOIDC_KEY_DIR")
        .env_remove("ONESOIDC_DEVIDP_CONFIG")
        .stdin(Stdio::null());
    command
}

/// A dev IdP with `config` and a device registered with it (an ES256
/// key in a temporary directory, deleted when the `TempDir` is dropped).
pub async fn provisioned_device(
    config: onesoidc_devidp::DevIdpConfig,
) -> (
    onesoidc_devidp::DevIdp,
    tempfile::TempDir,
    onesoidc_flows::IdentityPaths,
) {
    let idp = onesoidc_devidp::DevIdp::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    (idp, dir, paths)
}

/// `onesoidc check-access-token --audience AUDIENCE TOKEN --config C
/// --key-dir K`, with `--dpop-proof P --method GET --url URL` when a proof
/// is given as `(P, URL)`.
pub fn check_access_token(
    audience: &str,
    token: &str,
    (config, key_dir): (&str, &str),
    dpop: Option<(&str, &str)>,
) -> Output {
    let mut args = vec![
        "check-access-token",
        "--audience",
        audience,
        token,
        "--config",
        config,
        "--key-dir",
        key_dir,
    ];
    if let Some((proof, url)) = dpop {
        args.extend(["--dpop-proof", proof, "--method", "GET", "--url", url]);
    }
    onesoidc(&args)
}

/// Runs `onesoidc ARGS` on `paths`' identity with the cache directory
/// `cache`, `env` set, `stdin` on its standard input, and everything else
/// of the caller's environment that could change the outcome removed.
pub async fn with_identity(
    paths: &onesoidc_flows::IdentityPaths,
    cache: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_onesoidc"));
    command
        .args(args)
        .arg("--config")
        .arg(&paths.config)
        .arg("--key-dir")
        .arg(&paths.key_dir)
        .env("ONESOIDC_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .env_remove("ONESOIDC_STORE")
        .env_remove("ONESOIDC_STORE_CA")
        .env_remove("ONESOIDC_STORE_CERT")
        .env_remove("ONESOIDC_STORE_KEY")
        .envs(env.iter().copied());
    let input = stdin.to_string();
    tokio::task::spawn_blocking(move || output_with_stdin(&mut command, &input))
        .await
        .unwrap()
}

/// Runs `command` to the end with `input` on its standard input, its
/// stdout and stderr captured.
pub fn output_with_stdin(command: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `onesoidc ARGS` to the end.
pub fn onesoidc(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

/// A running `onesoidc dev-idp`, killed when dropped.
pub struct DevIdpProcess {
    child: Child,
    /// Its stdout lines up to `Ctrl-C stops it.`
    pub banner: Vec<String>,
    /// `http://127.0.0.1:PORT`.
    pub host: String,
}

impl Drop for DevIdpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevIdpProcess {
    /// Starts `onesoidc dev-idp --port 0 EXTRA` and waits for its banner.
    pub fn start(extra: &[&str]) -> Self {
        let mut child = command(&["dev-idp", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep reading, so the server never writes into a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut banner = Vec::new();
        let mut host = None;
        loop {
            let line = match rx.recv_timeout(DEADLINE) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "dev-idp printed no banner within {DEADLINE:?} ({e}); see its stderr above"
                    );
                }
            };
            if let Some(issuer) = line.trim().strip_prefix("issuer") {
                host = issuer.trim().strip_suffix("/oidc").map(str::to_string);
            }
            let last = line.starts_with("Ctrl-C");
            banner.push(line);
            if last {
                break;
            }
        }
        let host = host.expect("the banner names the issuer");
        DevIdpProcess {
            child,
            banner,
            host,
        }
    }
}

/// The stdout of a successful run.
pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}
