//! ID tokens: the provider's keys are cached for their lifetime, fetched
//! once for concurrent validations, fetched again for an unknown `kid` at
//! most once a minute, and a rotated key is picked up; a refreshed ID token
//! is validated and must keep `iss` and `sub`; a login without one is
//! refused. A scripted provider (no sockets) and tokio's paused clock make
//! every time exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use onesoidc_core::{
    DeviceConfig, Error, IdTokenError, JwsAlgorithm, KeyType, PemSigner, PublicJwk, SignError,
    Signer, sign_jwt, unix_seconds,
};
use onesoidc_flows::http_client::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError,
};
use onesoidc_flows::{DeviceIdentity, OnesIdClient, UNKNOWN_KID_REFETCH};

const HOST: &str = "https://idp.test";
const CLIENT_ID: &str = "client-1";

/// A provider key with a `kid`.
#[derive(Debug)]
struct Key {
    signer: PemSigner,
    kid: String,
}

impl Key {
    fn new(kid: &str) -> Arc<Key> {
        Arc::new(Key {
            signer: PemSigner::generate(KeyType::EccP256).unwrap(),
            kid: kid.into(),
        })
    }

    fn jwk(&self) -> PublicJwk {
        let mut jwk = self.signer.public_jwk();
        jwk.kid = Some(self.kid.clone());
        jwk
    }

    /// An ID token for `sub`, issued now, signed with this key.
    fn id_token(self: &Arc<Key>, sub: &str) -> String {
        self.id_token_for(sub, Duration::from_secs(3600))
    }

    /// An ID token for `sub`, issued now, valid for `lifetime`.
    fn id_token_for(self: &Arc<Key>, sub: &str, lifetime: Duration) -> String {
        let now = unix_seconds(SystemTime::now());
        let claims = serde_json::json!({
            "iss": format!("{HOST}/oidc"), "aud": CLIENT_ID, "sub": sub,
            "iat": now, "exp": now + lifetime.as_secs(),
        });
        sign_jwt(self.as_ref(), &claims).unwrap()
    }
}

impl Signer for Key {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::ES256
    }

    fn key_id(&self) -> Option<&str> {
        Some(&self.kid)
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.signer.sign(input)
    }
}

/// Serves discovery and the keys it currently has, with `max-age`; its
/// token endpoint answers `tokens` (and the backchannel starts a login).
struct Provider {
    keys: Mutex<Vec<Arc<Key>>>,
    max_age: u64,
    jwks_fetches: AtomicUsize,
    jwks_down: std::sync::atomic::AtomicBool,
    tokens: Mutex<serde_json::Value>,
    /// Keys published besides `keys`, as they are.
    extra_jwks: Mutex<Vec<PublicJwk>>,
}

impl HttpClient for Provider {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let path = request.uri().path().to_string();
        Box::pin(async move {
            let json = |body: serde_json::Value, cache: Option<String>| {
                let mut b = http::Response::builder().status(200);
                if let Some(cache) = cache {
                    b = b.header("cache-control", cache);
                }
                Ok(b.body(body.to_string().into_bytes()).unwrap())
            };
            match path.as_str() {
                "/oidc/.well-known/openid-configuration" => json(
                    serde_json::json!({
                        "issuer": format!("{HOST}/oidc"),
                        "jwks_uri": format!("{HOST}/oidc/jwks"),
                        "id_token_signing_alg_values_supported": ["ES256"],
                    }),
                    None,
                ),
                "/oidc/jwks" if self.jwks_down.load(Ordering::SeqCst) => {
                    Ok(http::Response::builder()
                        .status(503)
                        .body(Vec::new())
                        .unwrap())
                }
                "/oidc/token" => {
                    // Stamped with the provider's clock (the real one).
                    let mut answer = json(self.tokens.lock().unwrap().clone(), None)?;
                    answer.headers_mut().insert(
                        "date",
                        httpdate::fmt_http_date(SystemTime::now()).parse().unwrap(),
                    );
                    Ok(answer)
                }
                "/oidc/backchannel" => json(
                    serde_json::json!({"auth_req_id": "r1", "expires_in": 60, "interval": 1}),
                    None,
                ),
                "/oidc/jwks" => {
                    // Give concurrent callers every chance to pile up.
                    tokio::task::yield_now().await;
                    self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    let mut keys: Vec<PublicJwk> =
                        self.keys.lock().unwrap().iter().map(|k| k.jwk()).collect();
                    keys.extend(self.extra_jwks.lock().unwrap().iter().cloned());
                    json(
                        serde_json::json!({ "keys": keys }),
                        Some(format!("public, max-age={}", self.max_age)),
                    )
                }
                _ => Ok(http::Response::builder()
                    .status(404)
                    .body(Vec::new())
                    .unwrap()),
            }
        })
    }
}

