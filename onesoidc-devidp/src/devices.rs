//! Registered devices: OAuth clients that authenticate with their public key.

use std::sync::Arc;

use onesoidc_core::PublicJwk;
use serde::Serialize;

use crate::error::ControlError;
use crate::jose::DeviceKey;
use crate::state::Provider;

/// The ids a device was registered under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RegisteredDevice {
    /// The device id (`id` in device.yml, `deviceId` in the registration status).
    pub device_id: String,
    /// The OAuth client id (`client_id` in device.yml, `clientId` in the registration status).
    pub client_id: String,
}

impl RegisteredDevice {
    /// New random ids (UUIDv4), as OnesID hands out on approval.
    pub(crate) fn fresh() -> Self {
        RegisteredDevice {
            device_id: uuid::Uuid::new_v4().to_string(),
            client_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// A registered device and its verification key.
#[derive(Debug)]
pub(crate) struct Device {
    pub device_id: String,
    pub client_id: String,
    pub key: DeviceKey,
}

impl Device {
    pub fn new(device_id: &str, client_id: &str, jwk: &PublicJwk) -> Result<Self, ControlError> {
        let key = DeviceKey::from_jwk(jwk).map_err(ControlError::InvalidKey)?;
        Ok(Device {
            device_id: device_id.to_string(),
            client_id: client_id.to_string(),
            key,
        })
    }
}

impl Provider {
    /// Registers `jwk` under fresh ids.
    pub fn register_key(&self, jwk: &PublicJwk) -> Result<RegisteredDevice, ControlError> {
        let ids = RegisteredDevice::fresh();
        self.add_device(&ids, jwk)?;
        Ok(ids)
    }

    /// Registers `jwk` under the given ids.
    pub fn add_device(&self, ids: &RegisteredDevice, jwk: &PublicJwk) -> Result<(), ControlError> {
        let device = Device::new(&ids.device_id, &ids.client_id, jwk)?;
        let mut store = self.lock();
        if store.devices.contains_key(&ids.client_id) {
            return Err(ControlError::DuplicateClient(ids.client_id.clone()));
        }
        store
            .devices
            .insert(ids.client_id.clone(), Arc::new(device));
        drop(store);
        self.changed();
        tracing::debug!(client_id = %ids.client_id, alg = %jwk.alg.as_deref().unwrap_or("-"), "device registered");
        Ok(())
    }

    /// The device registered as `client_id`.
    pub fn device(&self, client_id: &str) -> Option<Arc<Device>> {
        self.lock().devices.get(client_id).cloned()
    }
}
