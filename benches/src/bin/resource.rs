//! Item 13: what `onesoidc-resource` costs an application.
//!
//! - Checks per second on one thread of an ES256 and an RS256 (2048-bit)
//!   JWT access token, keys in hand (`check_access_token`: parse, header
//!   and claim rules, signature), against bare aws-lc-rs verification of
//!   the same signature over the same input with the key already decoded,
//!   interleaved in short batches (which side goes first by coin).
//! - The same tokens and keys side by side with jwt-authorizer (the latest
//!   release, 0.15; `Authorizer::check_auth`, iss and aud validated, from
//!   the same JWKS), interleaved: our core check, and
//!   `ResourceServer::check_token` of a token sent again (kept by the
//!   verified-token cache, which jwt-authorizer does not have).
//! - An opaque token whose introspection answer is cached: one check
//!   (`ResourceServer::check_token`: hash, LRU look-up) against a bare
//!   `HashMap` look-up of a 32-byte key, interleaved; and 10,000 checks →
//!   introspection calls counted by the dev IdP.
//! - The layer's added latency: a hello-world axum server with and without
//!   the layer on loopback, requests over one keep-alive connection each,
//!   alternated; p50 of the difference, for a JWT (ES256) and a cached
//!   opaque token.
//!
//! - DPoP (RFC 9449): ES256 proofs per second on one thread:
//!   `verify_dpop_proof` against bare aws-lc-rs verification of the same
//!   proof's signature, interleaved; and the whole DPoP request check
//!   (`ResourceServer::check_request`: the bound ES256 token, kept after
//!   its first check, each proof with its own `jti`, signed beforehand,
//!   and the in-memory replay cache insert).
//!
//! `target/release/bench-resource [--rounds N] [--dpop-proofs N]`

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_benches::{Coin, arg, batch_ns, batch_size, median, row};
use onesoidc_core::{
    AccessTokenExpectations, DeviceTokenRequest, DpopProofExpectations, ExposeSecret, Issuer,
    JwsAlgorithm, KeyType, PemSigner, PublicJwk, PublicJwkSet, SignError, Signer,
    check_access_token, dpop_access_token_hash, sign_typed_jwt, unix_seconds, verify_dpop_proof,
};
use onesoidc_devidp::{AccessTokenFormat, Application, DevIdp, DevIdpConfig};
use onesoidc_flows::OnesIdClient;
use onesoidc_http::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError};
use onesoidc_resource::ResourceServer;

const ISSUER: &str = "https://idp.example.com/oidc";
const AUDIENCE: &str = "https://vhh.example.com";

#[derive(Debug)]
struct Keyed {
    signer: PemSigner,
}

impl Signer for Keyed {
    fn algorithm(&self) -> JwsAlgorithm {
        self.signer.algorithm()
    }
    fn key_id(&self) -> Option<&str> {
        Some("k1")
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.signer.sign(input)
    }
}

/// Verifies a signature over an input with a key decoded beforehand.
type BareVerify = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// A token, its JWKS, and the same signature for the bare verification.
struct Subject {
    alg: &'static str,
    token: String,
    jwks: PublicJwkSet,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    bare: BareVerify,
}

impl Subject {
    fn new(key_type: KeyType) -> Subject {
        let key = Keyed {
            signer: PemSigner::generate(key_type).unwrap(),
        };
        let now = unix_seconds(SystemTime::now());
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "kiosk-7",
            "iat": now, "exp": now + 3600, "jti": "at-1", "scope": "openid read",
        });
        let token = sign_typed_jwt(&key, "at+jwt", &claims).unwrap();
        let mut jwk = key.signer.public_jwk();
        jwk.kid = Some("k1".into());
        let (input, signature) = token.rsplit_once('.').unwrap();
        let b64 = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref().unwrap()).unwrap();
        let bare: BareVerify = if jwk.kty == "EC" {
            let mut point = vec![0x04];
            point.extend(b64(&jwk.x));
            point.extend(b64(&jwk.y));
            let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
            Box::new(move |input, sig| key.verify(input, sig).is_ok())
        } else {
            let components = PublicKeyComponents {
                n: b64(&jwk.n),
                e: b64(&jwk.e),
            };
            Box::new(move |input, sig| {
                components
                    .verify(&RSA_PKCS1_2048_8192_SHA256, input, sig)
                    .is_ok()
            })
        };
        Subject {
            alg: key.signer.algorithm().as_str(),
            signing_input: input.as_bytes().to_vec(),
            signature: URL_SAFE_NO_PAD.decode(signature).unwrap(),
            token: token.clone(),
            jwks: PublicJwkSet { keys: vec![jwk] },
            bare,
        }
    }
}

