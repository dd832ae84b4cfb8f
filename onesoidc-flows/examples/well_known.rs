//! Find an application by its identifier and get a person's tokens for it.
//! Original guide: `ApplicationsWellKnown::getWellKnownApplicationByClientIdentifier`, `getUrl`.
//!
//! `cargo run -p onesoidc-flows --example well_known -- vhh-server`

mod common;

use onesoidc_flows::CibaRequest;

fn main() -> std::process::ExitCode {
    common::main(async {
        let identifier = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "vhh-server".into());
        let device = common::device().await?;
        for app in device.client.applications().await? {
            println!("{:<16} {}", app.client_identifier, app.url);
        }
        let app = device.client.application(&identifier).await?;
        let request = CibaRequest::for_username("alice").resource(app.url.clone());
        let login = device.client.ciba(&request).await?;
        let info = device
            .client
            .introspect(&login.tokens.access_token, None)
            .await?;
        println!("alice's token is for {}", info.aud.join(", "));
        Ok(())
    })
}
