//! Harness of the interop suite: onesoidc's library and CLI against the stock
//! `oidc-provider` npm package, the implementation whose routes OnesID serves
//! under `/oidc`. A shared misunderstanding between our client and our own
//! local provider (`onesoidc-devidp`) passes both; this peer is independent.
//!
//! Run it with `cargo xtask interop`: it installs `oidc-provider` (pinned in
//! `interop/package-lock.json`), starts `interop/provider.mjs` twice on loopback
//! ports and runs the tests of this crate (all `#[ignore]`d otherwise) with:
//!
//! - `ONESOIDC_INTEROP_HOST`: the provider's host (issuer = host + `/oidc`);
//! - `ONESOIDC_INTEROP_CONTROL`: its test-only control route, which plays the
//!   user's phone (approve or deny a CIBA request);
//! - `ONESOIDC_INTEROP_CLI`: the `onesoidc` binary to run;
//! - `ONESOIDC_INTEROP_NONCE_HOST` and `ONESOIDC_INTEROP_NONCE_CONTROL`: the
//!   same for a second instance that requires DPoP nonces ([`Instance`]).
//!
//! Built with the `tpm` feature (which `cargo xtask interop` turns on when
//! the TPM packages are installed), the suite also runs devices whose key
//! lives in a swtpm, registered with the provider through RFC 7591 dynamic
//! registration ([`REGISTRATION_TOKEN`]).
//!
//! The ONES extensions (QR login, well-known applications, registration) are
//! not in that provider; they stay tested against `onesoidc-devidp`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{DeviceConfig, KeyType, PemSigner};
use onesoidc_flows::{DeviceIdentity, IdentityPaths, OnesIdClient, load_pem_signer};
use onesoidc_http::{HttpClient, ReqwestClient};

/// Environment variable with the provider's host, e.g. `http://127.0.0.1:4000`.
pub const HOST_ENV: &str = "ONESOIDC_INTEROP_HOST";
/// Environment variable with the control route's base URL.
pub const CONTROL_ENV: &str = "ONESOIDC_INTEROP_CONTROL";
/// Environment variable with the path of the `onesoidc` binary.
pub const CLI_ENV: &str = "ONESOIDC_INTEROP_CLI";
/// The initial access token `interop/provider.mjs` asks of dynamic client
/// registration (RFC 7591 §3), which the TPM tests use to register the
/// device whose key they just made. Not a secret: test-only, loopback only.
pub const REGISTRATION_TOKEN: &str = "interop-registration-not-secret";

/// Environment variable with the host of the instance that requires DPoP nonces.
pub const NONCE_HOST_ENV: &str = "ONESOIDC_INTEROP_NONCE_HOST";
/// Environment variable with that instance's control route.
pub const NONCE_CONTROL_ENV: &str = "ONESOIDC_INTEROP_NONCE_CONTROL";

/// The suite's two oidc-provider instances: the same clients, users and
/// resource servers; they differ only in DPoP nonces (RFC 9449 §8).
///
/// ```
/// use onesoidc_interop::Instance;
/// assert_eq!(Instance::ALL.len(), 2);
/// assert_ne!(Instance::Default.host_env(), Instance::NonceRequired.host_env());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    /// The package's default DPoP configuration: on, no server nonces.
    Default,
    /// `features.dPoP.nonceSecret` set and `requireNonce` true: a proof
    /// without a nonce the server issued is answered `use_dpop_nonce`.
    NonceRequired,
}

impl Instance {
    /// Both instances, the default one first.
    pub const ALL: [Instance; 2] = [Instance::Default, Instance::NonceRequired];

    /// The environment variable with this instance's host.
    pub fn host_env(self) -> &'static str {
        match self {
            Instance::Default => HOST_ENV,
            Instance::NonceRequired => NONCE_HOST_ENV,
        }
    }

    fn control_env(self) -> &'static str {
        match self {
            Instance::Default => CONTROL_ENV,
            Instance::NonceRequired => NONCE_CONTROL_ENV,
        }
    }

    /// This instance's host (`http://127.0.0.1:PORT`); panics with
    /// instructions when unset.
    pub fn host(self) -> String {
        required_env(self.host_env())
    }

    /// This instance's issuer: host + `/oidc`.
    pub fn issuer(self) -> String {
        format!("{}/oidc", self.host())
    }

    /// The user's phone at this instance.
    pub fn phone(self) -> Phone {
        Phone { instance: self }
    }
}

