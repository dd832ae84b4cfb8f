//! Raw-HTTP helpers: the tests build assertions and request objects
//! themselves (good ones and bad ones) and talk to the provider with
//! reqwest, not through onesoidc's client crates.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{JwsAlgorithm, KeyType, PemSigner, SignError, Signer};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use serde_json::{Value, json};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest any wait in these tests may take: a broken build fails in
/// seconds instead of hanging CI.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

/// The CIBA interval the tests configure.
pub const INTERVAL: Duration = Duration::from_millis(100);

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn jti() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A test configuration with a short CIBA interval.
pub fn fast_config() -> DevIdpConfig {
    DevIdpConfig {
        ciba_interval: INTERVAL,
        ..DevIdpConfig::default()
    }
}

/// Signs `claims` with `header` exactly as given (no checks), so tests can
/// lie about `alg` or anything else.
pub fn sign_raw(header: &Value, claims: &Value, signer: &dyn Signer) -> String {
    let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
    input.push('.');
    input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Signs with the header the signer's algorithm calls for.
pub fn sign(signer: &dyn Signer, claims: &Value) -> String {
    sign_raw(
        &json!({"alg": signer.algorithm().as_str(), "typ": "JWT"}),
        claims,
        signer,
    )
}

/// A signer that names another algorithm in the header than it signs with.
#[derive(Debug)]
pub struct LyingSigner<'a>(pub &'a PemSigner, pub JwsAlgorithm);

impl Signer for LyingSigner<'_> {
    fn algorithm(&self) -> JwsAlgorithm {
        self.1
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.0.sign(input)
    }
}

/// Returns `base` with the entries of `changes` set; `null` removes a claim.
pub fn merge(mut base: Value, changes: Value) -> Value {
    if let (Some(map), Value::Object(changes)) = (base.as_object_mut(), changes) {
        for (k, v) in changes {
            if v.is_null() {
                map.remove(&k);
            } else {
                map.insert(k, v);
            }
        }
    }
    base
}

/// A device registered with the provider, with its private key.
pub struct TestDevice {
    pub key: PemSigner,
    pub client_id: String,
    pub device_id: String,
}

impl TestDevice {
    pub fn register(idp: &DevIdp, key_type: KeyType) -> Self {
        let key = PemSigner::generate(key_type).unwrap();
        let ids = idp.register_device(&key.public_jwk());
        TestDevice {
            key,
            client_id: ids.client_id,
            device_id: ids.device_id,
        }
    }

    /// Good assertion claims for `aud`.
    pub fn assertion_claims(&self, aud: &str) -> Value {
        let now = now();
        json!({
            "iss": self.client_id, "sub": self.client_id, "aud": aud,
            "jti": jti(), "iat": now, "exp": now + 60,
        })
    }

    pub fn assertion(&self, aud: &str) -> String {
        sign(&self.key, &self.assertion_claims(aud))
    }
}

/// An HTTP answer: status, JSON body (`Null` when empty or not JSON), headers.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(error)),
            "body: {}",
            self.body
        );
        assert!(
            self.body["error_description"].is_string(),
            "no error_description: {}",
            self.body
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "body: {}", self.body);
        &self.body
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn into_resp(response: reqwest::Response) -> Resp {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        body,
        headers,
    }
}