/// Interleaved batches of `ours` and `theirs`: medians in ns per call.
fn interleaved(
    rounds: usize,
    mut ours: impl FnMut() -> bool,
    mut theirs: impl FnMut() -> bool,
) -> (f64, f64) {
    assert!(ours() && theirs(), "both sides must succeed");
    let n_ours = batch_size(Duration::from_millis(20), &mut ours);
    let n_theirs = batch_size(Duration::from_millis(20), &mut theirs);
    let mut coin = Coin::seeded();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        if coin.flip() {
            a.push(batch_ns(n_ours, &mut ours));
            b.push(batch_ns(n_theirs, &mut theirs));
        } else {
            b.push(batch_ns(n_theirs, &mut theirs));
            a.push(batch_ns(n_ours, &mut ours));
        }
    }
    (median(&a), median(&b))
}

fn checks(runtime: &tokio::runtime::Runtime, rounds: usize) {
    let issuer = Issuer::new(ISSUER).unwrap();
    for key_type in [KeyType::EccP256, KeyType::Rsa2048] {
        let s = Subject::new(key_type);
        let expect = AccessTokenExpectations::new(&issuer, AUDIENCE);
        side_by_side(runtime, rounds, &s, expect);
        let (ours, bare) = interleaved(
            rounds,
            || check_access_token(&s.token, &s.jwks, expect, SystemTime::now()).is_ok(),
            || (s.bare)(&s.signing_input, &s.signature),
        );
        let share = bare / ours;
        println!("{}: check {ours:.0} ns, bare verify {bare:.0} ns", s.alg);
        row(
            "13",
            &format!(
                "{} access-token checks vs bare aws-lc-rs verify, one thread",
                s.alg
            ),
            &format!(
                "{:.0}/s vs {:.0}/s = {:.1} % (interleaved medians of {rounds})",
                1e9 / ours,
                1e9 / bare,
                share * 100.0
            ),
            "≥ 90 %",
            Some(share >= 0.9),
        );
    }
}

