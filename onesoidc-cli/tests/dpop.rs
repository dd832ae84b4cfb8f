//! DPoP from the command line (RFC 9449) against the dev IdP:
//! `device-token --dpop` gets a bound token, its cache keeps it bound (and
//! apart from the bearer token), `dpop-proof` signs with the key the token
//! is bound to (the device key: the dev IdP accepts ES256) and the proof
//! checks out for the request with that token; `ciba --dpop` binds a
//! person's tokens too.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use onesoidc_core::{DpopProofExpectations, verify_dpop_proof};
use onesoidc_devidp::{AutoApprove, DevIdpConfig};
use serde_json::Value;

/// `onesoidc ARGS` on `paths`' identity with a private cache directory,
/// `stdin` as its standard input.
async fn onesoidc(
    paths: &onesoidc_flows::IdentityPaths,
    cache: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    common::with_identity(paths, cache, args, &[], stdin.unwrap_or_default()).await
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&common::stdout(out)).unwrap()
}

/// The claims of a JWT, unverified (the test reads what the IdP put in).
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_bound_device_token_is_cached_bound_and_used_with_a_proof_from_its_key() {
    let (_idp, dir, paths) = common::provisioned_device(DevIdpConfig::default()).await;
    let cache = dir.path().join("cache");

    let first = json(&onesoidc(&paths, &cache, &["device-token", "--dpop", "--json"], None).await);
    assert_eq!(first["token_type"], "DPoP", "{first}");
    let token = first["access_token"].as_str().unwrap().to_string();
    let jkt = first["dpop_jkt"].as_str().unwrap().to_string();
    // Bound by the provider to the very key the CLI reports.
    assert_eq!(claims(&token)["cnf"]["jkt"], jkt.as_str());
    // The device key signs the proofs (the dev IdP accepts ES256).
    let jwk = json(&onesoidc(&paths, &cache, &["jwk"], None).await);
    assert_eq!(jwk["kid"], jkt.as_str());

    // Served again from the cache: still bound.
    let again = json(&onesoidc(&paths, &cache, &["device-token", "--dpop", "--json"], None).await);
    assert_eq!(again["access_token"], token.as_str());
    assert_eq!(again["token_type"], "DPoP");
    assert_eq!(again["dpop_jkt"], jkt.as_str());
    // A bearer token is kept apart, not served the bound one.
    let bearer = json(&onesoidc(&paths, &cache, &["device-token", "--json"], None).await);
    assert_eq!(bearer["token_type"], "Bearer");
    assert_ne!(bearer["access_token"], token.as_str());
    assert!(bearer["dpop_jkt"].is_null());
    let bound = json(&onesoidc(&paths, &cache, &["device-token", "--dpop", "--json"], None).await);
    assert_eq!(
        bound["access_token"],
        token.as_str(),
        "the bound one is still cached"
    );

    // A proof for curl: from a token file and from standard input.
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let url = "https://vhh.example.com/api/me?page=2";
    let token_file = token_file.display().to_string();
    let from_file = onesoidc(
        &paths,
        &cache,
        &[
            "dpop-proof",
            "--method",
            "GET",
            "--url",
            url,
            "--token-file",
            &token_file,
        ],
        None,
    )
    .await;
    let from_stdin = onesoidc(
        &paths,
        &cache,
        &["dpop-proof", "--url", url, "--token", "-"],
        Some(&token),
    )
    .await;
    let parsed = url::Url::parse(url).unwrap();
    let expect = DpopProofExpectations::new("GET", &parsed).access_token(&token, &jkt);
    let mut proofs = Vec::new();
    for out in [&from_file, &from_stdin] {
        let proof = common::stdout(out).trim().to_string();
        let checked = verify_dpop_proof(&proof, &expect, SystemTime::now())
            .unwrap_or_else(|e| panic!("{proof}: {e}"));
        assert_eq!(checked.key_thumbprint, jkt);
        assert_eq!(claims(&proof)["htu"], "https://vhh.example.com/api/me");
        proofs.push(proof);
    }
    assert_ne!(proofs[0], proofs[1], "a fresh proof each time");
    // Without a token: no `ath`; with --nonce: the nonce.
    let plain = onesoidc(
        &paths,
        &cache,
        &[
            "dpop-proof",
            "--method",
            "post",
            "--url",
            url,
            "--nonce",
            "n-1",
        ],
        None,
    )
    .await;
    let plain = claims(common::stdout(&plain).trim());
    assert!(plain.get("ath").is_none(), "{plain}");
    assert_eq!(
        (&plain["htm"], &plain["nonce"]),
        (&"POST".into(), &"n-1".into())
    );
    // The proof never carries the token itself.
    assert!(!proofs[0].contains(&token));
}

