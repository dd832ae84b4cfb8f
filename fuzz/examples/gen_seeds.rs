//! Writes the seed corpus: `cargo run --example gen_seeds` in `fuzz/`.
//!
//! Seeds are real-shaped inputs: the px-device-identity fixtures, token,
//! CIBA, introspection, discovery, QR, applications and registration
//! bodies, and ID tokens signed with the fixed keys (plus broken ones).
//! Files are named by content hash, so re-running adds nothing twice.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_fuzz::{ISSUER, provider_jwks, status_prefix, valid_tokens};

fn write(target: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    std::fs::write(dir.join(format!("seed-{:016x}", h.finish())), data).unwrap();
}

fn response(target: &str, status: u16, body: &str) {
    let mut data = status_prefix(status).to_vec();
    data.extend_from_slice(body.as_bytes());
    write(target, &data);
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../onesoidc-core/tests/fixtures/px-device-identity")
}

fn main() {
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        write(
            "device_yml",
            &std::fs::read(dir.join("device.yml")).unwrap(),
        );
        write("pem_key", &std::fs::read(dir.join("private.pem")).unwrap());
        write("pem_key", &std::fs::read(dir.join("public.pem")).unwrap());
    }
    for yml in [
        "id: 8b477978-c63d-46f5-9492-67fafdd0d68e\nclient_id: null\nhost: null\nkey_type: RSA:2048\nkey_security: default\nis_managed: \"False\"\n",
        "id: 42\nclient_id: 7\nhost: http://127.0.0.1:8080/\nkey_type: ecc:P521\nkey_security: TPM\nis_managed: \"True\"\ninitiated_on: 2024-01-02 03:04:05\nextra:\n  nested: [1, 2.5, true]\n",
    ] {
        write("device_yml", yml.as_bytes());
    }
    // DER ECDSA-Sig-Value for ecdsa_der_to_fixed.
    write("pem_key", &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]);

    let t = "token_response";
    for (status, body) in [
        (
            200,
            r#"{"access_token":"eyJ.a.b","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","id_token":"it","scope":"openid profile"}"#,
        ),
        (
            200,
            r#"{"access_token":"a","token_type":"bearer","expires_in":"300"}"#,
        ),
        (
            200,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":1e300}"#,
        ),
        (
            200,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":null}"#,
        ),
        (
            400,
            r#"{"error":"authorization_pending","error_description":"End-User authentication is pending"}"#,
        ),
        (400, r#"{"error":"slow_down"}"#),
        (
            400,
            r#"{"error":"access_denied","error_description":"denied"}"#,
        ),
        (401, r#"{"error":"invalid_client"}"#),
        (
            200,
            r#"{"auth_req_id":"1c266114-a1be-4252-8ad1-04986c5b9ac1","expires_in":120,"interval":5}"#,
        ),
        (
            200,
            r#"{"auth_req_id":"r","expires_in":18446744073709551615,"interval":0}"#,
        ),
        (
            200,
            r#"{"active":true,"sub":"u","client_id":"c","exp":1700000300,"iat":1700000000,"iss":"https://idp.example.com/oidc","scope":"openid","aud":["a","b"],"token_type":"Bearer"}"#,
        ),
        (200, r#"{"active":false}"#),
        (
            200,
            r#"{"issuer":"https://idp.example.com/oidc","token_endpoint":"https://idp.example.com/oidc/token","backchannel_authentication_endpoint":"https://idp.example.com/oidc/backchannel","jwks_uri":"https://idp.example.com/oidc/jwks","id_token_signing_alg_values_supported":["RS256","ES256"]}"#,
        ),
        (200, r#"{"issuer":"https://evil.example.com/oidc"}"#),
        (404, ""),
        (500, "<html><body>Internal Server Error</body></html>"),
        (204, ""),
    ] {
        response(t, status, body);
    }

    let t = "ones_json";
    for (status, body) in [
        (
            201,
            r#"{"session_id":"qr-1","cb_url":"https://idp.example.com/qr/scan?s=qr-1","expires_in":300,"interval":2}"#,
        ),
        (200, r#"{"session_id":"s","status":"pending"}"#),
        (
            200,
            r#"{"session_id":"s","status":"scanned","login_hint_token":"lht"}"#,
        ),
        (200, r#"{"status":"expired"}"#),
        (200, r#"{"status":"cancelled"}"#),
        (404, r#"{"error":"not_found"}"#),
        (
            200,
            r#"{"applications":[{"client_identifier":"vhh-server","client_id":"c1","name":"VHH","url":"/apps/vhh"},{"client_identifier":"ext","url":"https://vhh.example.com"}]}"#,
        ),
        (201, r#"{"verification_code":"ABCD-1234"}"#),
        (
            200,
            r#"{"status":"approved","deviceId":"d","clientId":"c"}"#,
        ),
        (200, r#"{"status":"rejected"}"#),
        (200, "https://idp.example.com:8443/oidc/\n/apps/vhh"),
        (200, "http://[::1]:8080\n//evil.example.com/x"),
    ] {
        response(t, status, body);
    }

    let t = "jwt_validate";
    let tokens = valid_tokens();
    for token in &tokens {
        write(t, format!("\0{token}").as_bytes());
    }
    write(t, format!("\x02{}", tokens[0]).as_bytes());
    let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let claims = enc(&format!(
        r#"{{"iss":"{ISSUER}","sub":"u","aud":"635f4c1b-17e0-4caa-8e36-9eecf8b6163b","exp":1700000300,"iat":1700000000}}"#
    ));
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256","kid":"rsa-2048"}"#,
        r#"{"alg":"RS256","kid":"unknown"}"#,
        r#"{"alg":"ES256","kid":"rsa-2048"}"#,
        r#"{"alg":"PS256","kid":"rsa-2048"}"#,
    ] {
        write(t, format!("\x02{}.{claims}.c2ln", enc(header)).as_bytes());
    }
    let (input, _) = tokens[1].rsplit_once('.').unwrap();
    write(t, format!("\0{input}.").as_bytes());
    write(t, b"\0a.b");
    let jwks = serde_json::to_string(provider_jwks()).unwrap();
    write(t, format!("\x01{jwks}").as_bytes());
    write(t, format!("\x03{jwks}").as_bytes());
    write(t, br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"RSA","n":"AQAB","e":"AQAB","use":"enc"}]}"#.as_slice());

    let t = "access_token";
    for token in onesoidc_fuzz::targets::access_token::valid_tokens() {
        write(t, format!("\0{token}").as_bytes());
    }
    // An ID token (typ JWT) signed by a provider key, and forged headers.
    write(t, format!("\0{}", tokens[0]).as_bytes());
    for header in [
        r#"{"alg":"none","typ":"at+jwt"}"#,
        r#"{"alg":"HS256","typ":"at+jwt","kid":"rsa-2048"}"#,
        r#"{"alg":"ES384","typ":"at+jwt","kid":"ecc-p256"}"#,
        r#"{"alg":"RS256","typ":"JWT","kid":"rsa-2048"}"#,
    ] {
        write(t, format!("\0{}.{claims}.c2ln", enc(header)).as_bytes());
    }
    write(t, b"\0at_4f9c1d7e");
    write(t, format!("\x01{jwks}").as_bytes());

    let t = "dpop_proof";
    let proofs = onesoidc_fuzz::targets::dpop_proof::valid_proofs();
    for proof in &proofs {
        write(t, format!("\0{proof}").as_bytes());
        write(t, format!("\x01{proof}").as_bytes());
    }
    let (input, _) = proofs[0].rsplit_once('.').unwrap();
    let (_, claims) = input.split_once('.').unwrap();
    for header in [
        r#"{"alg":"none","typ":"dpop+jwt"}"#,
        r#"{"alg":"HS256","typ":"dpop+jwt","jwk":{"kty":"oct","k":"c2VjcmV0"}}"#,
        r#"{"alg":"ES256","typ":"dpop+jwt","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}}"#,
        r#"{"alg":"ES256","typ":"JWT","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}"#,
    ] {
        write(t, format!("\0{}.{claims}.c2ln", enc(header)).as_bytes());
    }
    write(t, b"\0a.b.c");

    for run in [
        &[0u8; 0][..],
        &[
            10, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 5, 0, 0,
            0, 0, 0, 0, 0,
        ],
    ] {
        write("ciba_poller", run);
    }
}
