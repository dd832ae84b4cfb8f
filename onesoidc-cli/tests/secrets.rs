//! No token, assertion, refresh token or private key ever reaches the logs,
//! even at trace level.

use std::process::Command;

/// Anything in `text` that looks like a secret the demo handles.
fn secrets_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))) {
        let jwt = word.starts_with("eyJ") && word.split('.').filter(|p| p.len() >= 8).count() >= 2;
        let opaque = ["rt_", "lht_"]
            .iter()
            .any(|p| word.starts_with(p) && word.len() >= 60);
        if jwt || opaque {
            found.push(word.to_string());
        }
    }
    if text.contains("PRIVATE KEY") {
        found.push("PRIVATE KEY".into());
    }
    found
}

#[test]
fn the_whole_demo_at_trace_level_logs_no_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_onesoidc"))
        .arg("demo")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.lines().count() > 100,
        "trace logging is on: {} lines",
        stderr.lines().count()
    );
    assert_eq!(secrets_in(&stdout), Vec::<String>::new());
    assert_eq!(secrets_in(&stderr), Vec::<String>::new());
}

/// The CLI's commands against a provider in this process, at trace level:
/// none of the exact access tokens, refresh tokens or login hint tokens the
/// provider issued (opaque strings, whatever their shape) is in any log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_at_trace_level_logs_no_issued_value() {
    use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
    let idp = DevIdp::start(DevIdpConfig {
        access_token_ttl: std::time::Duration::from_secs(4),
        ciba_interval: std::time::Duration::from_millis(200),
        qr_interval: std::time::Duration::from_millis(200),
        auto_approve: Some(AutoApprove::approve_after(
            std::time::Duration::from_millis(100),
        )),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let cache = dir.path().join("cache");
    let (config, key_dir, cache) = (
        paths.config.display().to_string(),
        paths.key_dir.display().to_string(),
        cache.display().to_string(),
    );
    let run = move |args: Vec<String>, stdin: String| {
        let (config, key_dir, cache) = (config.clone(), key_dir.clone(), cache.clone());
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = Command::new(env!("CARGO_BIN_EXE_onesoidc"))
                .args(&args)
                .args(["--config", &config, "--key-dir", &key_dir])
                .env("RUST_LOG", "trace")
                .env("ONESOIDC_CACHE_DIR", &cache)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut logs = Vec::new();
    let device = run(args(&["device-token"]), String::new()).await.unwrap();
    let token = String::from_utf8(device.stdout).unwrap();
    logs.push(device.stderr);
    // While the 4 s token is still valid.
    for command in [args(&["introspect", "-"]), args(&["revoke", "-"])] {
        logs.push(run(command, token.clone()).await.unwrap().stderr);
    }
    // DPoP: a bound token, and a proof for it (neither may be logged).
    let bound = run(args(&["device-token", "--dpop"]), String::new())
        .await
        .unwrap();
    logs.push(bound.stderr);
    let proof = run(
        args(&[
            "dpop-proof",
            "--url",
            "https://app.example/me",
            "--token",
            "-",
        ]),
        String::from_utf8(bound.stdout).unwrap(),
    )
    .await
    .unwrap();
    logs.push(proof.stderr);
    for command in [
        args(&["device-token"]),
        args(&["device-token", "--no-cache"]),
        args(&["ciba", "-u", "alice"]),
        args(&["ciba", "-u", "alice", "--dpop"]),
        args(&["qr", "--ascii"]),
        args(&["apps"]),
        args(&["watch", "--refreshes", "1", "--skew", "3", "--store"]),
        args(&[
            "watch",
            "--dpop",
            "--refreshes",
            "1",
            "--skew",
            "3",
            "--store",
        ]),
    ] {
        let mut command = command;
        if command[0] == "watch" {
            command.push(dir.path().join("store").display().to_string());
        }
        logs.push(run(command, String::new()).await.unwrap().stderr);
    }
    let issued = idp.issued_secrets();
    assert!(
        issued.len() >= 6,
        "device, user and refresh tokens and a login hint were issued: {}",
        issued.len()
    );
    let logs: Vec<String> = logs
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let lines: usize = logs.iter().map(|l| l.lines().count()).sum();
    assert!(lines > 200, "trace logging is on: {lines} lines");
    for (i, log) in logs.iter().enumerate() {
        for secret in &issued {
            assert!(
                !log.contains(secret.as_str()),
                "run {i} logged an issued secret"
            );
        }
        assert_eq!(secrets_in(log), Vec::<String>::new(), "run {i}");
    }
}

#[test]
fn the_detector_finds_what_it_looks_for() {
    let sample = "token=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2ln rt_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef -----BEGIN PRIVATE KEY-----";
    assert_eq!(secrets_in(sample).len(), 3);
}
