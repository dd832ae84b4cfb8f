//! The checker against a scripted provider (no sockets): the keys come from
//! the shared JWKS cache (a rotated key is fetched once), several issuers
//! each with their own keys, a DPoP-bound token sent as Bearer is refused,
//! keys out of reach make a 503, not a 401, and a verified token is kept
//! (by hash) with its time claims still checked on every request.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use onesoidc_core::{
    AccessTokenError, JwsAlgorithm, KeyType, PemSigner, PublicJwk, SignError, Signer,
    sign_typed_jwt, unix_seconds,
};
use onesoidc_http::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError};
use onesoidc_resource::{Refusal, ResourceServer};

const AUDIENCE: &str = "https://vhh.example.com";

#[derive(Debug)]
struct Key {
    signer: PemSigner,
    kid: String,
}

impl Signer for Key {
    fn algorithm(&self) -> JwsAlgorithm {
        self.signer.algorithm()
    }
    fn key_id(&self) -> Option<&str> {
        Some(&self.kid)
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.signer.sign(input)
    }
}

impl Key {
    fn new(kid: &str) -> Arc<Key> {
        Arc::new(Key {
            signer: PemSigner::generate(KeyType::EccP256).unwrap(),
            kid: kid.into(),
        })
    }

    fn jwk(&self) -> PublicJwk {
        PublicJwk {
            kid: Some(self.kid.clone()),
            ..self.signer.public_jwk()
        }
    }

    fn token(&self, issuer: &str, extra: serde_json::Value) -> String {
        let now = unix_seconds(SystemTime::now());
        let mut claims = serde_json::json!({
            "iss": issuer, "aud": AUDIENCE, "sub": "alice", "client_id": "kiosk",
            "iat": now, "exp": now + 300, "jti": "t1",
        });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        sign_typed_jwt(self, "at+jwt", &claims).unwrap()
    }
}

/// Serves `https://<name>.test/jwks` with the keys it has for `<name>`.
#[derive(Default)]
struct Provider {
    keys: Mutex<Vec<(String, Arc<Key>)>>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

impl HttpClient for Provider {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let host = request.uri().host().unwrap_or_default().to_string();
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Ok(http::Response::builder()
                    .status(503)
                    .body(Vec::new())
                    .unwrap());
            }
            let keys: Vec<PublicJwk> = self
                .keys
                .lock()
                .unwrap()
                .iter()
                .filter(|(name, _)| format!("{name}.test") == host)
                .map(|(_, key)| key.jwk())
                .collect();
            let body = serde_json::json!({ "keys": keys }).to_string();
            Ok(http::Response::builder()
                .status(200)
                .body(body.into_bytes())
                .unwrap())
        })
    }
}

