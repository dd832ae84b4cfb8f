//! See `onesoidc_fuzz::targets::response_errors`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::response_errors::run(data));
