//! [`OnesIdClient`]: one registered device talking to its provider.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onesoidc_core::request::HttpRequest;
use onesoidc_core::response::HttpResponse;
use onesoidc_core::{
    ClientAuth, ClockOffset, DPOP_HEADER, DeviceTokenRequest, DpopKey, DpopNonces, Endpoint, Error,
    ExposeSecret, Issuer, ProviderMetadata, SecretString, TokenSet, dpop_nonce_challenge,
    parse_token_response_for,
};
use onesoidc_fs::IdentityPaths;
use onesoidc_http::{BoxFuture, HttpClient, Policy, PolicyClient};
use tokio::sync::{Mutex, OnceCell};

use crate::DeviceIdentity;
use crate::dpop::{DpopSetting, signer_gone};

/// A registered device and the provider it belongs to.
///
/// Cheap to clone: clones share the discovered endpoints, the provider's
/// keys and the device's own access token. Discovery runs once, on first
/// use; a failed discovery is retried on the next call. Every request goes
/// through the HTTP [`Policy`] (https, no redirects, 1 MiB, timeouts),
/// whichever [`HttpClient`] sends it.
///
/// ```no_run
/// # async fn run() -> Result<(), onesoidc_flows::Error> {
/// let client = onesoidc_flows::OnesIdClient::from_default_identity()?;
/// let tokens = client.device_token().await?;
/// println!("the device token expires {}", tokens.expiry());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OnesIdClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: PolicyClient,
    pub(crate) identity: DeviceIdentity,
    auth: ClientAuth,
    issuer: Issuer,
    metadata: OnceCell<ProviderMetadata>,
    jwks: crate::jwks::JwksCache,
    device_bearer: Mutex<Option<TokenSet>>,
    device_token_source: std::sync::RwLock<Option<Arc<dyn DeviceTokenSource>>>,
    pub(crate) clock: WallClock,
    /// The device clock against the provider's, from the `Date` of its
    /// last answer that had one.
    provider_clock: std::sync::Mutex<Option<ClockOffset>>,
    /// Where the identity was loaded from, when known (`dpop.pem` goes there).
    pub(crate) paths: Option<IdentityPaths>,
    /// DPoP: off (`None`), or how to pick the key.
    pub(crate) dpop: Option<DpopSetting>,
    /// The DPoP key, once picked.
    pub(crate) dpop_key: OnceCell<DpopKey>,
    /// The latest `DPoP-Nonce` of each server.
    pub(crate) dpop_nonces: DpopNonces,
}

/// A wall clock: what time the device thinks it is. See
/// [`OnesIdClientBuilder::clock`].
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Where an [`OnesIdClient`] gets the device's access token for the
/// requests that carry it as a bearer (QR sessions, well-known
/// applications). By default the client fetches and caches its own; give it
/// a source (onesoidc-tokens implements this for a `TokenManager`) so one
/// process holds one device token, on one refresh schedule.
pub trait DeviceTokenSource: Send + Sync {
    /// A valid device access token, or `None` when the source is gone (the
    /// client then fetches its own again).
    fn device_token(&self) -> BoxFuture<'_, Option<Result<SecretString, Error>>>;

    /// The provider refused the token last handed out (HTTP 401): the next
    /// one must be a new one.
    fn refused(&self) -> BoxFuture<'_, ()>;
}

/// What [`OnesIdClient::refresh_with_report`] got.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Refreshed {
    /// The new tokens: the rotated refresh token (or the old one, when the
    /// provider sent none), and the previous ID token when the new one was
    /// not accepted.
    pub tokens: TokenSet,
    /// Why the new ID token was not accepted (the tokens keep the previous
    /// one): its signature, its claims, or the provider's keys out of reach.
    pub id_token_rejected: Option<Arc<Error>>,
    /// How far off the device clock is, when the token endpoint's `Date`
    /// shows it off by more than the 60 s skew.
    pub device_clock: Option<ClockOffset>,
}

