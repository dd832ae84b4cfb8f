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
    version = VERSION.as_str(),
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

/// `--version`: the version, the git commit it was built from and whether
/// TPM keys sign in process (the `tpm` feature of onesoidc-flows, which
/// this crate's `tpm` feature turns on; asked of flows, so the answer is
/// true of the binary whatever turned it on).
pub static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let tpm = if onesoidc_flows::TPM_SIGNER {
        "tpm"
    } else {
        "without tpm"
    };
    format!(
        "{} ({}; {tpm})",
        env!("CARGO_PKG_VERSION"),
        env!("ONESOIDC_COMMIT")
    )
});

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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

/// Where `device-token` keeps its token between runs.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Always ask the provider; neither read nor write a cached token (nor use ONESOIDC_STORE)
    #[arg(long, conflicts_with_all = ["cache_dir", "store", "store_file"])]
    pub no_cache: bool,
    /// The cache directory [env: ONESOIDC_CACHE_DIR] [default: $XDG_RUNTIME_DIR/onesoidc, else ~/.cache/onesoidc]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A shared token store: where it is, and how to trust a `rediss://` server.
#[derive(Args)]
#[command(next_help_heading = "Shared store")]
pub struct StoreArgs {
    /// Keep the token in this shared store: a directory, or a redis://, rediss:// or
    /// redis+unix:// URL. A URL with a password shows in `ps`: use --store-file or
    /// ONESOIDC_STORE for those [env: ONESOIDC_STORE]
    #[arg(long, value_name = "URL|DIR", conflicts_with = "store_file")]
    pub store: Option<String>,
    /// Read the store's URL (or directory) from this file, e.g. one with a password
    #[arg(long, value_name = "PATH")]
    pub store_file: Option<PathBuf>,
    /// Trust this CA certificate (PEM) for a rediss:// store, instead of the system's roots
    #[arg(long, value_name = "FILE", env = "ONESOIDC_STORE_CA")]
    pub store_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a rediss:// store that asks for one; needs --store-key
    #[arg(
        long,
        value_name = "FILE",
        env = "ONESOIDC_STORE_CERT",
        requires = "store_key"
    )]
    pub store_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs --store-cert
    #[arg(
        long,
        value_name = "FILE",
        env = "ONESOIDC_STORE_KEY",
        requires = "store_cert"
    )]
    pub store_key: Option<PathBuf>,
}

