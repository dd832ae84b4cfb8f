//! DPoP (RFC 9449) against the stock provider: proofs made by
//! `onesoidc_core::DpopKey` on token requests sent by hand (the device's
//! own client authentication, our proof added), so the provider's rules
//! are checked independently of the flows. Every scenario runs at both
//! instances: the package's default DPoP configuration (no server nonces)
//! and `nonceSecret` + `requireNonce` (RFC 9449 §8).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use onesoidc_flows::OnesIdClient;
use onesoidc_flows::core::request::HttpRequest;
use onesoidc_flows::core::{DeviceTokenRequest, DpopKey, Endpoint, SecretString, TokenTypeHint};
use onesoidc_http::HttpClient;
use onesoidc_interop::{DeviceKey, ECC_P256, ECC_P384, ECC_P521, Instance, RSA_2048};
use onesoidc_resource::Refusal;
use url::Url;

use crate::common::{JWT_RESOURCE, OrdersApi, approved_login, login_request, request_headers};

/// An answer of the provider's token or introspection endpoint.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Its `DPoP-Nonce` header.
    nonce: Option<String>,
    body: serde_json::Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    fn string(&self, member: &str) -> String {
        let value = self.body[member].as_str();
        value
            .unwrap_or_else(|| panic!("no {member} in {}", self.body))
            .to_string()
    }
}

/// A device talking DPoP to one instance, by hand: its client
/// authentication as the flows make it, plus a proof from a fresh P-256
/// key, and the latest server nonce remembered (RFC 9449 §8.2).
struct DpopDevice {
    instance: Instance,
    client: OnesIdClient,
    key: DpopKey,
    nonce: Mutex<Option<String>>,
}

impl DpopDevice {
    fn new(device: DeviceKey, instance: Instance) -> Self {
        DpopDevice {
            instance,
            client: device.client_at(instance),
            key: DpopKey::generate().expect("a P-256 key"),
            nonce: Mutex::new(None),
        }
    }

    async fn token_endpoint(&self) -> Endpoint {
        let metadata = self.client.provider_metadata().await.expect("discovery");
        metadata.token_endpoint.clone()
    }

    /// A proof of `key` for `POST endpoint` at `iat`, with `nonce`.
    fn proof(key: &DpopKey, endpoint: &Endpoint, nonce: Option<&str>, iat: SystemTime) -> String {
        let url = Url::parse(endpoint.as_str()).expect("the token endpoint is a URL");
        key.proof("POST", &url, None, nonce, iat).expect("proof")
    }

    /// Sends `request` with the `DPoP` header `proof`, if any.
    async fn send(&self, mut request: HttpRequest, proof: Option<String>) -> Answer {
        if let Some(proof) = proof {
            let value = proof.parse().expect("a proof is a header value");
            request.headers_mut().insert("dpop", value);
        }
        let response = self
            .client
            .http()
            .execute(request)
            .await
            .expect("the provider answers");
        let header = response.headers().get("dpop-nonce");
        let nonce = header.map(|v| v.to_str().expect("ASCII nonce").to_string());
        let body = serde_json::from_slice(response.body()).unwrap_or_else(|e| {
            panic!(
                "HTTP {}: not JSON ({e}): {}",
                response.status(),
                String::from_utf8_lossy(response.body())
            )
        });
        Answer {
            status: response.status().as_u16(),
            nonce,
            body,
        }
    }

    /// A token request made by `build` (for the endpoint, at a time) with
    /// our proof, carrying the latest nonce. A `use_dpop_nonce` answer is
    /// retried exactly once with its `DPoP-Nonce` (a new request: the
    /// client assertion's `jti` is single-use too). Returns the final
    /// answer and whether the provider asked for a nonce.
    async fn token_request(
        &self,
        build: impl Fn(&Endpoint, SystemTime) -> HttpRequest,
    ) -> (Answer, bool) {
        let endpoint = self.token_endpoint().await;
        let mut challenged = false;
        loop {
            let nonce = self.nonce.lock().unwrap().clone();
            let now = SystemTime::now();
            let proof = Self::proof(&self.key, &endpoint, nonce.as_deref(), now);
            let answer = self.send(build(&endpoint, now), Some(proof)).await;
            if let Some(nonce) = &answer.nonce {
                *self.nonce.lock().unwrap() = Some(nonce.clone());
            }
            if answer.status == 400 && answer.error() == "use_dpop_nonce" && !challenged {
                assert!(
                    answer.nonce.is_some(),
                    "use_dpop_nonce without a DPoP-Nonce"
                );
                challenged = true;
                continue;
            }
            return (answer, challenged);
        }
    }

