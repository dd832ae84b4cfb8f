//! `device-token`, `jwk`, `sign`.

use crate::output::out;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{ExposeSecret, PublicJwkSet, SecretString, TokenSet};
use onesoidc_flows::{DeviceTokenRequest, OnesIdClient, StreamExt};
use onesoidc_tokens::{
    DEFAULT_REFRESH_SKEW, FileTokenStore, TokenError, TokenEvent, TokenManager, TokenOwner,
    TokenStore, device_refresh_with,
};
use serde_json::json;

use super::{builder, client_with, identity};
use crate::cli::{CacheArgs, GlobalArgs};
use crate::output::{Failure, print_json};

pub async fn device_token(
    g: &GlobalArgs,
    scope: &Option<String>,
    resource: &Option<String>,
    dpop: bool,
    cache: &CacheArgs,
) -> Result<(), Failure> {
    let mut options = DeviceTokenRequest::default();
    if let Some(scope) = scope {
        options = options.scope(scope);
    }
    if let Some(resource) = resource {
        options = options.resource(resource);
    }
    let cache_dir = crate::cache::cache_dir(cache.cache_dir.as_deref());
    // ONESOIDC_STORE gives way to an explicit --cache-dir.
    let shared = if cache.no_cache {
        None
    } else {
        crate::cache::open_store(&cache.store, cache.cache_dir.is_none())?
    };
    let store = match (shared, &cache_dir) {
        _ if cache.no_cache => None,
        (Some(store), _) => Some(store),
        (None, Some(dir)) => {
            Some(Arc::new(FileTokenStore::new(dir.join("tokens"))) as Arc<dyn TokenStore>)
        }
        (None, None) => {
            tracing::debug!("no cache directory ($HOME is not set): not caching the token");
            None
        }
    };
    let Some(store) = store else {
        let tokens = client_with(g, dpop)?.device_token_with(&options).await?;
        print_tokens(g, &tokens, None);
        return Ok(());
    };

    let (plain, client, from_cache) = with_cached_discovery(g, cache_dir.as_deref(), dpop)?;
    let kept_nonce = match &cache_dir {
        Some(dir) if dpop => use_kept_dpop_nonce(dir, &client),
        _ => None,
    };
    // A bound token's owner names its key: a process with another key
    // never adopts it.
    let owner = TokenOwner::of_client(&client)
        .await?
        .with_scope(scope.clone())
        .with_resource(resource.clone());
    let name = store_name(&owner);
    let result = cached_token(&client, &store, &owner, &options, &name).await;
    if dpop && let Some(dir) = &cache_dir {
        keep_dpop_nonce(dir, &client, kept_nonce.as_deref());
    }
    let tokens = match result {
        // An endpoint from the cached document failed: discover again, once.
        Err(error) if from_cache && error.cause().is_some_and(|e| endpoint_failed(e)) => {
            tracing::info!("a cached endpoint failed ({error}); discovering the provider again");
            if let Some(dir) = &cache_dir {
                crate::cache::forget_discovery(dir, &owner);
            }
            let result = cached_token(&plain, &store, &owner, &options, &name).await;
            if dpop && let Some(dir) = &cache_dir {
                keep_dpop_nonce(dir, &plain, kept_nonce.as_deref());
            }
            let tokens = result.map_err(token_failure)?;
            save_discovery(cache_dir.as_deref(), &owner, &plain);
            tokens
        }
        Err(error) => return Err(token_failure(error)),
        Ok(tokens) => {
            if !from_cache {
                save_discovery(cache_dir.as_deref(), &TokenOwner::of(&client), &client);
            }
            tokens
        }
    };
    print_tokens(g, &tokens, None);
    Ok(())
}

