//! DPoP on the device (RFC 9449): which key signs the proofs, and the
//! client's proofs and `Authorization` headers. The token requests that
//! carry a proof are in [`client`](crate::client).

use std::path::Path;

use onesoidc_core::{
    Authorization, DpopKey, Error, KeyError, KeyType, PemSigner, ProviderMetadata, SecretString,
    TokenSet,
};
use onesoidc_fs::{NewFile, create_new_atomically};
use url::Url;

use crate::{DeviceIdentity, OnesIdClient, load_pem_signer};

/// Which key signs an [`OnesIdClient`]'s DPoP proofs; see
/// [`OnesIdClientBuilder::dpop`](crate::OnesIdClientBuilder::dpop).
#[derive(Clone, Debug)]
pub(crate) enum DpopSetting {
    /// The device key if the provider accepts its algorithm, else `dpop.pem`.
    Choose,
    /// This key.
    Key(Box<DpopKey>),
}

/// Picks the key for DPoP proofs (docs/ARCHITECTURE.md, "DPoP keys"): the
/// device's own key when the provider's `dpop_signing_alg_values_supported`
/// lists its algorithm and its public JWK is known; otherwise the P-256
/// key at `key_file` (`dpop.pem` beside the identity), created on first
/// use, or without a file one kept in memory. Says which and why once
/// (info; a key only in memory is a warning).
pub(crate) fn choose_dpop_key(
    identity: &DeviceIdentity,
    metadata: &ProviderMetadata,
    key_file: Option<&Path>,
) -> Result<DpopKey, Error> {
    let algorithm = identity.signer.algorithm();
    let accepted = &metadata.dpop_signing_alg_values_supported;
    let reason = if accepted.is_empty() {
        "the provider does not list dpop_signing_alg_values_supported".to_string()
    } else if !accepted.iter().any(|a| a == algorithm.as_str()) {
        format!(
            "the provider's dpop_signing_alg_values_supported ({}) does not include the device key's {algorithm}",
            accepted.join(", ")
        )
    } else {
        match &identity.public_jwk {
            None => "the device key's public JWK is not known (no public_jwk.json)".to_string(),
            Some(jwk) => match DpopKey::new(identity.signer.clone(), jwk.clone()) {
                Ok(key) => {
                    tracing::info!(
                        thumbprint = key.thumbprint(),
                        %algorithm,
                        "DPoP proofs are signed with the device key: the provider accepts {algorithm}, so every process sharing the identity shares the binding"
                    );
                    return Ok(key);
                }
                Err(e) => format!("the device key cannot sign DPoP proofs ({e})"),
            },
        }
    };
    let key = match key_file {
        Some(path) => {
            let key = load_or_create_dpop_key(path)?;
            tracing::info!(
                thumbprint = key.thumbprint(),
                path = %path.display(),
                "DPoP proofs are signed with the P-256 key in {}: {reason}",
                path.display()
            );
            key
        }
        None => {
            let key = DpopKey::generate()?;
            tracing::warn!(
                thumbprint = key.thumbprint(),
                "DPoP proofs are signed with a P-256 key held only in memory ({reason}, and the identity's key directory is not known): tokens bound to it are of no use to another process or after a restart; build the client with identity_paths to keep it as dpop.pem"
            );
            key
        }
    };
    Ok(key)
}

/// The P-256 key in `path`, made and written (0600, all or nothing) if
/// there is none. Two processes starting at once end up with the same key:
/// the file is created only if missing, and whoever loses reads the winner's.
pub(crate) fn load_or_create_dpop_key(path: &Path) -> Result<DpopKey, Error> {
    if !path.exists() {
        let signer = PemSigner::generate(KeyType::EccP256)?;
        let pem = signer.private_key_pem()?;
        let created = create_new_atomically(NewFile::new(path, pem.as_bytes(), 0o600))
            .map_err(|e| KeyError::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "cannot create the DPoP key: {e}; create it once where the directory is writable (`onesoidc register` makes it; so does any `onesoidc dpop-proof` run as the key's owner) and hand it to a sandboxed service with the identity (the packaged unit's comments say how), or give the client a DPoP key"
                ),
            })?;
        if created {
            tracing::info!(path = %path.display(), "created the DPoP key {}", path.display());
            return Ok(DpopKey::from_pem_signer(signer)?);
        }
    }
    let signer = load_pem_signer(path, KeyType::EccP256)?;
    Ok(DpopKey::from_pem_signer(signer)?)
}

