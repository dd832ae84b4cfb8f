//! Shared by the examples: a device to run them with.
//!
//! With `ONESOIDC_DEVICE_CONFIG` set, the examples use that real identity
//! (and `ONESOIDC_KEY_DIR`, or px-device-identity's default key dir).
//! Otherwise they start the local provider in-process, with a person who
//! approves every login after a second, and register a throwaway device.

#![allow(dead_code)] // each example uses part of this

use std::time::Duration;

use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_flows::OnesIdClient;

/// A device ready to talk to its provider. Keep it alive while you use the client.
pub struct Device {
    pub client: OnesIdClient,
    pub paths: onesoidc_flows::IdentityPaths,
    _local: Option<(DevIdp, tempfile::TempDir)>,
}

pub async fn device() -> Result<Device, Box<dyn std::error::Error>> {
    if std::env::var_os("ONESOIDC_DEVICE_CONFIG").is_some() {
        let paths = onesoidc_flows::IdentityPaths::from_env();
        let client = OnesIdClient::from_paths(&paths)?;
        return Ok(Device {
            client,
            paths,
            _local: None,
        });
    }
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        qr_interval: Duration::from_secs(1),
        auto_approve: Some(AutoApprove::approve_after(Duration::from_secs(1))),
        ..DevIdpConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let paths = idp.provision_device(dir.path(), onesoidc_flows::core::KeyType::EccP256)?;
    eprintln!(
        "(no ONESOIDC_DEVICE_CONFIG: using a local provider at {} and a throwaway device)",
        idp.issuer()
    );
    let client = OnesIdClient::from_paths(&paths)?;
    Ok(Device {
        client,
        paths,
        _local: Some((idp, dir)),
    })
}
