//! Tests of the C API, called from Rust against an in-process dev IdP.
