//! The CIBA login as a stream of events (replaces `CibaAuthSignals`).
//!
//! `cargo run -p onesoidc-flows --example ciba_events -- alice`

mod common;

use onesoidc_flows::{CibaEvent, CibaRequest, StreamExt};

fn main() -> std::process::ExitCode {
    common::main(async {
        let username = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
        let device = common::device().await?;
        let mut events = device
            .client
            .ciba_events(CibaRequest::for_username(&username));
        while let Some(event) = events.next().await {
            // Every event prints as a line without secrets.
            println!("{event}");
            match event {
                CibaEvent::Authenticated(login) => {
                    println!("scope: {}", login.tokens.scope.as_deref().unwrap_or("-"));
                }
                // The seed's networkError / authenticationError signals:
                CibaEvent::Failed(error) if error.is_network() => {
                    eprintln!("check the network and try again");
                }
                CibaEvent::Failed(error) if error.is_denied() => {
                    eprintln!("{username} said no");
                }
                _ => {}
            }
        }
        Ok(())
    })
}
