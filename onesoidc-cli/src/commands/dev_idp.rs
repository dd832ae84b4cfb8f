//! `dev-idp`: the local provider as a standalone server.

use crate::output::out;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};

use crate::output::Failure;

pub async fn run(
    port: u16,
    config_file: Option<&Path>,
    auto_approve_ms: Option<u64>,
) -> Result<(), Failure> {
    let mut config = match config_file {
        Some(path) => DevIdpConfig::from_json_file(path)?,
        None => DevIdpConfig::default(),
    };
    if let Some(ms) = auto_approve_ms {
        config.auto_approve = Some(AutoApprove::approve_after(Duration::from_millis(ms)));
    }
    let users = config.users.join(", ");
    let apps: Vec<String> = config
        .applications
        .iter()
        .map(|a| a.client_identifier.clone())
        .collect();
    let idp = DevIdp::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), config)
        .await
        .map_err(|e| format!("cannot start the dev IdP on 127.0.0.1:{port}: {e}"))?;
    let host = idp.host();
    out!("onesoidc dev-idp: a local OnesID-compatible provider (for development only)");
    out!();
    out!("  issuer        {}", idp.issuer());
    out!("  users         {users}");
    out!("  applications  {}", apps.join(", "));
    out!();
    out!("Point a device at it:");
    out!(
        "  onesoidc register --address {host} --domain dev.local --title Dev --location Here --role SERVER \\"
    );
    out!("      --config-dir ./dev-device --key-dir ./dev-device");
    out!("  onesoidc device-token --config ./dev-device/device.yml --key-dir ./dev-device");
    out!();
    out!("Act as the administrator and the person on the phone (test-only control surface):");
    out!("  curl -X POST {host}/control/registrations/CODE/approve");
    out!("  curl {host}/control/ciba                                  # pending logins");
    out!("  curl -X POST {host}/control/ciba/AUTH_REQ_ID/approve      # or /deny");
    out!(
        "  curl -X POST -H 'content-type: application/json' -d '{{\"username\":\"alice\"}}' {host}/control/qr/SESSION_ID/scan"
    );
    out!();
    out!("Ctrl-C stops it.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    idp.shutdown().await;
    Ok(())
}
