//! CIBA: ask OnesID to authenticate a person on their phone ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10)).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use onesoidc_core::{
    AuthReqId, BackchannelAuthResponse, CibaPollResponse, CibaPoller, CibaRequest, Error,
    ExposeSecret, IdTokenClaims, PollStep, TokenSet, parse_backchannel_response,
    parse_ciba_poll_response_for,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{EventStream, OnesIdClient};

/// What happens during a CIBA login, in order (the seed's
/// `CibaAuthSignals`). The stream ends after `Authenticated` or `Failed`,
/// exactly one of which comes last.
///
/// `Display` gives a line for a log or a UI, never a token:
///
/// ```
/// use std::time::Duration;
/// use onesoidc_flows::CibaEvent;
/// let event = CibaEvent::WaitingForAuthorization {
///     remaining: Duration::from_secs(90),
///     polls: 2,
///     next_poll_in: Duration::from_secs(5),
/// };
/// assert_eq!(event.to_string(), "waiting for the person to approve (90 s left, 2 polls, next in 5 s)");
/// ```
///
/// A `Failed` error says what went wrong; for a UI, ask it:
/// [`Error::is_denied`] (the person said no), [`Error::is_expired`] (nobody
/// answered in time), [`Error::is_network`] (try again later), otherwise a
/// configuration or provider problem its message names.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CibaEvent {
    /// The provider accepted the request; the person's phone is being asked.
    Started {
        /// Identifies the request.
        auth_req_id: AuthReqId,
        /// How long the person has to answer.
        expires_in: Duration,
        /// The binding message shown on the phone, if any.
        binding_message: Option<String>,
    },
    /// Still waiting for the person; the next poll is `next_poll_in` away.
    WaitingForAuthorization {
        /// Time left before the request expires.
        remaining: Duration,
        /// Polls sent so far.
        polls: u32,
        /// Wait before the next poll.
        next_poll_in: Duration,
    },
    /// The person approved; the ID token (if any) has been validated.
    Authenticated(Login),
    /// The login failed: denied, expired, or an error.
    Failed(Arc<Error>),
}

impl fmt::Display for CibaEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CibaEvent::Started {
                expires_in,
                binding_message,
                ..
            } => {
                write!(f, "asked the person to approve")?;
                if let Some(message) = binding_message {
                    write!(f, " \u{201c}{message}\u{201d}")?;
                }
                write!(f, " ({} s to answer)", expires_in.as_secs())
            }
            CibaEvent::WaitingForAuthorization {
                remaining,
                polls,
                next_poll_in,
            } => write!(
                f,
                "waiting for the person to approve ({} s left, {polls} polls, next in {} s)",
                remaining.as_secs(),
                next_poll_in.as_secs()
            ),
            CibaEvent::Authenticated(login) => write!(f, "{login}"),
            CibaEvent::Failed(error) => write!(f, "failed: {error}"),
        }
    }
}

/// A person's finished login (CIBA or QR): their tokens and, when the
/// provider sent an ID token, its claims, already validated (signature
/// against the provider's keys, issuer, audience, expiry). A login that
/// asked for `openid` always has them.
///
/// ```no_run
/// # async fn run(client: onesoidc_flows::OnesIdClient) -> Result<(), onesoidc_flows::Error> {
/// use onesoidc_flows::CibaRequest;
/// let login = client.ciba(&CibaRequest::for_username("alice")).await?;
/// if let Some(claims) = &login.claims {
///     println!("{} logged in", claims.sub);
/// }
/// let tokens = login.tokens; // e.g. for TokenManager::store
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Login {
    /// The tokens issued for the person.
    pub tokens: TokenSet,
    /// The validated ID token's claims; `None` when no ID token came.
    pub claims: Option<IdTokenClaims>,
}

impl Login {
    /// A login from its parts (e.g. to test code that handles
    /// [`CibaEvent::Authenticated`]).
    pub fn new(tokens: TokenSet, claims: Option<IdTokenClaims>) -> Self {
        Login { tokens, claims }
    }
}

/// `authenticated alice; the token expires at 2026-11-30T12:00:00Z`.
impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.claims {
            Some(claims) => write!(f, "authenticated {}", claims.sub)?,
            None => write!(f, "authenticated")?,
        }
        write!(f, "; the token expires {}", self.tokens.expiry())
    }
}

impl OnesIdClient {
    /// Starts a CIBA login: sends the signed request object. A request
    /// naming nobody, without `openid` or with too long a binding message is
    /// refused before anything is sent ([`Error::InvalidRequest`]).
    pub async fn ciba_start(
        &self,
        request: &CibaRequest,
    ) -> Result<BackchannelAuthResponse, Error> {
        let endpoint = self
            .provider_metadata()
            .await?
            .backchannel_authentication_endpoint
            .clone();
        let http_request = {
            let (endpoint, issuer, request) =
                (endpoint.clone(), self.issuer().clone(), request.clone());
            self.signed_request(move |auth, now| {
                auth.backchannel_request(&endpoint, &issuer, &request, now)
            })
            .await?
        };
        let started = self
            .exchange(&endpoint, http_request, |r| {
                parse_backchannel_response(&endpoint, r)
            })
            .await?;
        tracing::info!(
            expires_in = started.expires_in.as_secs(),
            "CIBA request accepted; waiting for the user"
        );
        Ok(started)
    }

