//! DPoP (RFC 9449) at the token endpoint: the proof check (with
//! [`onesoidc_core::verify_dpop_proof`] and a `jti` replay cache), the
//! server nonces of `--dpop-nonce` (§8) and the `require_dpop` policies.
//! Tokens issued with a valid proof are bound to its key (`cnf.jkt`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use onesoidc_core::{
    DPOP_IAT_WINDOW, DpopNonceWindows, DpopProof, DpopProofError, DpopProofExpectations,
    verify_dpop_proof,
};
use tokio::time::Instant;
use url::Url;

use crate::error::{ApiError, code};
use crate::state::{JtiUse, Provider};

/// The `DPoP` request header (a proof) and, with nonces, the `DPoP-Nonce`
/// response header.
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header (RFC 9449 §8).
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// How long a server nonce stays current; the one before it is still
/// accepted, so a nonce lives between one and two windows.
pub(crate) const DPOP_NONCE_WINDOW: Duration = Duration::from_secs(60);

/// Server nonces: HMAC-SHA256 of a per-process secret and the number of
/// the current time window (tokio's clock, so tests can pause it), plus
/// the rotations forced by `POST /control/dpop/nonce/rotate`.
pub(crate) struct DpopNonces {
    windows: DpopNonceWindows,
    started: Instant,
    forced_rotations: AtomicU64,
}

impl DpopNonces {
    pub fn new() -> Result<Self, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let secret = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "cannot generate the DPoP nonce secret".to_string())?;
        Ok(DpopNonces {
            windows: DpopNonceWindows::new(secret, b""),
            started: Instant::now(),
            forced_rotations: AtomicU64::new(0),
        })
    }

    fn window(&self) -> u64 {
        let elapsed = self.started.elapsed().as_secs() / DPOP_NONCE_WINDOW.as_secs();
        elapsed + self.forced_rotations.load(Ordering::Relaxed)
    }

    /// The nonce to hand out now.
    pub fn current(&self) -> String {
        self.windows.nonce(self.window())
    }

    /// Starts a new window now; the nonce of the one before stays accepted.
    pub fn rotate(&self) -> String {
        self.forced_rotations.fetch_add(1, Ordering::Relaxed);
        self.current()
    }

    /// The nonces accepted now: the current one and the previous one.
    fn accepted(&self) -> [String; 2] {
        let window = self.window();
        [
            self.windows.nonce(window),
            self.windows.nonce(window.saturating_sub(1)),
        ]
    }
}

/// The request's one `DPoP` header, if any; two or more are refused.
fn single_proof(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut proofs = headers.get_all(DPOP).iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(
            "the request has more than one `DPoP` header; send exactly one proof (RFC 9449 §4.3)",
        );
    }
    proof
        .to_str()
        .map(Some)
        .map_err(|_| "the `DPoP` header is not a JWT (non-ASCII bytes)")
}

/// 400 `invalid_dpop_proof` (RFC 9449 §5).
pub(crate) fn invalid_proof(description: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::bad_request(code::INVALID_DPOP_PROOF, description)
}

impl Provider {
    /// Checks the `DPoP` header of a token request (RFC 9449 §4.3, §5):
    /// `None` without one, else the thumbprint of the proof's key, which
    /// the tokens issued are bound to. Called after client authentication
    /// and before any grant is looked at, so a proof refused (or answered
    /// `use_dpop_nonce`) never spends a refresh token or counts as a poll.
    pub fn token_request_binding(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some(proof) = single_proof(headers).map_err(invalid_proof)? else {
            return Ok(None);
        };
        let url = Url::parse(&self.token_endpoint).map_err(|e| {
            invalid_proof(format!(
                "the token endpoint's URL {} cannot be parsed: {e}",
                self.token_endpoint
            ))
        })?;
        let now = SystemTime::now();
        let expect = DpopProofExpectations::new("POST", &url);
        let checked = if self.config.dpop_nonce {
            let [current, previous] = self.dpop_nonces.accepted();
            match verify_dpop_proof(proof, &expect.clone().nonce(&current), now) {
                Err(DpopProofError::WrongNonce) => {
                    verify_dpop_proof(proof, &expect.nonce(&previous), now)
                }
                other => other,
            }
        } else {
            verify_dpop_proof(proof, &expect, now)
        };
        let checked = checked.map_err(|e| match e {
            DpopProofError::MissingNonce | DpopProofError::WrongNonce => {
                self.lock().stats.dpop_nonce_challenges += 1;
                let why = if e == DpopProofError::MissingNonce {
                    "the DPoP proof has no `nonce`; this provider requires the one in the `DPoP-Nonce` header"
                } else {
                    "the DPoP proof's `nonce` is stale or unknown; use the one in the `DPoP-Nonce` header"
                };
                ApiError::bad_request(code::USE_DPOP_NONCE, why)
            }
            other => invalid_proof(other.to_string()),
        })?;
        self.remember_proof(&checked).map_err(invalid_proof)?;
        Ok(Some(checked.key_thumbprint))
    }

