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
        let now = unix_seconds(SystemTime::now());
        let claims = serde_json::json!({
            "iss": format!("{HOST}/oidc"), "aud": CLIENT_ID, "sub": sub,
            "iat": now, "exp": now + 3600,
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
                "/oidc/token" => json(self.tokens.lock().unwrap().clone(), None),
                "/oidc/backchannel" => json(
                    serde_json::json!({"auth_req_id": "r1", "expires_in": 60, "interval": 1}),
                    None,
                ),
                "/oidc/jwks" => {
                    // Give concurrent callers every chance to pile up.
                    tokio::task::yield_now().await;
                    self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    let keys: Vec<PublicJwk> =
                        self.keys.lock().unwrap().iter().map(|k| k.jwk()).collect();
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
    let provider = Arc::new(Provider {
        keys: Mutex::new(keys),
        max_age,
        jwks_fetches: AtomicUsize::new(0),
        jwks_down: Default::default(),
        tokens: Mutex::new(serde_json::json!({})),
    });
    let yaml = format!(
        "id: d\nclient_id: {CLIENT_ID}\nhost: {HOST}\nkey_type: ECC:p256\nkey_security: default\n"
    );
    let config = DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).unwrap();
    let identity = DeviceIdentity::from_parts(
        config,
        Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
    );
    let client = OnesIdClient::new(identity, provider.clone()).unwrap();
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
    }
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

    let forged = Key::new("a"); // same kid, another key: a bad signature
    *provider.tokens.lock().unwrap() = tokens(Some(forged.id_token("alice")));
    let err = client.refresh(&before).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdToken {
                source: IdTokenError::BadSignature,
                ..
            }
        ),
        "{err}"
    );
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
