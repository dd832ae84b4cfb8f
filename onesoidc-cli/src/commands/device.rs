//! `device-token`, `jwk`, `sign`.

use crate::output::out;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{ExposeSecret, PublicJwkSet, TokenSet};
use onesoidc_flows::DeviceTokenRequest;
use serde_json::json;

use super::{client, identity};
use crate::cli::GlobalArgs;
use crate::output::{Failure, print_json};

pub async fn device_token(
    g: &GlobalArgs,
    scope: &Option<String>,
    resource: &Option<String>,
) -> Result<(), Failure> {
    let mut options = DeviceTokenRequest::default();
    if let Some(scope) = scope {
        options = options.scope(scope);
    }
    if let Some(resource) = resource {
        options = options.resource(resource);
    }
    let tokens = client(g)?.device_token_with(&options).await?;
    print_tokens(g, &tokens, None);
    Ok(())
}

pub fn jwk(g: &GlobalArgs, jwks: bool) -> Result<(), Failure> {
    let identity = identity(g)?;
    let jwk = identity
        .public_jwk
        .clone()
        .ok_or(
            "the public key is unknown: a TPM identity needs public_jwk.json in the key directory",
        )?
        .with_thumbprint_kid()
        .map_err(|e| e.to_string())?;
    let value = if jwks {
        serde_json::to_value(PublicJwkSet { keys: vec![jwk] })?
    } else {
        serde_json::to_value(jwk)?
    };
    print_json(&value);
    Ok(())
}

pub fn sign(g: &GlobalArgs, message: &str) -> Result<(), Failure> {
    let identity = identity(g)?;
    let signature = identity.signer.sign(message.as_bytes())?;
    let encoded = URL_SAFE_NO_PAD.encode(signature);
    if g.json {
        print_json(&json!({"alg": identity.signer.algorithm().as_str(), "signature": encoded}));
    } else {
        out!("{encoded}");
    }
    Ok(())
}

/// The access token alone (human) or every token and its claims (`--json`).
pub fn print_tokens(
    g: &GlobalArgs,
    tokens: &TokenSet,
    id_claims: Option<&serde_json::Map<String, serde_json::Value>>,
) {
    if g.json {
        let expires_in = tokens.expires_in(SystemTime::now()).map(|d| d.as_secs());
        print_json(&json!({
            "access_token": tokens.access_token.expose_secret(),
            "token_type": tokens.token_type,
            "expires_in": expires_in,
            "scope": tokens.scope,
            "refresh_token": tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
            "id_token": tokens.id_token.as_ref().map(|t| t.expose_secret()),
            "id_token_claims": id_claims,
        }));
    } else {
        out!("{}", tokens.access_token.expose_secret());
    }
}
