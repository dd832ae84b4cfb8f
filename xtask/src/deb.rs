//! `cargo xtask deb [--debug | --check]`: the Debian package, built by hand with
//! `dpkg-deb` (no cargo-deb to install): `<target>/deb/onesoidc_<version>_<arch>.deb`.
//!
//! It holds `/usr/bin/onesoidc`, a man page per command
//! (`/usr/share/man/man1/*.1.gz`, from `onesoidc manpages`), the bash, zsh
//! and fish completions (from `onesoidc completions`), the systemd unit
//! `onesoidc-watch.service` (`packaging/`), and the licences, README and
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

/// The cargo features of `onesoidc-cli` the package is built with, here
/// alone. The merge of the TPM signer (issue 25, crate `onesoidc-tpm`) adds
/// `"tpm"`: the unit already reaches `/dev/tpmrm0`.
const PACKAGE_FEATURES: &[&str] = &[];

/// The highest `systemd-analyze security` exposure the unit may have.
const EXPOSURE_TARGET: f64 = 2.0;

/// The maintainer scripts, from `packaging/`.
const SCRIPTS: [&str; 2] = ["postinst", "postrm"];

/// Every file the package must hold (besides the man pages, checked by count).
const EXPECTED: [&str; 9] = [
    "usr/bin/onesoidc",
    "usr/share/bash-completion/completions/onesoidc",
    "usr/share/zsh/vendor-completions/_onesoidc",
    "usr/share/fish/vendor_completions.d/onesoidc.fish",
    "lib/systemd/system/onesoidc-watch.service",
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

/// Builds the binary (release, or debug) and the package; returns its path.
pub fn build(debug: bool) -> Result<PathBuf, String> {
    if crate::system::on_path("dpkg-deb").is_none() {
        return Err("dpkg-deb is missing (Debian package dpkg)".into());
    }
    let root = crate::workspace_root();
    let target = crate::target_dir(&root);
    let features = PACKAGE_FEATURES.join(",");
    let mut args = vec!["build", "-p", "onesoidc-cli"];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    if !debug {
        args.push("--release");
    }
    crate::cargo(&args)?;
    let binary = target
        .join(if debug { "debug" } else { "release" })
        .join("onesoidc");
    let version = cli_version(&binary)?;
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let name = format!("onesoidc_{version}_{arch}");
    let stage = target.join("deb").join(&name);
    let _ = fs::remove_dir_all(&stage);

    let put = |path: &str, bytes: &[u8], mode: u32| -> Result<(), String> {
        let to = stage.join(path);
        fs::create_dir_all(to.parent().unwrap()).map_err(|e| format!("{}: {e}", to.display()))?;
        fs::write(&to, bytes).map_err(|e| format!("{}: {e}", to.display()))?;
        set_mode(&to, mode)
    };
    put(
        "usr/bin/onesoidc",
        &fs::read(&binary).map_err(|e| format!("{}: {e}", binary.display()))?,
        0o755,
    )?;
    for (shell, path) in [
        ("bash", "usr/share/bash-completion/completions/onesoidc"),
        ("zsh", "usr/share/zsh/vendor-completions/_onesoidc"),
        ("fish", "usr/share/fish/vendor_completions.d/onesoidc.fish"),
    ] {
        let script = output_bytes(Command::new(&binary).args(["completions", shell]))?;
        put(path, &script, 0o644)?;
    }
    let man = stage.join("usr/share/man/man1");
    fs::create_dir_all(&man).map_err(|e| e.to_string())?;
    run_ok(
        Command::new(&binary)
            .arg("manpages")
            .arg("--out-dir")
            .arg(&man),
    )?;
    for page in fs::read_dir(&man).map_err(|e| e.to_string())? {
        let page = page.map_err(|e| e.to_string())?.path();
        set_mode(&page, 0o644)?;
        run_ok(Command::new("gzip").args(["-9n"]).arg(&page))?;
    }
    put(
        &format!("lib/systemd/system/{UNIT}"),
        &read(&root.join("packaging").join(UNIT))?,
        0o644,
    )?;
    let doc = "usr/share/doc/onesoidc";
    put(
        &format!("{doc}/copyright"),
        copyright(&root)?.as_bytes(),
        0o644,
    )?;
    put(
        &format!("{doc}/README.md"),
        &read(&root.join("README.md"))?,
        0o644,
    )?;
    put(
        &format!("{doc}/changelog"),
        &read(&root.join("CHANGELOG.md"))?,
        0o644,
    )?;
    run_ok(
        Command::new("gzip")
            .args(["-9n"])
            .arg(stage.join(doc).join("changelog")),
    )?;

    let installed_kib = du_kib(&stage);
    put(
        "DEBIAN/control",
        control(&version, &arch, installed_kib).as_bytes(),
        0o644,
    )?;
    for script in SCRIPTS {
        put(
            &format!("DEBIAN/{script}"),
            &read(&root.join("packaging").join(script))?,
            0o755,
        )?;
    }
    // Directories as dpkg expects them, not as the umask made them.
    set_dir_modes(&stage)?;
    let deb = target.join("deb").join(format!("{name}.deb"));
    run_ok(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zxz"])
            .arg(&stage)
            .arg(&deb),
    )?;
    eprintln!("xtask: built {}", deb.display());
    Ok(deb)
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
    let unit = extracted.join("lib/systemd/system").join(UNIT);
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
        if !ok || owner != "root/root" {
            return Err(format!(
                "{}: {entry}: expected root/root, drwxr-xr-x for directories, -rw-r--r-- or -rwxr-xr-x for files",
                deb.display()
            ));
        }
    }
    Ok(())
}

/// The maintainer scripts are there, executable, valid `sh`, and create
/// the service's user and the group `tss` it joins.
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
    Ok(())
}

fn control(version: &str, arch: &str, installed_kib: u64) -> String {
    format!(
        "Package: onesoidc
Version: {version}
Architecture: {arch}
Maintainer: The onesoidc authors <security@ones-now.com>
Installed-Size: {installed_kib}
Depends: libc6 (>= 2.34)
Recommends: px-device-identity | ca-certificates
Section: net
Priority: optional
Homepage: https://github.com/ones-now/onesoidc
Description: OnesID device authentication from a shell and as a service
 onesoidc gets this device's OnesID access token (client credentials with
 private_key_jwt), logs people in on their phones (CIBA and QR login),
 validates and introspects tokens, and registers devices, using the
 identity px-device-identity writes. onesoidc-watch.service keeps the
 device token fresh under /var/lib/onesoidc.
"
    )
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

/// `onesoidc 0.1.0 (commit)` → `0.1.0`.
fn cli_version(binary: &Path) -> Result<String, String> {
    let text = output(Command::new(binary).arg("--version"))?;
    text.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| format!("{} --version said {text:?}", binary.display()))
}

fn du_kib(dir: &Path) -> u64 {
    fn walk(path: &Path) -> u64 {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => fs::read_dir(path)
                .map(|entries| entries.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        }
    }
    walk(dir).div_ceil(1024)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), String> {
    Ok(())
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

/// `dir` and every directory under it: 0755.
fn set_dir_modes(dir: &Path) -> Result<(), String> {
    set_mode(dir, 0o755)?;
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            set_dir_modes(&entry.path())?;
        }
    }
    Ok(())
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
