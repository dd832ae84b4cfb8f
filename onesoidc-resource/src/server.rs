//! [`ResourceServer`]: the checker an application builds once and shares.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Uri};
use onesoidc_core::{
    AccessTokenClaims, AccessTokenError, AccessTokenExpectations, CLOCK_SKEW, DPOP_IAT_WINDOW,
    DpopProofError, DpopProofExpectations, Endpoint, Error, Issuer, MAX_ACCESS_TOKEN_BYTES,
    ProviderMetadata, SecretString, TokenTypeHint, check_access_token, claims_from_introspection,
    is_jwt, unix_seconds, unverified_claims, verify_dpop_proof,
};
use onesoidc_flows::{JwksCache, OnesIdClient, Want, fetch_jwks};
use onesoidc_http::{HttpClient, Policy, PolicyClient};
use url::Url;

use crate::claims_cache::{ClaimsCache, hash};
use crate::introspection::{
    DEFAULT_INTROSPECTION_CACHE_ENTRIES, DEFAULT_INTROSPECTION_CACHE_MAX_AGE, IntrospectionCache,
};
use crate::nonce::{DEFAULT_DPOP_NONCE_WINDOW, DpopNonces, MIN_DPOP_NONCE_SECRET_BYTES};
use crate::replay::{DEFAULT_DPOP_REPLAY_ENTRIES, ReplayCache, ReplayStore};
use crate::{Refusal, TokenScheme, access_token};

/// How many verified JWT access tokens are kept by default.
pub const DEFAULT_VERIFIED_TOKEN_CACHE_ENTRIES: usize = 10_000;
/// The longest a verified JWT access token is kept by default (never past its `exp`).
pub const DEFAULT_VERIFIED_TOKEN_CACHE_MAX_AGE: Duration = Duration::from_secs(300);

/// The wall clock a [`ResourceServer`] reads (`SystemTime::now` unless
/// [`ResourceServerBuilder::clock`] gives another, e.g. in tests).
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Checks the access tokens sent to one application (one audience), from
/// one or more providers. Cheap to clone: clones share the keys and the
/// introspection cache.
///
/// ```no_run
/// # async fn run() -> Result<(), onesoidc_resource::BuildError> {
/// use onesoidc_resource::ResourceServer;
/// let server = ResourceServer::builder()
///     .issuer("https://idp-server.ones-now.com/oidc")
///     .audience("https://vhh.example.com")
///     .build()
///     .await?;
/// match server.check_token("eyJ...").await {
///     Ok(claims) => println!("{} with scopes {}", claims.sub, claims.scope),
///     Err(refusal) => println!("{} {refusal}", refusal.status()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ResourceServer {
    inner: Arc<Inner>,
}

struct Inner {
    audience: String,
    providers: Vec<Provider>,
    http: PolicyClient,
    introspection: Option<Introspector>,
    leeway: Duration,
    public_url: Option<Url>,
    dpop_iat_window: Duration,
    dpop_replay: ReplayStore,
    dpop_nonces: Option<DpopNonces>,
    /// JWTs whose signature and claims passed, by token hash.
    verified: ClaimsCache,
    clock: Clock,
}

/// One provider whose tokens are accepted.
struct Provider {
    issuer: Issuer,
    jwks_uri: Endpoint,
    algorithms: Vec<String>,
    keys: JwksCache,
}

struct Introspector {
    client: OnesIdClient,
    cache: IntrospectionCache,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self
            .inner
            .providers
            .iter()
            .map(|p| p.issuer.as_str())
            .collect();
        f.debug_struct("ResourceServer")
            .field("audience", &self.inner.audience)
            .field("issuers", &issuers)
            .field("introspection", &self.inner.introspection.is_some())
            .field("dpop_nonce", &self.inner.dpop_nonces.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a [`ResourceServer`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No `.audience(...)`.
    #[error(
        "no audience: call .audience(\"https://your-app.example.com\") with the resource URL devices ask tokens for"
    )]
    NoAudience,
    /// No `.issuer(...)` and no introspection client.
    #[error(
        "no issuer: call .issuer(\"https://idp.example.com/oidc\") (or .introspection(client)) to say whose tokens are accepted"
    )]
    NoIssuer,
    /// `.public_url(...)` is not an absolute http(s) URL.
    #[error(".public_url({0:?}) is not an absolute http(s) URL such as \"https://app.example\"")]
    InvalidPublicUrl(String),
    /// `.dpop_replay_redis(...)` has a URL the `redis` crate cannot use
    /// (the URL is not repeated: it may hold a password).
    #[cfg(feature = "redis")]
    #[error("the DPoP replay cache's Redis URL is not usable: {0}")]
    InvalidRedisUrl(String),
    /// `.dpop_nonce(secret)` with a secret shorter than 32 bytes.
    #[error(
        ".dpop_nonce(secret) got {0} bytes; give at least 32 random bytes (e.g. `openssl rand -base64 32`), the same to every instance of the application"
    )]
    ShortDpopNonceSecret(usize),
    /// `.jwks_uri(...)` before any `.issuer(...)`.
    #[error(".jwks_uri({0:?}) names no provider: call .issuer(...) before it")]
    JwksUriWithoutIssuer(String),
    /// Discovery failed, or an issuer or URL is invalid.
    #[error(transparent)]
    Provider(#[from] Error),
}

