//! No error about a response carries a secret, whatever the provider (or a
//! proxy in front of it) sends: every token-bearing response truncated at
//! every byte, non-conformant ones, and a proxy that echoes the request
//! form. Each error's `Display` and `Debug` are searched for every secret
//! (any 8 characters in a row of it).

use std::time::UNIX_EPOCH;

use onesoidc_core::{
    Endpoint, Error, parse_backchannel_response, parse_ciba_poll_response,
    parse_introspection_response, parse_qr_session, parse_qr_status, parse_registration_response,
    parse_registration_status, parse_revocation_response, parse_token_response,
};

const ACCESS: &str = "AcCeSs7hG2kLmN4pQrStUvWxYz0123456789";
const REFRESH: &str = "ReFrEsH9aB8cD7eF6gH5iJ4kL3mN2oP1qR0";
const ID_TOKEN: &str =
    "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";
const AUTH_REQ_ID: &str = "AuThReQ5sT6uV7wX8yZ9aB0cD1eF2gH3iJ4k";
const HINT: &str = "LoGiNhInT1a2B3c4D5e6F7g8H9i0JkLmNoPq";
const ASSERTION: &str =
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJjIn0.QXNzZXJ0aW9uU2lnbmF0dXJl";

const SECRETS: [&str; 6] = [ACCESS, REFRESH, ID_TOKEN, AUTH_REQ_ID, HINT, ASSERTION];

fn response(status: u16, content_type: &str, body: &[u8]) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.to_vec())
        .unwrap()
}

/// Fails naming the secret when `error`'s Display or Debug holds 8
/// characters in a row of any secret.
#[track_caller]
fn assert_secret_free(error: &Error, case: &str) {
    let text = format!("{error}\n{error:?}");
    for secret in SECRETS {
        for window in secret.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(
                !text.contains(window),
                "{case}: the error holds {window:?} of a secret:\n{text}"
            );
        }
    }
}

/// Every parser that reads a token-bearing body, at `status`.
fn parse_all(status: u16, content_type: &str, body: &[u8], case: &str) -> usize {
    let endpoint = Endpoint::from("https://idp.example.com/oidc/token");
    let r = response(status, content_type, body);
    let mut errors = 0;
    let mut check = |result: Result<(), Error>| {
        if let Err(error) = result {
            assert_secret_free(&error, case);
            errors += 1;
        }
    };
    check(parse_token_response(&endpoint, &r, UNIX_EPOCH).map(drop));
    check(parse_ciba_poll_response(&endpoint, &r, UNIX_EPOCH).map(drop));
    check(parse_backchannel_response(&endpoint, &r).map(drop));
    check(parse_introspection_response(&endpoint, &r).map(drop));
    check(parse_revocation_response(&endpoint, &r));
    check(parse_qr_session(&endpoint, &r).map(drop));
    check(parse_qr_status(&endpoint, &r).map(drop));
    check(parse_registration_response(&endpoint, &r).map(drop));
    check(parse_registration_status(&endpoint, &r).map(drop));
    errors
}

