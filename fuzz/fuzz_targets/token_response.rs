//! See `onesoidc_fuzz::targets::token_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::token_response::run(data));
