//! Access tokens (RFC 9068 JWTs signed by the provider key, or opaque for
//! an application configured so), refresh tokens (opaque,
//! rotated on every use, reuse revokes the grant), ID tokens, introspection
//! and revocation (PROTOCOL §4–§7).

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::AccessTokenFormat;
use crate::error::{ApiError, code};
use crate::state::{Provider, Store, ceil_secs, random_token, unix_now};

/// `typ` of access tokens (RFC 9068).
const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Keep at most this many access token records before purging expired ones.
const PURGE_ABOVE: usize = 4096;

/// What tokens are issued for.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// `sub`: the client id for device tokens, the username for user tokens.
    pub sub: String,
    /// The client the tokens are issued to.
    pub client_id: String,
    pub scope: Option<String>,
    /// RFC 8707 resource: the access token's `aud` when given.
    pub resource: Option<String>,
    /// Groups the tokens of one user authentication (revoked together).
    pub grant_id: Option<String>,
    /// When the user authenticated (Unix seconds), for the ID token.
    pub auth_time: Option<i64>,
}

impl Grant {
    fn has_scope(&self, wanted: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split_whitespace().any(|s| s == wanted))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AccessRecord {
    pub sub: String,
    pub client_id: String,
    pub aud: String,
    pub scope: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub expires_at: Instant,
    pub revoked: bool,
    pub grant_id: Option<String>,
    /// The RFC 7638 thumbprint of the DPoP key the token is bound to.
    pub jkt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshState {
    Active,
    /// Exchanged for a new one; using it again is reuse.
    Rotated,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshRecord {
    /// The order it was issued in (1 = the first), as counted in
    /// [`Stats::refresh_token_uses`](crate::Stats::refresh_token_uses).
    pub serial: u64,
    pub grant: Grant,
    pub grant_id: String,
    pub iat: i64,
    pub exp: i64,
    pub expires_at: Instant,
    pub state: RefreshState,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The thumbprint of the DPoP key the access token is bound to (for
    /// the console; the answer says `token_type: DPoP`).
    #[serde(skip)]
    pub jkt: Option<String>,
}

#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    iat: i64,
    exp: i64,
    jti: &'a str,
    /// RFC 9449 §6.1: the DPoP key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

/// `cnf` (RFC 7800) of a DPoP-bound token: `{"jkt": thumbprint}`.
#[derive(Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
}

fn server_error(reason: String) -> ApiError {
    tracing::error!(%reason, "cannot issue a token");
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the provider could not sign a token",
    )
}

/// Every token of the grant stops working: readers check `revoked_grants`.
fn revoke_grant(store: &mut Store, grant_id: &str) {
    store.revoked_grants.insert(grant_id.to_string());
}

fn is_active(store: &Store, record: &AccessRecord) -> bool {
    !record.revoked
        && Instant::now() < record.expires_at
        && !record
            .grant_id
            .as_ref()
            .is_some_and(|g| store.revoked_grants.contains(g))
}

impl Provider {
    /// Issues an access token for `grant`, plus a refresh token when
    /// `with_refresh` and an ID token when `with_id_token`. With `jkt` (the
    /// thumbprint of a checked DPoP proof's key) the access token is bound
    /// to that key (`cnf.jkt`, `token_type: DPoP`); refresh tokens of
    /// confidential clients are never bound (as node oidc-provider does).
    pub fn issue_tokens(
        &self,
        grant: &Grant,
        with_refresh: bool,
        with_id_token: bool,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let config = &self.config;
        let iat = unix_now();
        let exp = iat.saturating_add_unsigned(ceil_secs(config.access_token_ttl));
        let jti = uuid::Uuid::new_v4().to_string();
        let aud = grant.resource.as_deref().unwrap_or(&grant.client_id);
        let claims = AccessClaims {
            iss: &self.issuer,
            sub: &grant.sub,
            aud,
            client_id: &grant.client_id,
            scope: grant.scope.as_deref(),
            iat,
            exp,
            jti: &jti,
            cnf: jkt.map(|jkt| Confirmation { jkt }),
        };
        let opaque = self.config.applications.iter().any(|app| {
            Some(app.url.as_str()) == grant.resource.as_deref()
                && app.access_token_format == AccessTokenFormat::Opaque
        });
        let key = self.key();
        let access_token = if opaque {
            random_token("at_")
        } else {
            key.sign(ACCESS_TOKEN_TYP, &claims).map_err(server_error)?
        };
        let id_token = if with_id_token {
            let claims = IdClaims {
                iss: &self.issuer,
                sub: &grant.sub,
                aud: &grant.client_id,
                exp: iat.saturating_add_unsigned(ceil_secs(config.id_token_ttl)),
                iat,
                auth_time: grant.auth_time.unwrap_or(iat),
            };
            Some(key.sign("JWT", &claims).map_err(server_error)?)
        } else {
            None
        };
        let now = Instant::now();
        let record = AccessRecord {
            sub: grant.sub.clone(),
            client_id: grant.client_id.clone(),
            aud: aud.to_string(),
            scope: grant.scope.clone(),
            iat,
            exp,
            jti,
            expires_at: now + config.access_token_ttl,
            revoked: false,
            grant_id: grant.grant_id.clone(),
            jkt: jkt.map(str::to_string),
        };
        {
            let mut store = self.lock();
            if store.access_tokens.len() > PURGE_ABOVE {
                store.access_tokens.retain(|_, r| now < r.expires_at);
                store.refresh_tokens.retain(|_, r| now < r.expires_at);
            }
            store.access_tokens.insert(access_token.clone(), record);
            if jkt.is_some() {
                store.stats.dpop_bound_tokens_issued += 1;
            }
        }
        let refresh_token = if with_refresh {
            Some(self.issue_refresh_token(grant))
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: ceil_secs(config.access_token_ttl),
            refresh_token,
            id_token,
            scope: grant.scope.clone(),
            jkt: jkt.map(str::to_string),
        })
    }

    /// The refresh_token grant with rotation (PROTOCOL §6). Using a rotated
    /// refresh token again revokes every token of its grant. The new access
    /// token is bound to `jkt` when given (the refresh token is not bound:
    /// a confidential client may refresh with another key, or none).
    pub fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
        scope: Option<&str>,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let grant = {
            let mut store = self.lock();
            let Some(record) = store.refresh_tokens.get(refresh_token) else {
                return Err(ApiError::invalid_grant("unknown refresh token"));
            };
            // Refused before it counts as a use: the token stays unspent.
            self.check_dpop_required(record.grant.resource.as_deref(), jkt.is_some())?;
            let serial = record.serial;
            *store.stats.refresh_token_uses.entry(serial).or_default() += 1;
            let record = &store.refresh_tokens[refresh_token];
            if record.grant.client_id != client_id {
                return Err(ApiError::invalid_grant(
                    "the refresh token was issued to another client",
                ));
            }
            let grant_id = record.grant_id.clone();
            if store.revoked_grants.contains(&grant_id) {
                return Err(ApiError::invalid_grant("the refresh token was revoked"));
            }
            if record.state == RefreshState::Rotated {
                revoke_grant(&mut store, &grant_id);
                return Err(ApiError::invalid_grant(
                    "the refresh token was already used; every token of its grant is now revoked",
                ));
            }
            if Instant::now() >= record.expires_at {
                return Err(ApiError::invalid_grant("the refresh token has expired"));
            }
            let mut grant = record.grant.clone();
            grant.grant_id = Some(grant_id);
            if let Some(requested) = scope {
                let granted: HashSet<&str> = grant
                    .scope
                    .as_deref()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect();
                if let Some(extra) = requested.split_whitespace().find(|s| !granted.contains(s)) {
                    return Err(ApiError::bad_request(
                        code::INVALID_SCOPE,
                        format!("scope {extra:?} was not granted to this refresh token"),
                    ));
                }
            }
            if let Some(record) = store.refresh_tokens.get_mut(refresh_token) {
                record.state = RefreshState::Rotated;
            }
            grant
        };
        // The access token gets the requested (narrowed) scope; the new
        // refresh token keeps the scope of the old one (RFC 6749 §6).
        let access_grant = Grant {
            scope: scope.map(str::to_string).or_else(|| grant.scope.clone()),
            ..grant.clone()
        };
        // A new ID token when the grant asked for `openid`, signed with the
        // key of the moment (OIDC Core §12.2), as the stock provider does.
        let mut response = self.issue_tokens(&access_grant, false, grant.wants_id_token(), jkt)?;
        response.refresh_token = Some(self.issue_refresh_token(&grant));
        Ok(response)
    }