/// A started provider and an HTTP client.
pub struct Harness {
    pub idp: DevIdp,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(config: DevIdpConfig) -> Self {
        Harness {
            idp: DevIdp::start(config).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn fast() -> Self {
        Self::start(fast_config()).await
    }

    pub fn device(&self, key_type: KeyType) -> TestDevice {
        TestDevice::register(&self.idp, key_type)
    }

    /// POSTs a form exactly as given.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Resp {
        into_resp(self.http.post(url).form(fields).send().await.unwrap()).await
    }

    /// POSTs `fields` + client auth with `assertion`.
    pub async fn post_with_assertion(
        &self,
        url: &str,
        device: &TestDevice,
        assertion: &str,
        fields: &[(&str, &str)],
    ) -> Resp {
        let mut all = fields.to_vec();
        all.push(("client_id", &device.client_id));
        all.push(("client_assertion_type", ASSERTION_TYPE));
        all.push(("client_assertion", assertion));
        self.post_form(url, &all).await
    }

    /// POSTs `fields` + a fresh, good client assertion for `url`.
    pub async fn call(&self, url: &str, device: &TestDevice, fields: &[(&str, &str)]) -> Resp {
        let assertion = device.assertion(url);
        self.post_with_assertion(url, device, &assertion, fields)
            .await
    }

    pub async fn token(&self, device: &TestDevice, fields: &[(&str, &str)]) -> Resp {
        self.call(&self.idp.token_endpoint(), device, fields).await
    }

    /// A device access token (client credentials).
    pub async fn device_token(&self, device: &TestDevice) -> String {
        let resp = self
            .token(device, &[("grant_type", "client_credentials")])
            .await;
        resp.assert_ok()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Good request-object claims for a CIBA request by `login_hint`.
    pub fn request_claims(&self, device: &TestDevice, login_hint: &str) -> Value {
        let now = now();
        json!({
            "iss": device.client_id, "aud": self.idp.issuer(), "client_id": device.client_id,
            "iat": now, "nbf": now, "exp": now + 300, "jti": jti(),
            "scope": "openid offline_access profile", "login_hint": login_hint,
        })
    }

    /// A backchannel request with a request object signed by the device.
    pub async fn backchannel(&self, device: &TestDevice, claims: &Value) -> Resp {
        let request = sign(&device.key, claims);
        self.backchannel_raw(device, &request).await
    }

    pub async fn backchannel_raw(&self, device: &TestDevice, request: &str) -> Resp {
        self.call(
            &self.idp.backchannel_endpoint(),
            device,
            &[("request", request)],
        )
        .await
    }

    /// Starts a CIBA request for `user` and returns its auth_req_id.
    pub async fn start_ciba(&self, device: &TestDevice, claims: &Value) -> String {
        let resp = self.backchannel(device, claims).await;
        resp.assert_ok()["auth_req_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn poll(&self, device: &TestDevice, auth_req_id: &str) -> Resp {
        self.token(
            device,
            &[("grant_type", CIBA_GRANT), ("auth_req_id", auth_req_id)],
        )
        .await
    }

    /// Polls (waiting the interval first) until the answer is not pending,
    /// for at most [`DEADLINE`].
    pub async fn poll_until_done(&self, device: &TestDevice, auth_req_id: &str) -> Resp {
        tokio::time::timeout(DEADLINE, async {
            loop {
                tokio::time::sleep(INTERVAL).await;
                let resp = self.poll(device, auth_req_id).await;
                if resp.body["error"] != "authorization_pending" {
                    return resp;
                }
            }
        })
        .await
        .expect("the CIBA request is answered within the deadline")
    }

    /// A user's tokens through CIBA (approved through the control method).
    pub async fn user_tokens(&self, device: &TestDevice, user: &str) -> Value {
        let id = self
            .start_ciba(device, &self.request_claims(device, user))
            .await;
        self.idp.approve_ciba(&id).unwrap();
        tokio::time::sleep(INTERVAL).await;
        self.poll(device, &id).await.assert_ok().clone()
    }

    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Resp {
        let mut request = self.http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        into_resp(request.send().await.unwrap()).await
    }

    pub async fn post_json(&self, url: &str, bearer: Option<&str>, body: &Value) -> Resp {
        let mut request = self.http.post(url).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        into_resp(request.send().await.unwrap()).await
    }

    pub async fn put_json(&self, url: &str, body: &Value) -> Resp {
        into_resp(self.http.put(url).json(body).send().await.unwrap()).await
    }

    pub async fn post_empty(&self, url: &str) -> Resp {
        into_resp(self.http.post(url).send().await.unwrap()).await
    }

    /// A POST without a body that says `Content-Type: application/json`,
    /// as the control API wants.
    pub async fn post_empty_json(&self, url: &str) -> Resp {
        let request = self
            .http
            .post(url)
            .header("content-type", "application/json");
        into_resp(request.send().await.unwrap()).await
    }

    pub async fn introspect(&self, device: &TestDevice, token: &str) -> Value {
        self.call(
            &self.idp.introspection_endpoint(),
            device,
            &[("token", token)],
        )
        .await
        .assert_ok()
        .clone()
    }
}

/// Decodes a JWT's claims without checking anything.
pub fn claims_of(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub const ALL_KEY_TYPES: [KeyType; 4] = [
    KeyType::Rsa2048,
    KeyType::EccP256,
    KeyType::EccP384,
    KeyType::EccP521,
];
