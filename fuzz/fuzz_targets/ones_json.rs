//! See `onesoidc_fuzz::targets::ones_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::ones_json::run(data));
