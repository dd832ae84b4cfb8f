//! The QR login as a stream of events (replaces `QRAuthSignals`); also
//! writes the code as `qr.svg` and `qr.png`.
//!
//! `cargo run -p onesoidc-flows --example qr_events`

mod common;

use onesoidc_flows::{CibaEvent, LoginOptions, QrEvent, StreamExt, render};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = common::device().await?;
    let out = std::env::temp_dir();
    let mut events = device.client.qr_events(LoginOptions::default());
    while let Some(event) = events.next().await {
        match event {
            QrEvent::SessionCreated(session) => {
                std::fs::write(out.join("qr.svg"), render::svg(&session.cb_url)?)?;
                std::fs::write(out.join("qr.png"), render::png(&session.cb_url)?)?;
                println!("{}", render::ascii(&session.cb_url)?);
                println!(
                    "session {} (also in {}/qr.png)",
                    session.session_id,
                    out.display()
                );
            }
            QrEvent::WaitingForScan { remaining } => {
                println!("waiting for the scan ({} s left)", remaining.as_secs())
            }
            QrEvent::Scanned => println!("scanned"),
            QrEvent::Ciba(CibaEvent::Authenticated(_)) => println!("authenticated"),
            QrEvent::Ciba(CibaEvent::Failed(error)) | QrEvent::Failed(error) => {
                return Err(error.into());
            }
            QrEvent::Ciba(other) => println!("{other:?}"),
            _ => {}
        }
    }
    Ok(())
}