fn setup(max_age: u64, keys: Vec<Arc<Key>>) -> (Arc<Provider>, OnesIdClient) {
    setup_ahead(max_age, keys, Duration::ZERO)
}

/// As [`setup`], with the device clock `ahead` of the provider's.
fn setup_ahead(
    max_age: u64,
    keys: Vec<Arc<Key>>,
    ahead: Duration,
) -> (Arc<Provider>, OnesIdClient) {
    let provider = Arc::new(Provider {
        keys: Mutex::new(keys),
        max_age,
        jwks_fetches: AtomicUsize::new(0),
        jwks_down: Default::default(),
        tokens: Mutex::new(serde_json::json!({})),
        extra_jwks: Mutex::default(),
    });
    let yaml = format!(
        "id: d\nclient_id: {CLIENT_ID}\nhost: {HOST}\nkey_type: ECC:p256\nkey_security: default\n"
    );
    let config = DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).unwrap();
    let identity = DeviceIdentity::from_parts(
        config,
        Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
    );
    let client = OnesIdClient::builder()
        .identity(identity)
        .http(provider.clone())
        .clock(move || SystemTime::now() + ahead)
        .build()
        .unwrap();
    (provider, client)
}

fn fetches(provider: &Provider) -> usize {
    provider.jwks_fetches.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn concurrent_validations_share_one_fetch() {
    let a = Key::new("a");
    let (provider, client) = setup(3600, vec![a.clone()]);
    let token = a.id_token("alice");
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (client, token) = (client.clone(), token.clone());
        all.spawn(async move { client.validate_id_token(&token).await });
    }
    while let Some(result) = all.join_next().await {
        assert_eq!(result.unwrap().unwrap().sub, "alice");
    }
    assert_eq!(fetches(&provider), 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_kids_refetch_at_most_once_a_minute() {
    let a = Key::new("a");
    let (provider, client) = setup(24 * 3600, vec![a.clone()]);
    client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap();
    assert_eq!(fetches(&provider), 1);
    // 1,000 tokens with random kids (forged: their keys are unknown), one
    // every 180 ms for three minutes.
    for i in 0..1000 {
        let forged = Key::new(&format!("kid-{}", uuid::Uuid::new_v4()));
        let err = client
            .validate_id_token(&forged.id_token("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::IdToken {
                    source: IdTokenError::UnknownKeyId(_),
                    ..
                }
            ),
            "{i}: {err}"
        );
        tokio::time::sleep(Duration::from_millis(180)).await;
    }
    // The last validation is at 179.82 s: fetches at 0, then the first
    // validation at or after 60 s (60.12 s) and 60 s after that (120.24 s).
    assert_eq!(fetches(&provider), 3);
    assert_eq!(UNKNOWN_KID_REFETCH, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_rotated_key_is_picked_up() {
    let (a, b) = (Key::new("a"), Key::new("b"));
    let (provider, client) = setup(600, vec![a.clone()]);
    client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap();
    assert_eq!(fetches(&provider), 1);

    // Within the lifetime, known keys cost no request.
    tokio::time::sleep(Duration::from_secs(300)).await;
    client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap();
    assert_eq!(fetches(&provider), 1);

    // The provider rotates to b. A token signed by b names an unknown kid:
    // the keys are fetched again (the last fetch was 300 s ago).
    *provider.keys.lock().unwrap() = vec![b.clone()];
    client.validate_id_token(&b.id_token("bob")).await.unwrap();
    assert_eq!(fetches(&provider), 2);

    // After the lifetime (600 s from the last fetch), the keys are fetched
    // again even for a known kid: a key the provider dropped is dropped.
    *provider.keys.lock().unwrap() = vec![Key::new("c")];
    tokio::time::sleep(Duration::from_secs(599)).await;
    client.validate_id_token(&b.id_token("bob")).await.unwrap();
    assert_eq!(fetches(&provider), 2, "still within the lifetime");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let err = client
        .validate_id_token(&b.id_token("bob"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdToken {
                source: IdTokenError::UnknownKeyId(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fetches(&provider), 3);
}

fn tokens(id_token: Option<String>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "access_token": "at-2", "token_type": "Bearer", "expires_in": 300,
        "refresh_token": "rt-2", "scope": "openid",
    });
    if let Some(id_token) = id_token {
        body["id_token"] = id_token.into();
    }
    body
}

fn logged_in(a: &Arc<Key>, sub: &str) -> onesoidc_flows::TokenSet {
    onesoidc_flows::TokenSet {
        access_token: "at-1".to_string().into(),
        token_type: "Bearer".into(),
        expires_at: None,
        refresh_token: Some("rt-1".to_string().into()),
        id_token: Some(a.id_token(sub).into()),
        scope: None,
        dpop_jkt: None,
    }
}

/// alice's tokens from a login, their ID token (signed by `key`) validated:
/// the provider's keys are cached.
async fn validated_login(client: &OnesIdClient, key: &Arc<Key>) -> onesoidc_flows::TokenSet {
    use onesoidc_core::ExposeSecret;
    let tokens = logged_in(key, "alice");
    client
        .validate_id_token(tokens.id_token.as_ref().unwrap().expose_secret())
        .await
        .unwrap();
    tokens
}

#[tokio::test(start_paused = true)]
async fn a_refreshed_id_token_is_validated_and_keeps_the_subject() {
    use onesoidc_core::ExposeSecret;
    let a = Key::new("a");
    let (provider, client) = setup(3600, vec![a.clone()]);
    let before = logged_in(&a, "alice");

    *provider.tokens.lock().unwrap() = tokens(Some(a.id_token("alice")));
    let after = client.refresh(&before).await.unwrap();
    assert_eq!(after.access_token.expose_secret(), "at-2");

    *provider.tokens.lock().unwrap() = tokens(Some(a.id_token("mallory")));
    let err = client.refresh(&before).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdToken {
                source: IdTokenError::ChangedOnRefresh { claim: "sub" },
                ..
            }
        ),
        "{err}"
    );

    // Another subject is refused even when the token cannot be verified:
    // the new tokens are never installed for another person.
    let forged = Key::new("a"); // same kid, another key: a bad signature
    *provider.tokens.lock().unwrap() = tokens(Some(forged.id_token("mallory")));
    let err = client.refresh(&before).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdToken {
                source: IdTokenError::ChangedOnRefresh { claim: "sub" },
                ..
            }
        ),
        "{err}"
    );

    // A signature that does not verify, even with the keys fetched again,
    // for the same subject: the rotated refresh token is kept, with the ID
    // token validated before, and the report says why.
    let fetched = fetches(&provider);
    *provider.tokens.lock().unwrap() = tokens(Some(forged.id_token("alice")));
    let refreshed = client.refresh_with_report(&before).await.unwrap();
    assert_eq!(
        fetches(&provider),
        fetched + 1,
        "the keys were fetched again"
    );
    assert_eq!(
        refreshed.tokens.refresh_token.unwrap().expose_secret(),
        "rt-2"
    );
    assert_eq!(
        refreshed.tokens.id_token.unwrap().expose_secret(),
        before.id_token.as_ref().unwrap().expose_secret()
    );
    let rejected = refreshed
        .id_token_rejected
        .expect("a rejection is reported");
    assert!(
        matches!(
            *rejected,
            Error::IdToken {
                source: IdTokenError::BadSignature,
                ..
            }
        ),
        "{rejected}"
    );
    assert!(refreshed.device_clock.is_none());
}

