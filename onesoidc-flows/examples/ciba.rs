//! Log a person in on their phone by username (CIBA), and wait for the answer.
//! Original guide: `CibaAuth::cibaRequest` / `checkCibaStatus`.
//!
//! `cargo run -p onesoidc-flows --example ciba -- alice`

mod common;

use onesoidc_flows::LoginOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let username = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
    let device = common::device().await?;
    let request = LoginOptions::default()
        .binding_message("Example login")
        .request_for_username(&username);
    println!("asking {username} to approve on their phone...");
    // The ID token is validated before `ciba` returns: its claims come along.
    let login = device.client.ciba(&request).await?;
    let claims = login.claims.ok_or("no ID token")?;
    println!(
        "{} approved; refresh token: {}",
        claims.sub,
        login.tokens.refresh_token.is_some()
    );
    Ok(())
}
