//! A private `redis-server` for a test: on a unix socket in a temporary
//! directory (no TCP port), started, stopped and restarted by the test,
//! killed when dropped. The binary is `$ONESOIDC_REDIS_SERVER`, which
//! `cargo xtask test` sets (installing Redis under CI).
//!
//! The Redis fleet benchmark (`benches/src/bin/redis_fleet.rs`) includes
//! this file too, so its calls return errors rather than panic.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    binary: String,
    /// More arguments (TLS: see `redis_tls.rs`).
    args: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// The server binary, or `None` (after a notice) when there is none
    /// outside CI. Under CI a missing server fails the test.
    pub fn binary() -> Option<String> {
        match std::env::var("ONESOIDC_REDIS_SERVER") {
            Ok(binary) if !binary.is_empty() => Some(binary),
            _ => {
                let in_ci =
                    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
                assert!(
                    !in_ci,
                    "CI runs the Redis tests: run them through `cargo xtask test`, which provides redis-server"
                );
                eprintln!(
                    "notice: ONESOIDC_REDIS_SERVER is not set; skipping the Redis tests (run `cargo xtask test`)"
                );
                None
            }
        }
    }

    /// Starts a server with `binary`; returns once it accepts connections.
    pub fn start(binary: String) -> Result<RedisServer, String> {
        Self::start_with(binary, Vec::new())
    }

    /// [`start`](Self::start) with more arguments for redis-server.
    pub fn start_with(binary: String, args: Vec<String>) -> Result<RedisServer, String> {
        let mut server = RedisServer {
            binary,
            args,
            dir: tempfile::tempdir()
                .map_err(|e| format!("cannot create a directory for redis-server: {e}"))?,
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// `redis+unix://` URL of the socket (the default user, no password).
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Starts the server (again), waiting until it says it is ready.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Err("redis-server is already running".into());
        }
        let mut child = Command::new(&self.binary)
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary))?;
        let stdout = child.stdout.take().ok_or("redis-server has no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line
                    .to_ascii_lowercase()
                    .contains("ready to accept connections")
                {
                    let _ = tx.send(());
                }
            }
        });
        // Kept before waiting, so that dropping the server kills it.
        self.child = Some(child);
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| "redis-server was not ready within 10 s".to_string())
    }

    /// Stops the server (SIGKILL: as if the machine went away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
