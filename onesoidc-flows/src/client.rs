//! [`OnesIdClient`]: one registered device talking to its provider.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onesoidc_core::request::HttpRequest;
use onesoidc_core::response::HttpResponse;
use onesoidc_core::{
    ClientAuth, DeviceIdentity, Error, ExposeSecret, IdentityPaths, Issuer, ProviderMetadata,
    PublicJwkSet, TokenSet, parse_token_response,
};
use onesoidc_http::{HttpClient, ReqwestClient};
use tokio::sync::{Mutex, OnceCell, RwLock};

/// A registered device and the provider it belongs to.
///
/// Cheap to share: wrap it in an `Arc`. Discovery runs once, on first use,
/// and is cached; a failed discovery is retried on the next call.
pub struct OnesIdClient {
    http: Arc<dyn HttpClient>,
    identity: DeviceIdentity,
    auth: ClientAuth,
    issuer: Issuer,
    metadata: OnceCell<ProviderMetadata>,
    pub(crate) jwks_cache: RwLock<Option<Arc<PublicJwkSet>>>,
    device_bearer: Mutex<Option<TokenSet>>,
}

/// A cached device token is replaced this long before it expires.
const BEARER_MARGIN: Duration = Duration::from_secs(30);

impl std::fmt::Debug for OnesIdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnesIdClient")
            .field("issuer", &self.issuer)
            .field("client_id", &self.auth.client_id)
            .finish_non_exhaustive()
    }
}

/// Options of a device access token request (PROTOCOL §4).
///
/// ```
/// let request = onesoidc_flows::DeviceTokenRequest::default().scope("read write");
/// assert_eq!(request.scope.as_deref(), Some("read write"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceTokenRequest {
    /// Space-separated scopes, if any.
    pub scope: Option<String>,
    /// Target resource (RFC 8707), if any.
    pub resource: Option<String>,
}

impl DeviceTokenRequest {
    /// Sets the scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets the target resource.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }
}

impl OnesIdClient {
    /// A client for `identity`, sending through `http`.
    ///
    /// Fails with [`onesoidc_core::ConfigError::NotRegistered`] for an
    /// unmanaged identity.
    pub fn new(identity: DeviceIdentity, http: Arc<dyn HttpClient>) -> Result<Self, Error> {
        let auth = identity.client_auth()?;
        let issuer = identity.issuer()?;
        Ok(OnesIdClient {
            http,
            identity,
            auth,
            issuer,
            metadata: OnceCell::new(),
            jwks_cache: RwLock::new(None),
            device_bearer: Mutex::new(None),
        })
    }

    /// Loads the identity from `paths` and uses the default HTTP client.
    pub fn from_paths(paths: &IdentityPaths) -> Result<Self, Error> {
        let identity = DeviceIdentity::load(paths)?;
        // Building the HTTP client fails before any request (e.g. no usable
        // TLS roots): the error names the provider it was for.
        let issuer = identity.issuer()?;
        let http = ReqwestClient::new().map_err(|source| Error::Transport {
            endpoint: issuer.to_string(),
            source,
        })?;
        Self::new(identity, Arc::new(http))
    }

    /// Loads the identity from the default paths (honouring
    /// `ONESOIDC_DEVICE_CONFIG` and `ONESOIDC_KEY_DIR`) and uses the default HTTP client.
    pub fn from_default_identity() -> Result<Self, Error> {
        Self::from_paths(&IdentityPaths::from_env())
    }

    /// The device identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// The issuer (`host + "/oidc"`).
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The client credentials (client id and signer).
    pub fn client_auth(&self) -> &ClientAuth {
        &self.auth
    }

    /// The HTTP client.
    pub fn http(&self) -> &Arc<dyn HttpClient> {
        &self.http
    }

    /// The current time, as every assertion is stamped.
    pub fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// The provider's endpoints: discovered once, then cached (PROTOCOL §2).
    pub async fn provider_metadata(&self) -> Result<&ProviderMetadata, Error> {
        self.metadata
            .get_or_try_init(|| async {
                let request = ProviderMetadata::discovery_request(&self.issuer)?;
                let endpoint = ProviderMetadata::discovery_url(&self.issuer);
                let response = self.send(&endpoint, request).await?;
                let metadata = ProviderMetadata::from_discovery_response(&self.issuer, &response)?;
                tracing::debug!(issuer = %self.issuer, discovered = metadata.discovered, "provider endpoints known");
                Ok(metadata)
            })
            .await
    }

    /// Sends `request` to `endpoint`; a transport failure names the endpoint.
    pub async fn send(&self, endpoint: &str, request: HttpRequest) -> Result<HttpResponse, Error> {
        send(self.http.as_ref(), endpoint, request).await
    }

    /// A device access token with the default options (PROTOCOL §4).
    pub async fn device_token(&self) -> Result<TokenSet, Error> {
        self.device_token_with(&DeviceTokenRequest::default()).await
    }

    /// A device access token: client credentials with private_key_jwt.
    pub async fn device_token_with(&self, options: &DeviceTokenRequest) -> Result<TokenSet, Error> {
        let endpoint = &self.provider_metadata().await?.token_endpoint;
        let request = self.auth.client_credentials_request(
            endpoint,
            options.scope.as_deref(),
            options.resource.as_deref(),
            self.now(),
        )?;
        let response = self.send(endpoint, request).await?;
        parse_token_response(endpoint, &response, self.now())
    }

    /// Refreshes a user's tokens with the refresh_token grant (PROTOCOL §6).
    ///
    /// When the response has no new refresh token, the old one is kept in
    /// the returned set; when it has one (rotation), the new one replaces it.
    /// A rejected refresh token is [`Error::OAuth`] with `invalid_grant`,
    /// a missing one [`Error::LoginRequired`] (nothing sent): either way
    /// the user has to log in again.
    pub async fn refresh(&self, previous: &TokenSet) -> Result<TokenSet, Error> {
        let endpoint = &self.provider_metadata().await?.token_endpoint;
        let refresh_token =
            previous
                .refresh_token
                .as_ref()
                .ok_or_else(|| Error::LoginRequired {
                    reason: "these tokens have no refresh token".into(),
                })?;
        let request = self
            .auth
            .refresh_token_request(endpoint, refresh_token, self.now())?;
        let response = self.send(endpoint, request).await?;
        Ok(
            parse_token_response(endpoint, &response, self.now())?
                .keep_refresh_token_from(previous),
        )
    }

    /// Sends a request that carries the device access token as bearer
    /// (QR sessions, applications). The token is cached until shortly before
    /// it expires; a 401 gets one retry with a new token.
    pub(crate) async fn with_device_bearer(
        &self,
        build: impl Fn(&str) -> Result<HttpRequest, Error>,
        endpoint: &str,
    ) -> Result<HttpResponse, Error> {
        let bearer = self.device_bearer().await?;
        let response = self.send(endpoint, build(bearer.expose_secret())?).await?;
        if response.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tracing::debug!(endpoint, "device token refused; getting a new one");
        *self.device_bearer.lock().await = None;
        let bearer = self.device_bearer().await?;
        self.send(endpoint, build(bearer.expose_secret())?).await
    }

    /// The cached device access token, fetched when missing or about to expire.
    async fn device_bearer(&self) -> Result<onesoidc_core::SecretString, Error> {
        let mut cached = self.device_bearer.lock().await;
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
}

/// Sends `request` to `endpoint` through `http`; a transport failure names
/// the endpoint.
pub(crate) async fn send(
    http: &dyn HttpClient,
    endpoint: &str,
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
    tracing::debug!(%method, endpoint, status = response.status().as_u16(), "response");
    Ok(response)
}
