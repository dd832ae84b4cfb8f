//! Log a person in on their phone by username (CIBA), and wait for the answer.
//! Original guide: `CibaAuth::cibaRequest` / `checkCibaStatus`.
//!
//! `cargo run -p onesoidc-flows --example ciba -- alice`

mod common;

use onesoidc_flows::CibaRequest;

fn main() -> std::process::ExitCode {
    common::main(async {
        let username = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
        let device = common::device().await?;
        let request = CibaRequest::for_username(&username).binding_message("Example login");
        println!("asking {username} to approve on their phone...");
        // The ID token is validated before `ciba` returns: its claims come along.
        let login = device.client.ciba(&request).await?;
        println!(
            "{login}; refresh token: {}",
            login.tokens.refresh_token.is_some()
        );
        Ok(())
    })
}
