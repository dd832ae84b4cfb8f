//! See `onesoidc_fuzz::targets::pem_key`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::pem_key::run(data));
