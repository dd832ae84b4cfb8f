//! The binary end to end: `dev-idp` in one process, every other command
//! against it, and the whole `demo`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

fn onesoidc(args: &[&str]) -> Output {
    onesoidc_with_stdin(args, "")
}

/// Runs the binary with `input` on its standard input.
fn onesoidc_with_stdin(args: &[&str], input: &str) -> Output {
    common::output_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_onesoidc"))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ONESOIDC_DEVICE_CONFIG")
            .env_remove("ONESOIDC_KEY_DIR")
            .env("ONESOIDC_CACHE_DIR", test_cache_dir()),
        input,
    )
}

/// Kills the dev IdP when the test ends, whatever happens.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `onesoidc dev-idp` on a free port; returns it and its host.
fn dev_idp(extra: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onesoidc"))
        .args(["dev-idp", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    // Keep reading its stdout so the server never writes into a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(issuer) = line.trim().strip_prefix("issuer") {
                let _ = tx.send(issuer.trim().to_string());
            }
        }
    });
    let issuer = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("dev-idp prints its issuer within 30 s");
    let host = issuer.strip_suffix("/oidc").unwrap().to_string();
    (server, host)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn register_then_every_command_against_dev_idp() {
    let (_server, host) = dev_idp(&["--auto-approve-ms", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let config = format!("{d}/device.yml");

    let registered = stdout(&onesoidc(&[
        "register",
        "-a",
        &host,
        "-dn",
        "dev.local",
        "-t",
        "Kiosk",
        "-l",
        "Lab",
        "-r",
        "SERVER",
        "--key-type",
        "RSA:3072",
        "--config-dir",
        d,
        "--key-dir",
        d,
        "--poll-interval",
        "1",
        "--json",
    ]));
    let last: serde_json::Value = serde_json::from_str(registered.lines().last().unwrap()).unwrap();
    assert_eq!(last["key_type"], "RSA:3072");
    assert!(last["client_id"].is_string());

    let again = onesoidc(&[
        "register",
        "-a",
        &host,
        "-dn",
        "x",
        "-t",
        "K",
        "-l",
        "L",
        "-r",
        "SERVER",
        "--config-dir",
        d,
        "--key-dir",
        d,
    ]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing identity is not overwritten without --force"
    );

    let token = stdout(&onesoidc(&[
        "device-token",
        "--config",
        &config,
        "--key-dir",
        d,
    ]));
    assert!(
        token.trim().split('.').count() == 3,
        "a JWT access token: {token}"
    );

    let url = stdout(&onesoidc(&[
        "apps",
        "vhh-server",
        "--config",
        &config,
        "--key-dir",
        d,
    ]));
    assert_eq!(url.trim(), "https://vhh.example.com");

    let login = stdout(&onesoidc(&[
        "ciba",
        "--username",
        "alice",
        "-m",
        "e2e",
        "--target-app",
        "vhh-server",
        "--json",
        "--config",
        &config,
        "--key-dir",
        d,
    ]));
    let login: serde_json::Value = serde_json::from_str(login.lines().last().unwrap()).unwrap();
    assert_eq!(login["id_token_claims"]["sub"], "alice");
    let access = login["access_token"].as_str().unwrap();

    // The token on standard input, never in the process list.
    let info = stdout(&onesoidc_with_stdin(
        &[
            "introspect",
            "-",
            "--json",
            "--config",
            &config,
            "--key-dir",
            d,
        ],
        &format!("{access}\n"),
    ));
    let info: serde_json::Value = serde_json::from_str(info.trim()).unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["aud"], serde_json::json!(["https://vhh.example.com"]));

    let id_token = login["id_token"].as_str().unwrap();
    let id_token_file = format!("{d}/id_token");
    std::fs::write(&id_token_file, id_token).unwrap();
    let valid = stdout(&onesoidc(&[
        "validate-id-token",
        "--token-file",
        &id_token_file,
        "--config",
        &config,
        "--key-dir",
        d,
    ]));
    assert!(valid.contains("alice"));
    let mut forged = id_token.to_string();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let bad = onesoidc(&[
        "validate-id-token",
        &forged,
        "--config",
        &config,
        "--key-dir",
        d,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // As the application would check it: alice's token is for vhh-server;
    // her ID token is not an access token (exit 5, the answer and the reason).
    let checked = stdout(&onesoidc_with_stdin(
        &[
            "check-access-token",
            "--audience",
            "https://vhh.example.com",
            "-",
            "--json",
            "--config",
            &config,
            "--key-dir",
            d,
        ],
        access,
    ));
    let checked: serde_json::Value = serde_json::from_str(checked.trim()).unwrap();
    assert_eq!(checked["sub"], "alice");
    let refused = onesoidc(&[
        "check-access-token",
        "--audience",
        "https://vhh.example.com",
        "--token-file",
        &id_token_file,
        "--config",
        &config,
        "--key-dir",
        d,
    ]);
    assert_eq!(refused.status.code(), Some(5));
    let reason = String::from_utf8_lossy(&refused.stderr);
    assert!(
        reason.contains(r#"401 Bearer error="invalid_token""#) && reason.contains("`typ`"),
        "{reason}"
    );
    // Sent as a DPoP token, alice's token (not bound to a key) is refused
    // before any proof counts; a proof needs its request.
    let unbound = onesoidc_with_stdin(
        &[
            "check-access-token",
            "--audience",
            "https://vhh.example.com",
            "-",
            "--dpop-proof",
            "e30.e30.c2ln",
            "--method",
            "GET",
            "--url",
            "https://vhh.example.com/me",
            "--config",
            &config,
            "--key-dir",
            d,
        ],
        access,
    );
    assert_eq!(unbound.status.code(), Some(5));
    let reason = String::from_utf8_lossy(&unbound.stderr);
    assert!(reason.contains("not bound to a key"), "{reason}");
    let no_request = onesoidc(&[
        "check-access-token",
        "--audience",
        "https://vhh.example.com",
        access,
        "--dpop-proof",
        "e30.e30.c2ln",
    ]);
    assert_eq!(no_request.status.code(), Some(2));

    stdout(&onesoidc(&[
        "revoke",
        access,
        "--config",
        &config,
        "--key-dir",
        d,
    ]));
    // A revoked token: the answer is still printed; the exit status says
    // "not usable" so scripts need not parse it.
    let revoked = onesoidc(&[
        "introspect",
        access,
        "--json",
        "--config",
        &config,
        "--key-dir",
        d,
    ]);
    assert_eq!(revoked.status.code(), Some(5));
    let info = String::from_utf8_lossy(&revoked.stdout);
    assert!(info.contains(r#""active":false"#), "{info}");
    assert!(
        String::from_utf8_lossy(&revoked.stderr).contains("not active"),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let empty = onesoidc_with_stdin(
        &["introspect", "-", "--config", &config, "--key-dir", d],
        "  \n",
    );
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("the token is empty"));

    let unknown = onesoidc(&[
        "ciba",
        "--username",
        "mallory",
        "--config",
        &config,
        "--key-dir",
        d,
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown_user_id"));
}

/// A provider started with `config` and a device provisioned on it; runs
/// `onesoidc ARGS --config .. --key-dir ..` in the background.
async fn provider_and_cli(
    config: onesoidc_devidp::DevIdpConfig,
    key_type: onesoidc_core::KeyType,
    args: &'static [&'static str],
) -> (
    onesoidc_devidp::DevIdp,
    tempfile::TempDir,
    tokio::task::JoinHandle<Output>,
) {
    let idp = onesoidc_devidp::DevIdp::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), key_type).unwrap();
    let (config, key_dir) = (
        paths.config.display().to_string(),
        paths.key_dir.display().to_string(),
    );
    let cli = tokio::task::spawn_blocking(move || {
        let mut all = args.to_vec();
        all.extend(["--config", &config, "--key-dir", &key_dir]);
        onesoidc(&all)
    });
    (idp, dir, cli)
}

/// Runs `onesoidc ciba` for alice while `answer` plays the person's phone.
async fn ciba_outcome(
    config: onesoidc_devidp::DevIdpConfig,
    answer: impl FnOnce(onesoidc_devidp::DevIdp, String) + Send + 'static,
) -> Output {
    let (idp, _dir, cli) = provider_and_cli(
        config,
        onesoidc_core::KeyType::EccP384,
        &["ciba", "-u", "alice"],
    )
    .await;
    let request = idp.next_ciba_request().await;
    answer(idp.clone(), request.auth_req_id);
    let out = cli.await.unwrap();
    idp.shutdown().await;
    out
}

#[tokio::test]
async fn denied_and_expired_logins_have_their_own_exit_codes() {
    let fast = onesoidc_devidp::DevIdpConfig {
        ciba_interval: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let denied = ciba_outcome(fast.clone(), |idp, id| idp.deny_ciba(&id).unwrap()).await;
    assert_eq!(
        denied.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("access_denied"));

    let short = onesoidc_devidp::DevIdpConfig {
        ciba_expires_in: std::time::Duration::from_secs(2),
        ..fast
    };
    let expired = ciba_outcome(short, |_, _| {}).await;
    assert_eq!(
        expired.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&expired.stderr)
    );
}

#[tokio::test]
async fn a_qr_login_cancelled_on_the_phone_exits_3() {
    let config = onesoidc_devidp::DevIdpConfig {
        qr_interval: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let (idp, _dir, cli) =
        provider_and_cli(config, onesoidc_core::KeyType::EccP256, &["qr", "--ascii"]).await;
    let session_id = idp.next_qr_session().await;
    idp.simulate_qr_cancel(&session_id).unwrap();
    let out = cli.await.unwrap();
    idp.shutdown().await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cancelled on the phone"), "{stderr}");
    assert!(out.stdout.is_empty(), "no token printed");
}

#[test]
fn demo_runs_every_step() {
    let out = onesoidc(&["demo", "--json"]);
    let text = stdout(&out);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12, "{text}");
    assert!(lines[..11].iter().all(|l| l["ok"] == true));
    let application = &lines[9]["detail"];
    assert!(
        application
            .as_str()
            .is_some_and(|d| d.contains("alice's token accepted, 4 refused")),
        "{application}"
    );
    // A DPoP-bound token: accepted with its proof; as Bearer, with a
    // replayed proof and with another key's proof, refused.
    let dpop = &lines[10]["detail"];
    assert!(
        dpop.as_str()
            .is_some_and(|d| d.starts_with("token_type DPoP")
                && d.contains("accepted with its proof, refused 3 ways")),
        "{dpop}"
    );
    assert_eq!(lines[11]["ok"], true);
    assert_eq!(lines[11]["steps"], 11);
}

#[tokio::test]
async fn watch_reports_a_refresh() {
    let idp = onesoidc_devidp::DevIdp::start(onesoidc_devidp::DevIdpConfig {
        access_token_ttl: std::time::Duration::from_secs(3),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let store = dir.path().join("tokens");
    let (config, key_dir, store_arg) = (
        paths.config.display().to_string(),
        paths.key_dir.display().to_string(),
        store.display().to_string(),
    );
    let out = tokio::task::spawn_blocking(move || {
        onesoidc(&[
            "watch",
            "--skew",
            "1",
            "--refreshes",
            "1",
            "--json",
            "--store",
            &store_arg,
            "--config",
            &config,
            "--key-dir",
            &key_dir,
        ])
    })
    .await
    .unwrap();
    let text = stdout(&out);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ready", "refreshed"], "{text}");
    let stored = store.join("device.json");
    assert!(
        stored.exists(),
        "the token was stored in {}",
        stored.display()
    );
    assert_eq!(idp.stats().token_requests.client_credentials, 2);
}

/// What the README promises of the installed service: `onesoidc watch
/// --store DIR` keeps the token, and `device-token --store DIR` answers from
/// it without asking the provider.
#[tokio::test]
async fn device_token_answers_from_the_watch_services_store() {
    let idp = onesoidc_devidp::DevIdp::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let store = dir.path().join("var-lib-onesoidc").display().to_string();
    let identity = [
        "--store".to_string(),
        store,
        "--config".to_string(),
        paths.config.display().to_string(),
        "--key-dir".to_string(),
        paths.key_dir.display().to_string(),
    ];
    let mut watch = Command::new(env!("CARGO_BIN_EXE_onesoidc"))
        .args(["watch", "--json"])
        .args(&identity)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || lines.next())
        .await
        .unwrap()
        .expect("watch printed a line")
        .unwrap();
    assert!(ready.contains("\"ready\""), "{ready}");
    assert_eq!(idp.stats().token_requests.client_credentials, 1);

    let out = tokio::task::spawn_blocking(move || {
        let mut args = vec!["device-token"];
        args.extend(identity.iter().map(String::as_str));
        onesoidc(&args)
    })
    .await
    .unwrap();
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert!(!stdout(&out).trim().is_empty());
    assert_eq!(
        idp.stats().token_requests.client_credentials,
        1,
        "device-token took the token watch had stored"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn ctrl_c_cancels_a_waiting_login_with_exit_130() {
    let idp = onesoidc_devidp::DevIdp::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_onesoidc"))
        .args(["ciba", "-u", "bob", "--config"])
        .arg(&paths.config)
        .arg("--key-dir")
        .arg(&paths.key_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request = idp.next_ciba_request().await;
    assert_eq!(request.login_hint, "bob");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "onesoidc: error: cancelled"
    );
    assert!(out.stdout.is_empty());
}

/// A cache directory for this test binary's runs of the CLI, so tests never
/// read or write the user's cache.
fn test_cache_dir() -> &'static std::path::Path {
    static DIR: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());
    DIR.path()
}

/// This machine's address on its first non-loopback interface, if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    // A UDP "connection" sends nothing; it only picks the route's source.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A provider at a plain http:// address that is not loopback: refused,
/// with an error that names the flag; accepted with --allow-insecure-http.
#[tokio::test]
async fn plain_http_off_loopback_needs_allow_insecure_http() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("notice: no non-loopback address on this machine; skipping");
        return;
    };
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let idp = onesoidc_devidp::DevIdp::serve(listener, Some(host.clone()), Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let (config, key_dir) = (
        paths.config.display().to_string(),
        paths.key_dir.display().to_string(),
    );
    let run = move |insecure: bool| {
        let (config, key_dir) = (config.clone(), key_dir.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "device-token",
                "--no-cache",
                "--config",
                &config,
                "--key-dir",
                &key_dir,
            ];
            if insecure {
                args.push("--allow-insecure-http");
            }
            onesoidc(&args)
        })
    };
    let refused = run(false).await.unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&host), "{stderr}");
    assert!(
        stderr.contains("--allow-insecure-http") || stderr.contains("https"),
        "{stderr}"
    );
    assert_eq!(
        idp.stats().token_requests.client_credentials,
        0,
        "nothing was sent"
    );

    let allowed = run(true).await.unwrap();
    assert!(!stdout(&allowed).trim().is_empty());
    assert_eq!(idp.stats().token_requests.client_credentials, 1);
}

/// What the CLI writes is private: a new identity's key (0600) in a 0700
/// directory, and device-token's cache (0700 directory, 0600 files).
#[cfg(unix)]
#[tokio::test]
async fn files_the_cli_writes_have_private_modes() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let config = dir.path().join("etc/device.yml");
    let (config_arg, keys_arg) = (config.display().to_string(), keys.display().to_string());
    stdout(&onesoidc(&[
        "register",
        "-t",
        "Kiosk",
        "-l",
        "Lobby",
        "-r",
        "PUBLIC",
        "--config",
        &config_arg,
        "--key-dir",
        &keys_arg,
    ]));
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join("private.pem")), 0o600);

    let idp = onesoidc_devidp::DevIdp::start(Default::default())
        .await
        .unwrap();
    let paths = idp
        .provision_device(
            dir.path().join("managed").as_path(),
            onesoidc_core::KeyType::EccP256,
        )
        .unwrap();
    let cache = dir.path().join("cache");
    let (c, k, cache_arg) = (
        paths.config.display().to_string(),
        paths.key_dir.display().to_string(),
        cache.display().to_string(),
    );
    let out = tokio::task::spawn_blocking(move || {
        onesoidc(&[
            "device-token",
            "--cache-dir",
            &cache_arg,
            "--config",
            &c,
            "--key-dir",
            &k,
        ])
    })
    .await
    .unwrap();
    stdout(&out);
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cache.join("tokens")), 0o700);
    let mut files = Vec::new();
    for dir in [cache.clone(), cache.join("tokens")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    assert_eq!(
        files.len(),
        4,
        "the discovery document, the token and its two lock files: {files:?}"
    );
}

/// With HTTP_PROXY and ALL_PROXY set, requests to a provider on loopback
/// still go straight to it: the proxy sees no connection.
#[tokio::test]
async fn loopback_requests_bypass_the_environments_proxy() {
    let idp = onesoidc_devidp::DevIdp::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let (config, key_dir) = (
        paths.config.display().to_string(),
        paths.key_dir.display().to_string(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_onesoidc"))
            .args([
                "device-token",
                "--no-cache",
                "--config",
                &config,
                "--key-dir",
                &key_dir,
            ])
            .env("HTTP_PROXY", &proxy_url)
            .env("ALL_PROXY", &proxy_url)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!stdout(&out).trim().is_empty());
    assert_eq!(idp.stats().token_requests.client_credentials, 1);
    assert!(
        matches!(proxy.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nobody connected to the proxy"
    );
}
