//! Shared by the examples: a device to run them with, and the `main` that
//! prints an error the way a person should read it.
//!
//! With `ONESOIDC_DEVICE_CONFIG` set, the examples use that real identity
//! (and `ONESOIDC_KEY_DIR`, or px-device-identity's default key dir).
//! Otherwise they start the local provider in-process, with a person who
//! approves every login after a second, and register a throwaway device.

#![allow(dead_code)] // each example uses part of this

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_flows::{Error, IdentityPaths, OnesIdClient};

/// Runs an example's body and prints its error, if any, with `Display`:
/// the message names the file, field, endpoint or HTTP status and what to
/// do (`{error:?}` would print the enum instead).
pub fn main(body: impl Future<Output = Result<(), Error>>) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A device ready to talk to its provider. Keep it alive while you use the client.
pub struct Device {
    pub client: OnesIdClient,
    pub paths: IdentityPaths,
    _local: Option<(DevIdp, tempfile::TempDir)>,
}

pub async fn device() -> Result<Device, Error> {
    if std::env::var_os("ONESOIDC_DEVICE_CONFIG").is_some() {
        let paths = IdentityPaths::from_env();
        let client = OnesIdClient::builder()
            .identity_paths(paths.clone())
            .build()?;
        return Ok(Device {
            client,
            paths,
            _local: None,
        });
    }
    let local = |e: std::io::Error| Error::Other(Box::new(e));
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        qr_interval: Duration::from_secs(1),
        auto_approve: Some(AutoApprove::approve_after(Duration::from_secs(1))),
        ..DevIdpConfig::default()
    })
    .await
    .map_err(local)?;
    let dir = tempfile::tempdir().map_err(local)?;
    let paths = idp
        .provision_device(dir.path(), onesoidc_flows::core::KeyType::EccP256)
        .map_err(local)?;
    eprintln!(
        "(no ONESOIDC_DEVICE_CONFIG: using a local provider at {} and a throwaway device)",
        idp.issuer()
    );
    let client = OnesIdClient::builder()
        .identity_paths(paths.clone())
        .build()?;
    Ok(Device {
        client,
        paths,
        _local: Some((idp, dir)),
    })
}