/// The client without and with the provider's discovery document cached in
/// `cache_dir` (the same client when none is cached), and whether it was.
fn with_cached_discovery(
    g: &GlobalArgs,
    cache_dir: Option<&std::path::Path>,
    dpop: bool,
) -> Result<(OnesIdClient, OnesIdClient, bool), Failure> {
    let identity = identity(g)?;
    let plain = builder(g, identity.clone(), dpop).build()?;
    let cached = cache_dir
        .and_then(|dir| crate::cache::load_discovery(dir, &TokenOwner::of(&plain), plain.issuer()));
    Ok(match cached {
        Some(metadata) => {
            let client = builder(g, identity, dpop)
                .provider_metadata(metadata)
                .build()?;
            (plain, client, true)
        }
        None => (plain.clone(), plain, false),
    })
}

/// `dpop-proof`: a proof for a `method` request to `url` (with `ath` of
/// `token`), signed by the key the flows choose for this identity, on stdout.
pub async fn dpop_proof(
    g: &GlobalArgs,
    method: &str,
    url: &str,
    token: Option<&SecretString>,
    nonce: Option<&str>,
) -> Result<(), Failure> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Failure::usage(&format!("--url {url:?} is not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(Failure::usage(&format!(
            "--url {url:?}: a DPoP proof is for an http(s) request"
        )));
    }
    let cache_dir = crate::cache::cache_dir(None);
    // The key depends on the provider's DPoP algorithms: from the cached
    // discovery document when there is one, else asked once.
    let (_, client, _) = with_cached_discovery(g, cache_dir.as_deref(), true)?;
    let key = client
        .dpop_key()
        .await?
        .ok_or("the client has DPoP off, so it has no DPoP key")?;
    let method = method.to_ascii_uppercase();
    let proof = key.proof(
        &method,
        &parsed,
        token.map(|t| t.expose_secret()),
        nonce,
        SystemTime::now(),
    )?;
    if g.json {
        print_json(&json!({
            "dpop": proof,
            "jkt": key.thumbprint(),
            "htm": method,
            "htu": onesoidc_core::dpop_htu(&parsed),
            "ath": token.is_some(),
        }));
    } else {
        out!("{proof}");
    }
    Ok(())
}

/// The name of `owner`'s device token in a store: the device's (named by
/// the DPoP key the tokens are bound to, if any), with the owner's
/// fingerprint for a scope or resource of its own.
fn store_name(owner: &TokenOwner) -> String {
    let base = crate::cache::device_token_name(owner.dpop_jkt.as_deref());
    if owner.scope.is_none() && owner.resource.is_none() {
        base
    } else {
        format!("{base}-{}", &owner.fingerprint()[..12])
    }
}

/// The device token through `store`: the saved one while it has more than
/// [`DEFAULT_REFRESH_SKEW`] left, else a new one (one request however many
/// processes ask at once).
async fn cached_token(
    client: &OnesIdClient,
    store: &Arc<dyn TokenStore>,
    owner: &TokenOwner,
    options: &DeviceTokenRequest,
    name: &str,
) -> Result<Arc<TokenSet>, TokenError> {
    let manager = TokenManager::builder(name, device_refresh_with(client.clone(), options.clone()))
        .store(store.clone(), owner.clone())
        .refresh_skew(DEFAULT_REFRESH_SKEW)
        .jitter(Duration::ZERO)
        .build();
    let mut events = manager.events();
    let tokens = async {
        let mut tokens = manager.tokens().await?;
        let left = tokens.expires_in(SystemTime::now());
        if left.is_some_and(|left| left <= DEFAULT_REFRESH_SKEW) {
            tokens = manager.force_refresh().await?;
        }
        Ok(tokens)
    }
    .await;
    // A failure still standing: its event may have come before `events()`
    // subscribed (the manager loads from the store as it starts).
    let standing = manager.store_unavailable();
    manager.shutdown().await;
    // The stream ends with the manager: every event it had is here (a
    // failure the store has recovered from since, too).
    let mut unavailable = None;
    while let Some(event) = events.next().await {
        if let TokenEvent::StoreUnavailable { error } = event {
            unavailable = Some(error);
            break;
        }
    }
    if let Some(error) = unavailable.or(standing) {
        eprintln!("warning: the token store is unavailable, so this token was not shared: {error}");
    }
    tokens
}

