//! DPoP-bound tokens through the layer in a real axum server on loopback,
//! driven by reqwest: a valid proof is accepted, its replay refused, a
//! proof by another key refused, a bound token sent as Bearer refused; the
//! exact `WWW-Authenticate` of RFC 9449 §7.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{
    JwsAlgorithm, KeyType, PemSigner, PublicJwk, SignError, Signer, dpop_access_token_hash,
    sign_typed_jwt, unix_seconds,
};
use onesoidc_http::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError};
use onesoidc_resource::{Authenticated, ResourceServer, ResourceServerBuilder};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://vhh.example.com";
const ISSUER: &str = "https://idp.test/oidc";
const DPOP_CHALLENGE: &str =
    r#"DPoP error="invalid_dpop_proof", algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256""#;

/// The provider's signing key, trusted by the server through [`Jwks`].
#[derive(Debug)]
struct ProviderKey(PemSigner);

impl Signer for ProviderKey {
    fn algorithm(&self) -> JwsAlgorithm {
        self.0.algorithm()
    }
    fn key_id(&self) -> Option<&str> {
        Some("provider-1")
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.0.sign(input)
    }
}

/// Serves the provider key's JWKS for any request.
struct Jwks(PublicJwk);

impl HttpClient for Jwks {
    fn execute(&self, _: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let body = json!({ "keys": [self.0] }).to_string();
        Box::pin(async move {
            Ok(http::Response::builder()
                .status(200)
                .body(body.into_bytes())
                .unwrap())
        })
    }
}

struct Setup {
    base: String,
    provider: Arc<ProviderKey>,
    client_key: PemSigner,
}