    /// A device token for `options`, bound; checks the nonce exchange the
    /// instance should have made.
    async fn device_token(&self, options: &DeviceTokenRequest) -> Answer {
        let auth = self.client.client_auth();
        let first_request = self.nonce.lock().unwrap().is_none();
        let (answer, challenged) = self
            .token_request(|endpoint, now| {
                auth.client_credentials_request(endpoint, options, now)
                    .expect("request")
            })
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["token_type"], "DPoP", "{}", answer.body);
        match self.instance {
            // No nonces at all by default: a server nonce is a choice.
            Instance::Default => assert!(!challenged && answer.nonce.is_none(), "{answer:?}"),
            // A first proof (no nonce yet) is challenged; later ones
            // carry the nonce and pass at once.
            Instance::NonceRequired => assert_eq!(challenged, first_request, "{answer:?}"),
        }
        answer
    }

    /// Introspects `token` (no proof: introspection is client-authenticated).
    async fn introspect(&self, token: &str) -> Answer {
        let metadata = self.client.provider_metadata().await.expect("discovery");
        let request = self
            .client
            .client_auth()
            .introspection_request(
                &metadata.introspection_endpoint,
                &SecretString::from(token.to_string()),
                None,
                SystemTime::now(),
            )
            .expect("request");
        let answer = self.send(request, None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer
    }
}

async fn client_credentials_are_bound_to_our_key(instance: Instance) {
    let device = DpopDevice::new(ECC_P384, instance);
    let options = DeviceTokenRequest::default().resource(JWT_RESOURCE);
    let answer = device.device_token(&options).await;
    let claims = onesoidc_interop::jwt_claims(&answer.string("access_token"));
    assert_eq!(
        claims["cnf"]["jkt"],
        device.key.thumbprint(),
        "the JWT access token names our key: {claims}"
    );

    // The next request reuses the nonce (no second challenge) and gets
    // another token bound to the same key.
    let again = device.device_token(&options).await;
    let claims = onesoidc_interop::jwt_claims(&again.string("access_token"));
    assert_eq!(claims["cnf"]["jkt"], device.key.thumbprint());

    // A nonce the server never gave: refused outright without server
    // nonces, answered with a fresh nonce when they are required.
    let endpoint = device.token_endpoint().await;
    let now = SystemTime::now();
    let proof = DpopDevice::proof(&device.key, &endpoint, Some("not-from-the-server"), now);
    let auth = device.client.client_auth();
    let request = auth
        .client_credentials_request(&endpoint, &options, now)
        .expect("request");
    let refused = device.send(request, Some(proof)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    match instance {
        Instance::Default => {
            assert_eq!(refused.error(), "invalid_dpop_proof", "{}", refused.body);
        }
        Instance::NonceRequired => {
            assert_eq!(refused.error(), "use_dpop_nonce", "{}", refused.body);
            assert!(refused.nonce.is_some(), "{refused:?}");
        }
    }
}
at_both_instances!(client_credentials_are_bound_to_our_key);

async fn introspection_names_our_key(instance: Instance) {
    let device = DpopDevice::new(RSA_2048, instance);
    let answer = device.device_token(&DeviceTokenRequest::default()).await;
    let token = answer.string("access_token");
    assert!(!onesoidc_flows::core::is_jwt(&token), "an opaque token");
    let info = device.introspect(&token).await;
    assert_eq!(info.body["active"], true, "{}", info.body);
    assert_eq!(info.body["token_type"], "DPoP", "{}", info.body);
    assert_eq!(
        info.body["cnf"]["jkt"],
        device.key.thumbprint(),
        "{}",
        info.body
    );

    // The flows' introspection reads the same answer.
    let parsed = device
        .client
        .introspect(&SecretString::from(token), Some(TokenTypeHint::AccessToken))
        .await
        .expect("introspection");
    assert!(parsed.active);
    assert_eq!(parsed.token_type.as_deref(), Some("DPoP"));
}
at_both_instances!(introspection_names_our_key);

async fn a_ciba_login_and_refresh_are_bound_and_a_refused_refresh_spends_nothing(
    instance: Instance,
) {
    let device = DpopDevice::new(ECC_P521, instance);
    let auth = device.client.client_auth();
    let started = approved_login(&device.client, instance, &login_request("alice")).await;

    // The poll: at the nonce instance it is challenged first, and the
    // challenge does not spend the approved request either.
    let (login, challenged) = device
        .token_request(|endpoint, now| {
            auth.ciba_poll_request(endpoint, &started.auth_req_id, now)
                .expect("request")
        })
        .await;
    assert_eq!(challenged, instance == Instance::NonceRequired);
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["token_type"], "DPoP", "{}", login.body);
    let info = device.introspect(&login.string("access_token")).await;
    assert_eq!(
        info.body["cnf"]["jkt"],
        device.key.thumbprint(),
        "{}",
        info.body
    );
    let first_rt = login.string("refresh_token");

    // A refresh the provider refuses for its proof, before it looks at
    // the refresh token: at the nonce instance a fresh proof without the
    // nonce (use_dpop_nonce, RFC 9449 §8), at the default one a proof too
    // old to be accepted without a nonce (invalid_dpop_proof).
    let endpoint = device.token_endpoint().await;
    let now = SystemTime::now();
    let (iat, expected) = match instance {
        Instance::NonceRequired => (now, "use_dpop_nonce"),
        Instance::Default => (now - Duration::from_secs(600), "invalid_dpop_proof"),
    };
    let refresh = |rt: &str| {
        let rt = SecretString::from(rt.to_string());
        move |endpoint: &Endpoint, now| {
            auth.refresh_token_request(endpoint, &rt, now)
                .expect("request")
        }
    };
    let stale = DpopDevice::proof(&device.key, &endpoint, None, iat);
    let refused = device
        .send(refresh(&first_rt)(&endpoint, now), Some(stale))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.error(), expected, "{}", refused.body);
    let info = device.introspect(&first_rt).await;
    assert_eq!(info.body["active"], true, "not spent: {}", info.body);

    // The same refresh token, with a good proof: it works, once.
    let (second, challenged) = device.token_request(refresh(&first_rt)).await;
    assert!(!challenged, "the nonce from the refusal is reused");
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["token_type"], "DPoP", "{}", second.body);
    let info = device.introspect(&second.string("access_token")).await;
    assert_eq!(
        info.body["cnf"]["jkt"],
        device.key.thumbprint(),
        "{}",
        info.body
    );
    let second_rt = second.string("refresh_token");
    assert_ne!(
        second_rt, first_rt,
        "rotateRefreshToken: a new refresh token"
    );

    // RFC 9449 §5: a refresh token of a confidential client is not bound
    // to the proof key (client authentication constrains it): a proof
    // from another key refreshes it, and that access token is bound to
    // the other key.
    let other = DpopKey::generate().unwrap();
    let now = SystemTime::now();
    let nonce = device.nonce.lock().unwrap().clone();
    let proof = DpopDevice::proof(&other, &endpoint, nonce.as_deref(), now);
    let third = device
        .send(refresh(&second_rt)(&endpoint, now), Some(proof))
        .await;
    assert_eq!(third.status, 200, "{}", third.body);
    let info = device.introspect(&third.string("access_token")).await;
    assert_eq!(info.body["cnf"]["jkt"], other.thumbprint(), "{}", info.body);
    let third_rt = third.string("refresh_token");

    // The first refresh token, already used, is refused, and presenting it
    // revokes the grant (the provider's reuse detection).
    let (reused, _) = device.token_request(refresh(&first_rt)).await;
    assert_eq!(reused.status, 400, "{}", reused.body);
    assert_eq!(reused.error(), "invalid_grant", "{}", reused.body);
    let info = device.introspect(&third_rt).await;
    assert_eq!(info.body["active"], false, "{}", info.body);
}
at_both_instances!(a_ciba_login_and_refresh_are_bound_and_a_refused_refresh_spends_nothing);

