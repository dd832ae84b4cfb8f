//! Log a person in by QR code: show the code, wait for the scan, then CIBA.
//! Original guide: `QRAuth::createQRSession` / `verifyQRSession` / `generateASCIIQRCode`.
//!
//! `cargo run -p onesoidc-flows --example qr`

mod common;

use onesoidc_flows::{CibaRequest, render};

fn main() -> std::process::ExitCode {
    common::main(async {
        let device = common::device().await?;
        let login = device
            .client
            .qr_login(&CibaRequest::new(), |session| {
                match render::terminal(&session.cb_url) {
                    Ok(code) => println!("{code}"),
                    Err(e) => eprintln!("{e}"),
                }
                println!(
                    "scan with the ONES app ({} s)",
                    session.expires_in.as_secs()
                );
            })
            .await?;
        println!("{login}");
        Ok(())
    })
}
