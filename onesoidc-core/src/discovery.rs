//! The issuer and OpenID Provider discovery ([PROTOCOL §2](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#2-discovery)).

use std::fmt;

use serde::Deserialize;

use crate::response::{HttpResponse, parse_public_json};
use crate::{Endpoint, Error};

/// An OpenID issuer: `host + "/oidc"`, without a trailing slash.
///
/// ```
/// use onesoidc_core::Issuer;
/// let issuer = Issuer::from_host("https://idp-server.ones-now.com/").unwrap();
/// assert_eq!(issuer.as_str(), "https://idp-server.ones-now.com/oidc");
/// assert_eq!(issuer.endpoint("/token").as_str(), "https://idp-server.ones-now.com/oidc/token");
/// assert_eq!(issuer.origin(), "https://idp-server.ones-now.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Issuer {
    url: String,
    origin: String,
}

impl Issuer {
    /// Uses `url` as the issuer as it is (a trailing slash is removed).
    /// Anything but an `https://` or `http://` URL with a host and no query
    /// or fragment is [`Error::InvalidUrl`].
    pub fn new(url: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let trimmed = url.trim().trim_end_matches('/');
        let parsed = url::Url::parse(trimmed).map_err(|e| invalid(format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(invalid("it must start with https://".into()));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host".into()));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("it must not have a query or fragment".into()));
        }
        Ok(Issuer {
            url: trimmed.to_string(),
            origin: parsed.origin().ascii_serialization(),
        })
    }

    /// The issuer of a provider whose base URL (`host` in device.yml) is `host`.
    pub fn from_host(host: &str) -> Result<Self, Error> {
        let base = host.trim().trim_end_matches('/');
        Issuer::new(&format!("{base}/oidc"))
    }

    /// The issuer URL.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Scheme, host and port, e.g. `https://idp.example.com:8443`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The issuer URL followed by `path` (which starts with `/`).
    pub fn endpoint(&self, path: &str) -> Endpoint {
        Endpoint::new(format!("{}{path}", self.url))
    }

    /// Resolves an application URL per [PROTOCOL §9](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#9-well-known-applications-ones-extension): absolute URLs stay, a
    /// path resolves against the issuer's origin.
    ///
    /// ```
    /// let issuer = onesoidc_core::Issuer::new("https://idp.example.com:8443/oidc").unwrap();
    /// assert_eq!(issuer.resolve_url("/apps/vhh").unwrap(), "https://idp.example.com:8443/apps/vhh");
    /// assert_eq!(issuer.resolve_url("https://vhh.example.com").unwrap(), "https://vhh.example.com");
    /// ```
    pub fn resolve_url(&self, url: &str) -> Result<String, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        if url.starts_with('/') && !url.starts_with("//") {
            return Ok(format!("{}{url}", self.origin));
        }
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(invalid("not an http(s) URL".into()));
        }
        Ok(url.to_string())
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// The endpoints of a provider, from discovery or the fallback paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// The issuer.
    pub issuer: Issuer,
    /// `token_endpoint`.
    pub token_endpoint: Endpoint,
    /// `backchannel_authentication_endpoint` (CIBA).
    pub backchannel_authentication_endpoint: Endpoint,
    /// `introspection_endpoint`.
    pub introspection_endpoint: Endpoint,
    /// `revocation_endpoint`.
    pub revocation_endpoint: Endpoint,
    /// `jwks_uri`.
    pub jwks_uri: Endpoint,
    /// `id_token_signing_alg_values_supported`; empty when unknown.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1): the algorithms
    /// the provider accepts DPoP proofs in; empty when it does not say.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether these came from a discovery document (false: fallback paths).
    pub discovered: bool,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    token_endpoint: Option<Endpoint>,
    backchannel_authentication_endpoint: Option<Endpoint>,
    introspection_endpoint: Option<Endpoint>,
    revocation_endpoint: Option<Endpoint>,
    jwks_uri: Option<Endpoint>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    dpop_signing_alg_values_supported: Vec<String>,
}

impl ProviderMetadata {
    /// The URL of the discovery document.
    pub fn discovery_url(issuer: &Issuer) -> Endpoint {
        issuer.endpoint("/.well-known/openid-configuration")
    }

