//! What each command does: thin layers over onesoidc-flows.

mod demo;
mod dev_idp;
mod device;
mod help;
mod inspect;
mod login;
mod register;
mod watch;

use onesoidc_flows::{DeviceIdentity, IdentityPaths, OnesIdClient};
use onesoidc_http::{Policy, ReqwestClient};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output::Failure;

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let g = &cli.global;
    match &cli.command {
        Command::DeviceToken {
            scope,
            resource,
            dpop,
            cache,
        } => device::device_token(g, scope, resource, *dpop, cache).await,
        Command::Jwk { jwks } => device::jwk(g, *jwks),
        Command::Sign { message } => device::sign(g, message),
        Command::Ciba { username, login } => login::ciba(g, username, login).await,
        Command::Qr {
            login,
            png,
            svg,
            ascii,
        } => login::qr(g, login, png.as_deref(), svg.as_deref(), *ascii).await,
        Command::Apps { client_identifier } => inspect::apps(g, client_identifier.as_deref()).await,
        Command::Introspect { token, hint } => inspect::introspect(g, &token.read()?, *hint).await,
        Command::ValidateIdToken { token } => inspect::validate_id_token(g, &token.read()?).await,
        Command::CheckAccessToken {
            audience,
            token,
            dpop_proof,
            method,
            url,
        } => {
            let dpop = match (dpop_proof, method, url) {
                (Some(proof), Some(method), Some(url)) => {
                    Some(inspect::DpopRequest { proof, method, url })
                }
                _ => None,
            };
            inspect::check_access_token(g, audience, &token.read()?, dpop.as_ref()).await
        }
        Command::Register {
            address,
            domain,
            title,
            location,
            role,
            key_type,
            security,
            tcti,
            config_dir,
            force,
            timeout,
            poll_interval,
        } => {
            let mut identity_paths = paths(g);
            if let (Some(dir), None) = (config_dir, &g.config) {
                identity_paths.config = dir.join("device.yml");
            }
            let mut registration = onesoidc_flows::DeviceRegistration::new(title, location, role)
                .key_type(*key_type)
                .paths(identity_paths)
                .force(*force)
                .timeout(std::time::Duration::from_secs(*timeout))
                .poll_interval(std::time::Duration::from_secs((*poll_interval).max(1)))
                .policy(policy(g));
            if let (Some(address), Some(domain)) = (address, domain) {
                registration = registration.provider(address, domain);
            }
            if security.eq_ignore_ascii_case("tpm") {
                registration = registration.key_security(onesoidc_core::KeySecurity::Tpm);
                registration = with_tcti(registration, tcti.as_deref())?;
            } else if tcti.is_some() {
                return Err(Failure::usage("--tcti is for --security tpm"));
            }
            register::register(g, &registration).await
        }
        Command::DevIdp(args) => dev_idp::run(g, args).await,
        Command::Demo => demo::run(g).await,
        Command::Watch {
            skew,
            store,
            refreshes,
            dpop,
        } => watch::run(g, *skew, store, *refreshes, *dpop).await,
        Command::DpopProof {
            method,
            url,
            token,
            token_file,
            nonce,
        } => {
            // Checked here, not by clap, whose error would echo the value: a token.
            if token.as_deref().is_some_and(|t| t != "-") {
                return Err(Failure::usage(
                    "--token takes only `-` (the token on standard input): a token given as an argument shows in `ps` and shell history, so it was not used; use `--token -` or `--token-file F`",
                ));
            }
            let token = match (token, token_file) {
                (None, None) => None,
                (token, token_file) => Some(
                    crate::cli::TokenInput {
                        token: token.clone(),
                        token_file: token_file.clone(),
                    }
                    .read()?,
                ),
            };
            device::dpop_proof(g, method, url, token.as_ref(), nonce.as_deref()).await
        }
        Command::Revoke { token, hint } => inspect::revoke(g, &token.read()?, *hint).await,
        Command::Completions { shell } => {
            help::completions(*shell);
            Ok(())
        }
        Command::Manpages { out_dir } => help::manpages(out_dir),
    }
}

/// The identity paths: flags, then environment, then px-device-identity's defaults.
pub fn paths(g: &GlobalArgs) -> IdentityPaths {
    let mut paths = IdentityPaths::from_env();
    if let Some(config) = &g.config {
        paths.config = config.clone();
    }
    if let Some(dir) = &g.key_dir {
        paths.key_dir = dir.clone();
    }
    paths
}

pub fn identity(g: &GlobalArgs) -> Result<DeviceIdentity, Failure> {
    Ok(DeviceIdentity::load(&paths(g))?)
}

/// The HTTP rules, honouring `--allow-insecure-http`.
pub fn policy(g: &GlobalArgs) -> Policy {
    Policy::default().allow_insecure_http(g.allow_insecure_http)
}

/// The HTTP client, honouring `--allow-insecure-http`.
pub fn http(g: &GlobalArgs) -> Result<ReqwestClient, Failure> {
    Ok(ReqwestClient::builder()
        .allow_insecure_http(g.allow_insecure_http)
        .build()?)
}

pub fn client(g: &GlobalArgs) -> Result<OnesIdClient, Failure> {
    client_with(g, false)
}

/// The client; with `dpop`, its token requests carry DPoP proofs (RFC
/// 9449) from the key the flows choose (the device key, or `dpop.pem` in
/// the key directory, which is why the paths go in too).
pub fn client_with(g: &GlobalArgs, dpop: bool) -> Result<OnesIdClient, Failure> {
    Ok(builder(g, identity(g)?, dpop).build()?)
}

/// The builder of [`client_with`] for `identity`, for a caller that adds to it.
pub fn builder(
    g: &GlobalArgs,
    identity: DeviceIdentity,
    dpop: bool,
) -> onesoidc_flows::OnesIdClientBuilder {
    OnesIdClient::builder()
        .identity(identity)
        .identity_paths(paths(g))
        .policy(policy(g))
        .dpop(dpop)
}

/// The TPM named by `--tcti` for a registration (the environment's without it).
fn with_tcti(
    registration: onesoidc_flows::DeviceRegistration,
    tcti: Option<&str>,
) -> Result<onesoidc_flows::DeviceRegistration, Failure> {
    match tcti {
        Some(text) => registration.tcti_text(text).map_err(|e| Failure::usage(&e)),
        None => Ok(registration),
    }
}