fn token_bearing_bodies() -> Vec<String> {
    vec![
        format!(
            r#"{{"access_token":"{ACCESS}","token_type":"Bearer","expires_in":300,"refresh_token":"{REFRESH}","id_token":"{ID_TOKEN}","scope":"openid"}}"#
        ),
        format!(r#"{{"auth_req_id":"{AUTH_REQ_ID}","expires_in":120,"interval":5}}"#),
        format!(r#"{{"session_id":"s1","status":"scanned","login_hint_token":"{HINT}"}}"#),
        format!(r#"{{"active":true,"sub":"alice","jti":"{ACCESS}","scope":"openid"}}"#),
    ]
}

#[test]
fn every_truncation_of_every_token_bearing_body_errs_without_a_secret() {
    let mut errors = 0;
    for body in token_bearing_bodies() {
        for end in 0..=body.len() {
            let cut = &body.as_bytes()[..end];
            for status in [200, 400, 500] {
                errors += parse_all(
                    status,
                    "application/json",
                    cut,
                    &format!("{status} {:?}", &body[..end]),
                );
            }
        }
    }
    assert!(
        errors > 10_000,
        "the corpus exercised the error paths: {errors}"
    );
}

#[test]
fn non_conformant_token_responses_err_without_a_secret() {
    let cases = [
        format!(r#"{{"access_token":"{ACCESS}","expires_in":300}}"#),
        format!(r#"{{"access_token":"{ACCESS}","token_type":"Bearer","scope":["openid"]}}"#),
        format!(r#"{{"access_token":"{ACCESS}","token_type":"Bearer","expires_in":"{REFRESH}"}}"#),
        format!(r#"{{"access_token":"{ACCESS}","token_type":"{REFRESH}"}}"#),
        format!(r#"{{"access_token":["{ACCESS}"],"token_type":"Bearer"}}"#),
        format!(
            r#"{{"access_token":"{ACCESS}","token_type":"Bearer","refresh_token":{{"t":"{REFRESH}"}}}}"#
        ),
        format!(
            r#"{{"access_token":"{ACCESS}","token_type":"Bearer","id_token":42,"expires_in":-1}}"#
        ),
        format!(r#"["{ACCESS}"]"#),
        format!(r#""{ACCESS}""#),
    ];
    for body in &cases {
        let n = parse_all(200, "application/json", body.as_bytes(), body);
        assert!(n > 0, "{body}");
    }
}

#[test]
fn an_echoing_proxy_never_puts_what_we_sent_into_an_error() {
    let form = format!(
        "grant_type=refresh_token&refresh_token={REFRESH}&client_id=c1&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={ASSERTION}"
    );
    let bodies = [
        (form.clone(), "text/plain"),
        (form.clone(), "application/x-www-form-urlencoded"),
        (
            format!(r#"{{"error":"invalid_request","error_description":"{form}"}}"#),
            "application/json",
        ),
        (format!(r#"{{"error":"{form}"}}"#), "application/json"),
        (format!(r#"{{"error":"{REFRESH}"}}"#), "application/json"),
        (
            format!(
                r#"{{"error":"invalid_grant","error_description":"refresh token {REFRESH} was used before"}}"#
            ),
            "application/json",
        ),
        (
            format!("<html><body><pre>{form}</pre></body></html>"),
            "text/html",
        ),
    ];
    for (body, content_type) in &bodies {
        for status in [200, 400, 401, 500, 502, 503] {
            parse_all(status, content_type, body.as_bytes(), body);
        }
    }
    // A short refresh token the shape rules cannot see is cut by the values
    // the caller sent.
    let short = "rt-12345678";
    let echo =
        format!(r#"{{"error":"invalid_request","error_description":"bad refresh_token={short}"}}"#);
    let endpoint = Endpoint::from("https://idp.example.com/oidc/token");
    let error = parse_token_response(
        &endpoint,
        &response(400, "application/json", echo.as_bytes()),
        UNIX_EPOCH,
    )
    .unwrap_err()
    .forget_values(&[short]);
    let text = format!("{error} {error:?}");
    assert!(!text.contains(short), "{text}");
    assert!(
        text.contains("bad refresh_token="),
        "the rest stays: {text}"
    );
}

#[test]
fn public_documents_are_quoted_but_cut_before_anything_token_like() {
    let endpoint = Endpoint::from("https://idp.example.com/oidc/.well-known/openid-configuration");
    let body = format!("<html>Service down; session {ACCESS} refresh {REFRESH}</html>");
    let error = onesoidc_core::response::error_from_public_response(
        &endpoint,
        &response(503, "text/html", body.as_bytes()),
    );
    assert_secret_free(&error, "public document");
    assert!(
        error.to_string().contains("<html>Service down; session"),
        "{error}"
    );
}