    /// Checks the proof that must come with the DPoP-bound access `token`
    /// (bound to `jkt`) at one of the provider's own bearer-token routes
    /// (RFC 9449 §7): `htm`/`htu` of this request, `ath` of the token, the
    /// key of `cnf.jkt`, a fresh `jti`. No server nonce is asked for here.
    pub fn check_resource_proof(
        &self,
        request: &Parts,
        token: &str,
        jkt: &str,
    ) -> Result<(), ApiError> {
        let refuse = |why: String| ApiError::dpop_unauthorized(code::INVALID_DPOP_PROOF, why);
        let proof = single_proof(&request.headers)
            .map_err(|why| refuse(why.to_string()))?
            .ok_or_else(|| {
                ApiError::dpop_unauthorized(
                    code::INVALID_TOKEN,
                    "`Authorization: DPoP` needs a `DPoP` proof header signed by the token's key",
                )
            })?;
        let public = format!("{}{}", self.host, request.uri.path());
        let url = Url::parse(&public)
            .map_err(|e| refuse(format!("the request URL {public} cannot be parsed: {e}")))?;
        let expect =
            DpopProofExpectations::new(request.method.as_str(), &url).access_token(token, jkt);
        let checked = verify_dpop_proof(proof, &expect, SystemTime::now())
            .map_err(|e| refuse(e.to_string()))?;
        self.remember_proof(&checked).map_err(refuse)
    }

    /// Records a checked proof's `jti` (per key) until its `iat` is out of
    /// the window anyway; a replay is refused.
    fn remember_proof(&self, checked: &DpopProof) -> Result<(), String> {
        let forget_at = i64::try_from(checked.iat.saturating_add(2 * DPOP_IAT_WINDOW.as_secs()))
            .unwrap_or(i64::MAX);
        let fresh = self.lock().remember_jti(
            &checked.key_thumbprint,
            JtiUse::DpopProof,
            &checked.jti,
            forget_at,
            crate::state::unix_now(),
        );
        if fresh {
            Ok(())
        } else {
            Err(format!(
                "the DPoP proof's `jti` {:?} was already used (replay); make a new proof per request",
                checked.jti
            ))
        }
    }

    /// Refuses a token request without a proof when DPoP is required:
    /// provider-wide (`require_dpop`) or by the application whose `url` is
    /// the tokens' `resource`.
    pub fn check_dpop_required(&self, resource: Option<&str>, bound: bool) -> Result<(), ApiError> {
        if bound {
            return Ok(());
        }
        if self.config.require_dpop {
            return Err(invalid_proof(
                "this provider requires DPoP (require_dpop): send a `DPoP` proof header with the token request",
            ));
        }
        let app = self
            .config
            .applications
            .iter()
            .find(|app| app.require_dpop && Some(app.url.as_str()) == resource);
        match app {
            Some(app) => Err(invalid_proof(format!(
                "the application {:?} ({}) requires DPoP-bound access tokens: send a `DPoP` proof header with the token request",
                app.client_identifier, app.url
            ))),
            None => Ok(()),
        }
    }

    /// The `DPoP-Nonce` every token endpoint answer carries, when nonces are required.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.config.dpop_nonce.then(|| self.dpop_nonces.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nonces_rotate_with_the_clock_and_on_demand() {
        let nonces = DpopNonces::new().unwrap();
        let first = nonces.current();
        assert_eq!(nonces.current(), first, "stable within a window");
        tokio::time::advance(DPOP_NONCE_WINDOW).await;
        let second = nonces.current();
        assert_ne!(second, first);
        assert_eq!(nonces.accepted(), [second.clone(), first.clone()]);
        let third = nonces.rotate();
        assert_ne!(third, second);
        assert!(!nonces.accepted().contains(&first), "two windows old");
    }
}