/// `iss` or `sub` when the new ID token names another issuer or subject
/// than the previous one (read unverified: a token that cannot be
/// validated must still not switch the person).
fn names_another_subject(previous: &TokenSet, refreshed: &TokenSet) -> Option<&'static str> {
    let claims = |tokens: &TokenSet| {
        tokens
            .id_token
            .as_ref()
            .and_then(|t| onesoidc_core::unverified_claims(t.expose_secret()))
    };
    let (before, after) = (claims(previous)?, claims(refreshed));
    let Some(after) = after else {
        // Not readable at all: it names nobody.
        return None;
    };
    ["iss", "sub"].into_iter().find(|name| {
        after
            .get(*name)
            .is_some_and(|now| before.get(*name) != Some(now))
    })
}

/// A cached device token is replaced this long before it expires.
const BEARER_MARGIN: Duration = Duration::from_secs(30);

impl std::fmt::Debug for OnesIdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnesIdClient")
            .field("issuer", &self.inner.issuer)
            .field("client_id", &self.inner.auth.client_id)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OnesIdClient`]. Every setting has a default, given on its
/// setter; with none set it is [`OnesIdClient::from_default_identity`].
///
/// A custom [`HttpClient`] is the usual reason to use it, e.g. one that
/// logs every exchange:
///
/// ```no_run
/// use onesoidc_flows::OnesIdClient;
/// use onesoidc_flows::http_client::{BoxFuture, HttpClient, HttpRequest, HttpResponse, ReqwestClient, TransportError};
///
/// /// Logs method, URL and status of every request.
/// struct Logged<C>(C);
///
/// impl<C: HttpClient> HttpClient for Logged<C> {
///     fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
///         let line = format!("{} {}", request.method(), request.uri());
///         let sent = self.0.execute(request);
///         Box::pin(async move {
///             let result = sent.await;
///             match &result {
///                 Ok(response) => eprintln!("{line} -> {}", response.status()),
///                 Err(error) => eprintln!("{line} -> {error}"),
///             }
///             result
///         })
///     }
/// }
///
/// # fn run() -> Result<(), onesoidc_flows::Error> {
/// let client = OnesIdClient::builder()
///     .http(Logged(ReqwestClient::new()?))
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Default)]
pub struct OnesIdClientBuilder {
    identity: Option<DeviceIdentity>,
    paths: Option<IdentityPaths>,
    http: Option<Arc<dyn HttpClient>>,
    policy: Policy,
    metadata: Option<ProviderMetadata>,
    clock: Option<WallClock>,
    dpop: Option<DpopSetting>,
}

impl std::fmt::Debug for OnesIdClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnesIdClientBuilder")
            .field("identity", &self.identity.as_ref().map(|i| &i.config.id))
            .field("paths", &self.paths)
            .field("http", &self.http.is_some())
            .field("policy", &self.policy)
            .field("provider_metadata", &self.metadata.is_some())
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .field("dpop", &self.dpop)
            .finish()
    }
}