#[tokio::test]
async fn dpop_proof_refuses_a_url_it_cannot_prove_and_a_token_argument() {
    let (_idp, dir, paths) = common::provisioned_device(DevIdpConfig::default()).await;
    let cache = dir.path().join("cache");
    // A token as an argument would show in `ps`: only `-` (or a file).
    let out = onesoidc(
        &paths,
        &cache,
        &[
            "dpop-proof",
            "--url",
            "https://app.example/",
            "--token",
            "eyJ.secret.x",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    // Refused without echoing it (clap's own error would print the value).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token takes only `-`"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
    for url in ["not a url", "ftp://files.example/x"] {
        let out = onesoidc(&paths, &cache, &["dpop-proof", "--url", url], None).await;
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--url"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn ciba_and_no_cache_device_tokens_are_bound_with_dpop() {
    let (_idp, dir, paths) = common::provisioned_device(DevIdpConfig {
        auto_approve: Some(AutoApprove::approve_after(Duration::from_millis(100))),
        ciba_interval: Duration::from_secs(1),
        ..DevIdpConfig::default()
    })
    .await;
    let cache = dir.path().join("cache");
    let device = json(
        &onesoidc(
            &paths,
            &cache,
            &["device-token", "--dpop", "--no-cache", "--json"],
            None,
        )
        .await,
    );
    assert_eq!(device["token_type"], "DPoP");
    let login = json(
        &onesoidc(
            &paths,
            &cache,
            &["ciba", "--username", "alice", "--dpop", "--json"],
            None,
        )
        .await,
    );
    assert_eq!(login["token_type"], "DPoP", "{login}");
    assert_eq!(login["dpop_jkt"], device["dpop_jkt"]);
    let token = login["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["cnf"]["jkt"], device["dpop_jkt"]);
}

/// Against a provider that requires server nonces, the nonce one
/// `device-token --dpop` process was given is kept in the cache directory
/// for the next: only the first process (and one after the nonce has
/// rotated out) pays a `use_dpop_nonce` round trip.
#[tokio::test]
async fn the_next_process_starts_with_the_kept_dpop_nonce() {
    let (idp, dir, paths) = common::provisioned_device(DevIdpConfig {
        dpop_nonce: true,
        ..DevIdpConfig::default()
    })
    .await;
    let cache = dir.path().join("cache");
    // A new token each time: the token cache is emptied in between.
    let device_token = async || {
        let _ = std::fs::remove_dir_all(cache.join("tokens"));
        let out =
            json(&onesoidc(&paths, &cache, &["device-token", "--dpop", "--json"], None).await);
        assert_eq!(out["token_type"], "DPoP", "{out}");
    };

    device_token().await;
    assert_eq!(idp.stats().dpop_nonce_challenges, 1, "the first process");
    let kept: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("dpop-nonce-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    device_token().await;
    device_token().await;
    assert_eq!(
        idp.stats().dpop_nonce_challenges,
        1,
        "later processes send the kept nonce"
    );
    assert_eq!(idp.stats().dpop_bound_tokens_issued, 3);

    // Rotated out (two windows on): one retry, and the new nonce is kept.
    idp.rotate_dpop_nonce();
    idp.rotate_dpop_nonce();
    device_token().await;
    assert_eq!(idp.stats().dpop_nonce_challenges, 2);
    device_token().await;
    assert_eq!(idp.stats().dpop_nonce_challenges, 2);

    // Four processes at once after another rotation out: each may be
    // challenged and each writes the file, yet all get bound tokens and
    // the file they leave is one whole nonce the next process uses.
    idp.rotate_dpop_nonce();
    idp.rotate_dpop_nonce();
    let _ = std::fs::remove_dir_all(cache.join("tokens"));
    let dirs: Vec<_> = (0..4).map(|i| cache.join(format!("racer-{i}"))).collect();
    let run = |i: usize| {
        let tokens = dirs[i].display().to_string();
        let paths = &paths;
        let cache = &cache;
        async move {
            // Each racer has a token store of its own (so each asks the
            // provider) and shares the cache directory's nonce file.
            let out = common::with_identity(
                paths,
                cache,
                &["device-token", "--dpop", "--json", "--store", &tokens],
                &[],
                "",
            )
            .await;
            assert_eq!(json(&out)["token_type"], "DPoP");
        }
    };
    tokio::join!(run(0), run(1), run(2), run(3));
    // 2 before, then 1 to 4: each racer retries at most once.
    let challenged = idp.stats().dpop_nonce_challenges;
    assert!((3..=6).contains(&challenged), "{challenged}");
    device_token().await;
    assert_eq!(
        idp.stats().dpop_nonce_challenges,
        challenged,
        "the racers left a usable nonce"
    );
}
