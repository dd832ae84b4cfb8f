//! `cargo xtask deb [--debug | --check]`: the Debian package, built by
//! cargo-deb (a pinned version, installed when missing) from
//! `[package.metadata.deb]` in `onesoidc-cli/Cargo.toml`:
//! `<target>/deb/onesoidc_<version>_<arch>.deb`. Its `Depends` come from
//! `dpkg-shlibdeps` (`depends = "$auto"`), the unit's maintainer-script
//! snippets from cargo-deb's systemd support (`#DEBHELPER#` in
//! `packaging/postinst` and `postrm`).
//!
//! It holds `/usr/bin/onesoidc`, a man page per command
//! (`/usr/share/man/man1/*.1.gz`, from `onesoidc manpages`), the bash, zsh
//! and fish completions (from `onesoidc completions`), the systemd unit
//! `onesoidc-watch.service` (`packaging/`, in `/usr/lib/systemd/system`),
//! and the licences, README and
//! changelog under `/usr/share/doc/onesoidc/`; its maintainer scripts
//! (`packaging/postinst`, `postrm`) create the system user `onesoidc` the
//! unit runs as, the group `tss` it joins for `/dev/tpmrm0` (when tpm2-tss
//! has not) and `/etc/onesoidc/store`. Every directory is 0755 and
//! every file 0644 (0755 for programs and scripts), whatever the umask.
//!
//! The release binary by default; `--debug` packages the debug build
//! instead, which `cargo xtask test` does to check the package's contents
//! quickly: it extracts the package with `dpkg-deb -x` into a fresh
//! temporary directory, checks every file, every mode, the control fields
//! and the maintainer scripts, runs the packaged binary, and runs
//! `systemd-analyze verify` and `systemd-analyze security` (offline, on
//! the unit file) when that tool is present, printing the unit's exposure
//! against its target of 2.0.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const UNIT: &str = "onesoidc-watch.service";

/// The cargo-deb a machine without one gets (`[package.metadata.deb]` in
/// `onesoidc-cli/Cargo.toml` follows its format).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// The cargo features of `onesoidc-cli` the package is built with, here
/// alone: the TPM signer (the unit reaches `/dev/tpmrm0`), left out with
/// `tpm::ready`'s notice where the TSS libraries are missing outside CI.
const PACKAGE_FEATURES: &[&str] = &[crate::tpm::FEATURE];

/// The highest `systemd-analyze security` exposure the unit may have.
const EXPOSURE_TARGET: f64 = 2.0;

/// The maintainer scripts: `packaging/postinst` and `postrm` with
/// cargo-deb's systemd snippets, and cargo-deb's own `prerm` (it stops the
/// unit on removal).
const SCRIPTS: [&str; 3] = ["postinst", "postrm", "prerm"];

/// Every file the package must hold (besides the man pages, checked by count).
const EXPECTED: [&str; 9] = [
    "usr/bin/onesoidc",
    "usr/share/bash-completion/completions/onesoidc",
    "usr/share/zsh/vendor-completions/_onesoidc",
    "usr/share/fish/vendor_completions.d/onesoidc.fish",
    "usr/lib/systemd/system/onesoidc-watch.service",
    "usr/share/doc/onesoidc/copyright",
    "usr/share/doc/onesoidc/README.md",
    "usr/share/doc/onesoidc/changelog.gz",
    "usr/share/man/man1/onesoidc.1.gz",
];

pub fn run(args: &[String]) -> Result<(), String> {
    let debug = match args {
        [] => false,
        [flag] if flag == "--debug" => true,
        [flag] if flag == "--check" => return check(),
        _ => return Err("usage: cargo xtask deb [--debug | --check]".into()),
    };
    let deb = build(debug)?;
    println!("{}", deb.display());
    Ok(())
}

