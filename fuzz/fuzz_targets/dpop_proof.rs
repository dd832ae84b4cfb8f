//! See `onesoidc_fuzz::targets::dpop_proof`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::dpop_proof::run(data));