impl OnesIdClientBuilder {
    /// The device identity to use (default: loaded from
    /// [`identity_paths`](Self::identity_paths)).
    pub fn identity(mut self, identity: DeviceIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Where to load the identity from (default [`IdentityPaths::from_env`]:
    /// px-device-identity's places, `ONESOIDC_DEVICE_CONFIG`, `ONESOIDC_KEY_DIR`).
    pub fn identity_paths(mut self, paths: IdentityPaths) -> Self {
        self.paths = Some(paths);
        self
    }

    /// The HTTP backend (default: a [`ReqwestClient`](onesoidc_http::ReqwestClient)
    /// built with the [`policy`](Self::policy)'s settings; without the
    /// `reqwest` feature there is no default and this is required). The
    /// policy applies above it either way.
    pub fn http(mut self, http: impl HttpClient + 'static) -> Self {
        self.http = Some(Arc::new(http));
        self
    }

    /// The HTTP rules every request obeys (default [`Policy::default`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Allows plain `http://` to a provider that is not on loopback
    /// (default: refused). Only for closed test networks.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.policy = self.policy.allow_insecure_http(allow);
        self
    }

    /// The provider's endpoints, known already (e.g. a discovery document
    /// cached from an earlier run; see [`ProviderMetadata::to_document`]):
    /// the client does not fetch discovery. [`build`](Self::build) checks
    /// them as it checks a fetched document (the issuer must be the
    /// identity's; endpoints https).
    pub fn provider_metadata(mut self, metadata: ProviderMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The wall clock every assertion is stamped with and every token
    /// checked against (default [`SystemTime::now`]); tests set a device
    /// clock that is off.
    ///
    /// ```
    /// # fn run(identity: onesoidc_flows::DeviceIdentity, http: onesoidc_flows::http_client::ReqwestClient) -> Result<(), onesoidc_flows::Error> {
    /// use std::time::{Duration, SystemTime};
    /// let two_minutes_ahead = onesoidc_flows::OnesIdClient::builder()
    ///     .identity(identity)
    ///     .http(http)
    ///     .clock(|| SystemTime::now() + Duration::from_secs(120))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Turns DPoP (RFC 9449) on or off (default off: bearer tokens, and
    /// nothing changes for providers without DPoP). With it on, every
    /// token request (client credentials, the CIBA poll, refresh) carries a
    /// fresh proof, the tokens come back bound (`token_type: DPoP`,
    /// [`TokenSet::dpop_jkt`]), and [`OnesIdClient::authorize`] makes the
    /// `DPoP` headers to use them. A server's `use_dpop_nonce` challenge is
    /// met by one retry with its nonce; its latest nonce is sent after.
    ///
    /// The proofs are signed with the device key when the provider's
    /// `dpop_signing_alg_values_supported` lists its algorithm (so every
    /// replica sharing the identity shares the binding, and a TPM key signs
    /// in the TPM), otherwise with a P-256 key kept beside the identity as
    /// `dpop.pem` (0600, made on first use). [`dpop_key`](Self::dpop_key)
    /// gives a key of your own instead.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), onesoidc_flows::Error> {
    /// let client = onesoidc_flows::OnesIdClient::builder().dpop(true).build()?;
    /// let tokens = client.device_token().await?;
    /// assert_eq!(tokens.token_type, "DPoP");
    /// # Ok(()) }
    /// ```
    pub fn dpop(mut self, enabled: bool) -> Self {
        self.dpop = enabled.then_some(DpopSetting::Choose);
        self
    }

    /// Turns DPoP on with this key for the proofs, instead of the device
    /// key or `dpop.pem` ([`dpop`](Self::dpop)).
    pub fn dpop_key(mut self, key: DpopKey) -> Self {
        self.dpop = Some(DpopSetting::Key(Box::new(key)));
        self
    }

    /// Loads the identity if none was given, and builds the client.
    ///
    /// Fails with the file and field of a bad `device.yml` or key,
    /// [`ConfigError::NotRegistered`](onesoidc_core::ConfigError::NotRegistered)
    /// for an unmanaged identity, or [`Error::HttpClient`] when no HTTP
    /// client can be had.
    pub fn build(self) -> Result<OnesIdClient, Error> {
        crate::warm_up_random_generator();
        let (identity, paths) = match self.identity {
            Some(identity) => (identity, self.paths),
            None => {
                let paths = self.paths.unwrap_or_else(IdentityPaths::from_env);
                (DeviceIdentity::load(&paths)?, Some(paths))
            }
        };
        let auth = identity.client_auth()?;
        let issuer = identity.issuer()?;
        let backend = match self.http {
            Some(http) => http,
            None => default_backend(&self.policy)?,
        };
        if let Some(metadata) = &self.metadata {
            let endpoint = ProviderMetadata::discovery_url(&issuer);
            if metadata.issuer != issuer {
                return Err(Error::IssuerMismatch {
                    endpoint: endpoint.into_string(),
                    expected: issuer.as_str().to_string(),
                    found: metadata.issuer.as_str().to_string(),
                });
            }
            check_endpoint_schemes(&endpoint, metadata, &self.policy)?;
        }
        Ok(OnesIdClient {
            inner: Arc::new(Inner {
                http: self.policy.apply(backend),
                identity,
                auth,
                issuer,
                metadata: OnceCell::new_with(self.metadata),
                jwks: Default::default(),
                device_bearer: Mutex::new(None),
                device_token_source: std::sync::RwLock::new(None),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
                provider_clock: std::sync::Mutex::new(None),
                paths,
                dpop: self.dpop,
                dpop_key: OnceCell::new(),
                dpop_nonces: DpopNonces::default(),
            }),
        })
    }
}

#[cfg(feature = "reqwest")]
fn default_backend(policy: &Policy) -> Result<Arc<dyn HttpClient>, Error> {
    Ok(Arc::new(onesoidc_http::ReqwestClient::for_policy(policy)?))
}

#[cfg(not(feature = "reqwest"))]
fn default_backend(_policy: &Policy) -> Result<Arc<dyn HttpClient>, Error> {
    Err(Error::HttpClient(onesoidc_core::TransportError::new(
        onesoidc_core::TransportErrorKind::InvalidRequest,
        "no HTTP client was given; pass one to OnesIdClientBuilder::http, or enable the `reqwest` feature of onesoidc-flows",
    )))
}

impl OnesIdClient {
    /// A builder; see [`OnesIdClientBuilder`].
    pub fn builder() -> OnesIdClientBuilder {
        OnesIdClientBuilder::default()
    }

    /// A client for `identity`, sending through `http`.
    ///
    /// Fails with [`onesoidc_core::ConfigError::NotRegistered`] for an
    /// unmanaged identity.
    pub fn new(identity: DeviceIdentity, http: impl HttpClient + 'static) -> Result<Self, Error> {
        Self::builder().identity(identity).http(http).build()
    }

    /// Loads the identity from `paths` and uses the default HTTP client.
    #[cfg(feature = "reqwest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn from_paths(paths: &IdentityPaths) -> Result<Self, Error> {
        Self::builder().identity_paths(paths.clone()).build()
    }

    /// Loads the identity from the default paths (honouring
    /// `ONESOIDC_DEVICE_CONFIG` and `ONESOIDC_KEY_DIR`) and uses the default HTTP client.
    #[cfg(feature = "reqwest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn from_default_identity() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The device identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.inner.identity
    }

