//! Checking tokens: ID tokens against the provider's keys, access tokens by
//! introspection, and revocation ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10), [§7](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#7-introspection-and-revocation)).

use onesoidc_core::{
    Error, IdTokenClaims, IdTokenError, IdTokenExpectations, Introspection, PublicJwkSet,
    SecretString, TokenTypeHint, parse_introspection_response, parse_revocation_response,
    response::parse_json, validate_id_token,
};

use crate::OnesIdClient;

impl OnesIdClient {
    /// Validates an ID token: signature with the provider's JWKS (cached;
    /// fetched again once when the token names an unknown `kid`), algorithm
    /// pinned to those the provider lists, `iss`, `aud`, `exp`, `iat`.
    ///
    /// ```no_run
    /// # async fn run(client: onesoidc_flows::OnesIdClient, id_token: &str) -> Result<(), onesoidc_flows::Error> {
    /// let claims = client.validate_id_token(id_token).await?;
    /// println!("logged in: {}", claims.sub);
    /// # Ok(()) }
    /// ```
    pub async fn validate_id_token(&self, id_token: &str) -> Result<IdTokenClaims, Error> {
        let meta = self.provider_metadata().await?;
        let expect = IdTokenExpectations {
            issuer: self.issuer(),
            client_id: &self.client_auth().client_id,
            allowed_algorithms: &meta.id_token_signing_alg_values_supported,
        };
        let (jwks, fresh) = self.jwks(false).await?;
        let result = match validate_id_token(id_token, &jwks, expect, self.now()) {
            Err(IdTokenError::UnknownKeyId(_)) if !fresh => {
                tracing::debug!("unknown kid: fetching the provider's JWKS again");
                let (jwks, _) = self.jwks(true).await?;
                validate_id_token(id_token, &jwks, expect, self.now())
            }
            other => other,
        };
        result.map_err(|source| Error::IdToken {
            endpoint: meta.jwks_uri.to_string(),
            source,
        })
    }

    /// The provider's JWKS and whether it was just fetched.
    async fn jwks(&self, refetch: bool) -> Result<(std::sync::Arc<PublicJwkSet>, bool), Error> {
        if !refetch && let Some(cached) = self.cached_jwks().await {
            return Ok((cached, false));
        }
        let endpoint = &self.provider_metadata().await?.jwks_uri;
        let response = self
            .send(endpoint, onesoidc_core::request::get(endpoint, None)?)
            .await?;
        let jwks: std::sync::Arc<PublicJwkSet> =
            std::sync::Arc::new(parse_json(endpoint, &response)?);
        self.cache_jwks(jwks.clone()).await;
        Ok((jwks, true))
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
        let response = self.send(&endpoint, request).await?;
        parse_introspection_response(&endpoint, &response)
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
        let response = self.send(&endpoint, request).await?;
        parse_revocation_response(&endpoint, &response)
    }
}
