//! Checking tokens: ID tokens against the provider's keys, access tokens by
//! introspection, and revocation ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10), [§7](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#7-introspection-and-revocation)).

use onesoidc_core::{
    DEFAULT_ID_TOKEN_ALGORITHMS, Error, IdTokenClaims, IdTokenError, IdTokenExpectations,
    Introspection, PublicJwkSet, SecretString, TokenSet, TokenTypeHint,
    parse_introspection_response, parse_revocation_response, unix_seconds, unverified_claims,
    validate_id_token,
};

use crate::OnesIdClient;
use crate::jwks::Want;

/// When a validation fetches the provider's keys again.
#[derive(Debug, Clone, Copy)]
enum Refetch {
    /// For a `kid` the cached keys lack, at most once a minute (any token
    /// may name any `kid`).
    UnknownKid,
    /// For any key or algorithm the cached keys do not verify, at once (a
    /// token the provider just issued us, in a refresh).
    Always,
}

impl Refetch {
    fn applies_to(self, error: &IdTokenError) -> bool {
        match self {
            Refetch::UnknownKid => matches!(error, IdTokenError::UnknownKeyId(_)),
            Refetch::Always => matches!(
                error,
                IdTokenError::UnknownKeyId(_)
                    | IdTokenError::BadSignature
                    | IdTokenError::KeyAlgorithmMismatch { .. }
                    | IdTokenError::AlgorithmNotAllowed { .. }
            ),
        }
    }
}

/// `listed` and the `alg` of every signing key in `keys` (empty `listed`
/// means the defaults, which stay).
fn with_key_algorithms(listed: &[String], keys: &PublicJwkSet) -> Vec<String> {
    let mut all: Vec<String> = if listed.is_empty() {
        DEFAULT_ID_TOKEN_ALGORITHMS
            .iter()
            .map(|a| a.to_string())
            .collect()
    } else {
        listed.to_vec()
    };
    for alg in keys.keys.iter().filter_map(|k| k.alg.as_ref()) {
        if !all.contains(alg) {
            all.push(alg.clone());
        }
    }
    all
}

impl OnesIdClient {
    /// Validates an ID token: signature with the provider's keys (cached
    /// for their lifetime, fetched again for an unknown `kid` at most once
    /// a minute), algorithm pinned to those the provider lists, `iss`,
    /// `aud` (`azp`), `exp`, `iat`, `nbf`. When the provider's last answer
    /// showed the device clock off by more than the skew, the error says so
    /// ([`Error::DeviceClockOff`]).
    ///
    /// ```no_run
    /// # async fn run(client: onesoidc_flows::OnesIdClient, id_token: &str) -> Result<(), onesoidc_flows::Error> {
    /// let claims = client.validate_id_token(id_token).await?;
    /// println!("logged in: {}", claims.sub);
    /// # Ok(()) }
    /// ```
    pub async fn validate_id_token(&self, id_token: &str) -> Result<IdTokenClaims, Error> {
        self.validate_id_token_fetching(id_token, Refetch::UnknownKid)
            .await
    }

    /// Validates `id_token`, fetching the provider's keys again as
    /// `refetch` says when the cached ones do not verify it.
    async fn validate_id_token_fetching(
        &self,
        id_token: &str,
        refetch: Refetch,
    ) -> Result<IdTokenClaims, Error> {
        let meta = self.provider_metadata().await?;
        let check = |set: &PublicJwkSet, algorithms: &[String]| {
            let expect = IdTokenExpectations {
                issuer: self.issuer(),
                client_id: &self.client_auth().client_id,
                allowed_algorithms: algorithms,
            };
            validate_id_token(id_token, set, expect, self.now())
        };
        let listed = &meta.id_token_signing_alg_values_supported;
        let keys = self.jwks_cache().keys(self, Want::Fresh).await?;
        let result = match check(&keys.set, listed) {
            Err(error) if refetch.applies_to(&error) => {
                let want = match refetch {
                    Refetch::UnknownKid => Want::NewerThan(keys.fetch),
                    Refetch::Always => Want::Refetched(keys.fetch),
                };
                let newer = self.jwks_cache().keys(self, want).await?;
                if newer.fetch > keys.fetch {
                    tracing::debug!(%error, "validating with the keys fetched again");
                    match refetch {
                        Refetch::UnknownKid => check(&newer.set, listed),
                        // The algorithms the fresh keys name count too: the
                        // discovery document (cached, maybe for a day) may
                        // predate the key.
                        Refetch::Always => {
                            check(&newer.set, &with_key_algorithms(listed, &newer.set))
                        }
                    }
                } else {
                    Err(error)
                }
            }
            other => other,
        };
        result.map_err(|source| {
            Error::IdToken {
                endpoint: meta.jwks_uri.to_string(),
                source,
            }
            .with_device_clock(self.provider_clock())
        })
    }