    /// The issuer (`host + "/oidc"`).
    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    /// The client credentials (client id and signer).
    pub fn client_auth(&self) -> &ClientAuth {
        &self.inner.auth
    }

    /// The HTTP client, with the policy applied.
    pub fn http(&self) -> &PolicyClient {
        &self.inner.http
    }

    /// The current time, as every assertion is stamped (the
    /// [builder's clock](OnesIdClientBuilder::clock)).
    pub fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }

    /// The provider's endpoints: discovered once, then cached ([PROTOCOL §2](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#2-discovery)).
    pub async fn provider_metadata(&self) -> Result<&ProviderMetadata, Error> {
        let issuer = &self.inner.issuer;
        self.inner
            .metadata
            .get_or_try_init(|| discover(&self.inner.http, issuer))
            .await
    }

    /// The provider's endpoints if they are known already (discovered, or
    /// given to the builder), without fetching.
    pub fn known_provider_metadata(&self) -> Option<&ProviderMetadata> {
        self.inner.metadata.get()
    }

    /// Sends `request` to `endpoint`; a transport failure names the endpoint.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        request: HttpRequest,
    ) -> Result<HttpResponse, Error> {
        let response = send(&self.inner.http, endpoint, request).await?;
        self.note_provider_clock(&response);
        Ok(response)
    }

    /// Remembers how far off the device clock is by `response`'s `Date`.
    fn note_provider_clock(&self, response: &HttpResponse) -> Option<ClockOffset> {
        let offset = ClockOffset::from_response(response, self.now())?;
        *self
            .inner
            .provider_clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(offset);
        Some(offset)
    }

    /// How far off the device clock was by the provider's last answer that
    /// had a `Date` header; errors name it when it is off by more than the
    /// 60 s skew ([`Error::DeviceClockOff`]).
    pub fn provider_clock(&self) -> Option<ClockOffset> {
        *self
            .inner
            .provider_clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds a request signed with the device key: at once with an
    /// in-memory key, on tokio's blocking pool with a signer that
    /// [blocks](onesoidc_core::Signer::blocks) (a TPM through a program).
    pub(crate) async fn signed_request(
        &self,
        build: impl FnOnce(&ClientAuth, SystemTime) -> Result<HttpRequest, Error> + Send + 'static,
    ) -> Result<HttpRequest, Error> {
        let auth = &self.inner.auth;
        if !auth.signer.blocks() {
            return build(auth, self.now());
        }
        let (auth, clock) = (auth.clone(), self.inner.clock.clone());
        tokio::task::spawn_blocking(move || build(&auth, clock()))
            .await
            .unwrap_or_else(|join_error| Err(signer_gone(join_error)))
    }

    /// Sends a token request to `endpoint` (built by `build`, signed as
    /// [`signed_request`](Self::signed_request) does) and parses the answer
    /// with `parse`, which gets the thumbprint of the key the request's
    /// DPoP proof came from (`None`: no proof).
    ///
    /// With DPoP on, the request carries a fresh proof with the token
    /// endpoint's latest nonce; every answer's `DPoP-Nonce` is remembered.
    /// An answer `use_dpop_nonce` (HTTP 400, RFC 9449 §8) is retried exactly
    /// once, rebuilt with a fresh assertion and a proof with the nonce
    /// given: the provider refused the request before looking at the grant,
    /// so a refresh token or `auth_req_id` in it was not spent. Any other
    /// answer is returned as it is.
    pub(crate) async fn token_request<T>(
        &self,
        endpoint: &Endpoint,
        build: impl FnOnce(&ClientAuth, SystemTime) -> Result<HttpRequest, Error>
        + Clone
        + Send
        + 'static,
        parse: impl Fn(&HttpResponse, Option<&str>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Some(key) = self.dpop_key().await?.cloned() else {
            let request = self.signed_request(build).await?;
            return self.exchange(endpoint, request, |r| parse(r, None)).await;
        };
        let url = url::Url::parse(endpoint.as_str()).map_err(|e| Error::InvalidUrl {
            url: endpoint.to_string(),
            reason: e.to_string(),
        })?;
        let nonces = &self.inner.dpop_nonces;
        let mut nonce = nonces.get(&url);
        let mut retried = false;
        loop {
            let mut request = self.signed_request(build.clone()).await?;
            let proof = self
                .dpop_proof(&key, "POST", &url, None, nonce.as_deref())
                .await?;
            let proof = http::HeaderValue::from_str(&proof).map_err(|_| Error::InvalidRequest {
                endpoint: endpoint.to_string(),
                reason: "the DPoP proof is not a valid header value".into(),
            })?;
            request.headers_mut().insert(DPOP_HEADER, proof);
            let mut challenge = None;
            let answer = self
                .exchange(endpoint, request, |response| {
                    nonces.remember(&url, response);
                    challenge = dpop_nonce_challenge(response).map(str::to_string);
                    parse(response, Some(key.thumbprint()))
                })
                .await;
            match challenge {
                Some(given) if !retried => {
                    tracing::debug!(%endpoint, "the token endpoint asks for a DPoP nonce; retrying once with it");
                    nonce = Some(given);
                    retried = true;
                }
                _ => return answer,
            }
        }
    }

    /// A device access token with the default options ([PROTOCOL §4](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#4-device-access-token)).
    pub async fn device_token(&self) -> Result<TokenSet, Error> {
        self.device_token_with(&DeviceTokenRequest::default()).await
    }

    /// A device access token: client credentials with private_key_jwt.
    pub async fn device_token_with(&self, options: &DeviceTokenRequest) -> Result<TokenSet, Error> {
        let endpoint = self.provider_metadata().await?.token_endpoint.clone();
        let build = {
            let (endpoint, options) = (endpoint.clone(), options.clone());
            move |auth: &ClientAuth, now| auth.client_credentials_request(&endpoint, &options, now)
        };
        self.token_request(&endpoint, build, |r, jkt| {
            parse_token_response_for(&endpoint, r, self.now(), jkt)
        })
        .await
    }

    /// Refreshes a user's tokens with the refresh_token grant ([PROTOCOL §6](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#6-refresh)).
    ///
    /// When the response has no new refresh token, the old one is kept in
    /// the returned set; when it has one (rotation), the new one replaces it.
    /// A rejected refresh token is [`Error::OAuth`] with `invalid_grant`,
    /// a missing one [`Error::LoginRequired`] (nothing sent): either way
    /// the user has to log in again. The new ID token is checked as
    /// [`refresh_with_report`](Self::refresh_with_report) says: one that
    /// names another issuer or subject is an error
    /// ([`IdTokenError::ChangedOnRefresh`](onesoidc_core::IdTokenError::ChangedOnRefresh));
    /// one that fails another check leaves the previous ID token in the
    /// returned set, with a warning.
    pub async fn refresh(&self, previous: &TokenSet) -> Result<TokenSet, Error> {
        self.refresh_with_report(previous)
            .await
            .map(|refreshed| refreshed.tokens)
    }

    /// [`refresh`](Self::refresh), saying what went wrong without losing
    /// the new tokens.
    ///
    /// A provider that rotates refresh tokens has spent the old one by the
    /// time it answers, so the new refresh token is kept whenever it can
    /// be: the new ID token is validated (a key or algorithm it does not
    /// know yet makes one more JWKS fetch, however recent the last one);
    /// if it names another issuer or subject than the previous one (even
    /// unverified) nothing is kept and the error is
    /// [`IdTokenError::ChangedOnRefresh`](onesoidc_core::IdTokenError::ChangedOnRefresh);
    /// if it fails any other check (the provider's keys out of reach, the
    /// device clock off, a signature that does not verify) the new access
    /// and refresh tokens are returned with the *previous* ID token, and
    /// [`Refreshed::id_token_rejected`] says why. The token endpoint's
    /// `Date` header gives [`Refreshed::device_clock`].
    pub async fn refresh_with_report(&self, previous: &TokenSet) -> Result<Refreshed, Error> {
        let refresh_token = previous
            .refresh_token
            .clone()
            .ok_or_else(|| Error::LoginRequired {
                reason: "these tokens have no refresh token".into(),
            })?;
        let endpoint = self.provider_metadata().await?.token_endpoint.clone();
        let build = {
            let endpoint = endpoint.clone();
            move |auth: &ClientAuth, now| auth.refresh_token_request(&endpoint, &refresh_token, now)
        };
        let (refreshed, clock) = self
            .token_request(&endpoint, build, |r, jkt| {
                let now = self.now();
                let tokens = parse_token_response_for(&endpoint, r, now, jkt)?;
                Ok((tokens, ClockOffset::from_response(r, now)))
            })
            .await?;
        let mut tokens = refreshed.keep_refresh_token_from(previous);
        let device_clock = clock.filter(ClockOffset::is_off);
        if let Some(offset) = device_clock {
            tracing::warn!(%endpoint, "{offset}");
        }
        let id_token_rejected = match self.check_refreshed_id_token(previous, &tokens).await {
            Ok(()) => None,
            Err(error) => {
                if let Some(claim) = names_another_subject(previous, &tokens) {
                    tracing::warn!(%endpoint, claim, "the refreshed ID token names another {claim}: refusing the refreshed tokens");
                    return Err(Error::IdToken {
                        endpoint: endpoint.to_string(),
                        source: onesoidc_core::IdTokenError::ChangedOnRefresh { claim },
                    });
                }
                let error = error.with_device_clock(device_clock);
                tracing::warn!(
                    %endpoint,
                    "the refreshed ID token was not accepted; keeping the new access and refresh tokens with the previous ID token: {error}"
                );
                tokens.id_token = previous.id_token.clone();
                Some(Arc::new(error))
            }
        };
        Ok(Refreshed {
            tokens,
            id_token_rejected,
            device_clock,
        })
    }

    /// Takes the device access token for bearer requests (QR sessions,
    /// applications) from `source` from now on, e.g. a token manager, so
    /// the process holds one device token instead of two.
    ///
    /// ```no_run
    /// # async fn run(client: onesoidc_flows::OnesIdClient, source: std::sync::Arc<dyn onesoidc_flows::DeviceTokenSource>) {
    /// client.use_device_tokens_from(source);
    /// # }
    /// ```
    pub fn use_device_tokens_from(&self, source: Arc<dyn DeviceTokenSource>) {
        *self
            .inner
            .device_token_source
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
    }

    fn device_token_source(&self) -> Option<Arc<dyn DeviceTokenSource>> {
        self.inner
            .device_token_source
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends `request` and parses the answer with `parse`. An error is cut
    /// before every value the request carried (a form value, the bearer
    /// token), which a provider or a proxy may echo.
    /// An error names how far off the device clock is when the answer's
    /// `Date` shows it off by more than the skew ([`Error::DeviceClockOff`]).
    pub(crate) async fn exchange<T>(
        &self,
        endpoint: &Endpoint,
        request: HttpRequest,
        parse: impl FnOnce(&HttpResponse) -> Result<T, Error>,
    ) -> Result<T, Error> {
        exchange(&self.inner.http, endpoint, request, |response| {
            let offset = self.note_provider_clock(response);
            parse(response).map_err(|error| error.with_device_clock(offset))
        })
        .await
    }

    /// Sends a request that carries the device access token as bearer
    /// (QR sessions, applications) and parses the answer. The token comes
    /// from the [`DeviceTokenSource`] if there is one, else from the
    /// client's own cache (kept until shortly before it expires); a 401 gets
    /// one retry with a new token.
    pub(crate) async fn with_device_bearer<T>(
        &self,
        build: impl Fn(&str) -> Result<HttpRequest, Error>,
        endpoint: &Endpoint,
        parse: impl Fn(&HttpResponse) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let bearer = self.device_bearer().await?;
        let refused = std::sync::atomic::AtomicBool::new(false);
        let request = self
            .with_device_proof(build(bearer.expose_secret())?, &bearer)
            .await?;
        let first = self
            .exchange(endpoint, request, |response| {
                if response.status() == http::StatusCode::UNAUTHORIZED {
                    refused.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                parse(response)
            })
            .await;
        if !refused.load(std::sync::atomic::Ordering::Relaxed) {
            return first;
        }
        tracing::debug!(%endpoint, "device token refused; getting a new one");
        match self.device_token_source() {
            Some(source) => source.refused().await,
            None => *self.inner.device_bearer.lock().await = None,
        }
        let bearer = self.device_bearer().await?;
        let request = self
            .with_device_proof(build(bearer.expose_secret())?, &bearer)
            .await?;
        self.exchange(endpoint, request, parse).await
    }

    /// With DPoP on, the device token is bound to this client's key (it
    /// came from this client, or from a token manager refreshing through
    /// it): `request`'s `Authorization: Bearer` becomes `DPoP` with a proof
    /// for it. Without DPoP, `request` as it is.
    async fn with_device_proof(
        &self,
        mut request: HttpRequest,
        token: &SecretString,
    ) -> Result<HttpRequest, Error> {
        let Some(key) = self.dpop_key().await?.cloned() else {
            return Ok(request);
        };
        let url = url::Url::parse(&request.uri().to_string()).map_err(|e| Error::InvalidUrl {
            url: request.uri().to_string(),
            reason: e.to_string(),
        })?;
        let bound = TokenSet {
            access_token: token.clone(),
            token_type: "DPoP".into(),
            expires_at: None,
            refresh_token: None,
            id_token: None,
            scope: None,
            dpop_jkt: Some(key.thumbprint().to_string()),
        };
        let headers = self
            .authorize(&bound, request.method().as_str(), &url)
            .await?;
        headers.apply(request.headers_mut())?;
        Ok(request)
    }

    /// The device access token for bearer requests.
    async fn device_bearer(&self) -> Result<SecretString, Error> {
        if let Some(source) = self.device_token_source()
            && let Some(token) = source.device_token().await
        {
            return token;
        }
        self.own_device_bearer().await
    }

    /// The client's own cached device access token, fetched when missing or
    /// about to expire.
    async fn own_device_bearer(&self) -> Result<SecretString, Error> {
        let mut cached = self.inner.device_bearer.lock().await;
        let now = self.now();
        match cached.as_ref() {
            Some(tokens) if tokens.expires_at.is_none_or(|at| at > now + BEARER_MARGIN) => {
                Ok(tokens.access_token.clone())
            }
            _ => {
                let tokens = self.device_token().await?;
                let bearer = tokens.access_token.clone();
                *cached = Some(tokens);
                Ok(bearer)
            }
        }
    }

    /// The provider's keys, cached.
    pub(crate) fn jwks_cache(&self) -> &crate::jwks::JwksCache {
        &self.inner.jwks
    }
}

/// Sends `request` to `endpoint` through `http` and parses the answer with
/// `parse`; an error is cut before every value the request carried.
pub(crate) async fn exchange<T>(
    http: &dyn HttpClient,
    endpoint: &Endpoint,
    request: HttpRequest,
    parse: impl FnOnce(&HttpResponse) -> Result<T, Error>,
) -> Result<T, Error> {
    let sent = sent_values(&request);
    let response = send(http, endpoint, request).await?;
    parse(&response).map_err(|error| {
        let sent: Vec<&str> = sent.iter().map(|v| v.expose_secret()).collect();
        error.forget_values(&sent)
    })
}

/// The values a request carries: its form fields and its bearer token.
fn sent_values(request: &HttpRequest) -> Vec<SecretString> {
    let mut values: Vec<SecretString> = url::form_urlencoded::parse(request.body())
        .map(|(_, value)| SecretString::from(value.into_owned()))
        .collect();
    if let Some(bearer) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("DPoP "))
        })
    {
        values.push(SecretString::from(bearer.to_string()));
    }
    values
}

