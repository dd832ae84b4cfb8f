//! Find an application by its identifier and get a person's tokens for it.
//! Original guide: `ApplicationsWellKnown::getWellKnownApplicationByClientIdentifier`, `getUrl`.
//!
//! `cargo run -p onesoidc-flows --example well_known -- vhh-server`

mod common;

use onesoidc_flows::LoginOptions;
use onesoidc_flows::core::ExposeSecret;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let identifier = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "vhh-server".into());
    let device = common::device().await?;
    for app in device.client.applications().await? {
        println!("{:<16} {}", app.client_identifier, app.url);
    }
    let app = device.client.application(&identifier).await?;
    let request = LoginOptions::default()
        .resource(app.url.clone())
        .request_for_username("alice");
    let login = device.client.ciba(&request).await?;
    let info = device
        .client
        .introspect(login.tokens.access_token.expose_secret(), None)
        .await?;
    println!("alice's token is for {:?}", info.aud);
    Ok(())
}
