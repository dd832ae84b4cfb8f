//! Where px-device-identity keeps a device's identity.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where px-device-identity keeps `device.yml`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/px-device-identity/device.yml";
/// Environment variable that overrides [`DEFAULT_CONFIG_PATH`].
pub const CONFIG_PATH_ENV: &str = "ONESOIDC_DEVICE_CONFIG";
/// Environment variable that overrides the key directory.
pub const KEY_DIR_ENV: &str = "ONESOIDC_KEY_DIR";
/// The largest `device.yml`, private key or `public_jwk.json` read (1 MiB;
/// real ones are a few KiB at most). A larger file is refused without
/// being read, so a junk or hostile file cannot exhaust memory.
pub const MAX_IDENTITY_FILE_BYTES: u64 = 1024 * 1024;

/// Where a device's `device.yml` and keys are.
///
/// ```
/// use onesoidc_fs::IdentityPaths;
/// let paths = IdentityPaths::from_lookup(|name| match name {
///     "HOME" => Some("/home/kiosk".into()),
///     _ => None,
/// });
/// assert_eq!(paths.config.to_str(), Some("/etc/px-device-identity/device.yml"));
/// assert_eq!(paths.key_dir.to_str(), Some("/home/kiosk/.local/share/px-device-identity"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPaths {
    /// Path of `device.yml`.
    pub config: PathBuf,
    /// Directory with `private.pem`, `public.pem`, `public_jwk.json`.
    pub key_dir: PathBuf,
}

impl IdentityPaths {
    /// `device.yml` at `config` and the keys in `key_dir`.
    pub fn new(config: impl Into<PathBuf>, key_dir: impl Into<PathBuf>) -> Self {
        IdentityPaths {
            config: config.into(),
            key_dir: key_dir.into(),
        }
    }

    /// The defaults, overridden by `ONESOIDC_DEVICE_CONFIG` and `ONESOIDC_KEY_DIR`;
    /// the key dir is `$XDG_DATA_HOME/px-device-identity`, else
    /// `$HOME/.local/share/px-device-identity`.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`IdentityPaths::from_env`] with a custom environment look-up.
    pub fn from_lookup(env: impl Fn(&str) -> Option<OsString>) -> Self {
        let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
        let config = non_empty(CONFIG_PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        let key_dir = non_empty(KEY_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let data_home = non_empty("XDG_DATA_HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        let home = non_empty("HOME").unwrap_or_else(|| "/root".into());
                        PathBuf::from(home).join(".local/share")
                    });
                data_home.join("px-device-identity")
            });
        IdentityPaths { config, key_dir }
    }

    /// `private.pem` in the key dir.
    pub fn private_key(&self) -> PathBuf {
        self.key_dir.join("private.pem")
    }

    /// `public.pem` in the key dir.
    pub fn public_key(&self) -> PathBuf {
        self.key_dir.join("public.pem")
    }

    /// `dpop.pem` in the key dir: the P-256 key that signs DPoP proofs when
    /// the device key cannot (the provider does not accept its algorithm).
    pub fn dpop_key(&self) -> PathBuf {
        self.key_dir.join("dpop.pem")
    }

    /// `public_jwk.json` in the key dir.
    pub fn public_jwk(&self) -> PathBuf {
        self.key_dir.join("public_jwk.json")
    }

    /// The files of an identity, in the order they are replaced:
    /// `public.pem`, `public_jwk.json`, `private.pem`, then `device.yml`
    /// (which makes the set the identity).
    pub fn files(&self) -> [PathBuf; 4] {
        [
            self.public_key(),
            self.public_jwk(),
            self.private_key(),
            self.config.clone(),
        ]
    }

    /// The switch of an identity being replaced ([`replace_set`](crate::replace_set)):
    /// `device.yml.onesoidc-switch` beside `device.yml`.
    pub fn switch(&self) -> PathBuf {
        crate::set::sibling(&self.config, ".onesoidc-switch")
    }

    /// Completes or abandons a replacement of this identity that a crash
    /// interrupted ([`finish_interrupted_set`](crate::finish_interrupted_set)).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let paths = onesoidc_fs::IdentityPaths::new(dir.path().join("device.yml"), dir.path());
    /// assert_eq!(paths.finish_interrupted_write().unwrap(), onesoidc_fs::Interrupted::Nothing);
    /// ```
    pub fn finish_interrupted_write(&self) -> std::io::Result<crate::Interrupted> {
        let files = self.files();
        let targets: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        crate::finish_interrupted_set(&targets, &self.switch())
    }
}
