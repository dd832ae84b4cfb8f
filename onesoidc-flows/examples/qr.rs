//! Log a person in by QR code: show the code, wait for the scan, then CIBA.
//! Original guide: `QRAuth::createQRSession` / `verifyQRSession` / `generateASCIIQRCode`.
//!
//! `cargo run -p onesoidc-flows --example qr`

mod common;

use onesoidc_flows::{LoginOptions, render};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = common::device().await?;
    let login = device
        .client
        .qr_login(&LoginOptions::default(), |session| {
            match render::terminal(&session.cb_url) {
                Ok(code) => println!("{code}"),
                Err(e) => eprintln!("{e}"),
            }
            println!(
                "scan with the ONES app ({} s)",
                session.expires_in.as_secs()
            );
        })
        .await?;
    let who = login.claims.map(|c| c.sub).unwrap_or_default();
    println!("{who} logged in; token type {}", login.tokens.token_type);
    Ok(())
}