/// The px-device-identity fixtures (real files written by px 0.11.1).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../onesoidc-core/tests/fixtures/px-device-identity")
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: these interop tests need the oidc-provider that \
             `cargo xtask interop` installs and starts; run them with `cargo xtask interop`"
        ),
    }
}

/// The default instance's host (`http://127.0.0.1:PORT`); panics with instructions when unset.
pub fn host() -> String {
    Instance::Default.host()
}

/// The default instance's issuer: host + `/oidc` (PROTOCOL: terms).
pub fn issuer() -> String {
    Instance::Default.issuer()
}

/// One px fixture key and the client the provider registered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceKey {
    /// Directory under [`fixtures_dir`].
    pub dir: &'static str,
    /// Its key type.
    pub key_type: KeyType,
}

/// Every key type px-device-identity creates, each with its fixture.
/// `interop/provider.mjs` registers the client `interop-<dir>` for each.
pub const DEVICE_KEYS: [DeviceKey; 5] = [
    DeviceKey {
        dir: "rsa-2048",
        key_type: KeyType::Rsa2048,
    },
    DeviceKey {
        dir: "rsa-3072",
        key_type: KeyType::Rsa3072,
    },
    DeviceKey {
        dir: "ecc-p256",
        key_type: KeyType::EccP256,
    },
    DeviceKey {
        dir: "ecc-p384",
        key_type: KeyType::EccP384,
    },
    DeviceKey {
        dir: "ecc-p521",
        key_type: KeyType::EccP521,
    },
];

/// The RSA 2048 device, the most common one.
pub const RSA_2048: DeviceKey = DEVICE_KEYS[0];
/// The P-256 device.
pub const ECC_P256: DeviceKey = DEVICE_KEYS[2];
/// The P-384 device.
pub const ECC_P384: DeviceKey = DEVICE_KEYS[3];
/// The P-521 device.
pub const ECC_P521: DeviceKey = DEVICE_KEYS[4];

impl DeviceKey {
    /// The client id the provider registered for this key.
    pub fn client_id(&self) -> String {
        format!("interop-{}", self.dir)
    }

    /// The fixture directory (`device.yml`, `private.pem`).
    pub fn dir(&self) -> PathBuf {
        fixtures_dir().join(self.dir)
    }

    /// The fixture's `device.yml` text, registered with the interop provider:
    /// `client_id` and `host` set, `is_managed: true`.
    pub fn device_yml(&self) -> String {
        self.device_yml_at(Instance::Default)
    }