/// Our checks and jwt-authorizer's on the same token and JWKS, interleaved.
fn side_by_side(
    runtime: &tokio::runtime::Runtime,
    rounds: usize,
    s: &Subject,
    expect: AccessTokenExpectations<'_>,
) {
    use jwt_authorizer::{Authorizer, JwtAuthorizer, RegisteredClaims, Validation};
    let mut jwks = serde_json::to_value(&s.jwks).unwrap();
    // jsonwebtoken reads the algorithm from the JWK.
    jwks["keys"][0]["alg"] = s.alg.into();
    let theirs: Authorizer<RegisteredClaims> = runtime
        .block_on(
            JwtAuthorizer::from_jwks_text(&jwks.to_string())
                .validation(Validation::new().iss(&[ISSUER]).aud(&[AUDIENCE]))
                .build(),
        )
        .unwrap();
    let server = runtime
        .block_on(
            ResourceServer::builder()
                .issuer(ISSUER)
                .jwks_uri("https://idp.test/jwks")
                .audience(AUDIENCE)
                .http(StaticJwks(jwks.to_string()))
                .build(),
        )
        .unwrap();
    let theirs_check = || onesoidc_benches::ready(theirs.check_auth(&s.token)).is_ok();
    let (ours, other) = interleaved(
        rounds,
        || check_access_token(&s.token, &s.jwks, expect, SystemTime::now()).is_ok(),
        theirs_check,
    );
    println!(
        "{}: check {ours:.0} ns, jwt-authorizer {other:.0} ns",
        s.alg
    );
    row(
        "13",
        &format!(
            "{} checks per second, onesoidc vs jwt-authorizer 0.15 (same token and JWKS, one thread)",
            s.alg
        ),
        &format!(
            "{:.0}/s vs {:.0}/s = {:.2}× (interleaved medians of {rounds})",
            1e9 / ours,
            1e9 / other,
            other / ours
        ),
        "≥ 1.2×",
        Some(other / ours >= 1.2),
    );
    // The first check fetches the keys and verifies; the rest are kept.
    assert!(runtime.block_on(server.check_token(&s.token)).is_ok());
    let (kept, other) = interleaved(
        rounds,
        || onesoidc_benches::ready(server.check_token(&s.token)).is_ok(),
        theirs_check,
    );
    println!(
        "{}: ResourceServer, token kept {kept:.0} ns, jwt-authorizer {other:.0} ns",
        s.alg
    );
    row(
        "13",
        &format!(
            "{} the same token sent again, ResourceServer::check_token (verified-token cache) vs jwt-authorizer 0.15",
            s.alg
        ),
        &format!(
            "{:.0}/s vs {:.0}/s = {:.0}× (interleaved medians of {rounds})",
            1e9 / kept,
            1e9 / other,
            other / kept
        ),
        "n/a (jwt-authorizer keeps no verified tokens)",
        None,
    );
}

async fn dev_idp() -> (DevIdp, OnesIdClient, OnesIdClient, [tempfile::TempDir; 2]) {
    let mut config = DevIdpConfig::default();
    config.applications.push(Application {
        client_identifier: "lab".into(),
        client_id: "lab".into(),
        name: "Lab".into(),
        url: "https://lab.example.com".into(),
        access_token_format: AccessTokenFormat::Opaque,
        require_dpop: false,
    });
    let idp = DevIdp::start(config).await.unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let kiosk = idp
        .provision_device(dirs[0].path(), KeyType::EccP256)
        .unwrap();
    let app = idp
        .provision_device(dirs[1].path(), KeyType::EccP256)
        .unwrap();
    (
        idp,
        OnesIdClient::from_paths(&kiosk).unwrap(),
        OnesIdClient::from_paths(&app).unwrap(),
        dirs,
    )
}

async fn token_for(kiosk: &OnesIdClient, resource: &str) -> String {
    let request = DeviceTokenRequest::default()
        .resource(resource)
        .scope("read");
    let tokens = kiosk.device_token_with(&request).await.unwrap();
    tokens.access_token.expose_secret().to_string()
}

fn cached_opaque(runtime: &tokio::runtime::Runtime, rounds: usize) {
    runtime.block_on(async {
        let (idp, kiosk, app, _dir) = dev_idp().await;
        let server = ResourceServer::builder()
            .audience("https://lab.example.com")
            .introspection(app)
            .build()
            .await
            .unwrap();
        let opaque = token_for(&kiosk, "https://lab.example.com").await;
        let before = idp.stats().introspection_requests;
        for _ in 0..10_000 {
            server.check_token(&opaque).await.unwrap();
        }
        let calls = idp.stats().introspection_requests - before;
        let mut map: HashMap<[u8; 32], u64> = (0..10_000u64)
            .map(|i| {
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&i.to_le_bytes());
                (key, i)
            })
            .collect();
        map.insert([7; 32], 7);
        let (ours, bare) = interleaved(
            rounds,
            || onesoidc_benches::ready(server.check_token(&opaque)).is_ok(),
            || map.contains_key(std::hint::black_box(&[7u8; 32])),
        );
        println!("cached opaque: check {ours:.0} ns, bare map look-up {bare:.0} ns");
        row(
            "13",
            "opaque token, answer cached: one check beyond a bare map look-up",
            &format!(
                "{:.0} ns ({ours:.0} ns vs {bare:.0} ns; interleaved medians of {rounds})",
                ours - bare
            ),
            "≤ 1 µs",
            Some(ours - bare <= 1000.0),
        );
        row(
            "13",
            "opaque token: 10,000 checks → introspection calls",
            &calls.to_string(),
            "1",
            Some(calls == 1),
        );
        idp.shutdown().await;
    });
}

