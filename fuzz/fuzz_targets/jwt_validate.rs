//! See `onesoidc_fuzz::targets::jwt_validate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::jwt_validate::run(data));
