//! Load a device identity (device.yml + key) and show what it says.
//! Original guide: `DeviceConfig::loadFromFile`.
//!
//! `cargo run -p onesoidc-flows --example device_config`

mod common;

use onesoidc_flows::DeviceIdentity;

fn main() -> std::process::ExitCode {
    common::main(async {
        let device = common::device().await?;
        let identity = DeviceIdentity::load(&device.paths)?;
        let config = &identity.config;
        println!("device id   {}", config.id);
        match &config.client_id {
            Some(client_id) => println!("client id   {client_id}"),
            None => println!("client id   (unmanaged)"),
        }
        println!("issuer      {}", identity.issuer()?);
        println!(
            "key type    {} (signs {})",
            config.key_type,
            identity.signer.algorithm()
        );
        if let Some(jwk) = &identity.public_jwk {
            let kid = jwk
                .thumbprint()
                .map_err(|e| onesoidc_flows::Error::Other(e.into()))?;
            println!("key id      {kid}");
        }
        Ok(())
    })
}
