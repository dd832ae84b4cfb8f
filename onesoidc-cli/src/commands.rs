//! What each command does. Each is a thin layer over onesoidc-flows.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{
    DeviceIdentity, ExposeSecret, IdentityPaths, PublicJwk, PublicJwkSet, TokenSet,
};
use onesoidc_flows::{DeviceTokenRequest, OnesIdClient};
use onesoidc_http::ReqwestClient;
use serde_json::json;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output::{Failure, print_json};

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let g = &cli.global;
    match &cli.command {
        Command::DeviceToken { scope, resource } => {
            let client = client(g)?;
            let options = DeviceTokenRequest {
                scope: scope.clone(),
                resource: resource.clone(),
            };
            let tokens = client.device_token_with(&options).await?;
            print_tokens(g, &tokens);
            Ok(())
        }
        Command::Jwk { jwks } => {
            let identity = identity(g)?;
            let jwk = public_jwk(&identity)?;
            let value = if *jwks {
                serde_json::to_value(PublicJwkSet { keys: vec![jwk] })?
            } else {
                serde_json::to_value(jwk)?
            };
            print_json(&value);
            Ok(())
        }
        Command::Sign { message } => {
            let identity = identity(g)?;
            let signature = identity.signer.sign(message.as_bytes())?;
            let encoded = URL_SAFE_NO_PAD.encode(signature);
            if g.json {
                print_json(
                    &json!({"alg": identity.signer.algorithm().as_str(), "signature": encoded}),
                );
            } else {
                println!("{encoded}");
            }
            Ok(())
        }
    }
}

/// The identity paths: flags, then environment, then px-device-identity's defaults.
fn paths(g: &GlobalArgs) -> IdentityPaths {
    let mut paths = IdentityPaths::from_env();
    if let Some(config) = &g.config {
        paths.config = config.clone();
    }
    if let Some(dir) = &g.key_dir {
        paths.key_dir = dir.clone();
    }
    paths
}

fn identity(g: &GlobalArgs) -> Result<DeviceIdentity, Failure> {
    Ok(DeviceIdentity::load(&paths(g))?)
}

fn client(g: &GlobalArgs) -> Result<OnesIdClient, Failure> {
    let http = ReqwestClient::builder()
        .allow_insecure_http(g.allow_insecure_http)
        .build()?;
    Ok(OnesIdClient::new(identity(g)?, Arc::new(http))?)
}

fn public_jwk(identity: &DeviceIdentity) -> Result<PublicJwk, Failure> {
    let jwk = identity.public_jwk.clone().ok_or_else(|| {
        Failure::from(
            "the public key is unknown: a TPM identity needs public_jwk.json in the key directory",
        )
    })?;
    Ok(jwk.with_thumbprint_kid()?)
}

fn print_tokens(g: &GlobalArgs, tokens: &TokenSet) {
    if g.json {
        let expires_in = tokens.expires_in(SystemTime::now()).map(|d| d.as_secs());
        print_json(&json!({
            "access_token": tokens.access_token.expose_secret(),
            "token_type": tokens.token_type,
            "expires_in": expires_in,
            "scope": tokens.scope,
            "refresh_token": tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
            "id_token": tokens.id_token.as_ref().map(|t| t.expose_secret()),
        }));
    } else {
        println!("{}", tokens.access_token.expose_secret());
    }
}