/// The provider rotated its signing key seconds after we fetched its keys:
/// the refresh's ID token names a `kid` we lack, and the once-a-minute
/// limit on unknown `kid`s would refuse it. A refresh fetches the keys
/// again at once, validates the new ID token and keeps everything.
#[tokio::test(start_paused = true)]
async fn a_key_rotated_within_the_minute_is_fetched_for_a_refresh() {
    use onesoidc_core::ExposeSecret;
    let (a, b) = (Key::new("a"), Key::new("b"));
    let (provider, client) = setup(3600, vec![a.clone()]);
    let before = validated_login(&client, &a).await;
    assert_eq!(fetches(&provider), 1);

    tokio::time::sleep(Duration::from_secs(10)).await;
    *provider.keys.lock().unwrap() = vec![b.clone(), a.clone()];
    let rotated_id_token = b.id_token("alice");
    *provider.tokens.lock().unwrap() = tokens(Some(rotated_id_token.clone()));
    let refreshed = client.refresh_with_report(&before).await.unwrap();
    assert!(
        refreshed.id_token_rejected.is_none(),
        "{:?}",
        refreshed.id_token_rejected
    );
    assert_eq!(fetches(&provider), 2);
    assert_eq!(
        refreshed.tokens.id_token.unwrap().expose_secret(),
        rotated_id_token,
        "the new ID token, validated with the new key"
    );
    assert_eq!(
        refreshed.tokens.refresh_token.unwrap().expose_secret(),
        "rt-2"
    );
}