/// p50 of (with layer − without) over alternated keep-alive requests.
fn layer_latency(runtime: &tokio::runtime::Runtime, requests: usize) {
    use axum::Router;
    use axum::routing::get;
    runtime.block_on(async {
        let (idp, kiosk, app, _dir) = dev_idp().await;
        let jwt_server = ResourceServer::builder()
            .issuer(idp.issuer())
            .audience(AUDIENCE)
            .build()
            .await
            .unwrap();
        let opaque_server = ResourceServer::builder()
            .audience("https://lab.example.com")
            .introspection(app)
            .build()
            .await
            .unwrap();
        let serve = |router: Router| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, router).await });
            url
        };
        let hello = || Router::new().route("/", get(|| async { "hello" }));
        let bare = serve(hello()).await;
        let with_jwt = serve(hello().layer(jwt_server.layer())).await;
        let with_opaque = serve(hello().layer(opaque_server.layer())).await;
        let jwt = token_for(&kiosk, AUDIENCE).await;
        let opaque = token_for(&kiosk, "https://lab.example.com").await;
        for (what, url, token) in [
            ("JWT (ES256)", &with_jwt, &jwt),
            ("opaque, cached", &with_opaque, &opaque),
        ] {
            // One client per server: one keep-alive connection each.
            let plain = reqwest::Client::new();
            let layered = reqwest::Client::new();
            let bearer = format!("Bearer {token}");
            let time = |request: reqwest::RequestBuilder| async move {
                let started = Instant::now();
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                started.elapsed().as_secs_f64() * 1e6
            };
            let mut added = Vec::with_capacity(requests);
            for i in 0..requests + 100 {
                let without = time(plain.get(&bare).header("authorization", &bearer)).await;
                let with = time(layered.get(url).header("authorization", &bearer)).await;
                if i >= 100 {
                    added.push(with - without);
                }
            }
            let p50 = median(&added);
            println!("layer, {what}: p50 added {p50:.1} µs");
            row(
                "13",
                &format!("the layer's added latency, p50, hello-world axum on loopback, {what}"),
                &format!("{p50:.1} µs (median of {requests} alternated request pairs)"),
                "≤ 20 µs",
                Some(p50 <= 20.0),
            );
        }
        idp.shutdown().await;
    });
}

/// Serves one JWKS, in memory.
struct StaticJwks(String);

impl HttpClient for StaticJwks {
    fn execute(&self, _: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let body = self.0.clone().into_bytes();
        Box::pin(async move { Ok(http::Response::builder().status(200).body(body).unwrap()) })
    }
}

