//! The crates.io check of `cargo xtask test`: `cargo package` of every
//! publishable crate together (so each one's verify build finds its
//! workspace siblings as they would be published), which fails on a
//! missing licence, README or metadata field, on a file outside the crate
//! that a build needs, and on a crate that does not build from its own
//! `.crate` file. Without a reachable registry the verify build cannot
//! resolve dependencies: then (outside CI only) `--no-verify`.

/// The crates meant for crates.io, in dependency order.
pub const PUBLISHED: [&str; 10] = [
    "onesoidc-fs",
    "onesoidc-core",
    "onesoidc-tpm",
    "onesoidc-http",
    "onesoidc-flows",
    "onesoidc-tokens",
    "onesoidc-resource",
    "onesoidc-devidp",
    "onesoidc-cli",
    "onesoidc-ffi",
];

/// `tpm`: whether onesoidc-tpm can be built here (`tpm.rs`); without the
/// TSS libraries it is left out.
pub fn check(tpm: bool) -> Result<(), String> {
    let mut args = vec!["package", "--allow-dirty"];
    for name in PUBLISHED
        .into_iter()
        .filter(|name| tpm || *name != crate::tpm::CRATE)
    {
        args.extend(["--package", name]);
    }
    match super::cargo(&args) {
        Ok(()) => Ok(()),
        Err(e) if crate::interop::in_ci() => Err(e),
        Err(e) => {
            eprintln!(
                "xtask: {e}; trying again without the verify build (is crates.io reachable?)"
            );
            args.push("--no-verify");
            super::cargo(&args)
        }
    }
}