/// The new key signs with an algorithm the cached discovery document does
/// not list (ES384; the list says ES256): the keys fetched again name it
/// (`alg` of the key), and the refresh's ID token is accepted.
#[tokio::test(start_paused = true)]
async fn an_algorithm_missing_from_the_cached_list_is_taken_from_the_fresh_keys() {
    use onesoidc_core::ExposeSecret;
    let a = Key::new("a");
    let (provider, client) = setup(3600, vec![a.clone()]);
    let before = validated_login(&client, &a).await;
    let p384 = Arc::new(Es384Key(PemSigner::generate(KeyType::EccP384).unwrap()));
    let mut jwk = p384.0.public_jwk();
    jwk.kid = Some("c".into());
    assert_eq!(jwk.alg.as_deref(), Some("ES384"));
    provider.extra_jwks.lock().unwrap().push(jwk);
    let now = unix_seconds(SystemTime::now());
    let id_token = sign_jwt(
        p384.as_ref(),
        &serde_json::json!({
            "iss": format!("{HOST}/oidc"), "aud": CLIENT_ID, "sub": "alice",
            "iat": now, "exp": now + 3600,
        }),
    )
    .unwrap();
    *provider.tokens.lock().unwrap() = tokens(Some(id_token.clone()));
    let refreshed = client.refresh_with_report(&before).await.unwrap();
    assert!(
        refreshed.id_token_rejected.is_none(),
        "{:?}",
        refreshed.id_token_rejected
    );
    assert_eq!(refreshed.tokens.id_token.unwrap().expose_secret(), id_token);
    // Outside a refresh the provider's list still pins the algorithms.
    let err = client.validate_id_token(&id_token).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdToken {
                source: IdTokenError::AlgorithmNotAllowed { .. },
                ..
            }
        ),
        "{err}"
    );
}

/// An ES384 key with `kid` `c`.
#[derive(Debug)]
struct Es384Key(PemSigner);

impl Signer for Es384Key {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::ES384
    }

    fn key_id(&self) -> Option<&str> {
        Some("c")
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.0.sign(input)
    }
}

/// A device clock 2 min ahead of the provider's: the refreshed ID token
/// (valid for 30 s) looks expired to the device. The rotated refresh token
/// and the new access token are kept (with the previous ID token), and the
/// report and its error say the device clock is ahead, from the token
/// endpoint's `Date` header.
#[tokio::test(start_paused = true)]
async fn a_device_clock_two_minutes_ahead_keeps_the_rotated_refresh_token_and_says_so() {
    use onesoidc_core::ExposeSecret;
    let a = Key::new("a");
    let (provider, client) = setup_ahead(3600, vec![a.clone()], Duration::from_secs(120));
    let before = logged_in(&a, "alice");
    *provider.tokens.lock().unwrap() =
        tokens(Some(a.id_token_for("alice", Duration::from_secs(30))));
    let refreshed = client.refresh_with_report(&before).await.unwrap();
    assert_eq!(
        refreshed.tokens.refresh_token.unwrap().expose_secret(),
        "rt-2"
    );
    assert_eq!(refreshed.tokens.access_token.expose_secret(), "at-2");
    assert_eq!(
        refreshed.tokens.id_token.unwrap().expose_secret(),
        before.id_token.as_ref().unwrap().expose_secret()
    );
    let offset = refreshed.device_clock.expect("the clock is reported");
    assert!(
        (119..=121).contains(&offset.device_ahead_secs()),
        "{offset}"
    );
    let rejected = refreshed
        .id_token_rejected
        .expect("the rejection is reported");
    assert_eq!(rejected.device_clock_offset(), Some(offset));
    let message = rejected.to_string();
    assert!(
        message.contains("expired") && message.contains("s ahead of the provider's"),
        "{message}"
    );

    // The same with the clocks right: the ID token is accepted.
    let (provider, client) = setup(3600, vec![a.clone()]);
    *provider.tokens.lock().unwrap() =
        tokens(Some(a.id_token_for("alice", Duration::from_secs(30))));
    let refreshed = client.refresh_with_report(&before).await.unwrap();
    assert!(refreshed.id_token_rejected.is_none() && refreshed.device_clock.is_none());
}