/// Builds a [`ResourceServer`]; every default is on its setter.
#[must_use]
pub struct ResourceServerBuilder {
    issuers: Vec<(String, Option<String>)>,
    jwks_uri_without_issuer: Option<String>,
    audience: Option<String>,
    http: Option<Arc<dyn HttpClient>>,
    policy: Policy,
    introspection: Option<OnesIdClient>,
    algorithms: Option<Vec<String>>,
    leeway: Duration,
    cache_entries: NonZeroUsize,
    cache_max_age: Duration,
    public_url: Option<String>,
    dpop_iat_window: Duration,
    dpop_replay_entries: NonZeroUsize,
    #[cfg(feature = "redis")]
    dpop_replay_redis: Option<(String, String)>,
    /// The HMAC key made from the secret, and the secret's length.
    dpop_nonce_key: Option<(aws_lc_rs::hmac::Key, usize)>,
    dpop_nonce_window: Duration,
    verified_entries: NonZeroUsize,
    verified_max_age: Duration,
    clock: Clock,
}

impl Default for ResourceServerBuilder {
    fn default() -> Self {
        ResourceServerBuilder {
            issuers: Vec::new(),
            jwks_uri_without_issuer: None,
            audience: None,
            http: None,
            policy: Policy::default(),
            introspection: None,
            algorithms: None,
            leeway: CLOCK_SKEW,
            cache_entries: NonZeroUsize::new(DEFAULT_INTROSPECTION_CACHE_ENTRIES)
                .unwrap_or(NonZeroUsize::MIN),
            cache_max_age: DEFAULT_INTROSPECTION_CACHE_MAX_AGE,
            public_url: None,
            dpop_iat_window: DPOP_IAT_WINDOW,
            dpop_replay_entries: NonZeroUsize::new(DEFAULT_DPOP_REPLAY_ENTRIES)
                .unwrap_or(NonZeroUsize::MIN),
            #[cfg(feature = "redis")]
            dpop_replay_redis: None,
            dpop_nonce_key: None,
            dpop_nonce_window: DEFAULT_DPOP_NONCE_WINDOW,
            verified_entries: NonZeroUsize::new(DEFAULT_VERIFIED_TOKEN_CACHE_ENTRIES)
                .unwrap_or(NonZeroUsize::MIN),
            verified_max_age: DEFAULT_VERIFIED_TOKEN_CACHE_MAX_AGE,
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl std::fmt::Debug for ResourceServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServerBuilder")
            .field("issuers", &self.issuers)
            .field("audience", &self.audience)
            .field("http", &self.http.is_some())
            .field("introspection", &self.introspection.is_some())
            .finish_non_exhaustive()
    }
}

impl ResourceServerBuilder {
    /// Accepts tokens of this issuer (exactly as its tokens' `iss` says,
    /// e.g. `https://idp-server.ones-now.com/oidc`); call it once per
    /// provider. Its endpoints come from discovery unless
    /// [`jwks_uri`](Self::jwks_uri) follows.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push((issuer.into(), None));
        self
    }

