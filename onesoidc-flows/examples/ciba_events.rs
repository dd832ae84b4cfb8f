//! The CIBA login as a stream of events (replaces `CibaAuthSignals`).
//!
//! `cargo run -p onesoidc-flows --example ciba_events -- alice`

mod common;

use onesoidc_flows::{CibaEvent, LoginOptions, StreamExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let username = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
    let device = common::device().await?;
    let request = LoginOptions::default().request_for_username(&username);
    let mut events = device.client.ciba_events(request);
    while let Some(event) = events.next().await {
        match event {
            CibaEvent::Started { expires_in, .. } => {
                println!("started; {} s to answer", expires_in.as_secs())
            }
            CibaEvent::WaitingForAuthorization {
                remaining, polls, ..
            } => {
                println!(
                    "waiting ({polls} polls so far, {} s left)",
                    remaining.as_secs()
                )
            }
            CibaEvent::Authenticated(login) => {
                println!("authenticated; scope {:?}", login.tokens.scope)
            }
            CibaEvent::Failed(error) => return Err(error.into()),
            _ => {}
        }
    }
    Ok(())
}
