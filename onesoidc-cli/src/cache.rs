//! Where `device-token` and `watch` keep tokens between runs: the cache
//! directory (and the provider's discovery document in it), or a shared
//! store named by `--store`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onesoidc_core::{Issuer, ProviderMetadata};
use onesoidc_tokens::{FileTokenStore, RedisTokenStore, TokenOwner, TokenStore};
use serde_json::json;

use crate::cli::StoreArgs;
use crate::output::Failure;

/// The environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "ONESOIDC_CACHE_DIR";

/// How long a cached discovery document is used before it is fetched again.
pub const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The largest cached discovery document read.
const MAX_DISCOVERY_BYTES: u64 = 256 * 1024;

/// How long a kept DPoP server nonce is sent before the provider is asked
/// again (a stale one costs what none costs: one `use_dpop_nonce` retry).
pub const DPOP_NONCE_MAX_AGE: Duration = Duration::from_secs(300);

/// The largest kept-nonce file read.
const MAX_DPOP_NONCE_FILE_BYTES: u64 = 4 * 1024;

/// The cache directory: `--cache-dir`, else `$ONESOIDC_CACHE_DIR`, else
/// `$XDG_RUNTIME_DIR/onesoidc`, else `~/.cache/onesoidc`; `None` when none
/// of these can be had (no `$HOME`).
pub fn cache_dir(flag: Option<&Path>) -> Option<PathBuf> {
    cache_dir_from(flag, |name| std::env::var_os(name))
}

fn cache_dir_from(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    flag.map(Path::to_path_buf)
        .or_else(|| set(CACHE_DIR_ENV))
        .or_else(|| set("XDG_RUNTIME_DIR").map(|d| d.join("onesoidc")))
        .or_else(|| set("HOME").map(|d| d.join(".cache/onesoidc")))
}

/// The name under which `watch` and `device-token` keep the device token in
/// a store, so that each answers from the other's token (with the default
/// scope and resource; others get a name of their own).
pub const DEVICE_TOKEN: &str = "device";

/// The name of the device token in a store: [`DEVICE_TOKEN`], or for one
/// bound to the DPoP key with thumbprint `jkt`, `device-dpop-` and the
/// thumbprint's first 12 characters: a bound token and a bearer token of
/// the same device are kept side by side rather than replacing each other,
/// and a process with another DPoP key never reads a token it cannot use.
///
/// ```ignore
/// assert_eq!(device_token_name(None), "device");
/// assert_eq!(device_token_name(Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")), "device-dpop-0ZcOCORZNYy-");
/// ```
pub fn device_token_name(jkt: Option<&str>) -> String {
    match jkt {
        None => DEVICE_TOKEN.to_string(),
        Some(jkt) => format!("{DEVICE_TOKEN}-dpop-{}", jkt.get(..12).unwrap_or(jkt)),
    }
}

/// The environment variable naming the shared store (a URL with a
/// password belongs here or in `--store-file`, not on the command line).
pub const STORE_ENV: &str = "ONESOIDC_STORE";

/// The largest `--store-file`, `--store-ca`, `--store-cert` or `--store-key` read.
const MAX_STORE_FILE_BYTES: u64 = 1024 * 1024;

/// Where a store's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `--store`: every local user sees it in `ps`.
    CommandLine,
    /// `--store-file` or `ONESOIDC_STORE`.
    Private,
}

/// The store `--store`, `--store-file` or (`use_env`) `ONESOIDC_STORE`
/// names, `None` when none does. A URL with a password on the command line
/// works, with a warning on stderr.
pub fn open_store(args: &StoreArgs, use_env: bool) -> Result<Option<Arc<dyn TokenStore>>, Failure> {
    let env = || std::env::var(STORE_ENV).ok().filter(|v| !v.is_empty());
    let (spec, source) = match (&args.store, &args.store_file) {
        (Some(spec), _) => (spec.clone(), Source::CommandLine),
        (None, Some(path)) => (read_store_file(path)?, Source::Private),
        (None, None) => match env().filter(|_| use_env) {
            Some(spec) => (spec, Source::Private),
            None => return Ok(None),
        },
    };
    open_spec(&spec, source, args).map(Some)
}

