//! Token managers in a registry: the device's token kept fresh in the
//! background and shared with the client's QR and application requests.
//! Original guide: `TokenManagerRegistry`, `TokenManager::tokensRefreshed`.
//!
//! `cargo run -p onesoidc-flows --example token_manager`

mod common;

use onesoidc_flows::core::ExposeSecret;
use onesoidc_tokens::{StreamExt, TokenManagerRegistry, device_manager};

fn main() -> std::process::ExitCode {
    common::main(async {
        let device = common::device().await?;
        let registry = TokenManagerRegistry::new();
        // The client's bearer requests use this manager's token too.
        let manager = registry.insert(device_manager(&device.client))?;
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
        let session = device.client.qr_create().await?;
        println!("QR session {} for {}", session.session_id, session.cb_url);
        registry.shutdown().await;
        Ok(())
    })
}