async fn server(provider: &Arc<Provider>) -> ResourceServer {
    ResourceServer::builder()
        .issuer("https://a.test/oidc")
        .jwks_uri("https://a.test/jwks")
        .issuer("https://b.test/oidc")
        .jwks_uri("https://b.test/jwks")
        .audience(AUDIENCE)
        .http(provider.clone())
        .build()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_issuer_has_its_keys_and_a_rotated_key_is_fetched_once() {
    let (a1, b1) = (Key::new("a1"), Key::new("b1"));
    let provider = Arc::new(Provider::default());
    provider
        .keys
        .lock()
        .unwrap()
        .extend([("a".into(), a1.clone()), ("b".into(), b1.clone())]);
    let server = server(&provider).await;

    let claims = server
        .check_token(&a1.token("https://a.test/oidc", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(claims.iss, "https://a.test/oidc");
    server
        .check_token(&b1.token("https://b.test/oidc", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        2,
        "one fetch per issuer"
    );

    // b's key signing a token that claims to be a's: a's keys do not know it.
    let refused = server
        .check_token(&b1.token("https://a.test/oidc", serde_json::json!({})))
        .await;
    assert!(
        matches!(
            refused,
            Err(Refusal::InvalidToken(AccessTokenError::UnknownKeyId(_)))
        ),
        "{refused:?}"
    );
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        2,
        "no refetch within a minute of the last fetch"
    );

    // a rotates to a2; a minute after the last fetch, one fetch picks it up.
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    let a2 = Key::new("a2");
    provider.keys.lock().unwrap().push(("a".into(), a2.clone()));
    server
        .check_token(&a2.token("https://a.test/oidc", serde_json::json!({})))
        .await
        .unwrap();
    server
        .check_token(&a2.token("https://a.test/oidc", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dpop_bound_token_sent_as_bearer_is_refused() {
    let a1 = Key::new("a1");
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push(("a".into(), a1.clone()));
    let server = server(&provider).await;
    let bound = a1.token(
        "https://a.test/oidc",
        serde_json::json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
    );
    let refused = server.check_token(&bound).await.unwrap_err();
    assert!(
        matches!(refused, Refusal::InvalidToken(AccessTokenError::BoundToKey)),
        "{refused:?}"
    );
    assert_eq!(refused.status(), 401);
}

#[tokio::test(start_paused = true)]
async fn keys_out_of_reach_make_a_503_not_a_401() {
    let a1 = Key::new("a1");
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push(("a".into(), a1.clone()));
    provider.down.store(true, Ordering::SeqCst);
    let server = server(&provider).await;
    let refused = server
        .check_token(&a1.token("https://a.test/oidc", serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(matches!(refused, Refusal::Unavailable(_)), "{refused:?}");
    assert_eq!(refused.status(), 503);
    assert!(refused.www_authenticate().is_none());
}

/// A verified JWT is kept by the hash of the whole token: sent again, it
/// needs no key (here its key is gone from the provider's JWKS, refetched
/// after an hour), a changed byte is another token, and its `exp` is still
/// checked on every request.
#[tokio::test(start_paused = true)]
async fn a_verified_token_is_kept_but_its_expiry_still_counts() {
    let a1 = Key::new("a1");
    let provider = Arc::new(Provider::default());
    provider.keys.lock().unwrap().push(("a".into(), a1.clone()));
    let ahead = Arc::new(AtomicU64::new(0));
    let build = |max_age: Duration| {
        let ahead = ahead.clone();
        ResourceServer::builder()
            .issuer("https://a.test/oidc")
            .jwks_uri("https://a.test/jwks")
            .audience(AUDIENCE)
            .http(provider.clone())
            .verified_token_cache_max_age(max_age)
            .clock(move || SystemTime::now() + Duration::from_secs(ahead.load(Ordering::SeqCst)))
            .build()
    };
    let cached = build(Duration::from_secs(7200)).await.unwrap();
    let uncached = build(Duration::ZERO).await.unwrap();
    let exp = unix_seconds(SystemTime::now()) + 3 * 3600;
    let token = a1.token("https://a.test/oidc", serde_json::json!({ "exp": exp }));
    cached.check_token(&token).await.unwrap();
    uncached.check_token(&token).await.unwrap();
    let mut changed = token.clone();
    changed.replace_range(changed.len() - 4.., "AAAA");
    let refused = cached.check_token(&changed).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Refusal::InvalidToken(AccessTokenError::BadSignature)
        ),
        "{refused:?}"
    );

    // The provider drops the key; an hour on, the key set is fetched again.
    provider.keys.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(3601)).await;
    let fetches = provider.fetches.load(Ordering::SeqCst);
    cached.check_token(&token).await.unwrap();
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        fetches,
        "a kept token needs no key"
    );
    let refused = uncached.check_token(&token).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Refusal::InvalidToken(AccessTokenError::UnknownKeyId(_))
        ),
        "{refused:?}"
    );

    // Past `exp` and the 60 s skew, the kept token is refused.
    ahead.store(3 * 3600 + 61, Ordering::SeqCst);
    let refused = cached.check_token(&token).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Refusal::InvalidToken(AccessTokenError::Expired { .. })
        ),
        "{refused:?}"
    );
}
