//! `dev-idp`: the local provider as a standalone server, with its console.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use onesoidc_devidp::{AutoApprove, ConfigError, DevIdp, DevIdpConfig};
use tokio::net::TcpListener;

use crate::cli::{DevIdpArgs, DevIdpTiming, GlobalArgs};
use crate::output::{Failure, out};

/// What the listen address is without `--listen` or `--port`.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Exit code of a usage error (as clap's own).
const EXIT_USAGE: u8 = 2;

pub async fn run(g: &GlobalArgs, args: &DevIdpArgs) -> Result<(), Failure> {
    if let Some(path) = &g.config {
        return Err(Failure {
            message: format!(
                "dev-idp: --config is the path of a device's device.yml (an option of every command), \
                 not of the provider's config; give {} with --provider-config FILE",
                path.display()
            ),
            code: EXIT_USAGE,
        });
    }
    let mut config = config(
        args.provider_config.as_deref(),
        &args.timing,
        args.auto_approve_ms,
    )?;
    config.dpop_nonce |= args.dpop_nonce;
    config.require_dpop |= args.require_dpop;
    let listen = match (args.listen, args.port) {
        (Some(addr), _) => addr,
        (None, Some(port)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        (None, None) => DEFAULT_LISTEN,
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the address bound for {listen}: {e}"))?;
    let public_host = match &args.public_host {
        Some(url) => Some(public_host(url)?),
        None if bound.ip().is_unspecified() => {
            let ip = network_address(bound.ip()).map_err(|e| {
                format!(
                    "cannot find this machine's network address for {listen} ({e}); \
                     give the address phones and devices reach it at with --public-host http://ADDRESS:{}",
                    bound.port()
                )
            })?;
            Some(format!("http://{}", SocketAddr::new(ip, bound.port())))
        }
        None => None,
    };
    let summary = Summary::of(&config);
    let idp = DevIdp::serve(listener, public_host, config)
        .await
        .map_err(|e| format!("cannot start the dev IdP on {listen}: {e}"))?;
    print_banner(&idp, bound, &summary);
    if !bound.ip().is_loopback() {
        warn_network(&idp, bound);
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    idp.shutdown().await;
    Ok(())
}

/// The provider config: the file (or the defaults), then the flags.
fn config(
    file: Option<&Path>,
    timing: &DevIdpTiming,
    auto_approve_ms: Option<u64>,
) -> Result<DevIdpConfig, Failure> {
    let mut config = match file {
        Some(path) => DevIdpConfig::from_json_file(path)?,
        None => DevIdpConfig::default(),
    };
    let flags = [
        (timing.access_token_ttl, &mut config.access_token_ttl),
        (timing.refresh_token_ttl, &mut config.refresh_token_ttl),
        (timing.id_token_ttl, &mut config.id_token_ttl),
        (timing.ciba_expires_in, &mut config.ciba_expires_in),
        (timing.ciba_interval, &mut config.ciba_interval),
        (timing.qr_expires_in, &mut config.qr_expires_in),
        (timing.qr_interval, &mut config.qr_interval),
        (
            timing.registration_interval,
            &mut config.registration_poll_interval,
        ),
        (
            timing.registration_expires_in,
            &mut config.registration_expires_in,
        ),
    ];
    for (flag, field) in flags {
        if let Some(value) = flag {
            *field = value;
        }
    }
    if let Some(ms) = auto_approve_ms {
        config.auto_approve = Some(AutoApprove::approve_after(Duration::from_millis(ms)));
    }
    config.validate().map_err(|e| match e {
        // Only a flag can have made a value of the (already checked) file unusable.
        ConfigError::Invalid { field, reason, .. } => Failure {
            message: format!("--{}: {reason}", field.replace('_', "-")),
            code: EXIT_USAGE,
        },
        other => Failure::from(other),
    })?;
    Ok(config)
}

/// `--public-host`: an http(s) URL of a host, without a path.
fn public_host(url: &str) -> Result<String, Failure> {
    let usage = |reason: &str| Failure {
        message: format!(
            "--public-host {url:?}: {reason}; give the URL devices and phones reach the provider at, e.g. http://192.168.1.20:8080"
        ),
        code: EXIT_USAGE,
    };
    let parsed = url::Url::parse(url).map_err(|e| usage(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(usage("not an http:// or https:// URL"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(usage(
            "a host only, without a path (the issuer is URL/oidc)",
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// This machine's address on the network, for a server listening on every
/// address (`unspecified`, of that family): the source address the system
/// would use towards a documentation address. "Connecting" a UDP socket only
/// picks a route; no packet is sent.
fn network_address(unspecified: IpAddr) -> std::io::Result<IpAddr> {
    let (local, remote): (SocketAddr, SocketAddr) = match unspecified {
        IpAddr::V4(_) => (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
        ),
        IpAddr::V6(_) => (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
        ),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(remote)?;
    let ip = socket.local_addr()?.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        return Err(std::io::Error::other("only a loopback route"));
    }
    Ok(ip)
}

/// What the banner says about the config (it moves into the provider).
struct Summary {
    users: String,
    applications: String,
    tokens: String,
    intervals: String,
    auto_approve: String,
    dpop: String,
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Summary {
    fn of(config: &DevIdpConfig) -> Self {
        let applications: Vec<&str> = config
            .applications
            .iter()
            .map(|a| a.client_identifier.as_str())
            .collect();
        Summary {
            users: config.users.join(", "),
            applications: applications.join(", "),
            tokens: format!(
                "access {}, refresh {}, ID {}",
                human(config.access_token_ttl),
                human(config.refresh_token_ttl),
                human(config.id_token_ttl)
            ),
            intervals: format!(
                "CIBA {}, QR {}, registration {}",
                human(config.ciba_interval),
                human(config.qr_interval),
                human(config.registration_poll_interval)
            ),
            dpop: format!(
                "{}{}",
                if config.require_dpop {
                    "required"
                } else {
                    "optional"
                },
                if config.dpop_nonce {
                    ", server nonces"
                } else {
                    ""
                }
            ),
            auto_approve: config.auto_approve.map_or_else(
                || "off (answer in the console)".to_string(),
                |a| format!("after {}", human(a.after)),
            ),
        }
    }
}

fn print_banner(idp: &DevIdp, bound: SocketAddr, summary: &Summary) {
    let host = idp.host();
    let on_network = !bound.ip().is_loopback();
    let local_console = format!(
        "http://{}/",
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), bound.port())
    );
    if on_network && bound.ip().is_unspecified() {
        out!(
            "onesoidc dev-idp: console at {}  (on this machine: {local_console})",
            idp.console_url()
        );
    } else {
        out!("onesoidc dev-idp: console at {}", idp.console_url());
    }
    out!("A local OnesID-compatible provider for development; all state is in memory.");
    out!();
    out!("  issuer        {}", idp.issuer());
    out!("  users         {}", summary.users);
    out!("  applications  {}", summary.applications);
    out!("  tokens        {}", summary.tokens);
    out!("  intervals     {}", summary.intervals);
    out!("  auto-approve  {}", summary.auto_approve);
    out!("  DPoP          {}", summary.dpop);
    out!();
    let insecure = if on_network {
        " --allow-insecure-http"
    } else {
        ""
    };
    out!("Point a device at it:");
    out!(
        "  onesoidc register{insecure} --address {host} --domain dev.local --title Dev --location Here --role SERVER \\"
    );
    out!("      --config-dir ./dev-device --key-dir ./dev-device");
    out!(
        "  onesoidc device-token{insecure} --config ./dev-device/device.yml --key-dir ./dev-device"
    );
    out!(
        "  onesoidc ciba{insecure} --username alice --config ./dev-device/device.yml --key-dir ./dev-device"
    );
    out!();
    out!("Then approve in the console, or from a shell (the test-only control API, JSON only):");
    out!(
        "  curl -X POST -H 'content-type: application/json' {host}/control/registrations/CODE/approve"
    );
    out!("  curl {host}/control/ciba                                  # pending logins");
    out!(
        "  curl -X POST -H 'content-type: application/json' {host}/control/ciba/AUTH_REQ_ID/approve  # or /deny"
    );
    out!(
        "  curl -X POST -H 'content-type: application/json' -d '{{\"username\":\"alice\"}}' {host}/control/qr/SESSION_ID/scan"
    );
    out!();
    out!("Ctrl-C stops it.");
}

/// The provider is reachable from the network: say what that means.
fn warn_network(idp: &DevIdp, bound: SocketAddr) {
    eprintln!(
        "onesoidc dev-idp: WARNING: listening on {bound}: this TEST provider is reachable from your network,\n\
         \x20 with no real security: anyone who reaches {} can approve logins and registrations.\n\
         \x20 Devices must trust its plain http:// issuer explicitly: give them --allow-insecure-http.\n\
         \x20 A phone on the same network opens a QR code's link at {} and signs in there.\n\
         \x20 Stop it (Ctrl-C) when you are done.",
        idp.host(),
        idp.host(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_hosts_are_urls_of_a_host() {
        assert_eq!(
            public_host("http://192.168.1.20:8080/").unwrap(),
            "http://192.168.1.20:8080"
        );
        assert_eq!(public_host("https://idp.lan").unwrap(), "https://idp.lan");
        for bad in [
            "192.168.1.20:8080",
            "ftp://x",
            "http://x/oidc",
            "http://x/?a=1",
        ] {
            let e = public_host(bad).unwrap_err();
            assert_eq!(e.code, EXIT_USAGE, "{bad}");
            assert!(e.message.contains("--public-host"), "{}", e.message);
        }
    }

    #[test]
    fn flags_override_the_file_and_zero_lifetimes_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("devidp.json");
        std::fs::write(
            &file,
            r#"{"users": ["carol"], "ciba_interval_ms": 3000, "qr_interval_ms": 2000}"#,
        )
        .unwrap();
        let timing = |ciba: Option<Duration>, ttl: Option<Duration>| DevIdpTiming {
            access_token_ttl: ttl,
            refresh_token_ttl: None,
            id_token_ttl: None,
            ciba_expires_in: None,
            ciba_interval: ciba,
            qr_expires_in: None,
            qr_interval: None,
            registration_interval: None,
            registration_expires_in: None,
        };
        let config = config(
            Some(&file),
            &timing(Some(Duration::from_secs(1)), None),
            Some(50),
        )
        .unwrap();
        assert_eq!(config.users, ["carol"]);
        assert_eq!(
            config.ciba_interval,
            Duration::from_secs(1),
            "the flag wins"
        );
        assert_eq!(
            config.qr_interval,
            Duration::from_secs(2),
            "the file's value stays"
        );
        assert_eq!(
            config.auto_approve,
            Some(AutoApprove::approve_after(Duration::from_millis(50)))
        );

        let e = super::config(None, &timing(None, Some(Duration::ZERO)), None).unwrap_err();
        assert_eq!(e.code, EXIT_USAGE);
        assert!(
            e.message.starts_with("--access-token-ttl: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_help_lists_every_key_the_file_accepts() {
        // Every key of the help's table, with a value unlike its default:
        // the parser accepts them all, and every setting moves.
        let keys: Vec<&str> = crate::cli::DEV_IDP_CONFIG_HELP
            .lines()
            .filter_map(|l| l.strip_prefix("  "))
            // Continuation lines (deeper indent) describe the key above.
            .filter(|l| !l.starts_with(' '))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .filter(|k| *k != "key")
            .collect();
        let mut json = serde_json::Map::new();
        for key in &keys {
            let value = match *key {
                "users" => serde_json::json!(["carol"]),
                "applications" => serde_json::json!([]),
                "auto_approve" => serde_json::json!({"after_ms": 7, "decision": "deny"}),
                "devices" => serde_json::json!([]),
                "dpop_nonce" | "require_dpop" => serde_json::json!(true),
                ms => {
                    assert!(ms.ends_with("_ms"), "{ms}");
                    serde_json::json!(7)
                }
            };
            json.insert((*key).to_string(), value);
        }
        let config = DevIdpConfig::from_json_str(
            &serde_json::Value::Object(json).to_string(),
            "help".as_ref(),
        )
        .unwrap();
        let d = DevIdpConfig::default();
        let seven = Duration::from_millis(7);
        for (name, value, default) in [
            (
                "access_token_ttl",
                config.access_token_ttl,
                d.access_token_ttl,
            ),
            (
                "refresh_token_ttl",
                config.refresh_token_ttl,
                d.refresh_token_ttl,
            ),
            ("id_token_ttl", config.id_token_ttl, d.id_token_ttl),
            ("ciba_expires_in", config.ciba_expires_in, d.ciba_expires_in),
            ("ciba_interval", config.ciba_interval, d.ciba_interval),
            ("qr_expires_in", config.qr_expires_in, d.qr_expires_in),
            ("qr_interval", config.qr_interval, d.qr_interval),
            (
                "registration_poll_interval",
                config.registration_poll_interval,
                d.registration_poll_interval,
            ),
            (
                "registration_expires_in",
                config.registration_expires_in,
                d.registration_expires_in,
            ),
        ] {
            assert_eq!(value, seven, "{name} is in the help");
            assert!(
                crate::cli::DEV_IDP_CONFIG_HELP.contains(&format!("{}", default.as_millis())),
                "the default of {name} is in the help"
            );
        }
        assert_eq!(config.users, ["carol"]);
        assert!(config.applications.is_empty() && config.auto_approve.is_some());
        assert!(config.dpop_nonce && !d.dpop_nonce);
        assert!(config.require_dpop && !d.require_dpop);
        assert_eq!(keys.len(), 15, "{keys:?}");
    }

    #[test]
    fn the_network_address_is_not_loopback() {
        // Machines without a route outside have none; that is an error, not loopback.
        if let Ok(ip) = network_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED)) {
            assert!(!ip.is_loopback() && !ip.is_unspecified());
        }
    }
}
