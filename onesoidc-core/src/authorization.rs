//! The headers that use an access token at an application: `Bearer`, or
//! `DPoP` with a proof (RFC 9449 §7), so callers never branch on the kind
//! of token.

use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::dpop_nonce::DPOP_HEADER;
use crate::{DpopKey, Error, TokenSet};

/// The `Authorization` header (and for a DPoP-bound token the `DPoP`
/// proof, with `ath`) for one request with an access token.
///
/// `Debug` shows the scheme only, never the token.
///
/// ```
/// use std::time::SystemTime;
/// use onesoidc_core::{Authorization, DpopKey, ExposeSecret, TokenSet};
/// let key = DpopKey::generate().unwrap();
/// let mut tokens = TokenSet {
///     access_token: "at".to_string().into(), token_type: "DPoP".into(), expires_at: None,
///     refresh_token: None, id_token: None, scope: None, dpop_jkt: Some(key.thumbprint().into()),
/// };
/// let url = url::Url::parse("https://app.example/me").unwrap();
/// let headers = Authorization::for_tokens(&tokens, Some(&key), "GET", &url, None, SystemTime::now()).unwrap();
/// assert_eq!(headers.authorization().expose_secret(), "DPoP at");
/// assert!(headers.dpop().is_some());
///
/// tokens.dpop_jkt = None;
/// let bearer = Authorization::for_tokens(&tokens, Some(&key), "GET", &url, None, SystemTime::now()).unwrap();
/// assert_eq!(bearer.authorization().expose_secret(), "Bearer at");
/// assert!(bearer.dpop().is_none());
/// ```
#[derive(Clone)]
pub struct Authorization {
    authorization: SecretString,
    dpop: Option<String>,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.dpop.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        f.debug_struct("Authorization")
            .field("scheme", &scheme)
            .finish_non_exhaustive()
    }
}

impl Authorization {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(access_token: &SecretString) -> Self {
        Authorization {
            authorization: format!("Bearer {}", access_token.expose_secret()).into(),
            dpop: None,
        }
    }

    /// The headers for a `method` request to `url` with `tokens`' access
    /// token at `now`: `Bearer` for a bearer token; for a DPoP-bound one
    /// `DPoP <token>` and a proof from `key` with `ath` and the server's
    /// `nonce` if it gave one. A bound token without `key`, or with a key
    /// other than the one it is bound to, is [`Error::InvalidRequest`]
    /// naming both thumbprints; nothing is signed.
    pub fn for_tokens(
        tokens: &TokenSet,
        key: Option<&DpopKey>,
        method: &str,
        url: &Url,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<Self, Error> {
        let Some(jkt) = &tokens.dpop_jkt else {
            return Ok(Self::bearer(&tokens.access_token));
        };
        let refuse = |reason: String| Error::InvalidRequest {
            endpoint: crate::dpop_htu(url),
            reason,
        };
        let key = key.ok_or_else(|| {
            refuse(format!(
                "the access token is bound to DPoP key {jkt} but no DPoP key is at hand to prove it; use the client or token manager that got the token"
            ))
        })?;
        if key.thumbprint() != jkt {
            return Err(refuse(format!(
                "the access token is bound to DPoP key {jkt}, not to this process's DPoP key {}; it cannot be used here",
                key.thumbprint()
            )));
        }
        let token = tokens.access_token.expose_secret();
        let proof = key.proof(method, url, Some(token), nonce, now)?;
        Ok(Authorization {
            authorization: format!("DPoP {token}").into(),
            dpop: Some(proof),
        })
    }

    /// The `Authorization` header's value: `Bearer <token>` or `DPoP <token>`.
    pub fn authorization(&self) -> &SecretString {
        &self.authorization
    }

    /// The `DPoP` header's value (the proof), for a DPoP-bound token.
    pub fn dpop(&self) -> Option<&str> {
        self.dpop.as_deref()
    }

    /// Sets `Authorization` (marked sensitive) and, for a bound token,
    /// `DPoP` in `headers`. A token that is not a valid header value is
    /// [`Error::InvalidRequest`].
    ///
    /// ```
    /// let token: onesoidc_core::SecretString = "at".to_string().into();
    /// let mut headers = http::HeaderMap::new();
    /// onesoidc_core::Authorization::bearer(&token).apply(&mut headers).unwrap();
    /// assert_eq!(headers["authorization"], "Bearer at");
    /// ```
    pub fn apply(&self, headers: &mut http::HeaderMap) -> Result<(), Error> {
        let invalid = || Error::InvalidRequest {
            endpoint: "the request's headers".into(),
            reason: "the access token or DPoP proof is not a valid HTTP header value".into(),
        };
        let mut authorization = http::HeaderValue::from_str(self.authorization.expose_secret())
            .map_err(|_| invalid())?;
        authorization.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, authorization);
        match &self.dpop {
            Some(proof) => {
                let proof = http::HeaderValue::from_str(proof).map_err(|_| invalid())?;
                headers.insert(DPOP_HEADER, proof);
            }
            None => {
                headers.remove(DPOP_HEADER);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_to(key: &DpopKey) -> TokenSet {
        TokenSet {
            access_token: "secret-at".to_string().into(),
            token_type: "DPoP".into(),
            expires_at: None,
            refresh_token: None,
            id_token: None,
            scope: None,
            dpop_jkt: Some(key.thumbprint().to_string()),
        }
    }

    #[test]
    fn a_bound_token_gets_a_proof_with_ath_and_nonce() {
        let key = DpopKey::generate().unwrap();
        let url = Url::parse("https://app.example/me?x=1").unwrap();
        let now = SystemTime::now();
        let headers =
            Authorization::for_tokens(&bound_to(&key), Some(&key), "GET", &url, Some("n"), now)
                .unwrap();
        let expect = crate::DpopProofExpectations::new("GET", &url)
            .access_token("secret-at", key.thumbprint())
            .nonce("n");
        crate::verify_dpop_proof(headers.dpop().unwrap(), &expect, now).unwrap();
        let mut map = http::HeaderMap::new();
        headers.apply(&mut map).unwrap();
        assert_eq!(map["authorization"], "DPoP secret-at");
        assert!(map["authorization"].is_sensitive());
        assert_eq!(map["dpop"], headers.dpop().unwrap());
        assert!(!format!("{headers:?}").contains("secret-at"));
    }

    #[test]
    fn a_bound_token_with_another_key_or_none_is_refused_naming_both() {
        let key = DpopKey::generate().unwrap();
        let other = DpopKey::generate().unwrap();
        let url = Url::parse("https://app.example/me").unwrap();
        let tokens = bound_to(&key);
        let err =
            Authorization::for_tokens(&tokens, Some(&other), "GET", &url, None, SystemTime::now())
                .unwrap_err()
                .to_string();
        assert!(
            err.contains(key.thumbprint()) && err.contains(other.thumbprint()),
            "{err}"
        );
        assert!(!err.contains("secret-at"));
        let err = Authorization::for_tokens(&tokens, None, "GET", &url, None, SystemTime::now())
            .unwrap_err()
            .to_string();
        assert!(err.contains(key.thumbprint()), "{err}");
    }
}
