//! `apps`, `introspect`, `validate-id-token`, `check-access-token`, `revoke`.

use crate::output::out;
use onesoidc_flows::core::ExposeSecret;
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
    let client = client(g)?;
    let info = client.introspect(token, hint).await?;
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
    client.usable(&info).await.map_err(|e| Failure {
        message: e.to_string(),
        code: crate::output::EXIT_NOT_USABLE,
    })
}

pub async fn validate_id_token(g: &GlobalArgs, token: &SecretString) -> Result<(), Failure> {
    let claims = client(g)?
        .validate_id_token(token.expose_secret().trim())
        .await?;
    if g.json {
        print_json(&serde_json::Value::Object(claims.all));
    } else {
        out!("valid ID token for {} (expires {})", claims.sub, claims.exp);
    }
    Ok(())
}

/// The request a DPoP proof given to `check-access-token` is for.
pub struct DpopRequest<'a> {
    pub proof: &'a str,
    pub method: &'a str,
    pub url: &'a str,
}

pub async fn check_access_token(
    g: &GlobalArgs,
    audience: &str,
    token: &SecretString,
    dpop: Option<&DpopRequest<'_>>,
) -> Result<(), Failure> {
    use onesoidc_resource::{Refusal, ResourceServer};
    let mut builder = ResourceServer::builder()
        .audience(audience)
        .introspection(client(g)?);
    // The proof is checked against the URL given, so that is the origin.
    let request = match dpop {
        None => None,
        Some(dpop) => {
            let (origin, request) = dpop_request(dpop, token)?;
            builder = builder.public_url(origin);
            Some(request)
        }
    };
    let server = builder.build().await.map_err(|e| match e {
        onesoidc_resource::BuildError::Provider(e) => Failure::from(e),
        other => Failure::usage(&other.to_string()),
    })?;
    let checked = match &request {
        None => server.check_token(token.expose_secret()).await,
        Some(request) => {
            server
                .check_request(request.method(), request.headers(), request.uri())
                .await
        }
    };
    match checked {
        Ok(claims) if g.json => print_json(&serde_json::Value::Object(claims.all.clone())),
        Ok(claims) => out!(
            "accepted for {audience}: sub {}, client {}, scopes {:?}, expires {}",
            claims.sub,
            claims.client_id,
            claims.scope.to_string(),
            claims.exp
        ),
        Err(Refusal::Unavailable(error)) => return Err(Failure::from(error)),
        Err(refusal) => {
            return Err(Failure {
                message: format!(
                    "{} {}: {refusal}",
                    refusal.status().as_u16(),
                    refusal
                        .www_authenticate()
                        .and_then(|v| v.to_str().ok().map(str::to_string))
                        .unwrap_or_default()
                ),
                code: crate::output::EXIT_NOT_USABLE,
            });
        }
    }
    Ok(())
}

/// The origin of `--url`, and the request `--method --url` with
/// `Authorization: DPoP <token>` and the proof.
fn dpop_request(
    dpop: &DpopRequest<'_>,
    token: &SecretString,
) -> Result<(String, http::Request<()>), Failure> {
    let url = url::Url::parse(dpop.url)
        .map_err(|e| Failure::usage(&format!("--url {:?} is not a URL: {e}", dpop.url)))?;
    let origin = url.origin().ascii_serialization();
    let request = http::Request::builder()
        .method(dpop.method)
        .uri(dpop.url)
        .header("authorization", format!("DPoP {}", token.expose_secret()))
        .header("dpop", dpop.proof)
        .body(())
        .map_err(|e| {
            Failure::usage(&format!(
                "--method, --url or --dpop-proof cannot make a request: {e}"
            ))
        })?;
    Ok((origin, request))
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

impl crate::cli::TokenInput {
    /// The token: from standard input for `-`, from `--token-file`, or the
    /// argument; surrounding whitespace removed. At most 1 MiB is read.
    pub fn read(&self) -> Result<SecretString, Failure> {
        use std::io::Read;
        const LIMIT: u64 = 1024 * 1024;
        let text = match (&self.token, &self.token_file) {
            (Some(dash), _) if dash == "-" => {
                let mut text = String::new();
                std::io::stdin()
                    .lock()
                    .take(LIMIT)
                    .read_to_string(&mut text)
                    .map_err(|e| format!("cannot read the token from standard input: {e}"))?;
                text
            }
            (Some(token), _) => token.clone(),
            (None, Some(path)) => {
                let bytes = onesoidc_flows::fs::read_limited(path, LIMIT)
                    .map_err(|e| format!("cannot read the token from {}: {e}", path.display()))?;
                String::from_utf8(bytes).map_err(|_| format!("{} is not text", path.display()))?
            }
            (None, None) => {
                return Err(Failure::usage(
                    "give the token: `-` (standard input), --token-file PATH, or the token itself",
                ));
            }
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(Failure::usage("the token is empty"));
        }
        Ok(SecretString::from(token.to_string()))
    }
}