    /// [`device_yml`](Self::device_yml) for `instance`.
    pub fn device_yml_at(&self, instance: Instance) -> String {
        let path = self.dir().join("device.yml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        text.lines()
            .map(|line| match line.split_once(':').map(|(k, _)| k) {
                Some("client_id") => format!("client_id: {}", self.client_id()),
                Some("host") => format!("host: {}", instance.host()),
                Some("is_managed") => "is_managed: true".to_string(),
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    /// The device configuration, in memory.
    pub fn config(&self) -> DeviceConfig {
        self.config_at(Instance::Default)
    }

    /// [`config`](Self::config) for `instance`.
    pub fn config_at(&self, instance: Instance) -> DeviceConfig {
        let path = self.dir().join("device.yml");
        let config = DeviceConfig::from_yaml_str(&self.device_yml_at(instance), &path)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.key_type, self.key_type, "{}", path.display());
        config
    }

    /// The fixture's private key, loaded as px wrote it.
    pub fn signer(&self) -> PemSigner {
        load_pem_signer(self.dir().join("private.pem"), self.key_type)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A client for this device, talking to the interop provider.
    pub fn client(&self) -> OnesIdClient {
        self.client_at(Instance::Default)
    }

    /// A client for this device, talking to `instance`.
    pub fn client_at(&self, instance: Instance) -> OnesIdClient {
        let identity =
            DeviceIdentity::from_parts(self.config_at(instance), Arc::new(self.signer()));
        OnesIdClient::new(identity, http()).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The default HTTP client (plain http is allowed on loopback).
pub fn http() -> Arc<dyn HttpClient> {
    Arc::new(ReqwestClient::new().expect("HTTP client"))
}

/// The claims of a JWT, decoded without verifying it (for assertions only).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {} parts", jwt.split('.').count()));
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}

/// The protected header of a JWT, decoded without verifying it.
pub fn jwt_header(jwt: &str) -> serde_json::Value {
    let header = jwt.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .expect("JWT header is base64url");
    serde_json::from_slice(&bytes).expect("JWT header is JSON")
}

/// The user's phone, played by the provider's test-only control route
/// (its associated functions act at the default instance, its methods at
/// the one [`Instance::phone`] names).
#[derive(Debug, Clone, Copy)]
pub struct Phone {
    instance: Instance,
}

impl Phone {
    /// Approves the CIBA request `auth_req_id`.
    pub async fn approve(auth_req_id: &str) {
        Instance::Default.phone().approves(auth_req_id).await;
    }

    /// Denies the CIBA request `auth_req_id`.
    pub async fn deny(auth_req_id: &str) {
        Self::act(
            Instance::Default,
            "deny",
            serde_json::json!({ "auth_req_id": auth_req_id }),
        )
        .await;
    }

    /// Approves the CIBA request `auth_req_id` at this phone's instance.
    pub async fn approves(&self, auth_req_id: &str) {
        let body = serde_json::json!({ "auth_req_id": auth_req_id });
        Self::act(self.instance, "approve", body).await;
    }

    /// Approves the request `client_id` sent for `login_hint`, waiting up to
    /// 20 s for it to arrive (for the CLI, which does not print `auth_req_id`).
    ///
    /// Tests run concurrently: a (`login_hint`, `client_id`) pair answered
    /// this way must not be used by any other test.
    pub async fn approve_when_asked(login_hint: &str, client_id: &str) {
        Self::when_asked("approve", login_hint, client_id).await;
    }

    /// Denies the request `client_id` sent for `login_hint`, waiting for it.
    pub async fn deny_when_asked(login_hint: &str, client_id: &str) {
        Self::when_asked("deny", login_hint, client_id).await;
    }

    async fn when_asked(action: &str, login_hint: &str, client_id: &str) {
        let body = serde_json::json!({
            "login_hint": login_hint,
            "client_id": client_id,
            "wait_ms": 20_000,
        });
        Self::act(Instance::Default, action, body).await;
    }

    async fn act(instance: Instance, action: &str, body: serde_json::Value) {
        let url = format!("{}/ciba/{action}", required_env(instance.control_env()));
        let request =
            onesoidc_core::request::post_json(&url.as_str().into(), None, &body).expect("request");
        let response = http()
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(
            response.status().is_success(),
            "{url} {body}: HTTP {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body())
        );
    }
}

/// The `onesoidc` binary: `ONESOIDC_INTEROP_CLI`, else the one built beside
/// this test (`target/debug/onesoidc`).
pub fn cli_path() -> PathBuf {
    if let Ok(path) = std::env::var(CLI_ENV)
        && !path.is_empty()
    {
        return PathBuf::from(path);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|d| d.join("onesoidc")))
        .filter(|p| p.exists());
    beside.unwrap_or_else(|| {
        panic!("{CLI_ENV} is not set and no onesoidc binary was built; run `cargo xtask interop`")
    })
}

/// A device identity on disk for the CLI: `device.yml` registered with the
/// interop provider and a copy of the key (mode 0600), in a temporary directory.
pub struct CliIdentity {
    dir: tempfile::TempDir,
}

impl CliIdentity {
    /// Writes the identity of `key`.
    pub fn new(key: DeviceKey) -> Self {
        Self::at(key, Instance::Default)
    }

    /// Writes the identity of `key`, registered with `instance`.
    pub fn at(key: DeviceKey, instance: Instance) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let yml = key.device_yml_at(instance);
        std::fs::write(dir.path().join("device.yml"), yml).expect("device.yml");
        let key_path = dir.path().join("private.pem");
        std::fs::copy(key.dir().join("private.pem"), &key_path).expect("private.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
        CliIdentity { dir }
    }

    /// The identity's files (`device.yml` and the key in one directory,
    /// where a `dpop.pem` would go too).
    pub fn paths(&self) -> IdentityPaths {
        IdentityPaths::new(self.dir.path().join("device.yml"), self.dir.path())
    }

    /// `--config PATH --key-dir DIR` for this identity.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.dir.path().join("device.yml").display().to_string(),
            "--key-dir".into(),
            self.dir.path().display().to_string(),
        ]
    }
}