    /// Validates the ID token a refresh returned (OpenID Connect Core §12.2):
    /// as any ID token (a key or algorithm the cached keys lack makes one
    /// more fetch, however recent the last: the provider may have rotated
    /// its key within the minute), and with the same `iss` and `sub` as the
    /// one of the login (`previous`), when that had one.
    pub(crate) async fn check_refreshed_id_token(
        &self,
        previous: &TokenSet,
        refreshed: &TokenSet,
    ) -> Result<(), Error> {
        use onesoidc_core::ExposeSecret;
        let Some(id_token) = &refreshed.id_token else {
            return Ok(());
        };
        let claims = self
            .validate_id_token_fetching(id_token.expose_secret(), Refetch::Always)
            .await?;
        let Some(before) = previous
            .id_token
            .as_ref()
            .and_then(|t| unverified_claims(t.expose_secret()))
        else {
            return Ok(());
        };
        let same = |name: &'static str, now: &str| {
            if before.get(name).and_then(|v| v.as_str()) == Some(now) {
                Ok(())
            } else {
                Err(Error::IdToken {
                    endpoint: "refreshed id_token".into(),
                    source: IdTokenError::ChangedOnRefresh { claim: name },
                })
            }
        };
        same("iss", &claims.iss)?;
        same("sub", &claims.sub)
    }

    /// Asks the provider whether `token` is active (RFC 7662).
    ///
    /// ```no_run
    /// # async fn run(client: onesoidc_flows::OnesIdClient, tokens: onesoidc_flows::TokenSet) -> Result<(), onesoidc_flows::Error> {
    /// let info = client.introspect(&tokens.access_token, None).await?;
    /// println!("active: {}", info.active);
    /// # Ok(()) }
    /// ```
    pub async fn introspect(
        &self,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> Result<Introspection, Error> {
        let endpoint = self
            .provider_metadata()
            .await?
            .introspection_endpoint
            .clone();
        let request = {
            let endpoint = endpoint.clone();
            let token = token.clone();
            self.signed_request(move |auth, now| {
                auth.introspection_request(&endpoint, &token, hint, now)
            })
            .await?
        };
        self.exchange(&endpoint, request, |r| {
            parse_introspection_response(&endpoint, r)
        })
        .await
    }

    /// Whether `token` can be used now, by introspection (RFC 7662): `Ok`
    /// with the answer when the provider says it is active, it has not
    /// expired, and its `iss` and `client_id`, when given, are this
    /// provider's and this device's; otherwise [`Error::TokenNotUsable`]
    /// saying which. ([`introspect`](Self::introspect) returns any answer,
    /// `active: false` included.)
    ///
    /// ```no_run
    /// # async fn run(client: onesoidc_flows::OnesIdClient, tokens: onesoidc_flows::TokenSet) -> Result<(), onesoidc_flows::Error> {
    /// let info = client.check_token(&tokens.access_token, None).await?;
    /// println!("usable, for {}", info.sub.unwrap_or_default());
    /// # Ok(()) }
    /// ```
    pub async fn check_token(
        &self,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> Result<Introspection, Error> {
        let info = self.introspect(token, hint).await?;
        self.usable(&info).await?;
        Ok(info)
    }

    /// Whether an introspection answer describes a token usable now (see
    /// [`check_token`](Self::check_token)): `Err(Error::TokenNotUsable)`
    /// saying why not.
    pub async fn usable(&self, info: &Introspection) -> Result<(), Error> {
        let endpoint = &self.provider_metadata().await?.introspection_endpoint;
        let refuse = |reason: String| Error::TokenNotUsable {
            endpoint: endpoint.to_string(),
            reason,
        };
        if !info.active {
            return Err(refuse(
                "the provider says it is not active (revoked, expired or unknown)".into(),
            ));
        }
        if let Some(exp) = info.exp
            && exp <= unix_seconds(self.now())
        {
            return Err(refuse(format!("it expired at {exp} (seconds since 1970)")));
        }
        if let Some(iss) = &info.iss
            && iss != self.issuer().as_str()
        {
            return Err(refuse(format!(
                "it was issued by {iss:?}, not by {}",
                self.issuer()
            )));
        }
        if let Some(client_id) = &info.client_id
            && client_id != &self.client_auth().client_id
        {
            return Err(refuse(format!(
                "it was issued to client {client_id}, not to this device ({})",
                self.client_auth().client_id
            )));
        }
        Ok(())
    }

    /// Revokes `token` (RFC 7009).
    pub async fn revoke(
        &self,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> Result<(), Error> {
        let endpoint = self.provider_metadata().await?.revocation_endpoint.clone();
        let request = {
            let endpoint = endpoint.clone();
            let token = token.clone();
            self.signed_request(move |auth, now| {
                auth.revocation_request(&endpoint, &token, hint, now)
            })
            .await?
        };
        self.exchange(&endpoint, request, |r| {
            parse_revocation_response(&endpoint, r)
        })
        .await
    }
}