/// Builds the binary (release, or debug), the files it generates, and the
/// package with cargo-deb; returns its path.
pub fn build(debug: bool) -> Result<PathBuf, String> {
    if crate::system::on_path("dpkg-deb").is_none() {
        return Err("dpkg-deb is missing (Debian package dpkg)".into());
    }
    if !crate::system::cargo_subcommand("deb", CARGO_DEB_VERSION, "builds the Debian package")? {
        return Err(format!(
            "the Debian package needs cargo-deb {CARGO_DEB_VERSION}"
        ));
    }
    let root = crate::workspace_root();
    let target = crate::target_dir(&root);
    let features = if crate::tpm::ready()? {
        PACKAGE_FEATURES.join(",")
    } else {
        eprintln!("xtask: the Debian package is built without the TPM signer");
        PACKAGE_FEATURES
            .iter()
            .filter(|f| **f != crate::tpm::FEATURE)
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut args = vec!["build", "-p", "onesoidc-cli"];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    if !debug {
        args.push("--release");
    }
    crate::cargo(&args)?;
    let profile_dir = target.join(if debug { "debug" } else { "release" });
    write_generated_assets(
        &root,
        &profile_dir.join("onesoidc"),
        &profile_dir.join("deb-assets"),
    )?;

    let out_dir = target.join("deb");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let mut deb = vec!["deb", "-p", "onesoidc-cli", "--no-build", "--output"];
    let out = out_dir.display().to_string();
    deb.push(&out);
    if debug {
        deb.extend(["--profile", "dev", "--fast"]);
    }
    let said = output(Command::new(cargo_program()).args(&deb).current_dir(&root))?;
    let path = said
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .ok_or_else(|| format!("cargo deb named no package: {said}"))?;
    eprintln!("xtask: built {}", path.display());
    Ok(path)
}

/// What the package holds that the binary generates (man pages,
/// completions) and the copyright file, in `dir`
/// (`target/<profile>/deb-assets`, the paths of
/// `[package.metadata.deb]` in `onesoidc-cli/Cargo.toml`).
fn write_generated_assets(root: &Path, binary: &Path, dir: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir);
    let man = dir.join("man");
    fs::create_dir_all(&man).map_err(|e| format!("{}: {e}", man.display()))?;
    let put = |name: &str, bytes: &[u8]| -> Result<(), String> {
        let to = dir.join(name);
        fs::write(&to, bytes).map_err(|e| format!("{}: {e}", to.display()))
    };
    for (shell, name) in [
        ("bash", "onesoidc.bash"),
        ("zsh", "_onesoidc"),
        ("fish", "onesoidc.fish"),
    ] {
        put(
            name,
            &output_bytes(Command::new(binary).args(["completions", shell]))?,
        )?;
    }
    run_ok(
        Command::new(binary)
            .arg("manpages")
            .arg("--out-dir")
            .arg(&man),
    )?;
    // Compressed here: cargo-deb's --fast (the check's build) leaves them as they are.
    for page in fs::read_dir(&man).map_err(|e| format!("{}: {e}", man.display()))? {
        let page = page.map_err(|e| e.to_string())?.path();
        run_ok(Command::new("gzip").arg("-9n").arg(&page))?;
    }
    put("copyright", copyright(root)?.as_bytes())
}

fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo xtask test`'s check: the package (with the debug binary) holds
/// what it should, its binary runs, and its unit verifies.
pub fn check() -> Result<(), String> {
    if crate::system::on_path("dpkg-deb").is_none() {
        if crate::interop::in_ci() {
            return Err("CI builds the Debian package, which needs dpkg-deb".into());
        }
        eprintln!("xtask: no dpkg-deb: the Debian package is not built (not a Debian system)");
        return Ok(());
    }
    let deb = build(true)?;
    let temp = tempfile::Builder::new()
        .prefix("onesoidc-deb-check-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let extracted = temp.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted))?;
    check_modes(&deb)?;
    check_scripts(&deb, temp.path())?;
    for path in EXPECTED {
        let file = extracted.join(path);
        if !file.is_file() {
            return Err(format!("{} lacks {path}", deb.display()));
        }
    }
    let pages = fs::read_dir(extracted.join("usr/share/man/man1"))
        .map_err(|e| e.to_string())?
        .count();
    if pages < 14 {
        return Err(format!(
            "{} holds {pages} man pages, expected one per command",
            deb.display()
        ));
    }
    let version = output(Command::new(extracted.join("usr/bin/onesoidc")).arg("--version"))?;
    if !version.starts_with(&format!("onesoidc {}", env!("CARGO_PKG_VERSION"))) {
        return Err(format!("the packaged binary says {version:?}"));
    }
    let info = output(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .args(["Package", "Version", "Depends"]),
    )?;
    for field in ["Package: onesoidc", "Version: ", "Depends: libc6"] {
        if !info.contains(field) {
            return Err(format!("the control file lacks {field:?}: {info}"));
        }
    }
    let unit = extracted.join("usr/lib/systemd/system").join(UNIT);
    let unit_text = String::from_utf8(read(&unit)?).map_err(|e| e.to_string())?;
    for setting in [
        "ExecStart=/usr/bin/onesoidc watch",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/onesoidc",
        "ProtectHome=yes",
        "User=onesoidc",
        "LoadCredential=private.pem:",
        "LoadCredential=store:/etc/onesoidc/store",
        "--store-file %d/store",
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/tpmrm0 rw",
        "SupplementaryGroups=tss",
    ] {
        if !unit_text.contains(setting) {
            return Err(format!("{UNIT} lacks {setting}"));
        }
    }
    match crate::system::on_path("systemd-analyze") {
        Some(analyze) => {
            // Against this machine's units (a bare extracted tree has no
            // sysinit.target), with ExecStart pointing at the extracted binary.
            let checked = extracted.join(UNIT);
            let packaged = extracted.join("usr/bin/onesoidc");
            fs::write(
                &checked,
                unit_text.replace("/usr/bin/onesoidc", &packaged.display().to_string()),
            )
            .map_err(|e| e.to_string())?;
            let out = Command::new(&analyze)
                .args(["verify", "--man=no"])
                .arg(&checked)
                .output()
                .map_err(|e| format!("cannot run systemd-analyze: {e}"))?;
            let said = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || said.contains(UNIT) {
                return Err(format!("systemd-analyze verify {UNIT}: {said}"));
            }
            eprintln!("xtask: systemd-analyze verify {UNIT}: ok");
            check_exposure(&analyze, &checked)?;
        }
        None => eprintln!("xtask: no systemd-analyze; {UNIT} not verified"),
    }
    eprintln!("xtask: {} checked", deb.display());
    Ok(())
}

/// `systemd-analyze security` of the unit file (offline: no running
/// systemd needed): prints the exposure and fails above [`EXPOSURE_TARGET`].
/// A systemd too old for `--offline` is reported, not failed.
fn check_exposure(analyze: &str, unit: &Path) -> Result<(), String> {
    let out = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .map_err(|e| format!("cannot run systemd-analyze: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(line) = said.lines().find(|l| l.contains("Overall exposure level")) else {
        eprintln!(
            "xtask: systemd-analyze security {UNIT} could not run here; it said: {}",
            said.trim()
        );
        return Ok(());
    };
    let exposure = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(|| format!("systemd-analyze security: cannot read {line:?}"))?;
    let verdict = if exposure <= EXPOSURE_TARGET {
        "OK"
    } else {
        "too high"
    };
    eprintln!(
        "xtask: systemd-analyze security onesoidc-watch: exposure {exposure:.1} (target <= {EXPOSURE_TARGET:.1}): {verdict}"
    );
    if exposure > EXPOSURE_TARGET {
        return Err(format!(
            "{UNIT}'s exposure is {exposure:.1}, above {EXPOSURE_TARGET:.1}: {}",
            said.trim()
        ));
    }
    Ok(())
}

/// Every directory in the package is 0755 and owned by root
/// (`dpkg-deb -c`), every file 0644 or 0755.
fn check_modes(deb: &Path) -> Result<(), String> {
    let listing = output(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    for entry in listing.lines() {
        let mut fields = entry.split_whitespace();
        let (Some(mode), Some(owner)) = (fields.next(), fields.next()) else {
            continue;
        };
        let ok = match mode.chars().next() {
            Some('d') => mode == "drwxr-xr-x",
            Some('-') => mode == "-rw-r--r--" || mode == "-rwxr-xr-x",
            _ => false,
        };
        // cargo-deb writes numeric owners only: dpkg-deb shows root as 0/0.
        if !ok || !matches!(owner, "root/root" | "0/0") {
            return Err(format!(
                "{}: {entry}: expected root/root, drwxr-xr-x for directories, -rw-r--r-- or -rwxr-xr-x for files",
                deb.display()
            ));
        }
    }
    Ok(())
}

/// The maintainer scripts are there, executable, valid `sh`, and create
/// the service's user and the group `tss` it joins; postinst holds
/// cargo-deb's systemd snippet.
fn check_scripts(deb: &Path, temp: &Path) -> Result<(), String> {
    let control = temp.join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control))?;
    for script in SCRIPTS {
        let path = control.join(script);
        run_ok(Command::new("sh").arg("-n").arg(&path))?;
        if mode_of(&path)? & 0o777 != 0o755 {
            return Err(format!("{}: {script} is not mode 0755", deb.display()));
        }
    }
    let postinst =
        String::from_utf8(read(&control.join("postinst"))?).map_err(|e| e.to_string())?;
    if !postinst.contains("useradd --system") {
        return Err("postinst does not create the onesoidc system user".into());
    }
    if !postinst.contains("groupadd --system tss") {
        return Err("postinst does not create the group tss the unit joins".into());
    }
    if postinst.contains("#DEBHELPER#") || !postinst.contains("deb-systemd-helper") {
        return Err("postinst lacks cargo-deb's systemd snippet in place of #DEBHELPER#".into());
    }
    Ok(())
}

/// The Debian copyright file: the workspace's licences, whole.
fn copyright(root: &Path) -> Result<String, String> {
    let mit = String::from_utf8(read(&root.join("LICENSE-MIT"))?).map_err(|e| e.to_string())?;
    let apache =
        String::from_utf8(read(&root.join("LICENSE-APACHE"))?).map_err(|e| e.to_string())?;
    let indent = |text: &str| {
        text.lines()
            .map(|l| {
                if l.trim().is_empty() {
                    " .".to_string()
                } else {
                    format!(" {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: onesoidc
Source: https://github.com/ones-now/onesoidc

Files: *
Copyright: 2026 The onesoidc authors
License: MIT or Apache-2.0

License: MIT
{}

License: Apache-2.0
{}
",
        indent(&mit),
        indent(&apache)
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Result<u32, String> {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.permissions().mode())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(not(unix))]
fn mode_of(_path: &Path) -> Result<u32, String> {
    Ok(0o755)
}

fn run_ok(command: &mut Command) -> Result<(), String> {
    output_bytes(command).map(drop)
}

fn output(command: &mut Command) -> Result<String, String> {
    let bytes = output_bytes(command)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

fn output_bytes(command: &mut Command) -> Result<Vec<u8>, String> {
    let shown = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
