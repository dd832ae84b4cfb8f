//! `cargo xtask deb [--debug | --check]`: the Debian package, built by hand with
//! `dpkg-deb` (no cargo-deb to install): `<target>/deb/onesoidc_<version>_<arch>.deb`.
//!
//! It holds `/usr/bin/onesoidc`, a man page per command
//! (`/usr/share/man/man1/*.1.gz`, from `onesoidc manpages`), the bash, zsh
//! and fish completions (from `onesoidc completions`), the systemd unit
//! `onesoidc-watch.service` (`packaging/`), and the licences, README and
//! changelog under `/usr/share/doc/onesoidc/`.
//!
//! The release binary by default; `--debug` packages the debug build
//! instead, which `cargo xtask test` does to check the package's contents
//! quickly: it extracts the package with `dpkg-deb -x`, checks every file
//! and the control fields, runs the packaged binary, and runs
//! `systemd-analyze verify` on the unit inside the extracted tree when that
//! tool is present.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const UNIT: &str = "onesoidc-watch.service";

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
    let mut args = vec!["build", "-p", "onesoidc-cli"];
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
    let extracted = tempfile_dir()?;
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted))?;
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
        "ProtectHome=read-only",
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
            let out = Command::new(analyze)
                .args(["verify", "--man=no"])
                .arg(&checked)
                .output()
                .map_err(|e| format!("cannot run systemd-analyze: {e}"))?;
            let said = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || said.contains(UNIT) {
                return Err(format!("systemd-analyze verify {UNIT}: {said}"));
            }
            eprintln!("xtask: systemd-analyze verify {UNIT}: ok");
        }
        None => eprintln!("xtask: no systemd-analyze; {UNIT} not verified"),
    }
    let _ = fs::remove_dir_all(&extracted);
    eprintln!("xtask: {} checked", deb.display());
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

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("onesoidc-deb-check-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
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
