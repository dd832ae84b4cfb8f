//! The token endpoint's recent activity, for the console: what each request
//! asked for, which client asked, and how it ended. Never a token, an
//! assertion or a key: only their kinds and lifetimes.

use std::collections::VecDeque;

/// How many token endpoint events the console keeps.
pub(crate) const KEPT_EVENTS: usize = 50;

/// Longest `error_description` or unknown `grant_type` kept, in characters.
const MAX_TEXT: usize = 160;

/// How one token endpoint request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenOutcome {
    /// Tokens were issued.
    Issued {
        /// `expires_in` of the access token, in seconds.
        expires_in: u64,
        /// A refresh token came with it.
        refresh_token: bool,
        /// An ID token came with it.
        id_token: bool,
        /// The access token is DPoP-bound: the start of its key's
        /// thumbprint (`cnf.jkt`), which is public.
        dpop_jkt: Option<String>,
    },
    /// An error response.
    Refused {
        /// The OAuth `error` code.
        error: &'static str,
        /// The `error_description`, shortened.
        description: String,
    },
}

impl TokenOutcome {
    /// The same result, but for the wording of an error's description
    /// (`slow_down` says how early each poll was).
    fn same_kind(&self, other: &TokenOutcome) -> bool {
        match (self, other) {
            (TokenOutcome::Refused { error: a, .. }, TokenOutcome::Refused { error: b, .. }) => {
                a == b
            }
            (a, b) => a == b,
        }
    }
}

/// One request to the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenEvent {
    /// When it (or, for a run of repeats, the last of them) arrived, Unix milliseconds.
    pub at_ms: u64,
    /// The `grant_type` as sent (shortened), or `None` when missing.
    pub grant_type: Option<String>,
    /// The `client_id` as sent (not necessarily authenticated).
    pub client_id: Option<String>,
    /// How it ended.
    pub outcome: TokenOutcome,
    /// How many identical requests in a row this event stands for.
    pub repeats: u32,
}

/// The last [`KEPT_EVENTS`] events, newest first; identical consecutive
/// events (a device polling `authorization_pending`) are one event with a
/// count.
#[derive(Debug, Default)]
pub(crate) struct TokenLog {
    events: VecDeque<TokenEvent>,
}

/// `text`, cut to [`MAX_TEXT`] characters.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The first characters of a DPoP key thumbprint, enough to tell keys apart on screen.
pub(crate) fn shorten_jkt(jkt: &str) -> String {
    match jkt.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &jkt[..end]),
        None => jkt.to_string(),
    }
}

impl TokenLog {
    /// Records an event (merging it into the newest one when it repeats it).
    pub fn push(&mut self, event: TokenEvent) {
        if let Some(newest) = self.events.front_mut()
            && newest.grant_type == event.grant_type
            && newest.client_id == event.client_id
            && newest.outcome.same_kind(&event.outcome)
        {
            newest.repeats = newest.repeats.saturating_add(1);
            newest.at_ms = event.at_ms;
            newest.outcome = event.outcome;
            return;
        }
        self.events.push_front(event);
        self.events.truncate(KEPT_EVENTS);
    }

    /// The events, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &TokenEvent> {
        self.events.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(client: &str, error: &'static str) -> TokenEvent {
        TokenEvent {
            at_ms: 1,
            grant_type: Some("urn:openid:params:grant-type:ciba".into()),
            client_id: Some(client.into()),
            outcome: TokenOutcome::Refused {
                error,
                description: String::new(),
            },
            repeats: 1,
        }
    }

    #[test]
    fn repeats_merge_and_the_log_keeps_fifty() {
        let mut log = TokenLog::default();
        log.push(refused("a", "authorization_pending"));
        log.push(refused("a", "authorization_pending"));
        log.push(refused("b", "authorization_pending"));
        let counts: Vec<u32> = log.iter().map(|e| e.repeats).collect();
        assert_eq!(counts, [1, 2]);
        for i in 0..100 {
            log.push(refused(&i.to_string(), "slow_down"));
        }
        assert_eq!(log.iter().count(), KEPT_EVENTS);
        assert_eq!(log.iter().next().unwrap().client_id.as_deref(), Some("99"));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT + 5);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), MAX_TEXT + 1);
        assert!(short.ends_with('…'));
        assert_eq!(shorten("short"), "short");
    }
}