/// Refuses a discovery document whose endpoints are plain `http://` to a
/// host other than loopback (unless the policy allows insecure http): the
/// error names the field.
fn check_endpoint_schemes(
    discovery: &Endpoint,
    metadata: &ProviderMetadata,
    policy: &Policy,
) -> Result<(), Error> {
    let fields = [
        ("token_endpoint", &metadata.token_endpoint),
        (
            "backchannel_authentication_endpoint",
            &metadata.backchannel_authentication_endpoint,
        ),
        ("introspection_endpoint", &metadata.introspection_endpoint),
        ("revocation_endpoint", &metadata.revocation_endpoint),
        ("jwks_uri", &metadata.jwks_uri),
    ];
    for (field, url) in fields {
        let parsed = url::Url::parse(url.as_str());
        let https = parsed.as_ref().is_ok_and(|u| u.scheme() == "https");
        let allowed_http = parsed.as_ref().is_ok_and(|u| {
            u.scheme() == "http"
                && (policy.insecure_http_allowed()
                    || u.host_str().is_some_and(onesoidc_http::is_loopback))
        });
        if !https && !allowed_http {
            return Err(Error::invalid_response(
                discovery.as_str(),
                200,
                format!(
                    "`{field}` is not an https URL (plain http only to loopback, or with the insecure opt-in)"
                ),
            ));
        }
    }
    Ok(())
}