impl OnesIdClient {
    /// The key this client signs DPoP proofs with, or `None` when DPoP is
    /// off. Chosen on first use (it needs the provider's metadata), then
    /// kept; see [`OnesIdClientBuilder::dpop`](crate::OnesIdClientBuilder::dpop).
    pub async fn dpop_key(&self) -> Result<Option<&DpopKey>, Error> {
        let Some(setting) = &self.inner.dpop else {
            return Ok(None);
        };
        let key = self
            .inner
            .dpop_key
            .get_or_try_init(|| async {
                match setting {
                    DpopSetting::Key(key) => Ok(DpopKey::clone(key)),
                    DpopSetting::Choose => {
                        let metadata = self.provider_metadata().await?;
                        let key_file = self.inner.paths.as_ref().map(|p| p.dpop_key());
                        let identity = self.inner.identity.clone();
                        let metadata = metadata.clone();
                        tokio::task::spawn_blocking(move || {
                            choose_dpop_key(&identity, &metadata, key_file.as_deref())
                        })
                        .await
                        .unwrap_or_else(|join_error| Err(signer_gone(join_error)))
                    }
                }
            })
            .await?;
        Ok(Some(key))
    }

    /// Whether DPoP is on ([`OnesIdClientBuilder::dpop`](crate::OnesIdClientBuilder::dpop)).
    pub fn dpop_enabled(&self) -> bool {
        self.inner.dpop.is_some()
    }

    /// The latest `DPoP-Nonce` of each server this client heard from.
    pub fn dpop_nonces(&self) -> &onesoidc_core::DpopNonces {
        &self.inner.dpop_nonces
    }

    /// The headers for a `method` request to `url` with `tokens`' access
    /// token: `Authorization: Bearer …` for a bearer token; for a
    /// DPoP-bound one `Authorization: DPoP …` and a `DPoP` proof (with
    /// `ath`, and the nonce `url`'s server gave last) signed by this
    /// client's DPoP key. Callers never branch on the kind of token.
    ///
    /// A bound token this client holds no key for (DPoP off, or another
    /// key) is [`Error::InvalidRequest`] naming both thumbprints.
    ///
    /// ```no_run
    /// # async fn run(client: onesoidc_flows::OnesIdClient, tokens: onesoidc_flows::TokenSet) -> Result<(), onesoidc_flows::Error> {
    /// use onesoidc_flows::core::ExposeSecret;
    /// let url = url::Url::parse("https://app.example/api/me").unwrap();
    /// let headers = client.authorize(&tokens, "GET", &url).await?;
    /// let mut request = reqwest::Client::new().get(url.as_str())
    ///     .header("authorization", headers.authorization().expose_secret());
    /// if let Some(proof) = headers.dpop() {
    ///     request = request.header("dpop", proof);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn authorize(
        &self,
        tokens: &TokenSet,
        method: &str,
        url: &Url,
    ) -> Result<Authorization, Error> {
        if !tokens.is_dpop_bound() {
            return Ok(Authorization::bearer(&tokens.access_token));
        }
        let key = self.dpop_key().await?.cloned();
        let nonce = self.inner.dpop_nonces.get(url);
        let blocks = key.as_ref().is_some_and(|k| k.signer().blocks());
        if !blocks {
            return Authorization::for_tokens(
                tokens,
                key.as_ref(),
                method,
                url,
                nonce.as_deref(),
                self.now(),
            );
        }
        let (tokens, method, url, clock) = (
            tokens.clone(),
            method.to_string(),
            url.clone(),
            self.inner.clock.clone(),
        );
        tokio::task::spawn_blocking(move || {
            Authorization::for_tokens(
                &tokens,
                key.as_ref(),
                &method,
                &url,
                nonce.as_deref(),
                clock(),
            )
        })
        .await
        .unwrap_or_else(|join_error| Err(signer_gone(join_error)))
    }

    /// Sends `request` with `tokens`' access token: the headers of
    /// [`authorize`](Self::authorize) (`Bearer`, or `DPoP` with a proof)
    /// set on it. For a bound token, an application's `401` with
    /// `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a `DPoP-Nonce`
    /// (RFC 9449 §9) is retried once with a proof carrying that nonce, and
    /// every answer's nonce is kept for that origin; a request whose body
    /// cannot be cloned (a stream) is not retried. Any other answer is
    /// returned as it is, errors included: check its status.
    ///
    /// ```no_run
    /// # async fn run(client: onesoidc_flows::OnesIdClient, tokens: onesoidc_flows::TokenSet) -> Result<(), onesoidc_flows::Error> {
    /// let http = reqwest::Client::new();
    /// let answer = client
    ///     .send_authorized(&tokens, http.get("https://vhh.example.com/api/me"))
    ///     .await?;
    /// println!("{}", answer.status());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "reqwest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub async fn send_authorized(
        &self,
        tokens: &TokenSet,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let (http, request) = request.build_split();
        let request = request.map_err(|e| Error::InvalidRequest {
            endpoint: e
                .url()
                .map_or_else(|| "the request".into(), onesoidc_core::dpop_htu),
            reason: e.without_url().to_string(),
        })?;
        let retry = tokens
            .is_dpop_bound()
            .then(|| request.try_clone())
            .flatten();
        let answer = self.send_authorized_once(&http, tokens, request).await?;
        let challenged = tokens.is_dpop_bound()
            && onesoidc_core::dpop_nonce_challenge_in(answer.status(), answer.headers(), &[])
                .is_some();
        match retry {
            Some(retry) if challenged => {
                tracing::debug!(url = %onesoidc_core::dpop_htu(retry.url()), "the application asks for a DPoP nonce; retrying once with it");
                self.send_authorized_once(&http, tokens, retry).await
            }
            _ => Ok(answer),
        }
    }

    #[cfg(feature = "reqwest")]
    async fn send_authorized_once(
        &self,
        http: &reqwest::Client,
        tokens: &TokenSet,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, Error> {
        let url = request.url().clone();
        let headers = self
            .authorize(tokens, request.method().as_str(), &url)
            .await?;
        headers.apply(request.headers_mut())?;
        let answer = http.execute(request).await.map_err(|e| Error::Transport {
            endpoint: onesoidc_core::dpop_htu(&url),
            source: onesoidc_core::TransportError::new(
                if e.is_timeout() {
                    onesoidc_core::TransportErrorKind::Timeout
                } else {
                    onesoidc_core::TransportErrorKind::Connect
                },
                // Without the URL: its query may carry a value.
                e.without_url().to_string(),
            ),
        })?;
        if tokens.is_dpop_bound() {
            self.inner.dpop_nonces.remember_in(&url, answer.headers());
        }
        Ok(answer)
    }

    /// A DPoP proof from `key` for a `method` request to `url` (with `ath`
    /// of `access_token` and `nonce` when given), on the blocking pool when
    /// the key's signer blocks (a TPM through a program).
    pub(crate) async fn dpop_proof(
        &self,
        key: &DpopKey,
        method: &'static str,
        url: &Url,
        access_token: Option<&SecretString>,
        nonce: Option<&str>,
    ) -> Result<String, Error> {
        use onesoidc_core::ExposeSecret;
        if !key.signer().blocks() {
            let token = access_token.map(|t| t.expose_secret());
            return Ok(key.proof(method, url, token, nonce, self.now())?);
        }
        let (key, url, token, nonce, clock) = (
            key.clone(),
            url.clone(),
            access_token.cloned(),
            nonce.map(str::to_string),
            self.inner.clock.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let token = token.as_ref().map(|t| t.expose_secret());
            Ok(key.proof(method, &url, token, nonce.as_deref(), clock())?)
        })
        .await
        .unwrap_or_else(|join_error| Err(signer_gone(join_error)))
    }
}

