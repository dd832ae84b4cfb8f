//! The provider's own signing key (RS256, generated at start): it signs
//! access tokens and ID tokens and is published at `/oidc/jwks` with
//! `kid` = its RFC 7638 thumbprint.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use onesoidc_core::{KeyType, PemSigner, PublicJwk};
use serde::Serialize;
use serde_json::Value;

/// The signing key with its public JWK.
pub(crate) struct ProviderKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: PublicJwk,
    kid: String,
}

/// The JWS algorithm of the provider key.
pub(crate) const PROVIDER_ALG: &str = "RS256";

impl ProviderKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> Result<Self, String> {
        let signer = PemSigner::generate(KeyType::Rsa2048)
            .map_err(|e| format!("cannot generate the provider key: {e}"))?;
        let pem = signer
            .private_key_pem()
            .map_err(|e| format!("cannot export the provider key: {e}"))?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("jsonwebtoken rejects the provider key: {e}"))?;
        let jwk = signer
            .public_jwk()
            .with_thumbprint_kid()
            .map_err(|e| e.to_string())?;
        let (Some(n), Some(e), Some(kid)) = (&jwk.n, &jwk.e, &jwk.kid) else {
            return Err("the provider JWK lacks n, e or kid".into());
        };
        let decoding = DecodingKey::from_rsa_components(n, e)
            .map_err(|e| format!("jsonwebtoken rejects the provider public key: {e}"))?;
        Ok(ProviderKey {
            encoding,
            decoding,
            kid: kid.clone(),
            jwk,
        })
    }

    /// The key id (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK (with `kid`, `alg`, `use`).
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Signs `claims` with header `{"alg":"RS256","typ":typ,"kid":...}`.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(typ.to_string());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| format!("cannot sign a token: {e}"))
    }

    /// Verifies a JWT this key signed for `issuer`, ignoring `exp` and `aud`
    /// (used for `id_token_hint`, which may have expired).
    pub fn verify_own(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<serde_json::Map<String, Value>, String> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer]);
        let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &self.decoding,
            &validation,
        )
        .map_err(|e| format!("not a token of this provider ({e})"))?
        .claims;
        match claims.get("iss") {
            Some(Value::String(iss)) if iss == issuer => Ok(claims),
            _ => Err(format!("`iss` is not {issuer:?}")),
        }
    }
}
