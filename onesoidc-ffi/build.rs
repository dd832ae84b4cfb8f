//! Gives the shared library its soname on Linux, so programs linked with it
//! look for `libonesoidc.so` on their library path (or rpath) rather than
//! for the absolute path it was linked from.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libonesoidc.so");
    }
}
