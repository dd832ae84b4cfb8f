//! Token managers in a registry: the device's token kept fresh in the
//! background and shared with the client's QR and application requests.
//! Original guide: `TokenManagerRegistry`, `TokenManager::tokensRefreshed`.
//!
//! `cargo run -p onesoidc-tokens --example token_manager` runs it against
//! the local provider, started in this process with a throwaway device;
//! with `ONESOIDC_DEVICE_CONFIG` set it uses that real identity instead.

use onesoidc_core::ExposeSecret;
use onesoidc_flows::{Error, OnesIdClient};
use onesoidc_tokens::{StreamExt, TokenManagerRegistry, device_manager};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}"); // names the file, field, endpoint or status
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::Other(Box::new(e)))?;
    let (_local, client) = if std::env::var_os("ONESOIDC_DEVICE_CONFIG").is_some() {
        (None, OnesIdClient::from_default_identity()?)
    } else {
        let idp = onesoidc_devidp::DevIdp::start(Default::default())
            .await
            .map_err(|e| Error::Other(Box::new(e)))?;
        let paths = idp
            .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
            .map_err(|e| Error::Other(Box::new(e)))?;
        (Some(idp), OnesIdClient::from_paths(&paths)?)
    };
    let registry = TokenManagerRegistry::new();
    // The client's bearer requests use this manager's token too.
    let manager = registry.insert(device_manager(&client))?;
    let mut events = manager.events();

    // A hundred callers at once: one token request.
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.access_token().await })
        })
        .collect();
    for caller in callers {
        let token = caller.await.expect("the task ran")?;
        assert!(!token.expose_secret().is_empty());
    }
    println!("{}", events.next().await.expect("an event")); // refreshed; expires at ...
    println!("{}: {}", manager.name(), manager.state());

    // The QR session is created with the manager's token, not a second one.
    let session = client.qr_create().await?;
    println!("QR session {} for {}", session.session_id, session.cb_url);
    registry.shutdown().await;
    Ok(())
}
