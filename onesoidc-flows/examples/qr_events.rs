//! The QR login as a stream of events (replaces `QRAuthSignals`); also
//! writes the code as `qr.svg` and `qr.png`.
//!
//! `cargo run -p onesoidc-flows --example qr_events`

mod common;

use onesoidc_flows::{CibaRequest, Error, QrEvent, StreamExt, render};

fn main() -> std::process::ExitCode {
    common::main(async {
        let device = common::device().await?;
        let out = std::env::temp_dir();
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(out.join(name), bytes).map_err(|e| Error::Other(e.into()))
        };
        let mut events = device.client.qr_events(CibaRequest::new());
        while let Some(event) = events.next().await {
            println!("{event}");
            match event {
                QrEvent::SessionCreated(session) => {
                    write("qr.svg", render::svg(&session.cb_url)?.as_bytes())?;
                    write("qr.png", &render::png(&session.cb_url)?)?;
                    println!("{}", render::ascii(&session.cb_url)?);
                    println!("(also in {}/qr.png)", out.display());
                }
                // One terminal failure, whatever stage failed.
                QrEvent::Failed(error) => return Err(Error::Other(Box::new(error))),
                _ => {}
            }
        }
        Ok(())
    })
}