/// Serves `/orders` (GET, POST) and `/other` (POST) behind the layer on a
/// loopback port, trusting `provider`; `configure` adds to the builder
/// (whose public URL is the server's own unless it sets another).
async fn serve(
    provider: &ProviderKey,
    configure: impl FnOnce(ResourceServerBuilder) -> ResourceServerBuilder,
) -> String {
    let jwk = PublicJwk {
        kid: Some("provider-1".into()),
        ..provider.0.public_jwk()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let builder = ResourceServer::builder()
        .issuer(ISSUER)
        .jwks_uri("https://idp.test/jwks")
        .audience(AUDIENCE)
        .public_url(&base)
        .http(Jwks(jwk));
    let server = configure(builder).build().await.unwrap();
    let handler = |who: Authenticated| async move { who.sub.clone() };
    let app = Router::new()
        .route("/orders", get(handler).post(handler))
        .route("/other", post(handler))
        .layer(server.layer());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

impl Setup {
    async fn start() -> Setup {
        let provider = Arc::new(ProviderKey(PemSigner::generate(KeyType::EccP256).unwrap()));
        Setup {
            base: serve(&provider, |b| b).await,
            provider,
            client_key: PemSigner::generate(KeyType::EccP256).unwrap(),
        }
    }

    /// An access token bound to the client's key (`cnf.jkt`).
    fn bound_token(&self) -> String {
        let now = unix_seconds(SystemTime::now());
        let jkt = self.client_key.public_jwk().thumbprint().unwrap();
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "kiosk",
            "iat": now, "exp": now + 300, "jti": "t1", "cnf": {"jkt": jkt},
        });
        sign_typed_jwt(self.provider.as_ref(), "at+jwt", &claims).unwrap()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: &str,
        proof: Option<&str>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send().await.unwrap()
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A DPoP proof by `key` for `method` `url` and `token`.
fn proof(key: &PemSigner, method: &str, url: &str, token: &str, jti: &str) -> String {
    proof_at(key, method, url, token, jti, None, SystemTime::now())
}

/// A DPoP proof made at `now`, with `nonce` if given.
fn proof_at(
    key: &PemSigner,
    method: &str,
    url: &str,
    token: &str,
    jti: &str,
    nonce: Option<&str>,
    now: SystemTime,
) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    let mut claims = json!({
        "jti": jti, "htm": method, "htu": url,
        "iat": unix_seconds(now), "ath": dpop_access_token_hash(token),
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn challenge(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn a_valid_proof_is_accepted_once() {
    let setup = Setup::start().await;
    let token = setup.bound_token();
    let url = format!("{}/orders", setup.base);
    let p = proof(&setup.client_key, "GET", &url, &token, "proof-1");
    let auth = format!("DPoP {token}");

    let accepted = setup
        .send(reqwest::Method::GET, "/orders?page=2", &auth, Some(&p))
        .await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.text().await.unwrap(), "alice");

    let replayed = setup
        .send(reqwest::Method::GET, "/orders?page=2", &auth, Some(&p))
        .await;
    assert_eq!(replayed.status(), 401);
    assert_eq!(challenge(&replayed), DPOP_CHALLENGE);
}

#[tokio::test]
async fn a_proof_for_another_request_key_or_without_one_is_refused() {
    let setup = Setup::start().await;
    let token = setup.bound_token();
    let auth = format!("DPoP {token}");
    let url = format!("{}/orders", setup.base);
    let other_key = PemSigner::generate(KeyType::EccP256).unwrap();
    let cases = [
        (
            "another key",
            reqwest::Method::GET,
            "/orders",
            Some(proof(&other_key, "GET", &url, &token, "p-1")),
        ),
        (
            "another method",
            reqwest::Method::POST,
            "/orders",
            Some(proof(&setup.client_key, "GET", &url, &token, "p-2")),
        ),
        (
            "another path",
            reqwest::Method::POST,
            "/other",
            Some(proof(&setup.client_key, "POST", &url, &token, "p-3")),
        ),
        (
            "another token",
            reqwest::Method::GET,
            "/orders",
            Some(proof(&setup.client_key, "GET", &url, "other", "p-4")),
        ),
        ("no proof", reqwest::Method::GET, "/orders", None),
    ];
    for (name, method, path, p) in cases {
        let refused = setup.send(method, path, &auth, p.as_deref()).await;
        assert_eq!(refused.status(), 401, "{name}");
        assert_eq!(challenge(&refused), DPOP_CHALLENGE, "{name}");
    }
    // A changed token sent as DPoP: the token itself is refused, in the DPoP scheme.
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let refused = setup
        .send(
            reqwest::Method::GET,
            "/orders",
            &format!("DPoP {forged}"),
            Some(&proof(&setup.client_key, "GET", &url, &forged, "p-6")),
        )
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        challenge(&refused),
        r#"DPoP error="invalid_token", algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256""#
    );
    // The proof-less refusals did not spend a good proof's jti.
    let good = proof(&setup.client_key, "GET", &url, &token, "p-5");
    let accepted = setup
        .send(reqwest::Method::GET, "/orders", &auth, Some(&good))
        .await;
    assert_eq!(accepted.status(), 200);
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_is_refused_even_with_a_proof() {
    let setup = Setup::start().await;
    let token = setup.bound_token();
    let url = format!("{}/orders", setup.base);
    let p = proof(&setup.client_key, "GET", &url, &token, "proof-1");
    let refused = setup
        .send(
            reqwest::Method::GET,
            "/orders",
            &format!("Bearer {token}"),
            Some(&p),
        )
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge(&refused), r#"Bearer error="invalid_token""#);
}

#[cfg(feature = "redis")]
#[path = "../../onesoidc-tokens/tests/support/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

/// Two instances of one application (one public URL) sharing a private
/// redis-server: a proof accepted by one is a replay at the other.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_proof_accepted_by_one_instance_is_refused_by_another_sharing_redis() {
    let Some(binary) = redis_server::RedisServer::binary() else {
        return;
    };
    let redis = redis_server::RedisServer::start(binary).unwrap();
    let mut setup = Setup::start().await;
    const PUBLIC: &str = "https://app.example";
    let configure = |b: ResourceServerBuilder| {
        b.public_url(PUBLIC)
            .dpop_replay_redis(redis.url(), Some("test:dpop:".into()))
    };
    let first = serve(&setup.provider, configure).await;
    let second = serve(&setup.provider, configure).await;
    let token = setup.bound_token();
    let auth = format!("DPoP {token}");
    let p = proof(
        &setup.client_key,
        "GET",
        &format!("{PUBLIC}/orders"),
        &token,
        "shared-1",
    );

    setup.base = first;
    let accepted = setup
        .send(reqwest::Method::GET, "/orders", &auth, Some(&p))
        .await;
    assert_eq!(accepted.status(), 200);
    setup.base = second;
    let replayed = setup
        .send(reqwest::Method::GET, "/orders", &auth, Some(&p))
        .await;
    assert_eq!(replayed.status(), 401);
    assert_eq!(challenge(&replayed), DPOP_CHALLENGE);
}

const NONCE_CHALLENGE: &str =
    r#"DPoP error="use_dpop_nonce", algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256""#;
const NONCE_SECRET: &[u8] = b"a secret of 32 bytes or more, shared";

fn nonce(response: &reqwest::Response) -> Option<String> {
    let value = response.headers().get("dpop-nonce")?;
    Some(value.to_str().unwrap().to_string())
}

/// A clock that stands still until the test moves it, shared by the
/// servers and the proofs, so no nonce window turns over mid-test.
#[derive(Clone)]
struct TestClock {
    start: SystemTime,
    ahead: Arc<AtomicU64>,
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock {
            start: SystemTime::now(),
            ahead: Arc::default(),
        }
    }
}

impl TestClock {
    fn now(&self) -> SystemTime {
        self.start + Duration::from_secs(self.ahead.load(Ordering::SeqCst))
    }
    fn advance(&self, secs: u64) {
        self.ahead.fetch_add(secs, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_server_nonce_is_required_and_sent_on_every_dpop_answer() {
    let mut setup = Setup::start().await;
    let clock = TestClock::default();
    let now = clock.now();
    setup.base = serve(&setup.provider, |b| {
        b.dpop_nonce(NONCE_SECRET).clock(move || clock.now())
    })
    .await;
    let token = setup.bound_token();
    let auth = format!("DPoP {token}");
    let url = format!("{}/orders", setup.base);
    let key = &setup.client_key;

    // No nonce: 401 use_dpop_nonce, with the nonce to use.
    let p = proof_at(key, "GET", &url, &token, "n-1", None, now);
    let challenged = setup
        .send(reqwest::Method::GET, "/orders", &auth, Some(&p))
        .await;
    assert_eq!(challenged.status(), 401);
    assert_eq!(challenge(&challenged), NONCE_CHALLENGE);
    let issued = nonce(&challenged).expect("a DPoP-Nonce header");
    assert_eq!(issued.len(), 43);

    // A nonce this server did not issue: the same answer.
    let p = proof_at(key, "GET", &url, &token, "n-2", Some("made-up"), now);
    let refused = setup
        .send(reqwest::Method::GET, "/orders", &auth, Some(&p))
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge(&refused), NONCE_CHALLENGE);
    assert_eq!(nonce(&refused).as_deref(), Some(issued.as_str()));

    // With it: accepted, and the answer carries the current nonce too.
    let p = proof_at(key, "GET", &url, &token, "n-3", Some(&issued), now);
    let accepted = setup
        .send(reqwest::Method::GET, "/orders", &auth, Some(&p))
        .await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(nonce(&accepted).as_deref(), Some(issued.as_str()));

    // Another DPoP refusal carries it as well; a Bearer request does not.
    let p = proof_at(key, "POST", &url, &token, "n-4", Some(&issued), now);
    let refused = setup
        .send(reqwest::Method::GET, "/orders", &auth, Some(&p))
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge(&refused), DPOP_CHALLENGE);
    assert_eq!(nonce(&refused).as_deref(), Some(issued.as_str()));
    let bearer = setup
        .send(reqwest::Method::GET, "/orders", "Bearer opaque", None)
        .await;
    assert_eq!(bearer.status(), 401);
    assert_eq!(nonce(&bearer), None);
}

/// Two instances of one application given the same secret accept each
/// other's nonces; a nonce is good in its window and the next, then
/// refused with the current one in `DPoP-Nonce`; another secret's is refused.
#[tokio::test]
async fn instances_sharing_the_secret_accept_each_others_nonce_until_it_rotates_out() {
    let mut setup = Setup::start().await;
    const PUBLIC: &str = "https://app.example";
    let clock = TestClock::default();
    let configure = |secret: &'static [u8]| {
        let clock = clock.clone();
        move |b: ResourceServerBuilder| {
            b.public_url(PUBLIC)
                .dpop_nonce(secret)
                .dpop_nonce_window(Duration::from_secs(60))
                .clock(move || clock.now())
        }
    };
    let first = serve(&setup.provider, configure(NONCE_SECRET)).await;
    let second = serve(&setup.provider, configure(NONCE_SECRET)).await;
    let stranger = serve(
        &setup.provider,
        configure(b"another secret, 32 bytes or more"),
    )
    .await;
    let token = setup.bound_token();
    let auth = format!("DPoP {token}");
    let url = format!("{PUBLIC}/orders");
    let mut jti = 0;
    let mut send = async |setup: &mut Setup, base: &str, nonce: Option<&str>| {
        jti += 1;
        let p = proof_at(
            &setup.client_key,
            "GET",
            &url,
            &token,
            &format!("r-{jti}"),
            nonce,
            clock.now(),
        );
        setup.base = base.to_string();
        setup
            .send(reqwest::Method::GET, "/orders", &auth, Some(&p))
            .await
    };

    let challenged = send(&mut setup, &first, None).await;
    assert_eq!(challenge(&challenged), NONCE_CHALLENGE);
    let issued = nonce(&challenged).unwrap();
    let accepted = send(&mut setup, &second, Some(&issued)).await;
    assert_eq!(accepted.status(), 200, "the other instance's nonce");
    let refused = send(&mut setup, &stranger, Some(&issued)).await;
    assert_eq!(refused.status(), 401, "another secret");
    assert_eq!(challenge(&refused), NONCE_CHALLENGE);

    // One window on: still accepted, and the answer gives the new nonce.
    clock.advance(60);
    let accepted = send(&mut setup, &first, Some(&issued)).await;
    assert_eq!(accepted.status(), 200, "the previous window's nonce");
    let next = nonce(&accepted).unwrap();
    assert_ne!(next, issued, "rotated");

    // Two windows on: rotated out, refused with the current nonce.
    clock.advance(60);
    let refused = send(&mut setup, &second, Some(&issued)).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(challenge(&refused), NONCE_CHALLENGE);
    let current = nonce(&refused).unwrap();
    assert_ne!(current, issued);
    assert_ne!(current, next);
    let accepted = send(&mut setup, &first, Some(&current)).await;
    assert_eq!(accepted.status(), 200);
}

#[tokio::test]
async fn a_short_nonce_secret_is_refused_at_build() {
    let error = ResourceServer::builder()
        .issuer(ISSUER)
        .jwks_uri("https://idp.test/jwks")
        .audience(AUDIENCE)
        .dpop_nonce("too short")
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            onesoidc_resource::BuildError::ShortDpopNonceSecret(9)
        ),
        "{error}"
    );
}