/// Without the store's URL: it may hold a password.
impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("store", &self.store.as_ref().map(|_| "…"))
            .field("store_file", &self.store_file)
            .field("store_ca", &self.store_ca)
            .field("store_cert", &self.store_cert)
            .field("store_key", &self.store_key)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get an access token for this device (client credentials, private_key_jwt)
    ///
    /// Prints the token alone on stdout, so `TOKEN=$(onesoidc device-token)` works.
    /// A token is cached and served again while it has more than 60 s left
    /// (mode 0600 in a 0700 directory; bound to the issuer, client id, scope
    /// and resource), so a script calling this in a loop asks the provider
    /// once per token lifetime; processes running at once make one request.
    DeviceToken {
        /// Scopes to request, space separated
        #[arg(long)]
        scope: Option<String>,
        /// Target resource (application URL) the token is for
        #[arg(long)]
        resource: Option<String>,
        /// Bind the token to this device's DPoP key (RFC 9449): it works only with a proof
        /// from that key (`onesoidc dpop-proof`), so a copied token is useless elsewhere
        #[arg(long)]
        dpop: bool,
        #[command(flatten)]
        cache: CacheArgs,
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
    ///
    /// `echo "$TOKEN" | onesoidc introspect -` reads the token from standard
    /// input (an argument is visible to every user in the process list and
    /// stays in shell history). Prints the provider's answer; exits 5 when
    /// the token is not usable now (inactive, expired, or issued by another
    /// provider or to another client), 0 when it is.
    Introspect {
        #[command(flatten)]
        token: TokenInput,
        /// access_token or refresh_token
        #[arg(long)]
        hint: Option<onesoidc_core::TokenTypeHint>,
    },
    /// Check an ID token's signature and claims against the provider; print its claims
    ///
    /// `echo "$ID_TOKEN" | onesoidc validate-id-token -` reads it from standard input.
    ValidateIdToken {
        #[command(flatten)]
        token: TokenInput,
    },
    /// Check an access token as the application it is for would; print its claims
    ///
    /// `echo "$TOKEN" | onesoidc check-access-token --audience https://vhh.example.com -`:
    /// a JWT by RFC 9068 against the provider's keys, an opaque token by
    /// introspection with this device's identity. Prints the claims (or
    /// `--json`) and exits 0, or exits 5 with the reason the application
    /// would refuse it, for scripts and for debugging a refused request.
    /// With `--dpop-proof P --method M --url U`, the token is checked as
    /// sent with `Authorization: DPoP` and the proof `P` for a request `M U`
    /// (RFC 9449: the proof's key must be the token's `cnf.jkt`).
    CheckAccessToken {
        /// The application's resource URL: the token's `aud` must contain exactly this
        #[arg(long)]
        audience: String,
        /// A DPoP proof (the request's `DPoP` header) to check with the token
        #[arg(long, value_name = "PROOF", requires_all = ["method", "url"])]
        dpop_proof: Option<String>,
        /// The HTTP method of the request the DPoP proof is for, e.g. GET
        #[arg(long, value_name = "METHOD", requires = "dpop_proof")]
        method: Option<String>,
        /// The full URL of the request the DPoP proof is for, e.g. https://vhh.example.com/me
        #[arg(long, value_name = "URL", requires = "dpop_proof")]
        url: Option<String>,
        #[command(flatten)]
        token: TokenInput,
    },
    /// Print a DPoP proof (RFC 9449) for one request with a DPoP-bound token, for curl
    ///
    /// `curl -H "Authorization: DPoP $T" -H "DPoP: $(onesoidc dpop-proof --method GET --url URL --token-file F)" URL`:
    /// the proof is signed by the key `--dpop` tokens are bound to (the one the
    /// flows choose: the device key when the provider accepts its algorithm,
    /// else dpop.pem beside it) and carries the token's hash (`ath`) when a
    /// token is given. A proof is for one request: make a new one for each.
    DpopProof {
        /// The request's HTTP method
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request's full URL (query and fragment are left out of the proof)
        #[arg(long)]
        url: String,
        /// `-`: read the access token the request carries from standard input (the only
        /// value: a token as an argument would show in `ps`; another value is refused
        /// without being echoed)
        #[arg(long, value_name = "-", conflicts_with = "token_file")]
        token: Option<String>,
        /// Read the access token the request carries from this file
        #[arg(long, value_name = "PATH")]
        token_file: Option<std::path::PathBuf>,
        /// The server's nonce (its `DPoP-Nonce` header), when it asked for one
        #[arg(long)]
        nonce: Option<String>,
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
        /// Where the key is made: default (a PEM file) or tpm (inside the TPM; a build with the `tpm` feature)
        #[arg(long, default_value = "default", value_parser = ["default", "tpm"], ignore_case = true)]
        security: String,
        /// The TPM for --security tpm, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321 [env: TPM2TOOLS_TCTI, TSS2_TCTI] [default: device:/dev/tpmrm0]
        #[arg(long, value_name = "TCTI")]
        tcti: Option<String>,
        /// Directory for device.yml [default: /etc/px-device-identity]
        #[arg(long, value_name = "DIR")]
        config_dir: Option<PathBuf>,
        /// Replace an existing identity (the old one stays if registration fails)
        #[arg(long)]
        force: bool,
        /// Seconds to wait for an administrator (at most a day)
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
        /// Seconds between status checks
        #[arg(long, default_value_t = 10, hide = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
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
        /// Keep the token in a store (below) and share its refresh with every process using it:
        /// a directory (one machine), or Redis (many)
        #[command(flatten)]
        store: StoreArgs,
        /// Stop after this many refreshes
        #[arg(long, value_name = "N")]
        refreshes: Option<u64>,
        /// Bind the token to this device's DPoP key (RFC 9449): it works only with a proof
        /// from that key (`onesoidc dpop-proof`), so a copied token is useless elsewhere
        #[arg(long)]
        dpop: bool,
    },
    /// Run a local OnesID-compatible provider for development, with a console in the browser (not for production)
    ///
    /// Prints the console's address first (http://127.0.0.1:8080/ by
    /// default): there you approve registrations and logins as the
    /// administrator or as the person on the phone, and see what your device
    /// did. A QR code's link, opened on a phone, shows a page to sign in on.
    /// Users alice and bob and the application vhh-server exist by default;
    /// --provider-config FILE reads the provider's own JSON config (keys
    /// below), and the flags override it. Stops on Ctrl-C.
    #[command(after_long_help = DEV_IDP_CONFIG_HELP)]
    DevIdp(DevIdpArgs),
    /// See every flow work, in one command, against an embedded provider
    ///
    /// Creates a throwaway device identity, registers it, and runs device
    /// login, application look-up, CIBA, QR login, a token refresh, ID token
    /// validation and introspection. Touches nothing outside a temp directory.
    Demo,
    /// Revoke an access or refresh token (RFC 7009)
    ///
    /// `echo "$TOKEN" | onesoidc revoke -` reads the token from standard input.
    Revoke {
        #[command(flatten)]
        token: TokenInput,
        /// access_token or refresh_token
        #[arg(long)]
        hint: Option<onesoidc_core::TokenTypeHint>,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    ///
    /// bash: `onesoidc completions bash > ~/.local/share/bash-completion/completions/onesoidc`;
    /// zsh: into a directory on `$fpath` as `_onesoidc`;
    /// fish: `~/.config/fish/completions/onesoidc.fish`. The Debian package installs all three.
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write the man pages (onesoidc.1 and one per command) into a directory
    #[command(hide = true)]
    Manpages {
        /// Where to write them
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

/// Where a token comes from: standard input (`-`), a file, or (visible to
/// every local user, and kept in shell history) the command line.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TokenInput {
    /// The token, or `-` to read it from standard input (preferred: an argument shows in `ps`)
    #[arg(value_name = "TOKEN|-")]
    pub token: Option<String>,
    /// Read the token from this file
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// Options of `dev-idp`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Provider")]
pub struct DevIdpArgs {
    /// Address to listen on [default: 127.0.0.1:8080]. Anything but loopback
    /// (e.g. 0.0.0.0:8080, for a real phone) serves your network
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Shorthand for --listen 127.0.0.1:PORT
    #[arg(long, short, value_name = "PORT", conflicts_with = "listen")]
    pub port: Option<u16>,
    /// The URL devices and phones reach the provider at (the issuer is URL/oidc)
    /// [default: http://ADDR; for 0.0.0.0, this machine's network address]
    #[arg(long, value_name = "URL")]
    pub public_host: Option<String>,
    /// The provider's JSON config file (keys below; the flags override it)
    #[arg(long, value_name = "FILE", env = "ONESOIDC_DEVIDP_CONFIG")]
    pub provider_config: Option<PathBuf>,
    /// Approve every CIBA request, QR scan and registration after this many milliseconds
    #[arg(long, value_name = "MS")]
    pub auto_approve_ms: Option<u64>,
    /// Require server nonces in DPoP proofs at the token endpoint (RFC 9449 §8):
    /// a proof without the current one is answered use_dpop_nonce
    #[arg(long)]
    pub dpop_nonce: bool,
    /// Refuse token requests without a DPoP proof (every application)
    #[arg(long)]
    pub require_dpop: bool,
    #[command(flatten)]
    pub timing: DevIdpTiming,
}

/// Lifetimes and intervals of `dev-idp`, as `15s`, `1500ms`, `2m`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Lifetimes and poll intervals (15s, 1500ms, 2m; defaults below)")]
pub struct DevIdpTiming {
    /// Lifetime of access tokens
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Option<std::time::Duration>,
    /// Lifetime of refresh tokens (each rotation starts a new one)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub refresh_token_ttl: Option<std::time::Duration>,
    /// Lifetime of ID tokens
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub id_token_ttl: Option<std::time::Duration>,
    /// How long a CIBA login waits for the person
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ciba_expires_in: Option<std::time::Duration>,
    /// CIBA poll interval (polling sooner is slow_down)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ciba_interval: Option<std::time::Duration>,
    /// How long a QR code waits to be scanned
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub qr_expires_in: Option<std::time::Duration>,
    /// QR status poll interval told to devices
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub qr_interval: Option<std::time::Duration>,
    /// Registration status poll interval told to devices
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub registration_interval: Option<std::time::Duration>,
    /// How long a registration waits for the administrator
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub registration_expires_in: Option<std::time::Duration>,
}

/// `dev-idp --help`: the provider config's keys, with their flags and defaults.
pub const DEV_IDP_CONFIG_HELP: &str = "\
Provider config (--provider-config FILE or ONESOIDC_DEVIDP_CONFIG): a JSON object,
every key optional, unknown keys are errors; durations in milliseconds.

  key                            flag                        default
  users                                                      [\"alice\", \"bob\"]
  applications                                               [vhh-server: VHH Server, https://vhh.example.com]
                                 (each {\"client_identifier\", \"client_id\", \"name\", \"url\"},
                                 optional \"access_token_format\": \"jwt\" or \"opaque\", \"require_dpop\": true)
  access_token_ttl_ms            --access-token-ttl          300000 (5 min)
  refresh_token_ttl_ms           --refresh-token-ttl         3600000 (1 h)
  id_token_ttl_ms                --id-token-ttl              300000 (5 min)
  ciba_expires_in_ms             --ciba-expires-in           120000 (2 min)
  ciba_interval_ms               --ciba-interval             5000 (5 s)
  qr_expires_in_ms               --qr-expires-in             300000 (5 min)
  qr_interval_ms                 --qr-interval               5000 (5 s)
  registration_poll_interval_ms  --registration-interval     10000 (10 s)
  registration_expires_in_ms     --registration-expires-in   300000 (5 min)
  auto_approve                   --auto-approve-ms           none; {\"after_ms\": 1500, \"decision\": \"approve\" or \"deny\"}
  devices                                                    none; [{\"device_id\", \"client_id\", \"public_jwk\": {...}}]
  dpop_nonce                     --dpop-nonce                false
  require_dpop                   --require-dpop              false

Example: onesoidc dev-idp --access-token-ttl 15s --ciba-interval 1s --qr-interval 1s
Real phone on the same network: onesoidc dev-idp --listen 0.0.0.0:8080 (devices then
need --allow-insecure-http: the provider speaks plain http).";

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
    /// Bind the person's tokens to this device's DPoP key (RFC 9449): they work only with a
    /// proof from that key (`onesoidc dpop-proof`)
    #[arg(long)]
    pub dpop: bool,
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
