//! DPoP-bound tokens through the layer in a real axum server on loopback,
//! driven by reqwest: a valid proof is accepted, its replay refused, a
//! proof by another key refused, a bound token sent as Bearer refused; the
//! exact `WWW-Authenticate` of RFC 9449 §7.1.

use std::sync::Arc;
use std::time::SystemTime;

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
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    let claims = json!({
        "jti": jti, "htm": method, "htu": url,
        "iat": unix_seconds(SystemTime::now()), "ath": dpop_access_token_hash(token),
    });
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