    /// Polls once (with a fresh assertion).
    pub async fn ciba_poll(&self, auth_req_id: &AuthReqId) -> Result<CibaPollResponse, Error> {
        let endpoint = self.provider_metadata().await?.token_endpoint.clone();
        let build = {
            let (endpoint, auth_req_id) = (endpoint.clone(), auth_req_id.clone());
            move |auth: &onesoidc_core::ClientAuth, now| {
                auth.ciba_poll_request(&endpoint, &auth_req_id, now)
            }
        };
        self.token_request(&endpoint, build, |r, jkt| {
            parse_ciba_poll_response_for(&endpoint, r, self.now(), jkt)
        })
        .await
    }

    /// Polls until the person answers or the request expires: waits
    /// `interval` before the first poll and between polls, adds 5 s on
    /// `slow_down`, and validates the ID token. Cancel by dropping the future.
    pub async fn ciba_wait(&self, started: &BackchannelAuthResponse) -> Result<Login, Error> {
        self.ciba_wait_reporting(started, None::<&mpsc::Sender<CibaEvent>>)
            .await
    }

    /// Starts a CIBA login and waits for the result.
    ///
    /// ```no_run
    /// use onesoidc_flows::{CibaRequest, OnesIdClient};
    /// # async fn run(client: OnesIdClient) -> Result<(), onesoidc_flows::Error> {
    /// let request = CibaRequest::for_username("alice").binding_message("Kiosk 7");
    /// let login = client.ciba(&request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn ciba(&self, request: &CibaRequest) -> Result<Login, Error> {
        let started = self.ciba_start(request).await?;
        self.ciba_wait(&started).await
    }

    /// The CIBA login as a stream of [`CibaEvent`]s (replacing the original's
    /// `CibaAuthSignals`). Dropping the stream cancels the login.
    ///
    /// ```no_run
    /// use onesoidc_flows::{CibaEvent, CibaRequest, StreamExt};
    /// # async fn run(client: onesoidc_flows::OnesIdClient) {
    /// let mut events = client.ciba_events(CibaRequest::for_username("alice"));
    /// while let Some(event) = events.next().await {
    ///     println!("{event}");
    /// }
    /// # }
    /// ```
    pub fn ciba_events(&self, request: CibaRequest) -> EventStream<CibaEvent> {
        let client = self.clone();
        EventStream::spawn(move |events| async move {
            let last = client.ciba_run(&request, &events).await;
            let _ = events.send(last).await;
        })
    }

    /// Runs a whole CIBA login, reporting every step but the last on
    /// `events` (as itself, or wrapped as a QR event); returns the last.
    pub(crate) async fn ciba_run<T: From<CibaEvent>>(
        &self,
        request: &CibaRequest,
        events: &mpsc::Sender<T>,
    ) -> CibaEvent {
        let started = match self.ciba_start(request).await {
            Ok(started) => started,
            Err(error) => return CibaEvent::Failed(Arc::new(error)),
        };
        let event = CibaEvent::Started {
            auth_req_id: started.auth_req_id.clone(),
            expires_in: started.expires_in,
            binding_message: request.binding_message.clone(),
        };
        // A closed receiver means the stream was dropped, which aborts this task.
        let _ = events.send(event.into()).await;
        match self.ciba_wait_reporting(&started, Some(events)).await {
            Ok(login) => CibaEvent::Authenticated(login),
            Err(error) => CibaEvent::Failed(Arc::new(error)),
        }
    }

    async fn ciba_wait_reporting<T: From<CibaEvent>>(
        &self,
        started: &BackchannelAuthResponse,
        events: Option<&mpsc::Sender<T>>,
    ) -> Result<Login, Error> {
        let began = Instant::now();
        let mut poller = CibaPoller::new(started);
        let mut wait = poller.first_wait();
        loop {
            if let Some(events) = events {
                let event = CibaEvent::WaitingForAuthorization {
                    remaining: poller.remaining(began.elapsed()),
                    polls: poller.polls(),
                    next_poll_in: wait,
                };
                let _ = events.send(event.into()).await;
            }
            tokio::time::sleep(wait).await;
            let result = self.ciba_poll(&started.auth_req_id).await;
            match poller.on_response(result, began.elapsed()) {
                PollStep::Wait(next) => wait = next,
                PollStep::Done(tokens) => {
                    tracing::info!(polls = poller.polls(), "CIBA login approved");
                    let claims = self.check_id_token(&tokens).await?;
                    return Ok(Login { tokens, claims });
                }
                PollStep::Failed(error) => return Err(error),
            }
        }
    }

    /// Validates the ID token of a login's `tokens`. A login always asks
    /// for `openid` ([`CibaRequest`] adds it), so a missing ID token is an
    /// error ([`IdTokenError::Missing`](onesoidc_core::IdTokenError::Missing)).
    pub(crate) async fn check_id_token(
        &self,
        tokens: &TokenSet,
    ) -> Result<Option<IdTokenClaims>, Error> {
        match &tokens.id_token {
            Some(id_token) => Ok(Some(
                self.validate_id_token(id_token.expose_secret()).await?,
            )),
            None => Err(Error::IdToken {
                endpoint: self.provider_metadata().await?.token_endpoint.to_string(),
                source: onesoidc_core::IdTokenError::Missing,
            }),
        }
    }
}
