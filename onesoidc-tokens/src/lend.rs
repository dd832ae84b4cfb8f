//! One device token per process: a [`TokenManager`] lends its token to an
//! [`OnesIdClient`]'s bearer requests (QR sessions, well-known
//! applications), so the client does not fetch and cache a second one.

use std::sync::Weak;

use onesoidc_core::{Error, ExposeSecret, SecretString};
use onesoidc_flows::http_client::BoxFuture;
use onesoidc_flows::{DeviceTokenSource, OnesIdClient};

use crate::manager::Shared;
use crate::{DEVICE, TokenManager, device_refresh};

impl TokenManager {
    /// From now on `client` takes the device access token for its bearer
    /// requests (QR sessions, well-known applications) from this manager:
    /// one token and one refresh schedule in the process, instead of the
    /// client's own cache beside the manager. A refused token (HTTP 401)
    /// makes the manager refresh.
    ///
    /// The client holds the manager weakly: once every handle on the
    /// manager is dropped, the client fetches its own token again.
    pub fn lend_to(&self, client: &OnesIdClient) {
        client.use_device_tokens_from(std::sync::Arc::new(Lent(self.downgrade_shared())));
    }
}

/// A manager named `"device"` that refreshes with the device's client
/// credentials and lends its token to `client` ([`TokenManager::lend_to`]),
/// with every default of [`TokenManager::builder`]; with DPoP on in `client`,
/// its handles' [`authorize`](crate::AccessToken::authorize) proves the bound
/// token with `client`'s key ([`TokenManagerBuilder::dpop_client`](crate::TokenManagerBuilder::dpop_client)).
///
/// ```no_run
/// # async fn run() -> Result<(), onesoidc_flows::Error> {
/// use onesoidc_tokens::{TokenManagerRegistry, device_manager};
/// let client = onesoidc_flows::OnesIdClient::from_default_identity()?;
/// let registry = TokenManagerRegistry::new();
/// let device = registry.insert(device_manager(&client))?;
/// let token = device.access_token().await?; // the same token QR logins use
/// # Ok(()) }
/// ```
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn device_manager(client: &OnesIdClient) -> TokenManager {
    let mut builder = TokenManager::builder(DEVICE, device_refresh(client.clone()));
    if client.dpop_enabled() {
        builder = builder.dpop_client(client);
    }
    let manager = builder.build();
    manager.lend_to(client);
    manager
}

/// A manager, held weakly by a client.
struct Lent(Weak<Shared>);

impl Lent {
    fn manager(&self) -> Option<TokenManager> {
        self.0.upgrade().map(TokenManager::from_shared)
    }
}

impl DeviceTokenSource for Lent {
    fn device_token(&self) -> BoxFuture<'_, Option<Result<SecretString, Error>>> {
        Box::pin(async move {
            let manager = self.manager()?;
            Some(
                manager
                    .access_token()
                    .await
                    .map(|token| SecretString::from(token.expose_secret().to_string()))
                    .map_err(Error::from),
            )
        })
    }

    fn refused(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(manager) = self.manager() {
                let _ = manager.force_refresh().await;
            }
        })
    }
}
