//! Log a person in on their phone by username (CIBA), and wait for the answer.
//! Original guide: `CibaAuth::cibaRequest` / `checkCibaStatus`.
//!
//! `cargo run -p onesoidc-flows --example ciba -- alice`

mod common;

use onesoidc_flows::LoginOptions;
use onesoidc_flows::core::ExposeSecret;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let username = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
    let device = common::device().await?;
    let request = LoginOptions::default()
        .binding_message("Example login")
        .request_for_username(&username);
    println!("asking {username} to approve on their phone...");
    let tokens = device.client.ciba(&request).await?;
    let id_token = tokens.id_token.as_ref().ok_or("no ID token")?;
    let claims = device
        .client
        .validate_id_token(id_token.expose_secret())
        .await?;
    println!(
        "{} approved; refresh token: {}",
        claims.sub,
        tokens.refresh_token.is_some()
    );
    Ok(())
}
