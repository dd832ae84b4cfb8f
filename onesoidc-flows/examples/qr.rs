//! Log a person in by QR code: show the code, wait for the scan, then CIBA.
//! Original guide: `QRAuth::createQRSession` / `verifyQRSession` / `generateASCIIQRCode`.
//!
//! `cargo run -p onesoidc-flows --example qr`

mod common;

use onesoidc_flows::{LoginOptions, render};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = common::device().await?;
    let tokens = device
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
    println!("logged in; token type {}", tokens.token_type);
    Ok(())
}
