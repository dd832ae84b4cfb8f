//! See `onesoidc_fuzz::targets::device_yml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onesoidc_fuzz::targets::device_yml::run(data));