    fn issue_refresh_token(&self, grant: &Grant) -> String {
        let iat = unix_now();
        let now = Instant::now();
        let token = random_token("rt_");
        let grant_id = grant
            .grant_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut store = self.lock();
        store.refresh_tokens_issued += 1;
        let serial = store.refresh_tokens_issued;
        store.refresh_tokens.insert(
            token.clone(),
            RefreshRecord {
                serial,
                grant: grant.clone(),
                grant_id,
                iat,
                exp: iat.saturating_add_unsigned(ceil_secs(self.config.refresh_token_ttl)),
                expires_at: now + self.config.refresh_token_ttl,
                state: RefreshState::Active,
            },
        );
        token
    }

    /// The record of an active access token.
    pub fn active_access_token(&self, token: &str) -> Option<AccessRecord> {
        let store = self.lock();
        let record = store.access_tokens.get(token)?;
        is_active(&store, record).then(|| record.clone())
    }

    /// The introspection answer for `token` (RFC 7662).
    pub fn introspect(&self, token: &str) -> Value {
        let store = self.lock();
        if let Some(record) = store.access_tokens.get(token) {
            if !is_active(&store, record) {
                return json!({"active": false});
            }
            let mut answer = json!({
                "active": true,
                "iss": self.issuer,
                "sub": record.sub,
                "client_id": record.client_id,
                "aud": record.aud,
                "exp": record.exp,
                "iat": record.iat,
                "jti": record.jti,
                "token_type": if record.jkt.is_some() { "DPoP" } else { "Bearer" },
            });
            if let Some(jkt) = &record.jkt {
                answer["cnf"] = json!({ "jkt": jkt });
            }
            if let Some(scope) = &record.scope {
                answer["scope"] = json!(scope);
            }
            return answer;
        }
        if let Some(record) = store.refresh_tokens.get(token) {
            let active = record.state == RefreshState::Active
                && Instant::now() < record.expires_at
                && !store.revoked_grants.contains(&record.grant_id);
            if !active {
                return json!({"active": false});
            }
            let mut answer = json!({
                "active": true,
                "iss": self.issuer,
                "sub": record.grant.sub,
                "client_id": record.grant.client_id,
                "exp": record.exp,
                "iat": record.iat,
                "token_type": "refresh_token",
            });
            if let Some(scope) = &record.grant.scope {
                answer["scope"] = json!(scope);
            }
            return answer;
        }
        json!({"active": false})
    }

    /// Revokes `token` if it was issued to `client_id` (RFC 7009: unknown
    /// tokens and other clients' tokens are silently ignored). Revoking a
    /// refresh token revokes its whole grant.
    pub fn revoke(&self, client_id: &str, token: &str) -> bool {
        let mut store = self.lock();
        if let Some(record) = store.access_tokens.get_mut(token) {
            if record.client_id == client_id {
                record.revoked = true;
                return true;
            }
            return false;
        }
        let grant_id = match store.refresh_tokens.get(token) {
            Some(record) if record.grant.client_id == client_id => record.grant_id.clone(),
            _ => return false,
        };
        revoke_grant(&mut store, &grant_id);
        true
    }
}

impl Grant {
    /// Whether the grant asked for `offline_access` (a refresh token).
    pub fn wants_refresh_token(&self) -> bool {
        self.has_scope("offline_access")
    }

    /// Whether the grant asked for `openid` (an ID token).
    pub fn wants_id_token(&self) -> bool {
        self.has_scope("openid")
    }
}
