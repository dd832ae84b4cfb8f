//! The one place tokens are serialized: the record every store writes
//! (a file's content, a Redis value), with its generation, or a tombstone
//! without tokens; and reading it back with a reason for anything not
//! usable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onesoidc_core::{ExposeSecret, TokenSet};
use serde::{Deserialize, Serialize};

use super::owner::TokenOwner;
use super::{StoreKey, Stored};

/// `format` field of every record a store writes.
pub const FILE_FORMAT: &str = "onesoidc-tokens";
/// Current `version` of that format. Version 2 records the owner (issuer,
/// client id); version 1 records, which did not, are ignored. Since
/// `generation` (default 0) and tombstones (`tokens: null`), a record
/// without them is read as generation 0.
pub const FILE_FORMAT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Record {
    format: String,
    version: u32,
    name: String,
    owner: TokenOwner,
    /// Advanced by every login and logout; see [`TokenStore`](super::TokenStore).
    #[serde(default)]
    generation: u64,
    /// `None`: a tombstone (the tokens were removed).
    tokens: Option<StoredTokens>,
}

#[derive(Serialize, Deserialize)]
struct StoredTokens {
    access_token: String,
    token_type: String,
    /// Seconds since the Unix epoch (rounded down), like a JWT `exp`.
    expires_at: Option<u64>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
    /// The DPoP key's thumbprint for a bound token; absent (bearer) in
    /// records written before DPoP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
}

/// `tokens` of `generation` (`None`: a tombstone) as the bytes a store
/// keeps under `key`.
pub(super) fn encode(key: &StoreKey, tokens: Option<&TokenSet>, generation: u64) -> Vec<u8> {
    let record = Record {
        format: FILE_FORMAT.into(),
        version: FILE_FORMAT_VERSION,
        name: key.name().into(),
        owner: key.owner().clone(),
        generation,
        tokens: tokens.map(|tokens| StoredTokens {
            access_token: tokens.access_token.expose_secret().to_string(),
            token_type: tokens.token_type.clone(),
            expires_at: tokens.expires_at.map(unix_seconds),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            id_token: tokens
                .id_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            scope: tokens.scope.as_ref().map(|s| s.to_string()),
            dpop_jkt: tokens.dpop_jkt.clone(),
        }),
    };
    // Serializing plain strings and integers cannot fail.
    let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Seconds since the Unix epoch, rounded down (0 before it).
pub(super) fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// `expires_at` as compared by [`SaveMode::Refreshed`](super::SaveMode::Refreshed):
/// no expiry is the newest.
pub(crate) fn expiry_rank(tokens: &TokenSet) -> u64 {
    tokens.expires_at.map_or(u64::MAX, unix_seconds)
}

/// The record in `bytes` if it is a usable record for `key` (tokens or a
/// tombstone); otherwise why not, in words that never quote a value.
pub(super) fn decode(key: &StoreKey, bytes: &[u8]) -> Result<Stored, Ignored> {
    decode_record(key, bytes).map_err(|reason| Ignored {
        reason,
        other_dpop_key: false,
    })?
}

/// Why a record is not used, and whether only because its tokens are
/// bound to another DPoP key (expected where processes hold different
/// keys, so said at debug level, not as a warning).
pub(super) struct Ignored {
    pub(super) reason: String,
    pub(super) other_dpop_key: bool,
}

impl Ignored {
    /// Says why the record at `place` is ignored: at debug level for
    /// another DPoP key's tokens, else as a warning.
    pub(super) fn log(&self, place: &dyn std::fmt::Display, manager: &str) {
        let reason = &self.reason;
        if self.other_dpop_key {
            tracing::debug!(%place, manager, "not adopting stored tokens: {reason}");
        } else {
            tracing::warn!(%place, manager, "ignoring stored tokens: {reason}");
        }
    }
}

fn decode_record(key: &StoreKey, bytes: &[u8]) -> Result<Result<Stored, Ignored>, String> {
    let record: Record = serde_json::from_slice(bytes).map_err(|e| {
        // Not `{e}`: serde_json's message can quote a value, i.e. a token.
        format!(
            "not a token record ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if record.format != FILE_FORMAT {
        return Err(format!(
            "its format is {:?}, expected {FILE_FORMAT:?}",
            record.format
        ));
    }
    if record.version != FILE_FORMAT_VERSION {
        return Err(format!(
            "it is version {}, this build reads version {FILE_FORMAT_VERSION}",
            record.version
        ));
    }
    if record.name != key.name() {
        return Err(format!("it holds the tokens of manager {:?}", record.name));
    }
    let owner = key.owner();
    let same_but_key = TokenOwner {
        dpop_jkt: owner.dpop_jkt.clone(),
        ..record.owner.clone()
    } == *owner;
    if record.owner != *owner && same_but_key {
        return Ok(Err(Ignored {
            reason: format!(
                "they are bound to DPoP key {}, and this process's is {} (another key file, or the device key against dpop.pem)",
                record
                    .owner
                    .dpop_jkt
                    .as_deref()
                    .unwrap_or("none (bearer tokens)"),
                owner.dpop_jkt.as_deref().unwrap_or("none (DPoP off)"),
            ),
            other_dpop_key: true,
        }));
    }
    if &record.owner != key.owner() {
        return Err(format!(
            "it holds the tokens of {}, not of {} (a new device.yml?); they are not used",
            record.owner,
            key.owner()
        ));
    }
    let Some(tokens) = record.tokens else {
        return Ok(Ok(Stored::new(None, record.generation)));
    };
    if tokens.dpop_jkt != owner.dpop_jkt {
        return Err(format!(
            "the tokens' DPoP key {:?} is not their owner's {:?}",
            tokens.dpop_jkt, owner.dpop_jkt
        ));
    }
    if tokens.access_token.is_empty() {
        return Err("`access_token` is empty".into());
    }
    if tokens.token_type.is_empty() {
        return Err("`token_type` is empty".into());
    }
    let expires_at = match tokens.expires_at {
        None => None,
        Some(secs) => Some(
            UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .ok_or("`expires_at` is out of range")?,
        ),
    };
    let tokens = TokenSet {
        access_token: tokens.access_token.into(),
        token_type: tokens.token_type,
        expires_at,
        refresh_token: tokens
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(Into::into),
        id_token: tokens.id_token.filter(|t| !t.is_empty()).map(Into::into),
        scope: tokens.scope.map(onesoidc_core::Scope::new),
        dpop_jkt: tokens.dpop_jkt,
    };
    Ok(Ok(Stored::new(Some(tokens), record.generation)))
}