const OPAQUE_PROVIDER: &str = "https://idp.example.com";

/// A provider whose discovery and introspection answer every request: its
/// opaque tokens are active, for [`AUDIENCE`], and bound to `jkt`.
struct IntrospectsBound {
    jkt: String,
}

impl HttpClient for IntrospectsBound {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let oidc = format!("{OPAQUE_PROVIDER}/oidc");
        let body = if request.uri().path().ends_with("openid-configuration") {
            json!({
                "issuer": oidc,
                "token_endpoint": format!("{oidc}/token"),
                "backchannel_authentication_endpoint": format!("{oidc}/backchannel"),
                "introspection_endpoint": format!("{oidc}/token/introspection"),
                "revocation_endpoint": format!("{oidc}/token/revocation"),
                "jwks_uri": format!("{oidc}/jwks"),
            })
        } else {
            let now = unix_seconds(SystemTime::now());
            json!({
                "active": true, "iss": oidc, "aud": AUDIENCE, "sub": "alice",
                "client_id": "kiosk", "exp": now + 300, "token_type": "DPoP",
                "cnf": {"jkt": self.jkt},
            })
        };
        Box::pin(async move {
            Ok(http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap())
        })
    }
}

/// The stolen-token test of the resource side: a bound token taken from
/// the device and sent with a proof from a freshly generated key is
/// refused, a JWT (`cnf.jkt` in the token) and an opaque token (`cnf.jkt`
/// in the introspection answer) alike; with the bound key's proof each is
/// accepted, and as `Bearer` each is refused.
#[tokio::test]
async fn a_stolen_bound_token_with_a_proof_from_another_key_is_refused() {
    let jwt = Setup::start().await;
    let identity = {
        let yaml = format!(
            "id: app-1\nclient_id: app-1\nhost: {OPAQUE_PROVIDER}\nkey_type: ECC:p256\nkey_security: default\n"
        );
        let config =
            onesoidc_core::DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).unwrap();
        onesoidc_flows::DeviceIdentity::from_parts(
            config,
            Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
        )
    };
    let jkt = jwt.client_key.public_jwk().thumbprint().unwrap();
    let introspection =
        onesoidc_flows::OnesIdClient::new(identity, IntrospectsBound { jkt }).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let opaque_base = format!("http://{}", listener.local_addr().unwrap());
    let server = ResourceServer::builder()
        .audience(AUDIENCE)
        .introspection(introspection)
        .public_url(&opaque_base)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/orders",
            get(|who: Authenticated| async move { who.sub.clone() }),
        )
        .layer(server.layer());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let opaque = Setup {
        base: opaque_base,
        provider: jwt.provider.clone(),
        client_key: PemSigner::generate(KeyType::EccP256).unwrap(),
    };

    let thief = PemSigner::generate(KeyType::EccP256).unwrap();
    for (kind, setup, token) in [
        ("JWT", &jwt, jwt.bound_token()),
        ("opaque", &opaque, "opaque-bound-token".to_string()),
    ] {
        let url = format!("{}/orders", setup.base);
        let auth = format!("DPoP {token}");
        let stolen = proof(&thief, "GET", &url, &token, "thief-1");
        let refused = setup
            .send(reqwest::Method::GET, "/orders", &auth, Some(&stolen))
            .await;
        assert_eq!(refused.status(), 401, "{kind}");
        assert_eq!(challenge(&refused), DPOP_CHALLENGE, "{kind}");
        let as_bearer = setup
            .send(
                reqwest::Method::GET,
                "/orders",
                &format!("Bearer {token}"),
                None,
            )
            .await;
        assert_eq!(as_bearer.status(), 401, "{kind}");
        assert_eq!(
            challenge(&as_bearer),
            r#"Bearer error="invalid_token""#,
            "{kind}"
        );
        let owner = proof(&jwt.client_key, "GET", &url, &token, "owner-1");
        let accepted = setup
            .send(reqwest::Method::GET, "/orders", &auth, Some(&owner))
            .await;
        assert_eq!(accepted.status(), 200, "{kind}");
        assert_eq!(accepted.text().await.unwrap(), "alice", "{kind}");
    }
}
