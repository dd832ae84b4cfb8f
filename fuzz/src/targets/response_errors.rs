//! Errors about responses never carry a secret: a response of the token,
//! backchannel, introspection or revocation endpoint with a token planted
//! anywhere in its body (truncated or not, JSON or not, any status) gives
//! an error whose `Display` and `Debug` do not contain the token, unless
//! the provider put it in its own OAuth `error`/`error_description`.

use onesoidc_core::{
    Error, parse_backchannel_response, parse_ciba_poll_response, parse_introspection_response,
    parse_revocation_response, parse_token_response,
};

use crate::{now, response};

/// A secret the device holds, as a provider (or an echoing proxy) might
/// send it back.
pub const SECRET: &str = "tok_5e3c9f1a7b2d4c6e8f0a1b2c";

const TOKEN: &str = "https://idp.example.com/oidc/token";

/// One input: the first byte picks where in the body the secret goes; the
/// rest is the status and body as in [`response`].
pub fn run(data: &[u8]) {
    let Some((&at, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 2 {
        return;
    }
    let (status, body) = rest.split_at(2);
    let at = usize::from(at) % (body.len() + 1);
    let mut planted = status.to_vec();
    planted.extend_from_slice(&body[..at]);
    planted.extend_from_slice(SECRET.as_bytes());
    planted.extend_from_slice(&body[at..]);
    let response = response(&planted);
    let endpoint = TOKEN.into();
    let errors = [
        parse_token_response(&endpoint, &response, now()).err(),
        parse_ciba_poll_response(&endpoint, &response, now()).err(),
        parse_backchannel_response(&endpoint, &response).err(),
        parse_introspection_response(&endpoint, &response).err(),
        parse_revocation_response(&endpoint, &response).err(),
    ];
    for error in errors.into_iter().flatten() {
        if matches!(error, Error::OAuth { .. }) {
            continue;
        }
        let display = error.to_string();
        let debug = format!("{error:?}");
        assert!(!display.contains(SECRET), "Display quotes the body: {display}");
        assert!(!debug.contains(SECRET), "Debug quotes the body: {debug}");
    }
}
