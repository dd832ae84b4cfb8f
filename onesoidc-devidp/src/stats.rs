//! Counters tests and the demo can read ([`crate::DevIdp::stats`], `GET /control/stats`).

use std::collections::BTreeMap;

use serde::Serialize;

/// Token endpoint requests by `grant_type` (counted whether they succeed or not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenRequestStats {
    /// `client_credentials`.
    pub client_credentials: u64,
    /// `urn:openid:params:grant-type:ciba` (every poll).
    pub ciba: u64,
    /// `refresh_token`.
    pub refresh_token: u64,
    /// Any other or missing `grant_type`.
    pub other: u64,
}

/// What the provider has seen since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Token endpoint requests per grant type.
    pub token_requests: TokenRequestStats,
    /// CIBA polls per `auth_req_id` (only ids the provider issued).
    pub ciba_polls: BTreeMap<String, u64>,
    /// Requests to the backchannel authentication endpoint.
    pub backchannel_requests: u64,
    /// Requests to the introspection endpoint.
    pub introspection_requests: u64,
    /// Requests to the revocation endpoint.
    pub revocation_requests: u64,
    /// QR sessions created.
    pub qr_sessions_created: u64,
    /// Registration requests received.
    pub registration_requests: u64,
    /// Error responses by `error` code (including `authorization_pending` and `slow_down`).
    pub rejected: BTreeMap<String, u64>,
    /// How often each refresh token was presented to the token endpoint,
    /// by the order it was issued in (1 = the first; the token itself is
    /// never shown). A count above 1 is a reused refresh token.
    pub refresh_token_uses: BTreeMap<u64, u64>,
    /// Access tokens issued bound to a DPoP key (`cnf.jkt`, `token_type: DPoP`).
    pub dpop_bound_tokens_issued: u64,
    /// `use_dpop_nonce` answers from the token endpoint (a proof without
    /// the current nonce, when nonces are required).
    pub dpop_nonce_challenges: u64,
}

impl Stats {
    /// How many responses carried `error` = `code`.
    ///
    /// ```
    /// let stats = onesoidc_devidp::Stats::default();
    /// assert_eq!(stats.rejected("slow_down"), 0);
    /// ```
    pub fn rejected(&self, code: &str) -> u64 {
        self.rejected.get(code).copied().unwrap_or(0)
    }

    /// The most times any one refresh token was presented (0: none was).
    ///
    /// ```
    /// let mut stats = onesoidc_devidp::Stats::default();
    /// stats.refresh_token_uses.insert(1, 1);
    /// stats.refresh_token_uses.insert(2, 2);
    /// assert_eq!(stats.most_uses_of_a_refresh_token(), 2);
    /// ```
    pub fn most_uses_of_a_refresh_token(&self) -> u64 {
        self.refresh_token_uses.values().copied().max().unwrap_or(0)
    }

    /// How many times `auth_req_id` was polled.
    pub fn ciba_polls(&self, auth_req_id: &str) -> u64 {
        self.ciba_polls.get(auth_req_id).copied().unwrap_or(0)
    }
}