/// The error for a signing task that panicked or was cancelled.
pub(crate) fn signer_gone(join_error: tokio::task::JoinError) -> Error {
    Error::Sign(onesoidc_core::SignError::Command {
        command: "the device key's signer".into(),
        reason: if join_error.is_panic() {
            "it panicked".into()
        } else {
            "it was cancelled".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use onesoidc_core::{DeviceConfig, Issuer};
    use std::sync::Arc;

    fn identity(key_type: KeyType) -> DeviceIdentity {
        let yaml = format!(
            "id: dev-1\nclient_id: client-1\nhost: https://idp.example\nkey_type: {key_type}\nkey_security: default\n"
        );
        let config = DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).unwrap();
        let signer = PemSigner::generate(key_type).unwrap();
        let jwk = signer.public_jwk();
        let mut identity = DeviceIdentity::from_parts(config, Arc::new(signer));
        identity.public_jwk = Some(jwk);
        identity
    }

    fn metadata(algs: &[&str]) -> ProviderMetadata {
        let mut metadata =
            ProviderMetadata::fallback(&Issuer::new("https://idp.example/oidc").unwrap());
        metadata.dpop_signing_alg_values_supported = algs.iter().map(|a| a.to_string()).collect();
        metadata
    }

    #[test]
    fn the_device_key_signs_when_the_provider_accepts_its_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dpop.pem");
        let identity = identity(KeyType::EccP384);
        let device_jkt = identity.public_jwk.as_ref().unwrap().thumbprint().unwrap();
        let key = choose_dpop_key(&identity, &metadata(&["ES256", "ES384"]), Some(&file)).unwrap();
        assert_eq!(key.thumbprint(), device_jkt);
        assert!(!file.exists(), "no dpop.pem when the device key signs");
    }

    #[test]
    fn otherwise_one_p256_key_is_kept_beside_the_identity_0600() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys/dpop.pem");
        let identity = identity(KeyType::Rsa2048);
        for algs in [&["ES256"][..], &[]] {
            let first = choose_dpop_key(&identity, &metadata(algs), Some(&file)).unwrap();
            let again = choose_dpop_key(&identity, &metadata(algs), Some(&file)).unwrap();
            assert_eq!(first.thumbprint(), again.thumbprint());
            assert_eq!(first.algorithm().as_str(), "ES256");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn processes_creating_the_key_at_once_end_up_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dpop.pem");
        let thumbprints: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        load_or_create_dpop_key(&file)
                            .unwrap()
                            .thumbprint()
                            .to_string()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            thumbprints.iter().all(|t| t == &thumbprints[0]),
            "{thumbprints:?}"
        );
    }
}
