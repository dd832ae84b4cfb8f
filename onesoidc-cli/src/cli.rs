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
}
