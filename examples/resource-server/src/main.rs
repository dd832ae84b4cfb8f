//! `cargo run -p onesoidc-example-resource-server -- ISSUER [AUDIENCE] [LISTEN]`
//!
//! Against `onesoidc dev-idp` (which prints its issuer):
//!
//! ```sh
//! cargo run -p onesoidc-example-resource-server -- http://127.0.0.1:8443/oidc https://vhh.example.com 127.0.0.1:8080
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/me
//! ```
//!
//! A DPoP-bound token (`onesoidc device-token --dpop`, RFC 9449) is
//! accepted only with a fresh proof of its key for the very request, and
//! refused when sent as `Bearer`:
//!
//! ```sh
//! URL=http://127.0.0.1:8080/me
//! curl -H "Authorization: DPoP $TOKEN" \
//!      -H "DPoP: $(onesoidc dpop-proof --method GET --url $URL --token-file token.txt)" $URL
//! ```
//!
//! With `ONESOIDC_DEVICE_CONFIG` (and `ONESOIDC_KEY_DIR`) naming the
//! application's own registered identity, opaque tokens are introspected
//! with it. `RUST_LOG=onesoidc_resource=debug` shows why a token is refused.

use std::process::ExitCode;

use onesoidc_flows::{IdentityPaths, OnesIdClient};
use onesoidc_resource::ResourceServer;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let Some(issuer) = args.next() else {
        eprintln!("usage: onesoidc-example-resource-server ISSUER [AUDIENCE] [LISTEN]");
        return ExitCode::from(2);
    };
    let audience = args
        .next()
        .unwrap_or_else(|| "https://vhh.example.com".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    match run(issuer, audience, listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    issuer: String,
    audience: String,
    listen: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let origin = format!("http://{}", listener.local_addr()?);
    // A DPoP proof names the URL the client called (`htu`): this origin.
    let mut builder = ResourceServer::builder()
        .issuer(issuer)
        .audience(audience)
        .public_url(&origin);
    if std::env::var_os("ONESOIDC_DEVICE_CONFIG").is_some() {
        builder = builder.introspection(OnesIdClient::from_paths(&IdentityPaths::from_env())?);
    }
    let server = builder.build().await?;
    eprintln!("listening on {origin}");
    axum::serve(listener, onesoidc_example_resource_server::router(&server)).await?;
    Ok(())
}
