//! Response parsers with real-shaped bodies: success and every error shape.

use std::time::{Duration, UNIX_EPOCH};

use onesoidc_core::{
    CibaPollResponse, DeviceTokenRequest, Endpoint, Error, ExposeSecret, Issuer, ProviderMetadata,
    TokenTypeHint, parse_backchannel_response, parse_ciba_poll_response,
    parse_introspection_response, parse_revocation_response, parse_token_response,
};

static TOKEN: std::sync::LazyLock<Endpoint> =
    std::sync::LazyLock::new(|| Endpoint::from("https://idp/oidc/token"));

fn response(status: u16, body: &str) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .unwrap()
}

#[test]
fn token_response_success() {
    let now = UNIX_EPOCH + Duration::from_secs(100);
    let body = r#"{"access_token":"eyJ.a.b","token_type":"bearer","expires_in":3600,"refresh_token":"rt","id_token":"it","scope":"openid profile"}"#;
    let t = parse_token_response(&TOKEN, &response(200, body), now).unwrap();
    assert_eq!(t.access_token.expose_secret(), "eyJ.a.b");
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_at, Some(now + Duration::from_secs(3600)));
    assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "rt");
    assert_eq!(t.id_token.as_ref().unwrap().expose_secret(), "it");
    assert_eq!(t.scope.as_deref(), Some("openid profile"));
    assert_eq!(
        t.expires_in(now + Duration::from_secs(600)),
        Some(Duration::from_secs(3000))
    );
    assert!(!t.is_expired(now + Duration::from_secs(3599)));
    assert!(t.is_expired(now + Duration::from_secs(3600)));
    let debug = format!("{t:?}");
    assert!(
        !debug.contains("eyJ.a.b") && !debug.contains("\"rt\""),
        "{debug}"
    );
}

