//! Get the device's own access token (client credentials, private_key_jwt).
//! Original guide: `DeviceAuth::requestDeviceAccessToken`.
//!
//! `cargo run -p onesoidc-flows --example device_token`

mod common;

fn main() -> std::process::ExitCode {
    common::main(async {
        let device = common::device().await?;
        let tokens = device.client.device_token().await?;
        println!(
            "device access token ({}), expires {}",
            tokens.token_type,
            tokens.expiry()
        );
        Ok(())
    })
}