    /// The key set of the issuer named just before: no discovery for it.
    pub fn jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        match self.issuers.last_mut() {
            Some((_, uri)) => *uri = Some(jwks_uri.into()),
            None => self.jwks_uri_without_issuer = Some(jwks_uri.into()),
        }
        self
    }

    /// This application's resource URL: a token's `aud` must contain
    /// exactly this string (required).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Introspects opaque tokens (RFC 7662) with this client: the
    /// application's own registered identity (a px device with `role:
    /// SERVER`), which authenticates the calls. Its issuer is accepted too.
    /// Default: none, and a token that is not a JWT is refused.
    pub fn introspection(mut self, client: OnesIdClient) -> Self {
        self.introspection = Some(client);
        self
    }

    /// The HTTP backend for discovery and the keys (default: the
    /// introspection client's, else a reqwest client built from the
    /// [`policy`](Self::policy); without the `reqwest` feature this or
    /// [`introspection`](Self::introspection) is required). The policy
    /// applies above it either way.
    pub fn http(mut self, http: impl HttpClient + 'static) -> Self {
        self.http = Some(Arc::new(http));
        self
    }

    /// The HTTP rules (default [`Policy::default`]: https except loopback,
    /// no redirects, 1 MiB, timeouts).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The signature algorithms accepted (default: those the provider's
    /// discovery lists in `id_token_signing_alg_values_supported`, else
    /// RS256, ES256, ES384, ES512). `none` and HS* never are.
    pub fn algorithms<S: Into<String>>(mut self, algorithms: impl IntoIterator<Item = S>) -> Self {
        self.algorithms = Some(algorithms.into_iter().map(Into::into).collect());
        self
    }

    /// The clock skew allowed for `exp`, `nbf`, `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How many introspection answers are kept (default 10,000; least
    /// recently used out).
    pub fn introspection_cache_entries(mut self, entries: NonZeroUsize) -> Self {
        self.cache_entries = entries;
        self
    }

    /// The longest an active introspection answer is used (default 5 min;
    /// never past the token's `exp`).
    pub fn introspection_cache_max_age(mut self, max_age: Duration) -> Self {
        self.cache_max_age = max_age;
        self
    }

    /// This application's external origin as clients call it, e.g.
    /// `https://app.example` (behind a proxy, the proxy's): a DPoP proof's
    /// `htu` must be this origin plus the request's path. Without it the
    /// origin is `https://` and the request's `Host` header, which a proxy
    /// may have rewritten: set it whenever DPoP tokens are accepted.
    pub fn public_url(mut self, origin: impl Into<String>) -> Self {
        self.public_url = Some(origin.into());
        self
    }

    /// How far a DPoP proof's `iat` may be from now, either way (default 60 s).
    pub fn dpop_iat_window(mut self, window: Duration) -> Self {
        self.dpop_iat_window = window;
        self
    }

    /// How many DPoP proof ids the in-memory replay cache holds (default
    /// 100,000; at least the requests of two `iat` windows).
    pub fn dpop_replay_entries(mut self, entries: NonZeroUsize) -> Self {
        self.dpop_replay_entries = entries;
        self
    }

    /// Keeps the DPoP replay cache in Redis (`redis://`, `rediss://`,
    /// `redis+unix://`), so that every instance of the application sharing
    /// it accepts a proof once: `SET <prefix><thumbprint>:<jti> 1 NX PX
    /// <window>`, with the prefix [`DEFAULT_DPOP_REPLAY_PREFIX`](crate::DEFAULT_DPOP_REPLAY_PREFIX)
    /// unless given. When Redis cannot answer, a DPoP request gets `503`.
    #[cfg(feature = "redis")]
    pub fn dpop_replay_redis(mut self, url: impl Into<String>, prefix: Option<String>) -> Self {
        let prefix = prefix.unwrap_or_else(|| crate::DEFAULT_DPOP_REPLAY_PREFIX.to_string());
        self.dpop_replay_redis = Some((url.into(), prefix));
        self
    }

    /// Requires a server-issued nonce in every DPoP proof (RFC 9449 §8–9),
    /// derived from `secret` (at least 32 random bytes): every instance of
    /// the application given the same secret issues and accepts the same
    /// nonces, with no shared store. A nonce is issued for one
    /// [window](Self::dpop_nonce_window) and accepted for one more. A proof
    /// without it, or with a stale one, gets `401` with
    /// `WWW-Authenticate: DPoP error="use_dpop_nonce", algs="…"` and the
    /// nonce in `DPoP-Nonce`; the layer puts the current nonce in
    /// `DPoP-Nonce` on every answer to a DPoP request. Default: no nonce.
    ///
    /// ```
    /// # async fn run() -> Result<(), onesoidc_resource::BuildError> {
    /// let secret = std::env::var("DPOP_NONCE_SECRET").unwrap_or_default();
    /// let server = onesoidc_resource::ResourceServer::builder()
    ///     .issuer("https://idp.example.com/oidc")
    ///     .audience("https://vhh.example.com")
    ///     .dpop_nonce(secret)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn dpop_nonce(mut self, secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        self.dpop_nonce_key = Some((key, secret.len()));
        self
    }

    /// How long one DPoP nonce is issued (default 60 s, at least 1 s); it is
    /// accepted until the end of the next window.
    pub fn dpop_nonce_window(mut self, window: Duration) -> Self {
        self.dpop_nonce_window = window;
        self
    }

    /// How many verified JWT access tokens are kept (default 10,000; least
    /// recently used out), so a token sent again costs a hash and a look-up
    /// instead of a signature check. The key is the SHA-256 of the whole
    /// token (never the token); `exp`, `nbf` and `iat` are still checked on
    /// every request.
    pub fn verified_token_cache_entries(mut self, entries: NonZeroUsize) -> Self {
        self.verified_entries = entries;
        self
    }

    /// The longest a verified JWT access token is kept (default 5 min; never
    /// past its `exp`; zero keeps none). A token stays accepted this long
    /// after its provider drops the key that signed it.
    pub fn verified_token_cache_max_age(mut self, max_age: Duration) -> Self {
        self.verified_max_age = max_age;
        self
    }

    /// The wall clock (default `SystemTime::now`) for the tokens' `exp`,
    /// `nbf`, `iat`, the DPoP proofs' `iat` and the nonce windows: a test
    /// can move it.
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    /// Discovers each issuer (unless its `jwks_uri` was given) and builds
    /// the server. The keys are fetched on the first check.
    pub async fn build(self) -> Result<ResourceServer, BuildError> {
        let audience = self.audience.ok_or(BuildError::NoAudience)?;
        let dpop_nonces = match self.dpop_nonce_key {
            None => None,
            Some((_, len)) if len < MIN_DPOP_NONCE_SECRET_BYTES => {
                return Err(BuildError::ShortDpopNonceSecret(len));
            }
            Some((key, _)) => Some(DpopNonces::new(key, &audience, self.dpop_nonce_window)),
        };
        let dpop_replay = ReplayStore::Memory(ReplayCache::new(self.dpop_replay_entries));
        #[cfg(feature = "redis")]
        let dpop_replay = match self.dpop_replay_redis {
            Some((url, prefix)) => ReplayStore::Redis(Box::new(
                crate::replay::redis_store::RedisReplay::new(&url, prefix)
                    .map_err(|e| BuildError::InvalidRedisUrl(format!("{:?}", e.kind())))?,
            )),
            None => dpop_replay,
        };
        let public_url = match self.public_url {
            None => None,
            Some(origin) => match Url::parse(&origin) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
                _ => return Err(BuildError::InvalidPublicUrl(origin)),
            },
        };
        if let Some(uri) = self.jwks_uri_without_issuer {
            return Err(BuildError::JwksUriWithoutIssuer(uri));
        }
        let http = match (self.http, &self.introspection) {
            (Some(http), _) => self.policy.apply(http),
            (None, Some(client)) => client.http().clone(),
            (None, None) => self.policy.apply(default_backend(&self.policy)?),
        };
        let mut issuers = self.issuers;
        if let Some(client) = &self.introspection
            && !issuers.iter().any(|(i, _)| i == client.issuer().as_str())
        {
            issuers.push((client.issuer().as_str().to_string(), None));
        }
        if issuers.is_empty() {
            return Err(BuildError::NoIssuer);
        }
        let mut providers = Vec::with_capacity(issuers.len());
        for (issuer, jwks_uri) in issuers {
            let issuer = Issuer::new(&issuer)?;
            let (jwks_uri, listed) = match jwks_uri {
                Some(uri) => (Endpoint::from(uri.as_str()), Vec::new()),
                None => {
                    let metadata: ProviderMetadata =
                        onesoidc_flows::discover(&http, &issuer).await?;
                    (
                        metadata.jwks_uri,
                        metadata.id_token_signing_alg_values_supported,
                    )
                }
            };
            tracing::debug!(%issuer, %jwks_uri, "accepting access tokens of this provider");
            providers.push(Provider {
                issuer,
                jwks_uri,
                algorithms: self.algorithms.clone().unwrap_or(listed),
                keys: JwksCache::new(),
            });
        }
        Ok(ResourceServer {
            inner: Arc::new(Inner {
                audience,
                providers,
                http,
                introspection: self.introspection.map(|client| Introspector {
                    client,
                    cache: IntrospectionCache::new(self.cache_entries, self.cache_max_age),
                }),
                leeway: self.leeway,
                public_url,
                dpop_iat_window: self.dpop_iat_window,
                dpop_replay,
                dpop_nonces,
                verified: ClaimsCache::new(self.verified_entries, self.verified_max_age),
                clock: self.clock,
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
        "no HTTP client was given; pass one to ResourceServerBuilder::http, or enable the `reqwest` feature of onesoidc-resource",
    )))
}

