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
    forget_unpacked_packages();
    forget_registry_builds(&crate::target_dir(&crate::workspace_root()));
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

/// Makes cargo rebuild our crates as built from that local registry: their
/// fingerprints do not follow the sources (a registry crate never changes),
/// so a warm target directory kept the first run's build. Such a build is
/// one whose `deps/<crate>-<hash>.d` names a file under a `registry/src/-`
/// directory; its `.fingerprint/<package>-<hash>` goes.
fn forget_registry_builds(target: &std::path::Path) {
    for profile in ["debug", "release"] {
        let Ok(deps) = std::fs::read_dir(target.join(profile).join("deps")) else {
            continue;
        };
        for file in deps.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(hash) = name
                .strip_prefix("onesoidc_")
                .and_then(|rest| rest.strip_suffix(".d"))
                .and_then(|rest| rest.rsplit_once('-'))
                .map(|(_, hash)| hash.to_string())
            else {
                continue;
            };
            let from_registry = std::fs::read_to_string(file.path())
                .is_ok_and(|text| text.contains("/registry/src/-"));
            if !from_registry {
                continue;
            }
            let fingerprints = target.join(profile).join(".fingerprint");
            for entry in std::fs::read_dir(&fingerprints)
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{hash}"))
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

/// Removes the copies of our crates that an earlier `cargo package`
/// unpacked from its local registry (`target/package/tmp-registry`) into
/// `$CARGO_HOME/registry/src/-<hash>/`. Cargo treats a registry crate as
/// immutable and reuses an unpacked copy of the same name and version, so
/// a second run from the same checkout verified each crate against its
/// siblings' sources as they were the first time (a new core function
/// was "not found" in onesoidc-cli's verify build).
fn forget_unpacked_packages() {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo"))
        });
    let Some(sources) = cargo_home.map(|home| home.join("registry").join("src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return;
    };
    // Local registries have an empty name: their directories are `-<hash>`.
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for unpacked in crates.flatten() {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            let ours = PUBLISHED
                .iter()
                .any(|krate| name.starts_with(&format!("{krate}-")));
            if ours && let Err(e) = std::fs::remove_dir_all(unpacked.path()) {
                eprintln!(
                    "xtask: cannot remove {} (an old unpacked copy): {e}",
                    unpacked.path().display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_builds_from_the_local_registry_are_forgotten() {
        let target = tempfile::tempdir().unwrap();
        let debug = target.path().join("debug");
        std::fs::create_dir_all(debug.join("deps")).unwrap();
        for (hash, source) in [
            (
                "aaa",
                "/root/.cargo/registry/src/-2f18/onesoidc-core-0.1.0/src/lib.rs",
            ),
            ("bbb", "/work/main/onesoidc-core/src/lib.rs"),
        ] {
            std::fs::write(
                debug.join(format!("deps/onesoidc_core-{hash}.d")),
                format!("libonesoidc_core-{hash}.rlib: {source}\n"),
            )
            .unwrap();
            std::fs::create_dir_all(debug.join(format!(".fingerprint/onesoidc-core-{hash}")))
                .unwrap();
        }
        forget_registry_builds(target.path());
        assert!(!debug.join(".fingerprint/onesoidc-core-aaa").exists());
        assert!(debug.join(".fingerprint/onesoidc-core-bbb").exists());
    }
}