fn dpop(runtime: &tokio::runtime::Runtime, count: usize, rounds: usize) {
    let provider = Keyed {
        signer: PemSigner::generate(KeyType::EccP256).unwrap(),
    };
    let jwks = serde_json::json!({"keys": [PublicJwk {
        kid: Some("k1".into()),
        ..provider.signer.public_jwk()
    }]})
    .to_string();
    let client = PemSigner::generate(KeyType::EccP256).unwrap();
    let jkt = client.public_jwk().thumbprint().unwrap();
    let now = unix_seconds(SystemTime::now());
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "kiosk-7",
        "iat": now, "exp": now + 3600, "jti": "at-1", "cnf": {"jkt": jkt},
    });
    let token = sign_typed_jwt(&provider, "at+jwt", &claims).unwrap();
    let htu = "https://app.example/orders";
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let header =
        b64(&serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": client.public_jwk()}));
    let proofs: Vec<String> = (0..count)
        .map(|i| {
            let claims = serde_json::json!({"jti": format!("proof-{i}"), "htm": "GET", "htu": htu,
                "iat": now, "ath": dpop_access_token_hash(&token)});
            let input = format!("{header}.{}", b64(&claims));
            let signature = client.sign(input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
        })
        .collect();

    let url = url::Url::parse(htu).unwrap();
    let expect = DpopProofExpectations::new("GET", &url).access_token(&token, &jkt);
    // The bare side: the first proof's signature, the key decoded beforehand.
    let client_jwk = client.public_jwk();
    let mut point = vec![0x04];
    for coordinate in [&client_jwk.x, &client_jwk.y] {
        point.extend(
            URL_SAFE_NO_PAD
                .decode(coordinate.as_deref().unwrap())
                .unwrap(),
        );
    }
    let bare_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    let (input, signature) = proofs[0].rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let (verify_ns, bare_ns) = interleaved(
        rounds,
        || verify_dpop_proof(&proofs[0], &expect, SystemTime::now()).is_ok(),
        || bare_key.verify(input.as_bytes(), &signature).is_ok(),
    );
    let (verify_rate, bare_rate) = (1e9 / verify_ns, 1e9 / bare_ns);

    let server = runtime.block_on(
        ResourceServer::builder()
            .issuer(ISSUER)
            .jwks_uri("https://idp.test/jwks")
            .audience(AUDIENCE)
            .public_url("https://app.example")
            .http(StaticJwks(jwks))
            .build(),
    );
    let server = server.unwrap();
    let uri: http::Uri = "/orders".parse().unwrap();
    let request_rate = runtime.block_on(async {
        let headers = |proof: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("authorization", format!("DPoP {token}").parse().unwrap());
            headers.insert("dpop", proof.parse().unwrap());
            headers
        };
        // The first check fetches the keys: not counted.
        let method = http::Method::GET;
        assert!(
            server
                .check_request(&method, &headers(&proofs[0]), &uri)
                .await
                .is_ok()
        );
        let started = Instant::now();
        for proof in &proofs[1..] {
            let headers = headers(proof);
            assert!(server.check_request(&method, &headers, &uri).await.is_ok());
        }
        let replayed = server
            .check_request(&method, &headers(&proofs[1]), &uri)
            .await;
        assert!(replayed.is_err(), "a replayed proof must be refused");
        (count - 1) as f64 / started.elapsed().as_secs_f64()
    });
    println!(
        "DPoP ES256: verify {verify_rate:.0}/s, bare verify {bare_rate:.0}/s, whole request check {request_rate:.0}/s"
    );
    row(
        "13",
        "DPoP ES256 proof checks (verify_dpop_proof) vs bare aws-lc-rs ES256 verify, one thread",
        &format!(
            "{verify_rate:.0}/s vs {bare_rate:.0}/s = {:.1} % (interleaved medians of {rounds})",
            100.0 * verify_rate / bare_rate
        ),
        "≥ 15,000/s",
        Some(verify_rate >= 15_000.0),
    );
    row(
        "13",
        "DPoP ES256 requests (bound token kept + proof + in-memory replay insert), one thread",
        &format!(
            "{request_rate:.0}/s ({} proofs, each its own jti)",
            count - 1
        ),
        "≥ 15,000/s",
        Some(request_rate >= 15_000.0),
    );
}

fn main() {
    let rounds: usize = arg("--rounds").and_then(|r| r.parse().ok()).unwrap_or(30);
    let dpop_proofs: usize = arg("--dpop-proofs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    checks(&runtime, rounds);
    dpop(&runtime, dpop_proofs.max(2), rounds);
    cached_opaque(&runtime, rounds);
    layer_latency(&runtime, 2000);
}