#[tokio::test(start_paused = true)]
async fn keys_out_of_reach_keep_the_refreshed_tokens_and_the_old_id_token() {
    use onesoidc_core::ExposeSecret;
    let a = Key::new("a");
    let (provider, client) = setup(3600, vec![a.clone()]);
    let before = logged_in(&a, "alice");
    provider.jwks_down.store(true, Ordering::SeqCst);
    *provider.tokens.lock().unwrap() = tokens(Some(a.id_token("alice")));
    let after = client.refresh(&before).await.unwrap();
    assert_eq!(
        after.refresh_token.unwrap().expose_secret(),
        "rt-2",
        "the rotated refresh token is kept"
    );
    assert_eq!(
        after.id_token.unwrap().expose_secret(),
        before.id_token.unwrap().expose_secret(),
        "the ID token validated before stays"
    );
}

#[tokio::test(start_paused = true)]
async fn a_login_without_an_id_token_is_refused() {
    let a = Key::new("a");
    let (provider, client) = setup(3600, vec![a]);
    *provider.tokens.lock().unwrap() = tokens(None);
    let err = client
        .ciba(&onesoidc_flows::CibaRequest::for_username("alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdToken {
                source: IdTokenError::Missing,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no ID token"), "{err}");
}

/// Collects the messages of `warn` events, to see what the cache says.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl std::io::Write for Warnings {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn keys_out_of_reach_after_their_lifetime_are_still_used_and_said_so() {
    let warnings = Warnings::default();
    let writer = warnings.clone();
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let a = Key::new("a");
    let (provider, client) = setup(600, vec![a.clone()]);
    client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap();
    assert_eq!(fetches(&provider), 1);

    // Past the lifetime the provider's keys are out of reach: the keys of
    // the last fetch stay in use, and a warning says so.
    provider.jwks_down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(601)).await;
    client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap();
    let said = warnings.0.lock().unwrap().concat();
    assert!(said.contains("stale-if-error"), "{said}");
    assert_eq!(said.matches("stale-if-error").count(), 1);

    // No new attempt for a minute (the failed attempt was not counted as a fetch).
    tokio::time::sleep(Duration::from_secs(59)).await;
    client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap();
    assert_eq!(
        warnings
            .0
            .lock()
            .unwrap()
            .concat()
            .matches("stale-if-error")
            .count(),
        1
    );

    // The provider is back: the next attempt fetches.
    provider.jwks_down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap();
    assert_eq!(fetches(&provider), 2);

    // Stale keys are used for at most a day past their lifetime.
    provider.jwks_down.store(true, Ordering::SeqCst);
    tokio::time::sleep(onesoidc_flows::JWKS_STALE_IF_ERROR + Duration::from_secs(601)).await;
    let err = client
        .validate_id_token(&a.id_token("alice"))
        .await
        .unwrap_err();
    assert!(err.is_network() || err.to_string().contains("503"), "{err}");
}

/// A login with the device clock 2 min ahead: its ID token (valid for 30 s)
/// looks expired, and the error says the device clock is ahead, from the
/// token endpoint's `Date` header.
#[tokio::test(start_paused = true)]
async fn a_login_with_the_device_clock_ahead_names_the_clock_in_its_error() {
    let a = Key::new("a");
    let (provider, client) = setup_ahead(3600, vec![a.clone()], Duration::from_secs(120));
    *provider.tokens.lock().unwrap() =
        tokens(Some(a.id_token_for("alice", Duration::from_secs(30))));
    let err = client
        .ciba(&onesoidc_flows::CibaRequest::for_username("alice"))
        .await
        .unwrap_err();
    let offset = err.device_clock_offset().expect("the clock is named");
    assert!(
        (119..=121).contains(&offset.device_ahead_secs()),
        "{offset}"
    );
    assert!(
        matches!(
            err,
            Error::DeviceClockOff { ref source, .. } if matches!(**source, Error::IdToken {
                source: IdTokenError::Expired { .. },
                ..
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("s ahead of the provider's"),
        "{err}"
    );
}
