//! CIBA: ask OnesID to authenticate a person on their phone (PROTOCOL §5).

use std::time::Duration;

use onesoidc_core::{
    BackchannelAuthResponse, CibaPollResponse, CibaPoller, CibaRequest, Error, ExposeSecret,
    IdTokenClaims, LoginHint, PollStep, TokenSet, parse_backchannel_response,
    parse_ciba_poll_response,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{EventStream, OnesIdClient};

/// What happens during a CIBA login, in order. The stream ends after
/// `Authenticated` or `Failed`.
#[derive(Debug)]
#[non_exhaustive]
pub enum CibaEvent {
    /// The provider accepted the request; the person's phone is being asked.
    Started {
        /// Identifies the request.
        auth_req_id: String,
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
    Failed(Error),
}

/// A person's finished login (CIBA or QR): their tokens and, when the
/// provider sent an ID token, its claims, already validated (signature
/// against the provider's keys, issuer, audience, expiry).
///
/// ```no_run
/// # async fn run(client: onesoidc_flows::OnesIdClient) -> Result<(), onesoidc_flows::Error> {
/// use onesoidc_flows::LoginOptions;
/// let login = client.ciba(&LoginOptions::default().request_for_username("alice")).await?;
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

/// Options of a person's login that do not depend on how the person is found.
///
/// ```
/// use onesoidc_flows::LoginOptions;
/// let options = LoginOptions::default().binding_message("Kiosk 7").resource("https://vhh.example.com");
/// let request = options.request_for_username("alice");
/// assert_eq!(request.binding_message.as_deref(), Some("Kiosk 7"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginOptions {
    /// Scopes; default `openid offline_access profile`. `openid` is added when missing.
    pub scope: Option<String>,
    /// Shown on the phone (at most 120 characters).
    pub binding_message: Option<String>,
    /// Target application URL (`resource`).
    pub resource: Option<String>,
    /// Requested lifetime of the request, in seconds.
    pub requested_expiry: Option<u64>,
    /// Requested ACR values.
    pub acr_values: Option<String>,
}

impl LoginOptions {
    /// Sets the scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets the binding message.
    pub fn binding_message(mut self, message: impl Into<String>) -> Self {
        self.binding_message = Some(message.into());
        self
    }

    /// Sets the target application URL.
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// The CIBA request for `hint` with these options.
    pub fn request(&self, hint: LoginHint) -> CibaRequest {
        let mut request = CibaRequest::new(hint);
        if let Some(scope) = &self.scope {
            request = request.scope(scope.clone());
        }
        request.binding_message = self.binding_message.clone();
        request.resource = self.resource.clone();
        request.requested_expiry = self.requested_expiry;
        request.acr_values = self.acr_values.clone();
        request
    }

    /// The CIBA request for a username.
    pub fn request_for_username(&self, username: &str) -> CibaRequest {
        self.request(LoginHint::Username(username.to_string()))
    }
}

impl OnesIdClient {
    /// Starts a CIBA login: sends the signed request object.
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
        let response = self.send(&endpoint, http_request).await?;
        let started = parse_backchannel_response(&endpoint, &response)?;
        tracing::info!(
            expires_in = started.expires_in.as_secs(),
            "CIBA request accepted; waiting for the user"
        );
        Ok(started)
    }

    /// Polls once (with a fresh assertion).
    pub async fn ciba_poll(&self, auth_req_id: &str) -> Result<CibaPollResponse, Error> {
        let endpoint = self.provider_metadata().await?.token_endpoint.clone();
        let request = {
            let (endpoint, auth_req_id) = (endpoint.clone(), auth_req_id.to_string());
            self.signed_request(move |auth, now| {
                auth.ciba_poll_request(&endpoint, &auth_req_id, now)
            })
            .await?
        };
        let response = self.send(&endpoint, request).await?;
        parse_ciba_poll_response(&endpoint, &response, self.now())
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
    /// use onesoidc_flows::{LoginOptions, OnesIdClient};
    /// # async fn run(client: OnesIdClient) -> Result<(), onesoidc_flows::Error> {
    /// let request = LoginOptions::default().binding_message("Kiosk 7").request_for_username("alice");
    /// let login = client.ciba(&request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn ciba(&self, request: &CibaRequest) -> Result<Login, Error> {
        let started = self.ciba_start(request).await?;
        self.ciba_wait(&started).await
    }

    /// The CIBA login as a stream of [`CibaEvent`]s (replacing the original's
    /// `CibaAuthSignals`). Dropping the stream cancels the login.
    pub fn ciba_events(&self, request: CibaRequest) -> EventStream<CibaEvent> {
        let client = self.clone();
        EventStream::spawn(move |events| async move {
            client.ciba_run(&request, &events).await;
        })
    }

    /// Runs a whole CIBA login, reporting every step on `events` (as
    /// itself, or wrapped, e.g. in [`QrEvent::Ciba`](crate::QrEvent::Ciba)).
    pub(crate) async fn ciba_run<T: From<CibaEvent>>(
        &self,
        request: &CibaRequest,
        events: &mpsc::Sender<T>,
    ) {
        let last = match self.ciba_start(request).await {
            Ok(started) => {
                let event = CibaEvent::Started {
                    auth_req_id: started.auth_req_id.clone(),
                    expires_in: started.expires_in,
                    binding_message: request.binding_message.clone(),
                };
                if events.send(event.into()).await.is_err() {
                    return;
                }
                match self.ciba_wait_reporting(&started, Some(events)).await {
                    Ok(login) => CibaEvent::Authenticated(login),
                    Err(error) => CibaEvent::Failed(error),
                }
            }
            Err(error) => CibaEvent::Failed(error),
        };
        let _ = events.send(last.into()).await;
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
                // A closed receiver means the stream was dropped, which aborts this task.
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

    /// Validates the ID token of `tokens`, when there is one.
    async fn check_id_token(&self, tokens: &TokenSet) -> Result<Option<IdTokenClaims>, Error> {
        match &tokens.id_token {
            Some(id_token) => Ok(Some(
                self.validate_id_token(id_token.expose_secret()).await?,
            )),
            None => Ok(None),
        }
    }
}
