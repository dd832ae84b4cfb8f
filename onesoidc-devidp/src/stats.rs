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

    /// How many times `auth_req_id` was polled.
    pub fn ciba_polls(&self, auth_req_id: &str) -> u64 {
        self.ciba_polls.get(auth_req_id).copied().unwrap_or(0)
    }
}
