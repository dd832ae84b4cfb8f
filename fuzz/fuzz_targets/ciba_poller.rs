//! See `onesoidc_fuzz::targets::ciba_poller`.
#![no_main]

libfuzzer_sys::fuzz_target!(|run: onesoidc_fuzz::targets::ciba_poller::Run| onesoidc_fuzz::targets::ciba_poller::run(run));
