//! The body of every fuzz target, as a function: `fuzz_targets/*.rs` call
//! them, and `tests/replay.rs` runs every committed corpus file through
//! them, so the corpora are checked by `cargo test` too.

pub mod access_token;
pub mod ciba_poller;
pub mod device_yml;
pub mod dpop_proof;
pub mod jwt_validate;
pub mod ones_json;
pub mod pem_key;
pub mod response_errors;
pub mod token_response;
