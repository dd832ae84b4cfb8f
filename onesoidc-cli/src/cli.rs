//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Authenticate this device, and people using it, against OnesID.
///
/// The device identity is px-device-identity's: device.yml (default
/// /etc/px-device-identity/device.yml) and private.pem in the key directory
/// (default ~/.local/share/px-device-identity).
#[derive(Debug, Parser)]
#[command(
    name = "onesoidc",
    version,
    about,
    long_about,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path of device.yml [env: ONESOIDC_DEVICE_CONFIG] [default: /etc/px-device-identity/device.yml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory holding private.pem [env: ONESOIDC_KEY_DIR] [default: ~/.local/share/px-device-identity]
    #[arg(long, global = true, value_name = "DIR")]
    pub key_dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Allow plain http:// to a provider that is not on loopback (test networks only)
    #[arg(long, global = true)]
    pub allow_insecure_http: bool,
    /// Log more to stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get an access token for this device (client credentials, private_key_jwt)
    ///
    /// Prints the token alone on stdout, so `TOKEN=$(onesoidc device-token)` works.
    DeviceToken {
        /// Scopes to request, space separated
        #[arg(long)]
        scope: Option<String>,
        /// Target resource (application URL) the token is for
        #[arg(long)]
        resource: Option<String>,
    },
    /// Print this device's public key as a JWK (kid = RFC 7638 thumbprint)
    Jwk {
        /// Print a JWK Set ({"keys": [...]}) instead
        #[arg(long)]
        jwks: bool,
    },
    /// Sign a message with the device key; prints the signature, base64url
    ///
    /// Same output as `px-device-identity --operation SIGN --message M`.
    Sign {
        /// The message to sign, as text
        #[arg(long, short)]
        message: String,
    },
    /// Log a person in on their phone by username (CIBA), and print their access token
    ///
    /// Waits (with a spinner on a terminal) until the person approves or
    /// denies on their phone, or the request expires. Exit codes: 0 approved,
    /// 3 denied, 4 expired, 130 cancelled (Ctrl-C), 1 any other error.
    Ciba {
        /// The person's username
        #[arg(long, short)]
        username: String,
        #[command(flatten)]
        login: LoginArgs,
    },
    /// Log a person in by QR code: show a code, the person scans it with the phone app
    ///
    /// The code is drawn on stderr; the access token is printed on stdout.
    /// Exit codes as for `ciba`; 3 also when the person cancels on the phone.
    Qr {
        #[command(flatten)]
        login: LoginArgs,
        /// Also write the code as a PNG image to FILE
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        /// Also write the code as an SVG image to FILE
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Draw the code with plain ASCII instead of Unicode blocks
        #[arg(long)]
        ascii: bool,
    },
    /// List the well-known applications, or print the URL of one
    Apps {
        /// The application's client identifier, e.g. vhh-server
        client_identifier: Option<String>,
    },
    /// Ask the provider whether an access or refresh token is active (RFC 7662)
    Introspect {
        /// The token
        token: String,
        /// access_token or refresh_token
        #[arg(long)]
        hint: Option<String>,
    },
    /// Check an ID token's signature and claims against the provider; print its claims
    ValidateIdToken {
        /// The ID token (a JWT)
        token: String,
    },
    /// Create this device's identity and register it with a provider (replaces px-device-identity INIT)
    ///
    /// Generates a key, submits it and shows a verification code; an
    /// administrator approves the device by that code. Only then are
    /// device.yml and the keys written, as px-device-identity writes them.
    /// Without --address, creates an unmanaged identity (keys and device.yml only).
    /// Exit codes: 0 registered, 3 rejected, 4 nobody approved in time, 130 Ctrl-C.
    Register {
        /// The provider's address, e.g. https://idp-server.ones-now.com
        #[arg(long, short = 'a', requires = "domain")]
        address: Option<String>,
        /// The device's domain, e.g. onesid1.com (px short form: -dn)
        #[arg(long)]
        domain: Option<String>,
        /// A title for the device
        #[arg(long, short = 't')]
        title: String,
        /// Where the device is
        #[arg(long, short = 'l')]
        location: String,
        /// The device's role: SERVER, DESKTOP, PUBLIC, ADMIN_TERMINAL, ...
        #[arg(long, short = 'r')]
        role: String,
        /// Key type: RSA:2048, RSA:3072, ECC:p256, ECC:p384 or ECC:p521
        #[arg(long, default_value = "ECC:p256")]
        key_type: onesoidc_core::KeyType,
        /// Directory for device.yml [default: /etc/px-device-identity]
        #[arg(long, value_name = "DIR")]
        config_dir: Option<PathBuf>,
        /// Replace an existing identity (the old one stays if registration fails)
        #[arg(long)]
        force: bool,
        /// Seconds to wait for an administrator
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Seconds between status checks
        #[arg(long, default_value_t = 10, hide = true)]
        poll_interval: u64,
    },
    /// Keep this device's access token fresh and print every event (refreshed, failed, expired)
    ///
    /// Runs a token manager: it fetches a token, refreshes it ahead of expiry
    /// and retries with backoff when the provider is down. Stops on Ctrl-C,
    /// or after --refreshes refreshes.
    Watch {
        /// Refresh this many seconds before expiry
        #[arg(long, default_value_t = 60)]
        skew: u64,
        /// Keep the token in this directory (mode 0600), so a restart does not fetch a new one
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Stop after this many refreshes
        #[arg(long, value_name = "N")]
        refreshes: Option<u64>,
    },
    /// Run a local OnesID-compatible provider for development (not for production)
    ///
    /// Users alice and bob and the application vhh-server exist by default;
    /// `--config FILE` reads a JSON provider config instead (users,
    /// applications, lifetimes as *_ms, devices). Approve requests through its
    /// /control/ routes (printed at start) or with --auto-approve-ms. Stops on Ctrl-C.
    DevIdp {
        /// Port to listen on (loopback only)
        #[arg(long, short, default_value_t = 8080)]
        port: u16,
        /// Approve every CIBA request, QR scan and registration after this many milliseconds
        #[arg(long, value_name = "MS")]
        auto_approve_ms: Option<u64>,
    },
    /// See every flow work, in one command, against an embedded provider
    ///
    /// Creates a throwaway device identity, registers it, and runs device
    /// login, application look-up, CIBA, QR login, a token refresh, ID token
    /// validation and introspection. Touches nothing outside a temp directory.
    Demo,
    /// Revoke an access or refresh token (RFC 7009)
    Revoke {
        /// The token
        token: String,
        /// access_token or refresh_token
        #[arg(long)]
        hint: Option<String>,
    },
}

/// Options of a person's login.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Text shown on the person's phone (at most 120 characters)
    #[arg(long, short = 'm')]
    pub binding_message: Option<String>,
    /// Scopes to request [default: openid offline_access profile]
    #[arg(long)]
    pub scope: Option<String>,
    /// Get tokens for this well-known application (its URL becomes the resource)
    #[arg(long, value_name = "CLIENT_IDENTIFIER", conflicts_with = "resource")]
    pub target_app: Option<String>,
    /// Get tokens for this resource URL
    #[arg(long, value_name = "URL")]
    pub resource: Option<String>,
}

/// Accepts px-device-identity's two-letter short form `-dn` for `--domain`.
pub fn px_short_forms(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|arg| match arg.to_str() {
        Some("-dn") => "--domain".into(),
        Some(a) if a.starts_with("-dn=") => format!("--domain={}", &a[4..]).into(),
        _ => arg,
    })
    .collect()
}
