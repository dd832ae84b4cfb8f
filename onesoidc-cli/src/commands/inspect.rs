//! `apps`, `introspect`, `validate-id-token`, `revoke`.

use crate::output::out;
use onesoidc_flows::{SecretString, TokenTypeHint};
use serde_json::json;

use super::client;
use crate::cli::GlobalArgs;
use crate::output::{Failure, print_json};

pub async fn apps(g: &GlobalArgs, identifier: Option<&str>) -> Result<(), Failure> {
    let client = client(g)?;
    match identifier {
        Some(id) => {
            let app = client.application(id).await?;
            if g.json {
                print_json(&serde_json::to_value(app)?);
            } else {
                out!("{}", app.url);
            }
        }
        None => {
            let apps = client.applications().await?;
            if g.json {
                print_json(&json!({ "applications": apps }));
            } else {
                for app in apps {
                    let url = client.issuer().resolve_url(&app.url).unwrap_or(app.url);
                    out!(
                        "{}\t{}\t{}",
                        app.client_identifier,
                        url,
                        app.name.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

pub async fn introspect(
    g: &GlobalArgs,
    token: &SecretString,
    hint: Option<TokenTypeHint>,
) -> Result<(), Failure> {
    let info = client(g)?.introspect(token, hint).await?;
    let value = json!({
        "active": info.active, "sub": info.sub, "client_id": info.client_id, "scope": info.scope,
        "aud": info.aud, "iss": info.iss, "exp": info.exp, "iat": info.iat, "token_type": info.token_type,
    });
    if g.json {
        print_json(&value);
    } else if let Some(map) = value.as_object() {
        for (k, v) in map.iter().filter(|(_, v)| !v.is_null()) {
            out!(
                "{k}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            );
        }
    }
    Ok(())
}

pub async fn validate_id_token(g: &GlobalArgs, token: &str) -> Result<(), Failure> {
    let claims = client(g)?.validate_id_token(token.trim()).await?;
    if g.json {
        print_json(&serde_json::Value::Object(claims.all));
    } else {
        out!("valid ID token for {} (expires {})", claims.sub, claims.exp);
    }
    Ok(())
}

pub async fn revoke(
    g: &GlobalArgs,
    token: &SecretString,
    hint: Option<TokenTypeHint>,
) -> Result<(), Failure> {
    client(g)?.revoke(token, hint).await?;
    if g.json {
        print_json(&json!({"revoked": true}));
    } else {
        out!("revoked");
    }
    Ok(())
}