impl ResourceServer {
    /// A builder; see [`ResourceServerBuilder`].
    pub fn builder() -> ResourceServerBuilder {
        ResourceServerBuilder::default()
    }

    /// The audience tokens must name.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Checks the token of a request (its `Authorization: Bearer` or
    /// `Authorization: DPoP` header; see [`access_token`](crate::access_token)).
    /// A DPoP token (that scheme, or a token with `cnf.jkt`) needs one
    /// `DPoP` proof header for this `method` and URL, checked with
    /// [`verify_dpop_proof`] and used once (the replay cache); a bound
    /// token sent as `Bearer` is refused.
    pub async fn check_request(
        &self,
        method: &http::Method,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Arc<AccessTokenClaims>, Refusal> {
        let (scheme, token) = access_token(headers, uri)?;
        if scheme == TokenScheme::Bearer {
            return self.check_token(token).await;
        }
        let claims = self
            .check_any_token(token)
            .await
            .map_err(|refusal| match refusal {
                Refusal::InvalidToken(e) => Refusal::InvalidDpopToken(e),
                other => other,
            })?;
        let Some(jkt) = claims.cnf_jkt.as_deref() else {
            return Err(Refusal::InvalidDpopToken(AccessTokenError::Malformed(
                "sent as `Authorization: DPoP`, but the token is not bound to a key (no `cnf.jkt`)"
                    .into(),
            )));
        };
        let mut proofs = headers.get_all("dpop").iter();
        let (Some(proof), None) = (proofs.next(), proofs.next()) else {
            return Err(Refusal::MissingDpopProof);
        };
        let proof = proof.to_str().map_err(|_| Refusal::MissingDpopProof)?;
        let url = self.request_url(headers, uri)?;
        let now = (self.inner.clock)();
        let expect = DpopProofExpectations::new(method.as_str(), &url)
            .access_token(token, jkt)
            .iat_window(self.inner.dpop_iat_window);
        let checked = verify_dpop_proof(proof, &expect, now).map_err(Refusal::InvalidDpopProof)?;
        if let Some(nonces) = &self.inner.dpop_nonces {
            let reason = match checked.nonce.as_deref() {
                None => Some(DpopProofError::MissingNonce),
                Some(nonce) if !nonces.accepts(nonce, now) => Some(DpopProofError::WrongNonce),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                return Err(Refusal::UseDpopNonce {
                    nonce: nonces.current(now),
                    reason,
                });
            }
        }
        // A proof passes while its `iat` is within the window either way.
        let expires = checked.iat + self.inner.dpop_iat_window.as_secs() + 1;
        let replay_key = format!("{}:{}", checked.key_thumbprint, checked.jti);
        let first = self
            .inner
            .dpop_replay
            .first_use(&replay_key, unix_seconds(now), expires)
            .await
            .map_err(|e| Refusal::Unavailable(Arc::new(e)))?;
        if !first {
            return Err(Refusal::ReplayedDpopProof);
        }
        Ok(claims)
    }

    /// The DPoP nonce to give clients now, when the server requires one
    /// ([`ResourceServerBuilder::dpop_nonce`]): the layer sends it as
    /// `DPoP-Nonce` on every answer to a DPoP request; an application that
    /// checks requests itself sends it the same way.
    pub fn dpop_nonce(&self) -> Option<String> {
        let nonces = self.inner.dpop_nonces.as_ref()?;
        Some(nonces.current((self.inner.clock)()))
    }

    /// The request's full URL as the client called it: the public origin
    /// (or `https://` + `Host`) and the request's path and query.
    fn request_url(&self, headers: &HeaderMap, uri: &Uri) -> Result<Url, Refusal> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let origin = match &self.inner.public_url {
            Some(origin) => origin.clone(),
            None => {
                let host = headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or(uri.authority().map(|a| a.as_str()))
                    .ok_or(Refusal::InvalidRequest(
                        "a DPoP request without a Host header",
                    ))?;
                Url::parse(&format!("https://{host}"))
                    .map_err(|_| Refusal::InvalidRequest("a Host header that is not a host"))?
            }
        };
        origin
            .join(path)
            .map_err(|_| Refusal::InvalidRequest("a request path that is not a URL path"))
    }