fn read_store_file(path: &Path) -> Result<String, Failure> {
    let bytes = read_file(path, "--store-file")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::usage(&format!("--store-file {}: not UTF-8 text", path.display())))?;
    let spec = text.trim();
    if spec.is_empty() {
        return Err(Failure::usage(&format!(
            "--store-file {}: the file is empty; write the store's URL or directory in it",
            path.display()
        )));
    }
    Ok(spec.to_string())
}

fn read_file(path: &Path, option: &str) -> Result<Vec<u8>, Failure> {
    onesoidc_fs::read_limited(path, MAX_STORE_FILE_BYTES)
        .map_err(|e| Failure::usage(&format!("{option} {}: {e}", path.display())))
}

fn open_spec(spec: &str, source: Source, args: &StoreArgs) -> Result<Arc<dyn TokenStore>, Failure> {
    let is_url = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| spec.starts_with(scheme));
    let tls = args.store_ca.is_some() || args.store_cert.is_some();
    if is_url {
        let mut builder = RedisTokenStore::builder(spec);
        if let Some(ca) = &args.store_ca {
            builder = builder.ca_certificates(read_file(ca, "--store-ca")?);
        }
        if let (Some(cert), Some(key)) = (&args.store_cert, &args.store_key) {
            builder = builder.client_certificate(
                read_file(cert, "--store-cert")?,
                read_file(key, "--store-key")?,
            );
        }
        let store = builder
            .build()
            .map_err(|e| Failure::usage(&e.to_string()))?;
        if source == Source::CommandLine && store.has_password() {
            eprintln!(
                "warning: --store: the URL's password is visible to every user of this machine (ps, /proc/PID/cmdline); put the URL in {STORE_ENV} or in a file given to --store-file"
            );
        }
        Ok(Arc::new(store))
    } else if let Some((scheme, _)) = spec.split_once("://") {
        Err(Failure::usage(&format!(
            "the store {scheme}://…: not a directory, and not a redis://, rediss:// or redis+unix:// URL"
        )))
    } else if tls {
        Err(Failure::usage(
            "--store-ca, --store-cert and --store-key are for a rediss:// store, not a directory",
        ))
    } else {
        Ok(Arc::new(FileTokenStore::new(spec)))
    }
}

