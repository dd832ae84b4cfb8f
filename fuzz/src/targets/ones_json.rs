//! ONES extension parsers (QR sessions, applications, registration) and
//! issuer URL handling on arbitrary input. Never panic.
//!
//! The response is built like in `token_response` (two status bytes, body).
//! The body is also read as text: its first line is an issuer URL, the
//! second an application URL resolved against it.

use onesoidc_core::{
    Issuer, QrStatus, RegistrationStatus, find_application, parse_applications, parse_qr_session,
    parse_qr_status, parse_registration_response, parse_registration_status,
};
use crate::{issuer, response};

const URL: &str = "https://idp.example.com/oidc/qr/sessions";

fn check_resolved(issuer: &Issuer, url: &str) {
    if let Ok(resolved) = issuer.resolve_url(url) {
        let parsed = url::Url::parse(&resolved)
            .unwrap_or_else(|e| panic!("resolved {url:?} to {resolved:?}, not a URL: {e}"));
        assert!(matches!(parsed.scheme(), "http" | "https"), "{resolved}");
        if url.starts_with('/') && !url.starts_with("//") {
            let origin = url::Url::parse(issuer.as_str()).unwrap().origin();
            assert_eq!(
                parsed.origin(),
                origin,
                "{url:?} left the issuer's origin: {resolved}"
            );
        }
    }
}

/// One input: never panics; successes respect their invariants.
pub fn run(data: &[u8]) {
    let response = response(data);
    if let Ok(session) = parse_qr_session(&URL.into(), &response) {
        assert!(!session.session_id.is_empty());
        assert!(!session.interval.is_zero());
    }
    if let Ok(QrStatus::Scanned { login_hint_token }) = parse_qr_status(&URL.into(), &response) {
        assert!(!login_hint_token.is_empty());
    }
    if let Ok(apps) = parse_applications(&URL.into(), &response) {
        for app in &apps {
            if let Ok(found) = find_application(&apps, &app.client_identifier, issuer()) {
                assert_eq!(found.client_identifier, app.client_identifier);
            }
            check_resolved(issuer(), &app.url);
        }
        assert!(
            find_application(&apps, "\u{0}not-listed", issuer()).is_err()
                || apps
                    .iter()
                    .any(|a| a.client_identifier == "\u{0}not-listed")
        );
    }
    if let Ok(code) = parse_registration_response(&URL.into(), &response) {
        assert!(!code.is_empty());
    }
    if let Ok(RegistrationStatus::Approved {
        device_id,
        client_id,
    }) = parse_registration_status(&URL.into(), &response)
    {
        assert!(!device_id.is_empty() && !client_id.is_empty());
    }

    let text = String::from_utf8_lossy(response.body());
    let mut lines = text.splitn(2, '\n');
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_default();
    for issuer in [Issuer::new(first), Issuer::from_host(first)]
        .into_iter()
        .flatten()
    {
        assert!(!issuer.as_str().ends_with('/'), "{issuer}");
        let _ = issuer.endpoint("/token");
        check_resolved(&issuer, second);
    }
    check_resolved(issuer(), first);
}