    /// Checks an access token: a JWT against its provider's keys (RFC
    /// 9068), anything else by introspection when a client was given (RFC
    /// 7662, cached).
    pub async fn check_token(&self, token: &str) -> Result<Arc<AccessTokenClaims>, Refusal> {
        let claims = self.check_any_token(token).await?;
        // A DPoP-bound token is only good with a proof of its key, which
        // comes only with `Authorization: DPoP`: as a Bearer token it is refused.
        if claims.cnf_jkt.is_some() {
            return Err(Refusal::InvalidToken(AccessTokenError::BoundToKey));
        }
        Ok(claims)
    }

    /// Checks a token, bound or not (the caller checks the binding).
    async fn check_any_token(&self, token: &str) -> Result<Arc<AccessTokenClaims>, Refusal> {
        if token.len() > MAX_ACCESS_TOKEN_BYTES {
            return Err(Refusal::InvalidToken(AccessTokenError::TooLarge {
                len: token.len(),
                max: MAX_ACCESS_TOKEN_BYTES,
            }));
        }
        let now = (self.inner.clock)();
        if is_jwt(token) {
            return self.check_jwt_cached(token, now).await;
        }
        let Some(introspector) = &self.inner.introspection else {
            return Err(Refusal::InvalidToken(AccessTokenError::Malformed(
                "an opaque token, and no introspection client is configured".into(),
            )));
        };
        introspector
            .cache
            .check(token, now, || self.introspect(introspector, token, now))
            .await
    }