/// Discovers `issuer`'s endpoints through `http` ([PROTOCOL §2](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#2-discovery)):
/// the document must name the issuer, and its endpoints must be https
/// (plain http only to loopback, or as `http`'s policy allows); a 404 gives
/// the fallback endpoints.
pub async fn discover(http: &PolicyClient, issuer: &Issuer) -> Result<ProviderMetadata, Error> {
    let request = ProviderMetadata::discovery_request(issuer)?;
    let endpoint = ProviderMetadata::discovery_url(issuer);
    let response = send(http, &endpoint, request).await?;
    let metadata = ProviderMetadata::from_discovery_response(issuer, &response)?;
    check_endpoint_schemes(&endpoint, &metadata, http.policy())?;
    tracing::debug!(%issuer, discovered = metadata.discovered, "provider endpoints known");
    Ok(metadata)
}

/// Sends `request` to `endpoint` through `http`; a transport failure names
/// the endpoint.
pub(crate) async fn send(
    http: &dyn HttpClient,
    endpoint: &Endpoint,
    request: HttpRequest,
) -> Result<HttpResponse, Error> {
    let method = request.method().clone();
    let response = http
        .execute(request)
        .await
        .map_err(|source| Error::Transport {
            endpoint: endpoint.to_string(),
            source,
        })?;
    tracing::debug!(%method, %endpoint, status = response.status().as_u16(), "response");
    Ok(response)
}
