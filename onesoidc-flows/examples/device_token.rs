//! Get the device's own access token (client credentials, private_key_jwt).
//! Original guide: `DeviceAuth::requestDeviceAccessToken`.
//!
//! `cargo run -p onesoidc-flows --example device_token`

mod common;

use std::time::SystemTime;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = common::device().await?;
    let tokens = device.client.device_token().await?;
    let expires_in = tokens.expires_in(SystemTime::now()).map(|d| d.as_secs());
    println!(
        "device access token ({}), expires in {expires_in:?} s",
        tokens.token_type
    );
    Ok(())
}
