//! A local provider and a device registered with it, for the flow tests.
#![allow(dead_code)]

use std::time::Duration;

use onesoidc_core::KeyType;
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::{DeviceIdentity, OnesIdClient};

/// A running provider, a registered device's client, and the temp dir holding its identity.
pub struct World {
    pub idp: DevIdp,
    pub client: OnesIdClient,
    _dir: tempfile::TempDir,
}

/// The provider's defaults with a 1 s CIBA and QR interval (the protocol's
/// smallest, since it counts in seconds).
pub fn config() -> DevIdpConfig {
    DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        qr_interval: Duration::from_secs(1),
        ..DevIdpConfig::default()
    }
}

/// A provider and a device that talks to it in process: no sockets, so a
/// paused tokio clock drives every timer on both sides.
pub async fn world_with(config: DevIdpConfig) -> World {
    let idp = DevIdp::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let identity = DeviceIdentity::load(&paths).unwrap();
    let client = OnesIdClient::new(identity, idp.in_process_client()).unwrap();
    World {
        idp,
        client,
        _dir: dir,
    }
}

pub async fn world() -> World {
    world_with(config()).await
}
