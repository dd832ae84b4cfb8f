//! The `onesoidc` binary end to end against a mocked provider.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../onesoidc-core/tests/fixtures/px-device-identity"
);

fn onesoidc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onesoidc"))
        .args(args)
        .env_remove("ONESOIDC_DEVICE_CONFIG")
        .env_remove("ONESOIDC_KEY_DIR")
        .env("ONESOIDC_CACHE_DIR", test_cache_dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A copy of a px fixture whose `host` points at `host`.
fn identity_at(dir: &Path, fixture: &str, host: &str) -> (String, String) {
    let src = Path::new(FIXTURES).join(fixture);
    let yaml = std::fs::read_to_string(src.join("device.yml")).unwrap();
    let yaml = yaml.replace("https://idp-server.ones-now.com", host);
    std::fs::write(dir.join("device.yml"), yaml).unwrap();
    std::fs::copy(src.join("private.pem"), dir.join("private.pem")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("private.pem"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    (
        dir.join("device.yml").display().to_string(),
        dir.display().to_string(),
    )
}

#[test]
fn device_token_prints_the_token() {
    let mut server = mockito::Server::new();
    let base = server.url();
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_status(404)
        .create();
    let token = server
        .mock("POST", "/oidc/token")
        .match_body(mockito::Matcher::UrlEncoded(
            "grant_type".into(),
            "client_credentials".into(),
        ))
        .with_body(
            r#"{"access_token":"the-token","token_type":"Bearer","expires_in":300,"scope":"s"}"#,
        )
        .expect(2)
        .create();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, key_dir) = identity_at(dir.path(), "managed-ecc-p256", &base);

    let identity = ["--config", &config, "--key-dir", &key_dir];
    let run = |extra: &[&str]| {
        let mut args = vec!["device-token"];
        args.extend(extra);
        args.extend(identity);
        let out = onesoidc(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let out = run(&["--cache-dir", cache_dir]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "the-token\n");

    // Served from the cache: no second request.
    let out = run(&["--json", "--cache-dir", cache_dir]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["access_token"], "the-token");
    assert_eq!(json["scope"], "s");
    assert!(json["expires_in"].as_u64().unwrap() <= 300);

    // --no-cache asks again.
    let out = run(&["--no-cache"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "the-token\n");
    token.assert();
}

#[test]
fn provider_errors_exit_non_zero_with_one_line() {
    let mut server = mockito::Server::new();
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_status(404)
        .create();
    server
        .mock("POST", "/oidc/token")
        .with_status(401)
        .with_body(r#"{"error":"invalid_client","error_description":"signature"}"#)
        .create();
    let dir = tempfile::tempdir().unwrap();
    let (config, key_dir) = identity_at(dir.path(), "managed-rsa-2048", &server.url());
    let out = onesoidc(&["device-token", "--config", &config, "--key-dir", &key_dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("onesoidc: error: ")
            && stderr.contains("invalid_client")
            && stderr.contains("HTTP 401"),
        "{stderr}"
    );
}

#[test]
fn missing_config_names_the_file() {
    let out = onesoidc(&["device-token", "--config", "/nonexistent/device.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/device.yml"), "{stderr}");
}

#[test]
fn jwk_and_sign() {
    let dir = Path::new(FIXTURES).join("managed-ecc-p521");
    let config = dir.join("device.yml").display().to_string();
    let key_dir = dir.display().to_string();
    let out = onesoidc(&["jwk", "--jwks", "--config", &config, "--key-dir", &key_dir]);
    assert!(out.status.success());
    let jwks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES512");
    assert_eq!(jwks["keys"][0]["crv"], "P-521");
    assert!(jwks["keys"][0]["kid"].is_string());

    let out = onesoidc(&[
        "sign",
        "--message",
        "a.b",
        "--config",
        &config,
        "--key-dir",
        &key_dir,
    ]);
    assert!(out.status.success());
    let sig = String::from_utf8(out.stdout).unwrap();
    use base64::Engine;
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .unwrap()
    };
    let raw = b64(&sig);
    assert_eq!(raw.len(), 132, "ES512 signatures are r||s, 66 bytes each");
    // The signature verifies with the printed public key, for this message only.
    let jwk = &jwks["keys"][0];
    let mut point = vec![4u8];
    point.extend(b64(jwk["x"].as_str().unwrap()));
    point.extend(b64(jwk["y"].as_str().unwrap()));
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED,
        point,
    );
    key.verify(b"a.b", &raw).expect("a valid signature of a.b");
    assert!(key.verify(b"a.c", &raw).is_err(), "and of nothing else");
}

#[test]
fn help_and_usage_errors() {
    let out = onesoidc(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("device-token"));
    let out = onesoidc(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A provider that sends `expires_in: u64::MAX` for a CIBA request, a QR
/// session and a token: the CLI ends with the person's answer (denied,
/// cancelled: exit 3), never a panic. (Every other hostile number, through
/// the flows: onesoidc-flows/tests/hostile_numbers.rs.)
#[test]
fn huge_numbers_from_the_provider_do_not_panic() {
    let mut server = mockito::Server::new();
    let base = server.url();
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_status(404)
        .create();
    server
        .mock("POST", "/oidc/backchannel")
        .with_body(r#"{"auth_req_id":"r1","expires_in":18446744073709551615,"interval":1}"#)
        .create();
    server
        .mock("POST", "/oidc/token")
        .match_body(mockito::Matcher::UrlEncoded(
            "grant_type".into(),
            "urn:openid:params:grant-type:ciba".into(),
        ))
        .with_status(400)
        .with_body(r#"{"error":"access_denied"}"#)
        .create();
    server
        .mock("POST", "/oidc/token")
        .match_body(mockito::Matcher::UrlEncoded(
            "grant_type".into(),
            "client_credentials".into(),
        ))
        .with_body(
            r#"{"access_token":"device","token_type":"Bearer","expires_in":18446744073709551615}"#,
        )
        .create();
    server
        .mock("POST", "/oidc/qr/sessions")
        .with_status(201)
        .with_body(format!(
            r#"{{"session_id":"s1","cb_url":"{base}/oidc/qr/sessions/s1/scan","expires_in":18446744073709551615,"interval":1}}"#
        ))
        .create();
    server
        .mock("GET", "/oidc/qr/sessions/s1")
        .with_body(r#"{"session_id":"s1","status":"cancelled"}"#)
        .create();
    let dir = tempfile::tempdir().unwrap();
    let (config, keys) = identity_at(dir.path(), "managed-ecc-p256", &base);
    for command in [&["ciba", "-u", "alice"][..], &["qr"][..]] {
        let mut args = command.to_vec();
        args.extend(["--config", &config, "--key-dir", &keys]);
        let out = onesoidc(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
        assert_eq!(out.status.code(), Some(3), "{command:?}: {stderr}");
    }
}

/// A cache directory for this test binary's runs of the CLI, so tests never
/// read or write the user's cache.
fn test_cache_dir() -> &'static std::path::Path {
    static DIR: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());
    DIR.path()
}

#[test]
fn version_names_the_commit_and_whether_tpm_is_compiled_in() {
    let out = onesoidc(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (name, rest) = text.trim().split_once(' ').unwrap();
    assert_eq!(name, "onesoidc");
    let (version, commit) = rest.split_once(' ').unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let (commit, tpm) = commit
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split_once("; ")
        .unwrap();
    // The flows this binary was built with decide (a workspace build may
    // turn on flows' `tpm` without this crate's feature).
    let expected = if onesoidc_flows::TPM_SIGNER {
        "tpm"
    } else {
        "without tpm"
    };
    assert_eq!(
        tpm, expected,
        "says whether TPM keys sign in process: {text}"
    );
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}

/// Every command's --help lists the global options under their own heading.
#[test]
fn global_options_have_their_own_heading_in_every_help() {
    let help = String::from_utf8(onesoidc(&["--help"]).stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 12, "{commands:?}");
    for command in commands {
        let out = onesoidc(&[command, "--help"]);
        let text = String::from_utf8(out.stdout).unwrap();
        let global = text
            .split("Global options:")
            .nth(1)
            .unwrap_or_else(|| panic!("{command} --help has no global options heading:\n{text}"));
        for option in ["--config", "--key-dir", "--json", "--verbose"] {
            assert!(
                global.contains(option),
                "{command}: {option} under Global options"
            );
        }
        let own = text.split("Global options:").next().unwrap();
        assert!(
            !own.contains("--key-dir"),
            "{command}: not among its own options"
        );
    }
}

/// Errors, usage errors and logs carry no colour codes when stderr is not
/// a terminal (as here: the test reads it through a pipe).
#[test]
fn no_colour_codes_when_stderr_is_not_a_terminal() {
    for args in [
        &["no-such-command"][..],
        &["ciba"][..],
        &[
            "device-token",
            "-vvv",
            "--config",
            "/nonexistent/device.yml",
        ][..],
    ] {
        let out = onesoidc(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.is_empty(), "{args:?}");
        assert!(!stderr.contains('\u{1b}'), "{args:?}: {stderr:?}");
        let first = stderr.lines().find(|l| l.contains("error")).unwrap();
        assert!(first.starts_with("onesoidc: error: "), "{args:?}: {first}");
    }
}

#[test]
fn completions_and_man_pages() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef onesoidc"),
        ("fish", "complete -c onesoidc"),
    ] {
        let out = onesoidc(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}");
        assert!(
            script.contains("device-token"),
            "{shell}: knows the commands"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = onesoidc(&["manpages", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.path().join("onesoidc-device-token.1")).unwrap();
    assert!(page.contains(".TH ONESOIDC-DEVICE-TOKEN 1"), "{page}");
    assert!(
        page.contains("onesoidc device\\-token"),
        "the synopsis names the command"
    );
    assert!(page.contains("\\-\\-config"), "with the global options");
    let pages = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(pages >= 14, "onesoidc.1 and one per command: {pages}");
}

/// `register --security tpm` fails before writing anything: in a build
/// without the `tpm` feature saying to build with it, with it (and no TPM
/// here) naming the TPM it could not open; `--tcti` alone is a usage error.
#[test]
fn register_security_tpm_without_the_feature_says_to_build_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("device.yml");
    let keys = dir.path().join("keys");
    let (config, keys) = (config.to_str().unwrap(), keys.to_str().unwrap());
    let base = ["register", "-t", "Kiosk", "-l", "Hall", "-r", "SERVER"];
    let out = onesoidc(
        &[
            &base[..],
            &[
                "--security",
                "tpm",
                "--tcti",
                "device:/dev/nonexistent-tpm",
                "--config",
                config,
                "--key-dir",
                keys,
            ],
        ]
        .concat(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = if onesoidc_flows::TPM_SIGNER {
        "cannot load the device key into TPM at `device:/dev/nonexistent-tpm`"
    } else {
        "--features tpm"
    };
    assert!(stderr.contains(expected), "{stderr}");
    assert!(!std::path::Path::new(config).exists());
    let out = onesoidc(
        &[
            &base[..],
            &[
                "--tcti",
                "device:/dev/tpmrm0",
                "--config",
                config,
                "--key-dir",
                keys,
            ],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--security tpm"));
}

/// The provider's signing key in `check_access_token_needs_the_bound_keys_proof`.
#[derive(Debug)]
struct ProviderKey(onesoidc_core::PemSigner);

impl onesoidc_core::Signer for ProviderKey {
    fn algorithm(&self) -> onesoidc_core::JwsAlgorithm {
        self.0.algorithm()
    }
    fn key_id(&self) -> Option<&str> {
        Some("provider-1")
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, onesoidc_core::SignError> {
        self.0.sign(input)
    }
}

/// `check-access-token` with a DPoP-bound token (issue 26, the stolen-token
/// test on the application's side): exit 0 with the proof of its key, 5
/// without a proof or with one from a freshly generated key; a JWT
/// (`cnf.jkt` in the token) and an opaque token (`cnf.jkt` in the
/// introspection answer) alike.
#[test]
fn check_access_token_needs_the_bound_keys_proof() {
    use onesoidc_core::{DpopKey, KeyType, PemSigner, PublicJwk, sign_typed_jwt, unix_seconds};
    const AUDIENCE: &str = "https://vhh.example.com";
    let mut server = mockito::Server::new();
    let base = server.url();
    let issuer = format!("{base}/oidc");
    let provider = ProviderKey(PemSigner::generate(KeyType::EccP256).unwrap());
    let jwk = PublicJwk {
        kid: Some("provider-1".into()),
        ..provider.0.public_jwk()
    };
    let device = DpopKey::generate().unwrap();
    let now = std::time::SystemTime::now();
    let secs = unix_seconds(now);
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_body(
            serde_json::json!({
                "issuer": issuer,
                "token_endpoint": format!("{issuer}/token"),
                "introspection_endpoint": format!("{issuer}/token/introspection"),
                "jwks_uri": format!("{issuer}/jwks"),
            })
            .to_string(),
        )
        .create();
    server
        .mock("GET", "/oidc/jwks")
        .with_body(serde_json::json!({ "keys": [jwk] }).to_string())
        .create();
    server
        .mock("POST", "/oidc/token/introspection")
        .with_body(
            serde_json::json!({
                "active": true, "iss": issuer, "aud": AUDIENCE, "sub": "alice",
                "client_id": "kiosk", "exp": secs + 300, "token_type": "DPoP",
                "cnf": {"jkt": device.thumbprint()},
            })
            .to_string(),
        )
        .create();
    let claims = serde_json::json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "alice", "client_id": "kiosk",
        "iat": secs, "exp": secs + 300, "jti": "at-1", "cnf": {"jkt": device.thumbprint()},
    });
    let jwt = sign_typed_jwt(&provider, "at+jwt", &claims).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, key_dir) = identity_at(dir.path(), "managed-ecc-p256", &base);
    let thief = DpopKey::generate().unwrap();
    let url = "https://vhh.example.com/me";
    let parsed = url::Url::parse(url).unwrap();

    for (kind, token) in [("JWT", jwt.as_str()), ("opaque", "opaque-bound-token")] {
        let check = |proof: Option<&str>| {
            common::check_access_token(
                AUDIENCE,
                token,
                (&config, &key_dir),
                proof.map(|p| (p, url)),
            )
        };
        let own = device
            .proof("GET", &parsed, Some(token), None, now)
            .unwrap();
        let accepted = check(Some(&own));
        assert_eq!(
            accepted.status.code(),
            Some(0),
            "{kind}: {}",
            String::from_utf8_lossy(&accepted.stderr)
        );
        assert!(
            String::from_utf8_lossy(&accepted.stdout).contains("sub alice"),
            "{kind}"
        );

        let stolen = thief.proof("GET", &parsed, Some(token), None, now).unwrap();
        let refused = check(Some(&stolen));
        assert_eq!(refused.status.code(), Some(5), "{kind}");
        let reason = String::from_utf8_lossy(&refused.stderr);
        assert!(
            reason.contains(r#"401 DPoP error="invalid_dpop_proof""#)
                && reason.contains("bound to"),
            "{kind}: {reason}"
        );

        let bare = check(None);
        assert_eq!(bare.status.code(), Some(5), "{kind}");
        let reason = String::from_utf8_lossy(&bare.stderr);
        assert!(
            reason.contains(r#"401 Bearer error="invalid_token""#) && reason.contains("bound"),
            "{kind}: {reason}"
        );
    }
}