/// The cached discovery document of `owner`'s issuer, in `dir`, if there is
/// one younger than [`DISCOVERY_MAX_AGE`] that passes the same checks as a
/// fetched one. Anything else is ignored (logged at debug).
pub fn load_discovery(dir: &Path, owner: &TokenOwner, issuer: &Issuer) -> Option<ProviderMetadata> {
    let path = discovery_path(dir, owner);
    let bytes = match onesoidc_fs::read_private(&path, MAX_DISCOVERY_BYTES) {
        Ok(bytes) => bytes?,
        Err(e) => {
            tracing::warn!("ignoring the cached discovery document: {e}");
            return None;
        }
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    let record = parsed.as_ref().filter(|r| {
        r["format"] == "onesoidc-discovery" && r["version"] == 1 && r["issuer"] == issuer.as_str()
    });
    let Some(record) = record else {
        tracing::debug!(path = %path.display(), "ignoring the cached discovery document: not ours");
        return None;
    };
    let fetched = UNIX_EPOCH.checked_add(Duration::from_secs(record["fetched_at"].as_u64()?))?;
    let age = SystemTime::now().duration_since(fetched).ok()?;
    if age > DISCOVERY_MAX_AGE {
        tracing::debug!(path = %path.display(), age_s = age.as_secs(), "the cached discovery document is too old");
        return None;
    }
    let body = serde_json::to_vec(&record["document"]).ok()?;
    let response = http::Response::builder().status(200).body(body).ok()?;
    match ProviderMetadata::from_discovery_response(issuer, &response) {
        Ok(metadata) => Some(metadata),
        Err(e) => {
            tracing::debug!(path = %path.display(), "ignoring the cached discovery document: {e}");
            None
        }
    }
}

/// Saves `metadata` as the cached discovery document (best effort: a
/// failure is logged, never an error).
pub fn save_discovery(dir: &Path, owner: &TokenOwner, metadata: &ProviderMetadata) {
    let path = discovery_path(dir, owner);
    let record = json!({
        "format": "onesoidc-discovery",
        "version": 1,
        "issuer": metadata.issuer.as_str(),
        "fetched_at": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
        "document": metadata.to_document(),
    });
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    if let Err(e) = write_private(dir, &path, &bytes) {
        tracing::warn!("cannot cache the discovery document: {e}");
    }
}

/// Writes `bytes` to `path` (0600, all or nothing) in the private
/// directory `dir`, making the directory if needed.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    onesoidc_fs::create_private_dir(dir).map_err(|e| e.to_string())?;
    onesoidc_fs::write_atomically(&[onesoidc_fs::NewFile::new(path, bytes, 0o600)])
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Forgets the cached discovery document (an endpoint from it failed).
pub fn forget_discovery(dir: &Path, owner: &TokenOwner) {
    let _ = std::fs::remove_file(discovery_path(dir, owner));
}

fn discovery_path(dir: &Path, owner: &TokenOwner) -> PathBuf {
    dir.join(format!(
        "discovery-{}.json",
        issuer_only(owner).fingerprint()
    ))
}

fn issuer_only(owner: &TokenOwner) -> TokenOwner {
    TokenOwner::new(owner.issuer.clone(), owner.client_id.clone())
}

/// The DPoP server nonce the provider of `owner` gave the last process
/// (RFC 9449 §8), if it was kept less than [`DPOP_NONCE_MAX_AGE`] ago at
/// `now`, so this one does not start with a `use_dpop_nonce` round trip.
/// Anything else is ignored (logged at debug).
pub fn load_dpop_nonce(dir: &Path, owner: &TokenOwner, now: SystemTime) -> Option<String> {
    let path = dpop_nonce_path(dir, owner);
    let bytes = match onesoidc_fs::read_private(&path, MAX_DPOP_NONCE_FILE_BYTES) {
        Ok(bytes) => bytes?,
        Err(e) => {
            tracing::warn!("ignoring the kept DPoP nonce: {e}");
            return None;
        }
    };
    let record: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let saved_at = UNIX_EPOCH.checked_add(Duration::from_secs(record["saved_at"].as_u64()?))?;
    let fresh = now
        .duration_since(saved_at)
        .is_ok_and(|age| age <= DPOP_NONCE_MAX_AGE);
    let nonce = record["nonce"]
        .as_str()
        .filter(|n| onesoidc_core::is_usable_dpop_nonce(n));
    match (
        record["format"] == "onesoidc-dpop-nonce" && record["version"] == 1,
        fresh,
        nonce,
    ) {
        (true, true, Some(nonce)) => Some(nonce.to_string()),
        _ => {
            tracing::debug!(path = %path.display(), "not using the kept DPoP nonce: too old or not ours");
            None
        }
    }
}

/// Keeps `nonce` for the next process (best effort: a failure is logged,
/// never an error). A nonce is no secret: the provider sends it to anyone.
pub fn save_dpop_nonce(dir: &Path, owner: &TokenOwner, nonce: &str, now: SystemTime) {
    let path = dpop_nonce_path(dir, owner);
    let record = json!({
        "format": "onesoidc-dpop-nonce",
        "version": 1,
        "nonce": nonce,
        "saved_at": now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
    });
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    if let Err(e) = write_private(dir, &path, &bytes) {
        tracing::warn!("cannot keep the DPoP nonce: {e}");
    }
}

fn dpop_nonce_path(dir: &Path, owner: &TokenOwner) -> PathBuf {
    dir.join(format!(
        "dpop-nonce-{}.json",
        issuer_only(owner).fingerprint()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_dpop_nonce_is_used_until_it_is_too_old_or_not_a_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let owner = TokenOwner::new("https://idp.example/oidc", "client-1");
        let other = TokenOwner::new("https://other.example/oidc", "client-1");
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(load_dpop_nonce(dir.path(), &owner, now), None);
        save_dpop_nonce(dir.path(), &owner, "n-1", now);
        assert_eq!(
            load_dpop_nonce(dir.path(), &owner, now).as_deref(),
            Some("n-1")
        );
        assert_eq!(
            load_dpop_nonce(dir.path(), &other, now),
            None,
            "per provider"
        );
        let later = now + DPOP_NONCE_MAX_AGE;
        assert_eq!(
            load_dpop_nonce(dir.path(), &owner, later).as_deref(),
            Some("n-1")
        );
        let too_late = later + Duration::from_secs(1);
        assert_eq!(load_dpop_nonce(dir.path(), &owner, too_late), None);
        for bad in ["", "with space", "quote\"", "back\\slash"] {
            save_dpop_nonce(dir.path(), &owner, bad, now);
            assert_eq!(load_dpop_nonce(dir.path(), &owner, now), None, "{bad:?}");
        }
        std::fs::write(dpop_nonce_path(dir.path(), &owner), b"not json").unwrap();
        assert_eq!(load_dpop_nonce(dir.path(), &owner, now), None);
    }

    #[test]
    fn a_bound_device_token_has_a_name_of_its_own_key() {
        assert_eq!(device_token_name(None), "device");
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        assert_eq!(device_token_name(Some(jkt)), "device-dpop-0ZcOCORZNYy-");
        assert_ne!(
            device_token_name(Some(jkt)),
            device_token_name(Some("1ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"))
        );
    }

    #[test]
    fn the_cache_directory_follows_flag_env_xdg_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = &[
            ("ONESOIDC_CACHE_DIR", "/env"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("HOME", "/home/kiosk"),
        ];
        assert_eq!(
            cache_dir_from(Some(Path::new("/flag")), env(all)),
            Some(PathBuf::from("/flag"))
        );
        assert_eq!(cache_dir_from(None, env(all)), Some(PathBuf::from("/env")));
        assert_eq!(
            cache_dir_from(
                None,
                env(&[("XDG_RUNTIME_DIR", "/run/user/1000"), ("HOME", "/h")])
            ),
            Some(PathBuf::from("/run/user/1000/onesoidc"))
        );
        assert_eq!(
            cache_dir_from(None, env(&[("XDG_RUNTIME_DIR", ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/onesoidc"))
        );
        assert_eq!(cache_dir_from(None, env(&[])), None);
    }

    fn args(store: &str) -> StoreArgs {
        StoreArgs {
            store: Some(store.into()),
            store_file: None,
            store_ca: None,
            store_cert: None,
            store_key: None,
        }
    }

    #[test]
    fn store_specs() {
        let open = |spec: &str| open_store(&args(spec), false);
        assert!(open("redis://127.0.0.1:6379/0").is_ok());
        assert!(open("rediss://user:pw@redis.internal:6380").is_ok());
        assert!(open("redis+unix:///run/redis.sock").is_ok());
        assert!(open("/var/lib/onesoidc").is_ok());
        let error = open("http://user:hunter2@example.com").err().unwrap();
        assert!(
            error.message.contains("not a directory") && !error.message.contains("hunter2"),
            "{}",
            error.message
        );
        let mut with_ca = args("/var/lib/onesoidc");
        with_ca.store_ca = Some("/etc/ssl/ca.pem".into());
        let error = open_store(&with_ca, false).err().unwrap();
        assert!(error.message.contains("rediss://"), "{}", error.message);
    }

    #[test]
    fn a_store_file_holds_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store-url");
        std::fs::write(&path, "redis+unix:///run/redis.sock?pass=hunter2\n").unwrap();
        let from_file = StoreArgs {
            store: None,
            store_file: Some(path.clone()),
            ..args("")
        };
        let store = open_store(&from_file, false).unwrap().unwrap();
        let shown = format!("{store:?}");
        assert!(
            shown.contains("/run/redis.sock") && !shown.contains("hunter2"),
            "{shown}"
        );
        std::fs::write(&path, " \n").unwrap();
        let error = open_store(&from_file, false).err().unwrap();
        assert!(error.message.contains("empty"), "{}", error.message);
    }
}