async fn the_application_accepts_a_bound_token_only_with_our_proof(instance: Instance) {
    let device = DpopDevice::new(ECC_P256, instance);
    let options = DeviceTokenRequest::default()
        .scope("read")
        .resource(JWT_RESOURCE);
    let token = device.device_token(&options).await.string("access_token");
    let api = OrdersApi::new(instance).await;
    let proof = |key: &DpopKey| {
        key.proof(
            "GET",
            &OrdersApi::url(),
            Some(&token),
            None,
            SystemTime::now(),
        )
        .unwrap()
    };

    let ours = request_headers("DPoP", &token, Some(&proof(&device.key)));
    let claims = api.get(&ours).await.expect("accepted with our proof");
    assert_eq!(claims.cnf_jkt.as_deref(), Some(device.key.thumbprint()));
    assert!(claims.has_scope("read"), "{claims:?}");

    // The same proof again is a replay.
    let replayed = api.get(&ours).await;
    assert!(
        matches!(replayed, Err(Refusal::ReplayedDpopProof)),
        "{replayed:?}"
    );

    // As a Bearer token, or with a proof from another key: refused.
    api.assert_refused_to_a_thief(&token).await;

    // Without a proof, refused.
    let missing = api.get(&request_headers("DPoP", &token, None)).await;
    assert!(
        matches!(missing, Err(Refusal::MissingDpopProof)),
        "{missing:?}"
    );
}
at_both_instances!(the_application_accepts_a_bound_token_only_with_our_proof);
