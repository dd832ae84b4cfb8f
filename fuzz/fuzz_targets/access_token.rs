//! See `onesoidc_fuzz::targets::access_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::access_token::run(data));
