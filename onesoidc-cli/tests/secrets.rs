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

#[test]
fn the_detector_finds_what_it_looks_for() {
    let sample = "token=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2ln rt_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef -----BEGIN PRIVATE KEY-----";
    assert_eq!(secrets_in(sample).len(), 3);
}