    /// The provider whose issuer the token names (the only one when there is one).
    fn provider_for(&self, token: &str) -> &Provider {
        let providers = &self.inner.providers;
        if let [only] = providers.as_slice() {
            return only;
        }
        let iss = unverified_claims(token)
            .and_then(|claims| claims.get("iss")?.as_str().map(str::to_string));
        providers
            .iter()
            .find(|p| iss.as_deref() == Some(p.issuer.as_str()))
            .unwrap_or(&providers[0])
    }

    /// A JWT verified before (by hash) passes on its time claims alone;
    /// another is checked in full and kept when it passes.
    async fn check_jwt_cached(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<Arc<AccessTokenClaims>, Refusal> {
        let key = hash(token);
        if let Some(claims) = self.inner.verified.get(&key) {
            claims
                .check_times(self.inner.leeway, now)
                .map_err(Refusal::InvalidToken)?;
            return Ok(claims);
        }
        let claims = Arc::new(self.check_jwt(token, now).await?);
        self.inner.verified.put(key, &claims, now);
        Ok(claims)
    }

    async fn check_jwt(&self, token: &str, now: SystemTime) -> Result<AccessTokenClaims, Refusal> {
        let provider = self.provider_for(token);
        let expect = AccessTokenExpectations::new(&provider.issuer, &self.inner.audience)
            .allowed_algorithms(&provider.algorithms)
            .leeway(self.inner.leeway);
        let fetch = || fetch_jwks(&self.inner.http, &provider.jwks_uri);
        let unavailable = |e: Error| Refusal::Unavailable(Arc::new(e));
        let keys = provider
            .keys
            .keys_from(Want::Fresh, fetch)
            .await
            .map_err(unavailable)?;
        let result = match check_access_token(token, &keys.set, expect, now) {
            Err(AccessTokenError::UnknownKeyId(kid)) => {
                let newer = provider
                    .keys
                    .keys_from(Want::NewerThan(keys.fetch), fetch)
                    .await
                    .map_err(unavailable)?;
                if newer.fetch > keys.fetch {
                    check_access_token(token, &newer.set, expect, now)
                } else {
                    Err(AccessTokenError::UnknownKeyId(kid))
                }
            }
            other => other,
        };
        result.map_err(Refusal::InvalidToken)
    }

    async fn introspect(
        &self,
        introspector: &Introspector,
        token: &str,
        now: SystemTime,
    ) -> Result<AccessTokenClaims, Refusal> {
        let client = &introspector.client;
        let info = client
            .introspect(
                &SecretString::from(token.to_string()),
                Some(TokenTypeHint::AccessToken),
            )
            .await
            .map_err(|e| Refusal::Unavailable(Arc::new(e)))?;
        let expect = AccessTokenExpectations::new(client.issuer(), &self.inner.audience)
            .leeway(self.inner.leeway);
        claims_from_introspection(&info, expect, now).map_err(Refusal::InvalidToken)
    }
}
