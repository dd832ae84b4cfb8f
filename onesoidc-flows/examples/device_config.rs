//! Load a device identity (device.yml + key) and show what it says.
//! Original guide: `DeviceConfig::loadFromFile`.
//!
//! `cargo run -p onesoidc-flows --example device_config`

mod common;

use onesoidc_flows::DeviceIdentity;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = common::device().await?;
    let identity = DeviceIdentity::load(&device.paths)?;
    let config = &identity.config;
    println!("device id   {}", config.id);
    println!(
        "client id   {}",
        config.client_id.as_deref().unwrap_or("(unmanaged)")
    );
    println!("issuer      {}", identity.issuer()?);
    println!(
        "key type    {} (signs {})",
        config.key_type,
        identity.signer.algorithm()
    );
    if let Some(jwk) = &identity.public_jwk {
        println!("key id      {}", jwk.thumbprint()?);
    }
    Ok(())
}