    /// `GET {issuer}/.well-known/openid-configuration`.
    pub fn discovery_request(issuer: &Issuer) -> Result<crate::request::HttpRequest, Error> {
        crate::request::get(&Self::discovery_url(issuer), None)
    }

    /// The fallback endpoints under the issuer (used when discovery answers 404).
    ///
    /// ```
    /// let issuer = onesoidc_core::Issuer::new("https://idp/oidc").unwrap();
    /// let meta = onesoidc_core::ProviderMetadata::fallback(&issuer);
    /// assert_eq!(meta.backchannel_authentication_endpoint, "https://idp/oidc/backchannel");
    /// ```
    pub fn fallback(issuer: &Issuer) -> Self {
        ProviderMetadata {
            issuer: issuer.clone(),
            token_endpoint: issuer.endpoint("/token"),
            backchannel_authentication_endpoint: issuer.endpoint("/backchannel"),
            introspection_endpoint: issuer.endpoint("/token/introspection"),
            revocation_endpoint: issuer.endpoint("/token/revocation"),
            jwks_uri: issuer.endpoint("/jwks"),
            id_token_signing_alg_values_supported: Vec::new(),
            dpop_signing_alg_values_supported: Vec::new(),
            discovered: false,
        }
    }

    /// These endpoints as a discovery document, for a cache: what
    /// [`from_discovery_response`](Self::from_discovery_response) reads back
    /// (with all its checks).
    ///
    /// ```
    /// use onesoidc_core::{Issuer, ProviderMetadata};
    /// let issuer = Issuer::new("https://idp/oidc").unwrap();
    /// let metadata = ProviderMetadata::fallback(&issuer);
    /// let body = serde_json::to_vec(&metadata.to_document()).unwrap();
    /// let response = http::Response::builder().status(200).body(body).unwrap();
    /// let again = ProviderMetadata::from_discovery_response(&issuer, &response).unwrap();
    /// assert_eq!(again.token_endpoint, metadata.token_endpoint);
    /// ```
    pub fn to_document(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.issuer.as_str(),
            "token_endpoint": self.token_endpoint.as_str(),
            "backchannel_authentication_endpoint": self.backchannel_authentication_endpoint.as_str(),
            "introspection_endpoint": self.introspection_endpoint.as_str(),
            "revocation_endpoint": self.revocation_endpoint.as_str(),
            "jwks_uri": self.jwks_uri.as_str(),
            "id_token_signing_alg_values_supported": self.id_token_signing_alg_values_supported,
            "dpop_signing_alg_values_supported": self.dpop_signing_alg_values_supported,
        })
    }

    /// Parses the discovery response. 404 gives the fallback endpoints; a
    /// document naming another issuer is [`Error::IssuerMismatch`]; endpoints
    /// the document omits fall back too.
    pub fn from_discovery_response(
        issuer: &Issuer,
        response: &HttpResponse,
    ) -> Result<Self, Error> {
        let endpoint = Self::discovery_url(issuer);
        if response.status() == http::StatusCode::NOT_FOUND {
            tracing::debug!(%endpoint, "no discovery document; using the fallback endpoints");
            return Ok(Self::fallback(issuer));
        }
        let doc: Document = parse_public_json(&endpoint, response)?;
        if doc.issuer != issuer.as_str() {
            return Err(Error::IssuerMismatch {
                endpoint: endpoint.into_string(),
                expected: issuer.as_str().to_string(),
                found: doc.issuer,
            });
        }
        let fallback = Self::fallback(issuer);
        Ok(ProviderMetadata {
            issuer: issuer.clone(),
            token_endpoint: doc.token_endpoint.unwrap_or(fallback.token_endpoint),
            backchannel_authentication_endpoint: doc
                .backchannel_authentication_endpoint
                .unwrap_or(fallback.backchannel_authentication_endpoint),
            introspection_endpoint: doc
                .introspection_endpoint
                .unwrap_or(fallback.introspection_endpoint),
            revocation_endpoint: doc
                .revocation_endpoint
                .unwrap_or(fallback.revocation_endpoint),
            jwks_uri: doc.jwks_uri.unwrap_or(fallback.jwks_uri),
            id_token_signing_alg_values_supported: doc.id_token_signing_alg_values_supported,
            dpop_signing_alg_values_supported: doc.dpop_signing_alg_values_supported,
            discovered: true,
        })
    }
}