/// The provider's error itself, as if no manager were involved.
fn token_failure(error: TokenError) -> Failure {
    match error.cause() {
        Some(cause) => Failure::from(cause.clone()),
        None => Failure::from(error.to_string()),
    }
}

/// Whether `error` says an endpoint is wrong (unreachable, or not there).
fn endpoint_failed(error: &onesoidc_flows::Error) -> bool {
    error.is_network() || matches!(error.http_status(), Some(404 | 405 | 410))
}

/// The token endpoint's origin, for its DPoP nonce, once the provider's
/// metadata is known (from the cache, or after the first request).
fn token_endpoint(client: &OnesIdClient) -> Option<url::Url> {
    let metadata = client.known_provider_metadata()?;
    url::Url::parse(metadata.token_endpoint.as_str()).ok()
}

/// Starts `client` with the DPoP nonce the last process was given, so
/// against a provider that requires nonces each `device-token --dpop`
/// process does not pay a `use_dpop_nonce` round trip (a stale nonce
/// costs that one retry, no more); returns it.
fn use_kept_dpop_nonce(dir: &std::path::Path, client: &OnesIdClient) -> Option<String> {
    let url = token_endpoint(client)?;
    let nonce = crate::cache::load_dpop_nonce(dir, &TokenOwner::of(client), SystemTime::now())?;
    client.dpop_nonces().set(&url, &nonce);
    Some(nonce)
}

/// Keeps the provider's latest DPoP nonce for the next process, when it
/// gave a new one (`kept` is the one this process started with: keeping
/// it again would make it look younger than it is).
fn keep_dpop_nonce(dir: &std::path::Path, client: &OnesIdClient, kept: Option<&str>) {
    if let Some(url) = token_endpoint(client)
        && let Some(nonce) = client.dpop_nonces().get(&url)
        && Some(nonce.as_str()) != kept
    {
        crate::cache::save_dpop_nonce(dir, &TokenOwner::of(client), &nonce, SystemTime::now());
    }
}

fn save_discovery(dir: Option<&std::path::Path>, owner: &TokenOwner, client: &OnesIdClient) {
    if let (Some(dir), Some(metadata)) = (dir, client.known_provider_metadata())
        && metadata.discovered
    {
        crate::cache::save_discovery(dir, owner, metadata);
    }
}

pub fn jwk(g: &GlobalArgs, jwks: bool) -> Result<(), Failure> {
    let identity = identity(g)?;
    let jwk = identity
        .public_jwk
        .clone()
        .ok_or(
            "the public key is unknown: a TPM identity needs public_jwk.json in the key directory",
        )?
        .with_thumbprint_kid()
        .map_err(|e| e.to_string())?;
    let value = if jwks {
        serde_json::to_value(PublicJwkSet { keys: vec![jwk] })?
    } else {
        serde_json::to_value(jwk)?
    };
    print_json(&value);
    Ok(())
}

pub fn sign(g: &GlobalArgs, message: &str) -> Result<(), Failure> {
    let identity = identity(g)?;
    let signature = identity.signer.sign(message.as_bytes())?;
    let encoded = URL_SAFE_NO_PAD.encode(signature);
    if g.json {
        print_json(&json!({"alg": identity.signer.algorithm().as_str(), "signature": encoded}));
    } else {
        out!("{encoded}");
    }
    Ok(())
}

/// The access token alone (human) or every token and its claims (`--json`).
pub fn print_tokens(
    g: &GlobalArgs,
    tokens: &TokenSet,
    id_claims: Option<&serde_json::Map<String, serde_json::Value>>,
) {
    if g.json {
        let expires_in = tokens.expires_in(SystemTime::now()).map(|d| d.as_secs());
        print_json(&json!({
            "access_token": tokens.access_token.expose_secret(),
            "token_type": tokens.token_type,
            "expires_in": expires_in,
            "scope": tokens.scope,
            "dpop_jkt": tokens.dpop_jkt,
            "refresh_token": tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
            "id_token": tokens.id_token.as_ref().map(|t| t.expose_secret()),
            "id_token_claims": id_claims,
        }));
    } else {
        out!("{}", tokens.access_token.expose_secret());
    }
}