#[test]
fn token_response_expires_in_shapes() {
    let now = UNIX_EPOCH;
    let parse = |e: &str| {
        let body = format!(r#"{{"access_token":"a","token_type":"Bearer"{e}}}"#);
        parse_token_response(&TOKEN, &response(200, &body), now)
    };
    assert_eq!(parse("").unwrap().expires_at, None);
    assert_eq!(parse(r#","expires_in":null"#).unwrap().expires_at, None);
    assert_eq!(parse(r#","expires_in":0"#).unwrap().expires_at, Some(now));
    assert_eq!(
        parse(r#","expires_in":"60""#).unwrap().expires_at,
        Some(now + Duration::from_secs(60))
    );
    assert_eq!(
        parse(r#","expires_in":1e30"#).unwrap().expires_at,
        Some(now + onesoidc_core::MAX_EXPIRES_IN)
    );
    for bad in [
        r#","expires_in":-5"#,
        r#","expires_in":"soon""#,
        r#","expires_in":[1]"#,
    ] {
        let err = parse(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidResponse { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("expires_in"));
    }
}

#[test]
fn token_response_invalid_shapes() {
    let cases = [
        (r#"{"token_type":"Bearer"}"#, "access_token"),
        (
            r#"{"access_token":"a","token_type":"DPoP"}"#,
            "`token_type` is `DPoP` but the request carried no DPoP proof",
        ),
        (
            r#"{"access_token":"a","token_type":"mac"}"#,
            "neither `Bearer` nor `DPoP`",
        ),
        (r#"{"access_token":"","token_type":"Bearer"}"#, "empty"),
        ("not json", "syntax error at line 1, column 2"),
        (r#"{"access_token":"a","#, "ends early"),
        ("", "empty body"),
        (
            r#"{"access_token":"a","token_type":"Bearer","scope":["x"]}"#,
            "`scope` is a list, expected a string",
        ),
    ];
    for (body, needle) in cases {
        let err = parse_token_response(&TOKEN, &response(200, body), UNIX_EPOCH).unwrap_err();
        assert!(
            matches!(err, Error::InvalidResponse { status: 200, .. }),
            "{body}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(needle) && message.contains(TOKEN.as_str()),
            "{message}"
        );
        assert!(
            !message.contains("not json"),
            "the body is never quoted: {message}"
        );
    }
}

#[test]
fn oauth_errors_keep_code_description_and_status() {
    let err = parse_token_response(
        &TOKEN,
        &response(
            401,
            r#"{"error":"invalid_client","error_description":"assertion signature invalid"}"#,
        ),
        UNIX_EPOCH,
    )
    .unwrap_err();
    match &err {
        Error::OAuth {
            endpoint,
            status,
            error,
            description,
            ..
        } => {
            assert_eq!(endpoint, TOKEN.as_str());
            assert_eq!(*status, 401);
            assert_eq!(error, "invalid_client");
            assert_eq!(description.as_deref(), Some("assertion signature invalid"));
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        err.to_string(),
        "https://idp/oidc/token answered HTTP 401 with OAuth error `invalid_client`: assertion signature invalid"
    );
}

#[test]
fn http_errors_without_oauth_body() {
    let err = parse_token_response(
        &TOKEN,
        &response(502, "<html><body>\n Bad Gateway </body></html>"),
        UNIX_EPOCH,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 502, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("HTTP 502") && message.contains("40 bytes"),
        "{message}"
    );
    assert!(
        !message.contains("Bad Gateway"),
        "the body is never quoted: {message}"
    );
    let err = parse_token_response(&TOKEN, &response(302, ""), UNIX_EPOCH).unwrap_err();
    assert!(
        err.to_string().contains("redirects are not followed"),
        "{err}"
    );
    let long = "x".repeat(5000);
    let err = parse_token_response(&TOKEN, &response(500, &long), UNIX_EPOCH).unwrap_err();
    assert!(err.to_string().len() < 400);
}

#[test]
fn backchannel_response() {
    let ep = &Endpoint::from("https://idp/oidc/backchannel");
    let r = parse_backchannel_response(
        ep,
        &response(
            200,
            r#"{"auth_req_id":"abc","expires_in":120,"interval":2}"#,
        ),
    )
    .unwrap();
    assert_eq!(
        (r.auth_req_id.as_str(), r.expires_in, r.interval),
        ("abc", Duration::from_secs(120), Duration::from_secs(2))
    );
    let r = parse_backchannel_response(
        ep,
        &response(200, r#"{"auth_req_id":"abc","expires_in":120}"#),
    )
    .unwrap();
    assert_eq!(r.interval, Duration::from_secs(5));
    let err = parse_backchannel_response(
        ep,
        &response(
            400,
            r#"{"error":"unknown_user_id","error_description":"no such user"}"#,
        ),
    )
    .unwrap_err();
    assert_eq!(err.oauth_error(), Some("unknown_user_id"));
    assert!(matches!(
        parse_backchannel_response(ep, &response(200, r#"{"expires_in":120}"#)).unwrap_err(),
        Error::InvalidResponse { status: 200, .. }
    ));
    assert!(matches!(
        parse_backchannel_response(ep, &response(200, r#"{"auth_req_id":"","expires_in":120}"#))
            .unwrap_err(),
        Error::InvalidResponse { status: 200, .. }
    ));
}

#[test]
fn ciba_poll_responses() {
    let poll = |status, body| parse_ciba_poll_response(&TOKEN, &response(status, body), UNIX_EPOCH);
    assert!(matches!(
        poll(400, r#"{"error":"authorization_pending"}"#).unwrap(),
        CibaPollResponse::Pending { retry_after: None }
    ));
    assert!(matches!(
        poll(400, r#"{"error":"slow_down"}"#).unwrap(),
        CibaPollResponse::SlowDown { retry_after: None }
    ));
    match poll(200, r#"{"access_token":"a","token_type":"Bearer","expires_in":10,"refresh_token":"r","id_token":"i"}"#).unwrap() {
        CibaPollResponse::Tokens(t) => assert_eq!(t.refresh_token.unwrap().expose_secret(), "r"),
        other => panic!("{other:?}"),
    }
    for code in [
        "expired_token",
        "access_denied",
        "transaction_failed",
        "invalid_grant",
    ] {
        let body = format!(r#"{{"error":"{code}"}}"#);
        let err = parse_ciba_poll_response(&TOKEN, &response(400, &body), UNIX_EPOCH).unwrap_err();
        assert_eq!(err.oauth_error(), Some(code));
    }
    assert!(matches!(
        poll(503, "Service Unavailable").unwrap_err(),
        Error::HttpStatus { status: 503, .. }
    ));
}

#[test]
fn introspection_and_revocation() {
    let ep = &Endpoint::from("https://idp/oidc/token/introspection");
    let i = parse_introspection_response(ep, &response(200, r#"{"active":true,"sub":"alice","client_id":"c","exp":10,"iat":5,"iss":"https://idp/oidc","scope":"openid","aud":["a","b"],"token_type":"Bearer"}"#)).unwrap();
    assert!(i.active);
    assert_eq!(i.sub.as_deref(), Some("alice"));
    assert_eq!(i.aud, ["a", "b"]);
    assert!(
        !parse_introspection_response(ep, &response(200, r#"{"active":false}"#))
            .unwrap()
            .active
    );
    assert!(matches!(
        parse_introspection_response(ep, &response(200, r#"{"sub":"x"}"#)).unwrap_err(),
        Error::InvalidResponse { status: 200, .. }
    ));
    assert_eq!(
        parse_introspection_response(ep, &response(401, r#"{"error":"invalid_client"}"#))
            .unwrap_err()
            .oauth_error(),
        Some("invalid_client")
    );
    let rv = &Endpoint::from("https://idp/oidc/token/revocation");
    parse_revocation_response(rv, &response(200, "")).unwrap();
    assert_eq!(
        parse_revocation_response(rv, &response(400, r#"{"error":"unsupported_token_type"}"#))
            .unwrap_err()
            .oauth_error(),
        Some("unsupported_token_type")
    );
}

#[test]
fn discovery_document() {
    let issuer = Issuer::new("https://idp/oidc").unwrap();
    let doc = r#"{"issuer":"https://idp/oidc","token_endpoint":"https://idp/oidc/t","backchannel_authentication_endpoint":"https://idp/oidc/bc","jwks_uri":"https://idp/oidc/keys","id_token_signing_alg_values_supported":["RS256"]}"#;
    let meta = ProviderMetadata::from_discovery_response(&issuer, &response(200, doc)).unwrap();
    assert!(meta.discovered);
    assert_eq!(meta.token_endpoint, "https://idp/oidc/t");
    assert_eq!(
        meta.backchannel_authentication_endpoint,
        "https://idp/oidc/bc"
    );
    assert_eq!(meta.jwks_uri, "https://idp/oidc/keys");
    assert_eq!(
        meta.introspection_endpoint, "https://idp/oidc/token/introspection",
        "omitted endpoints fall back"
    );
    assert_eq!(meta.id_token_signing_alg_values_supported, ["RS256"]);

    let fallback =
        ProviderMetadata::from_discovery_response(&issuer, &response(404, "Not Found")).unwrap();
    assert_eq!(fallback, ProviderMetadata::fallback(&issuer));
    assert_eq!(
        fallback.revocation_endpoint,
        "https://idp/oidc/token/revocation"
    );

    let other = doc.replace(
        r#""issuer":"https://idp/oidc""#,
        r#""issuer":"https://evil/oidc""#,
    );
    let err =
        ProviderMetadata::from_discovery_response(&issuer, &response(200, &other)).unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");
    assert!(err.to_string().contains("https://evil/oidc"));
    let slash = doc.replace(
        r#""issuer":"https://idp/oidc""#,
        r#""issuer":"https://idp/oidc/""#,
    );
    assert!(
        matches!(
            ProviderMetadata::from_discovery_response(&issuer, &response(200, &slash)).unwrap_err(),
            Error::IssuerMismatch { .. }
        ),
        "exact match only"
    );
    assert!(matches!(
        ProviderMetadata::from_discovery_response(&issuer, &response(500, "oops")).unwrap_err(),
        Error::HttpStatus { status: 500, .. }
    ));
}

#[test]
fn request_builders_carry_client_auth() {
    use onesoidc_core::{CibaRequest, ClientAuth, KeyType, PemSigner};
    use std::sync::Arc;
    let auth = ClientAuth::new(
        "cid",
        Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
    );
    let fields = |req: &http::Request<Vec<u8>>| -> Vec<(String, String)> {
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        url::form_urlencoded::parse(req.body())
            .into_owned()
            .collect()
    };
    let get =
        |f: &[(String, String)], k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let issuer = Issuer::new("https://idp/oidc").unwrap();
    let secret = onesoidc_core::SecretString::from("rt-1");
    let requests = [
        (
            auth.client_credentials_request(
                &TOKEN,
                &DeviceTokenRequest::default()
                    .scope("read")
                    .resource("https://app"),
                UNIX_EPOCH,
            )
            .unwrap(),
            "client_credentials",
        ),
        (
            auth.refresh_token_request(&TOKEN, &secret, UNIX_EPOCH)
                .unwrap(),
            "refresh_token",
        ),
        (
            auth.ciba_poll_request(&TOKEN, &"req-1".into(), UNIX_EPOCH)
                .unwrap(),
            onesoidc_core::CIBA_GRANT_TYPE,
        ),
    ];
    for (req, grant) in &requests {
        assert_eq!(req.uri(), TOKEN.as_str());
        let f = fields(req);
        assert_eq!(get(&f, "grant_type").as_deref(), Some(*grant));
        assert_eq!(get(&f, "client_id").as_deref(), Some("cid"));
        assert_eq!(
            get(&f, "client_assertion_type").as_deref(),
            Some(onesoidc_core::CLIENT_ASSERTION_TYPE)
        );
        let assertion = get(&f, "client_assertion").unwrap();
        let claims: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&assertion).unwrap();
        assert_eq!(claims["aud"], TOKEN.as_str());
    }
    let f = fields(&requests[0].0);
    assert_eq!(get(&f, "scope").as_deref(), Some("read"));
    assert_eq!(get(&f, "resource").as_deref(), Some("https://app"));
    assert_eq!(
        get(&fields(&requests[1].0), "refresh_token").as_deref(),
        Some("rt-1")
    );
    assert_eq!(
        get(&fields(&requests[2].0), "auth_req_id").as_deref(),
        Some("req-1")
    );

    let bc = &Endpoint::from("https://idp/oidc/backchannel");
    let req = auth
        .backchannel_request(bc, &issuer, &CibaRequest::for_username("alice"), UNIX_EPOCH)
        .unwrap();
    let f = fields(&req);
    let object = get(&f, "request").unwrap();
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(&object).unwrap();
    assert_eq!(claims["login_hint"], "alice");
    let assertion: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(get(&f, "client_assertion").unwrap())
            .unwrap();
    assert_eq!(assertion["aud"], bc.as_str());
    let bad = CibaRequest::for_username("alice").binding_message("x".repeat(200));
    assert!(matches!(
        auth.backchannel_request(bc, &issuer, &bad, UNIX_EPOCH)
            .unwrap_err(),
        Error::InvalidRequest { .. }
    ));

    for (req, token) in [
        (
            auth.introspection_request(
                &"https://idp/oidc/token/introspection".into(),
                &"tok".into(),
                Some(TokenTypeHint::AccessToken),
                UNIX_EPOCH,
            )
            .unwrap(),
            "tok",
        ),
        (
            auth.revocation_request(
                &"https://idp/oidc/token/revocation".into(),
                &"tok2".into(),
                None,
                UNIX_EPOCH,
            )
            .unwrap(),
            "tok2",
        ),
    ] {
        let f = fields(&req);
        assert_eq!(get(&f, "token").as_deref(), Some(token));
        assert!(get(&f, "client_assertion").is_some());
    }
}

/// A member named twice is a parser differential (serde_json keeps the
/// last, a proxy or provider may read the first): token and introspection
/// answers naming one twice are refused, the error naming the member and
/// the endpoint, never a value.
#[test]
fn duplicate_members_are_refused_naming_member_and_endpoint() {
    let now = UNIX_EPOCH;
    let token =
        r#"{"access_token":"at-first-5Gx9","token_type":"Bearer","access_token":"at-second-7Hq2"}"#;
    let err = parse_token_response(&TOKEN, &response(200, token), now).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(
        text.contains("https://idp/oidc/token") && text.contains("`access_token` twice"),
        "{text}"
    );
    assert!(
        !text.contains("at-first") && !text.contains("at-second"),
        "{text}"
    );
    // At any depth, and whichever member it is.
    let nested = r#"{"access_token":"a","token_type":"Bearer","extra":{"k":1,"k":2}}"#;
    let err = parse_token_response(&TOKEN, &response(200, nested), now).unwrap_err();
    assert!(err.to_string().contains("`k` twice"), "{err}");

    let introspection = Endpoint::from("https://idp/oidc/token/introspection");
    let answer = r#"{"active":false,"sub":"alice","active":true}"#;
    let err = parse_introspection_response(&introspection, &response(200, answer)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("https://idp/oidc/token/introspection") && text.contains("`active` twice"),
        "{text}"
    );
    // The same bodies without the duplicate parse.
    let once = r#"{"active":true,"sub":"alice"}"#;
    assert!(
        parse_introspection_response(&introspection, &response(200, once))
            .unwrap()
            .active
    );
}
