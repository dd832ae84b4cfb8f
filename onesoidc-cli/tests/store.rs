//! The shared store from the command line: a Redis password never shows
//! (not in output, errors or trace logs, whichever URL form carries it), a
//! URL with a password on the command line is warned about, the URL comes
//! from `ONESOIDC_STORE` or `--store-file` instead, and `device-token` says
//! once on stderr why a store it cannot use is unavailable (a TLS server
//! it does not trust), and works once given the CA with `--store-ca`.

mod common;
// Shared with onesoidc-tokens' tests, which use more of them.
#[allow(dead_code)]
#[path = "../../onesoidc-tokens/tests/support/redis_server.rs"]
mod redis_server;
#[allow(dead_code)]
#[path = "../../onesoidc-tokens/tests/support/redis_tls.rs"]
mod redis_tls;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use onesoidc_devidp::{DevIdp, DevIdpConfig};
use redis_server::RedisServer;
use redis_tls::TlsRedis;

const PASSWORD: &str = "hunter2-Zq8";

/// Runs the binary on `paths`' identity with a private cache directory,
/// `env` set, and everything else of the caller's environment that could
/// change the outcome removed.
async fn onesoidc(
    paths: &onesoidc_flows::IdentityPaths,
    cache: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let out = common::with_identity(paths, cache, args, env, "").await;
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn provider(ttl: Duration) -> (DevIdp, tempfile::TempDir, onesoidc_flows::IdentityPaths) {
    common::provisioned_device(DevIdpConfig {
        access_token_ttl: ttl,
        ..DevIdpConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_store_password_never_shows_and_one_on_the_command_line_is_warned_about() {
    let (_idp, dir, paths) = provider(Duration::from_secs(4)).await;
    let cache = dir.path().join("cache");
    let unix = format!("redis+unix:///nonexistent/redis.sock?user=app&pass={PASSWORD}");
    let store_file = dir.path().join("store-url");
    std::fs::write(&store_file, format!("{unix}\n")).unwrap();
    let store_file = store_file.display().to_string();
    let tcp = format!("redis://app:{PASSWORD}@127.0.0.1:1/0");
    let trace = [("RUST_LOG", "trace")];

    // On the command line: works, warns, never shows it.
    let out = onesoidc(&paths, &cache, &["device-token", "--store", &tcp], &trace).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stdout.trim().is_empty(), "a token: {stderr}");
    assert!(
        stderr.contains("password is visible to every user"),
        "warned: {stderr}"
    );
    let outputs = vec![stdout + &stderr];

    // From a file and from the environment: no warning.
    let mut outputs = outputs;
    for (args, env) in [
        (vec!["device-token", "--store-file", &store_file], vec![]),
        (
            vec!["device-token"],
            vec![("ONESOIDC_STORE", unix.as_str())],
        ),
        (
            vec!["watch", "--json", "--refreshes", "1", "--skew", "3"],
            vec![("ONESOIDC_STORE", unix.as_str())],
        ),
    ] {
        let mut env = env;
        env.extend(trace);
        let out = onesoidc(&paths, &cache, &args, &env).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            !stderr.contains("password is visible"),
            "{args:?}: {stderr}"
        );
        if args[0] == "watch" {
            // The store's failure is an event naming the store.
            assert!(
                stdout.contains("store_unavailable") && stdout.contains("/nonexistent/redis.sock"),
                "{stdout}"
            );
        } else {
            assert!(
                stderr.contains("the token store is unavailable"),
                "device-token says so: {stderr}"
            );
        }
        outputs.push(stdout + &stderr);
    }
    for (i, output) in outputs.iter().enumerate() {
        assert!(output.lines().count() > 20, "run {i} logged at trace level");
        assert!(!output.contains(PASSWORD), "run {i} showed the password");
    }
}

#[tokio::test]
async fn device_token_says_once_why_a_tls_store_is_unavailable_and_trusts_store_ca() {
    let Some(binary) = RedisServer::binary() else {
        return;
    };
    let server = TlsRedis::start(binary, "no");
    let url = server.url(None);
    let (idp, dir, paths) = provider(Duration::from_secs(300)).await;
    let cache = dir.path().join("cache");

    // The server's certificate is signed by a CA the system does not know.
    let out = onesoidc(&paths, &cache, &["device-token", "--store", &url], &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stdout.trim().is_empty(), "the token, fetched alone");
    assert_eq!(
        stderr.matches("the token store is unavailable").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        stderr.contains("certificate") && stderr.contains(&url),
        "says which store and why: {stderr}"
    );

    // Given the CA, the store works: the second call answers from it.
    let ca = server.pki.ca.display().to_string();
    for _ in 0..2 {
        let out = onesoidc(
            &paths,
            &cache,
            &["device-token", "--store", &url],
            &[("ONESOIDC_STORE_CA", &ca)],
        )
        .await;
        assert_eq!(text(&out.stderr), "", "nothing to say");
        assert!(!text(&out.stdout).trim().is_empty());
    }
    assert_eq!(
        idp.stats().token_requests.client_credentials,
        2,
        "one token alone, one through the store, then that one again"
    );
}
