//! `onesoidc watch` as a systemd `Type=notify` service: what it sends to
//! `NOTIFY_SOCKET` (here a unix datagram socket the test binds, as systemd
//! does).
#![cfg(unix)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::Instant;

use common::DEADLINE;

/// A running `onesoidc watch`, killed when dropped.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `onesoidc watch` for a device of a fresh dev IdP, with
/// `NOTIFY_SOCKET` and `env`; returns the socket systemd would read.
async fn watch_under_systemd(
    env: &[(&str, &str)],
) -> (
    UnixDatagram,
    Watch,
    onesoidc_devidp::DevIdp,
    tempfile::TempDir,
) {
    let (idp, dir, paths) = common::provisioned_device(Default::default()).await;
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let store = dir.path().join("store");
    let child = common::command(&[
        "watch",
        "--json",
        "--store",
        &store.display().to_string(),
        "--config",
        &paths.config.display().to_string(),
        "--key-dir",
        &paths.key_dir.display().to_string(),
    ])
    .env("NOTIFY_SOCKET", &socket_path)
    .env_remove("WATCHDOG_USEC")
    .env_remove("WATCHDOG_PID")
    .envs(env.iter().copied())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    (socket, Watch(child), idp, dir)
}

/// Reads datagrams until one has a line `until` matches (each read ends
/// after [`DEADLINE`]); returns every line read.
fn read_until(socket: &UnixDatagram, until: impl Fn(&str) -> bool) -> Vec<String> {
    let start = Instant::now();
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no notification within {DEADLINE:?} ({e}); so far: {lines:?}, after {:?}",
                start.elapsed()
            )
        });
        let datagram = String::from_utf8(buf[..n].to_vec()).unwrap();
        let done = datagram.lines().any(&until);
        lines.extend(datagram.lines().map(str::to_string));
        if done {
            return lines;
        }
    }
}

#[tokio::test]
async fn watch_tells_systemd_it_is_ready_with_the_tokens_expiry() {
    let (socket, _watch, idp, dir) = watch_under_systemd(&[]).await;
    let lines = tokio::task::spawn_blocking(move || read_until(&socket, |l| l == "READY=1"))
        .await
        .unwrap();
    let status = lines
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("a STATUS= line in {lines:?}"));
    assert!(
        status.starts_with("the device token expires at 20"),
        "{status}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("WATCHDOG=")),
        "no watchdog without WATCHDOG_USEC: {lines:?}"
    );
    // READY=1 comes once the token is in the store.
    assert!(dir.path().join("store/device.json").exists());
    assert_eq!(idp.stats().token_requests.client_credentials, 1);
}

#[tokio::test]
async fn watch_feeds_systemds_watchdog_when_asked_to() {
    // 200 ms: a ping every 100 ms.
    let (socket, _watch, _idp, _dir) = watch_under_systemd(&[("WATCHDOG_USEC", "200000")]).await;
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = read_until(&socket, |l| l == "READY=1");
        // Two pings after READY: the loop keeps pinging, not once at start.
        for _ in 0..2 {
            lines.extend(read_until(&socket, |l| l == "WATCHDOG=1"));
        }
        lines
    })
    .await
    .unwrap();
    assert!(
        lines.iter().filter(|l| *l == "WATCHDOG=1").count() >= 2,
        "{lines:?}"
    );
}

/// With `WATCHDOG_PID` naming another process, as sd_watchdog_enabled(3)
/// says: no pings. Ctrl-C (what the unit's `KillSignal=SIGINT` sends) then
/// ends the run with `STOPPING=1`, and every ping would have come before it.
#[tokio::test]
async fn watch_ignores_a_watchdog_meant_for_another_process() {
    let (socket, watch, _idp, _dir) =
        watch_under_systemd(&[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")]).await;
    let pid = watch.0.id().to_string();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = read_until(&socket, |l| l == "READY=1");
        let interrupted = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(interrupted.success());
        lines.extend(read_until(&socket, |l| l == "STOPPING=1"));
        lines
    })
    .await
    .unwrap();
    assert!(
        !lines.iter().any(|l| l.starts_with("WATCHDOG=")),
        "{lines:?}"
    );
}
