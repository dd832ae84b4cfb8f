//! Every committed corpus file through its target's function: the fuzz
//! targets' invariants hold for every seed and every input the fuzzers
//! kept, on every `cargo xtask test` (which runs this).

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use onesoidc_fuzz::targets;

/// The files of `corpus/<target>`, sorted; at least one.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no seed", dir.display());
    files
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let files = corpus(target);
    for (name, bytes) in &files {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(bytes)));
        assert!(outcome.is_ok(), "{target}: corpus file {name} fails");
    }
    eprintln!("{target}: {} corpus files", files.len());
}

#[test]
fn device_yml() {
    replay("device_yml", targets::device_yml::run);
}

#[test]
fn pem_key() {
    replay("pem_key", targets::pem_key::run);
}

#[test]
fn token_response() {
    replay("token_response", targets::token_response::run);
}

#[test]
fn jwt_validate() {
    replay("jwt_validate", targets::jwt_validate::run);
}

#[test]
fn access_token() {
    replay("access_token", targets::access_token::run);
}

#[test]
fn dpop_proof() {
    replay("dpop_proof", targets::dpop_proof::run);
}

#[test]
fn ones_json() {
    replay("ones_json", targets::ones_json::run);
}

#[test]
fn response_errors() {
    replay("response_errors", targets::response_errors::run);
}

#[test]
fn ciba_poller() {
    // As libFuzzer's `fuzz_target!` builds a typed input.
    replay("ciba_poller", |bytes| {
        if let Ok(run) = targets::ciba_poller::Run::arbitrary_take_rest(Unstructured::new(bytes)) {
            targets::ciba_poller::run(run);
        }
    });
}

/// The secret planted by `response_errors` would be found if an error
/// quoted it: the check can fail.
#[test]
#[should_panic(expected = "quotes the body")]
fn response_errors_detects_a_quoted_secret() {
    let secret = targets::response_errors::SECRET;
    let error = onesoidc_core::Error::invalid_response(
        "https://idp.example.com/oidc/token",
        200,
        format!("body was {secret}"),
    );
    assert!(!error.to_string().contains(secret), "Display quotes the body: {error}");
}
