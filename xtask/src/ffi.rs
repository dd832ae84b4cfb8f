//! The C ABI (`onesoidc-ffi`): its header, an install tree for consumers,
//! and the C, C++ and Qt programs built and run against it.
//!
//! - `cargo xtask ffi-header`: writes `onesoidc-ffi/include/onesoidc.h`
//!   from the crate's sources with cbindgen (settings in
//!   `onesoidc-ffi/cbindgen.toml`). `cargo xtask test` regenerates it in
//!   memory and fails when the checked-in file differs.
//! - `cargo xtask ffi-install --prefix DIR [--release] [--tpm]`: builds the
//!   crate (with `--tpm`, with the TPM signer) and lays out what a consumer
//!   needs: `lib/libonesoidc.so`,
//!   `lib/libonesoidc.a`, `include/onesoidc.h`, `onesoidc.hpp`,
//!   `onesoidc_qt.hpp`, `lib/pkgconfig/onesoidc.pc` and
//!   `lib/cmake/onesoidc/onesoidcConfig.cmake` (`find_package(onesoidc)`).
//! - Part of `cargo xtask test` ([`test`]): the header check; then, with
//!   cmake, a C/C++ compiler, Qt 6 (`qt6-base-dev`), valgrind and
//!   pkg-config (installed with apt-get under CI as root, else a one-line
//!   skip notice): the debug build installed into `<target>/ffi/prefix`,
//!   the examples (`onesoidc-ffi/examples`) and the C test
//!   (`onesoidc-ffi/tests/c`) built with CMake through `find_package`, a
//!   compile through pkg-config, then a `onesoidc dev-idp` on a free
//!   loopback port (auto-approving), a device registered with it by
//!   `onesoidc register`, every C example mode and the Qt examples run
//!   against it with their output checked, and the C test under valgrind.
//!   The same programs, the C test and the C++/Qt tests
//!   (`onesoidc-ffi/tests/cpp`) are built again with
//!   `-fsanitize=address,undefined` and run; the threaded ones with
//!   `-fsanitize=thread` too ([`SANITIZERS`]); a run fails on any
//!   sanitizer report, and each build's runs and reports are counted.
//!   With the TSS libraries (`tpm.rs`; always under CI), the library and
//!   the CLI are built with `tpm`, a private swtpm is started, a device is
//!   registered on it with `--security tpm`, and the C test also loads
//!   that TPM identity (run plain and under ASan; not under valgrind, see
//!   `run_programs`) and must say its TPM part ran.
//!   The dev IdP (and the swtpm) are stopped afterwards, whatever happened.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The crate, relative to the workspace root.
const CRATE: &str = "onesoidc-ffi";

/// Debian packages for the C/C++/Qt checks.
const PACKAGES: [&str; 5] = ["qt6-base-dev", "cmake", "valgrind", "pkg-config", "g++"];

/// The dev IdP's timing for the runs: quick approvals, short expiries (the
/// C test waits for a CIBA request and a QR session to expire).
const DEV_IDP_ARGS: [&str; 12] = [
    "--auto-approve-ms",
    "300",
    "--ciba-interval",
    "1s",
    "--qr-interval",
    "1s",
    "--ciba-expires-in",
    "6s",
    "--qr-expires-in",
    "6s",
    "--registration-interval",
    "1s",
];

/// Longest a C or Qt program may run (a subprocess killed after this fails).
const PROGRAM_TIMEOUT_S: &str = "120";
/// Longest the C test may run under valgrind.
const VALGRIND_TIMEOUT_S: &str = "600";

/// `cargo xtask ffi-header`.
pub fn write_header() -> Result<(), String> {
    let root = crate::workspace_root();
    let path = header_path(&root);
    let header = generate_header(&root)?;
    fs::write(&path, header).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

fn header_path(root: &Path) -> PathBuf {
    root.join(CRATE).join("include").join("onesoidc.h")
}

/// The header cbindgen makes from the crate's sources now.
fn generate_header(root: &Path) -> Result<Vec<u8>, String> {
    let dir = root.join(CRATE);
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .map_err(|e| format!("cannot read {CRATE}/cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .map_err(|e| format!("cbindgen cannot generate the header from {CRATE}: {e}"))?;
    let mut bytes = Vec::new();
    bindings.write(&mut bytes);
    Ok(bytes)
}

/// Fails when the checked-in header is not what the sources generate.
fn check_header(root: &Path) -> Result<(), String> {
    let path = header_path(root);
    let wanted = generate_header(root)?;
    let current = fs::read(&path).unwrap_or_default();
    if current != wanted {
        return Err(format!(
            "{} is out of date with {CRATE}/src (or edited by hand); run `cargo xtask ffi-header` and commit it",
            path.display()
        ));
    }
    eprintln!("xtask: {} matches the sources", path.display());
    Ok(())
}

/// `cargo xtask ffi-install --prefix DIR [--release] [--tpm]`.
pub fn install_command(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask ffi-install --prefix DIR [--release] [--tpm]";
    let mut prefix = None;
    let mut release = false;
    let mut tpm = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--prefix" => prefix = Some(PathBuf::from(rest.next().ok_or(usage)?)),
            "--release" => release = true,
            "--tpm" => tpm = true,
            _ => return Err(usage.into()),
        }
    }
    let prefix = prefix.ok_or(usage)?;
    let prefix = if prefix.is_absolute() {
        prefix
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?
            .join(prefix)
    };
    let root = crate::workspace_root();
    if tpm && !crate::tpm::libraries_present() {
        return Err("--tpm needs the TSS libraries: apt-get install libtss2-dev".into());
    }
    build(release, tpm)?;
    install(&root, &crate::target_dir(&root), release, tpm, &prefix)?;
    eprintln!(
        "xtask: installed onesoidc into {}; CMake: -DCMAKE_PREFIX_PATH={0}, pkg-config: PKG_CONFIG_PATH={0}/lib/pkgconfig",
        prefix.display()
    );
    Ok(())
}

/// Builds the library (`tpm`: with the TPM signer, linking the TSS libraries).
///
/// A cdylib's file in `deps/` has no hash: every feature set (the
/// workspace tests', `cargo package`'s verify build) writes the same file,
/// and a build whose own fingerprint is fresh does not write it again. So
/// the file goes first, and cargo, missing its output, builds ours.
fn build(release: bool, tpm: bool) -> Result<(), String> {
    let profile = if release { "release" } else { "debug" };
    let deps = crate::target_dir(&crate::workspace_root())
        .join(profile)
        .join("deps");
    for name in ["libonesoidc.so", "libonesoidc.a"] {
        let _ = fs::remove_file(deps.join(name));
    }
    let mut args = vec!["build", "--package", CRATE];
    if release {
        args.push("--release");
    }
    if tpm {
        args.extend(["--features", crate::tpm::FEATURE]);
    }
    crate::cargo(&args)
}

/// Lays out the library, headers, pkg-config file and CMake package config
/// under `prefix` (`tpm`: the library was built with the TPM signer, so a
/// static link needs the TSS libraries too).
fn install(
    root: &Path,
    target: &Path,
    release: bool,
    tpm: bool,
    prefix: &Path,
) -> Result<(), String> {
    let profile = if release { "release" } else { "debug" };
    let lib = prefix.join("lib");
    let include = prefix.join("include");
    let cmake = lib.join("cmake").join("onesoidc");
    let pkgconfig = lib.join("pkgconfig");
    for dir in [&lib, &include, &cmake, &pkgconfig] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let copy = |from: PathBuf, to: PathBuf| {
        // Replace rather than overwrite: a running program may map the old file.
        let _ = fs::remove_file(&to);
        fs::copy(&from, &to)
            .map(drop)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
    };
    for name in ["libonesoidc.so", "libonesoidc.a"] {
        copy(target.join(profile).join(name), lib.join(name))?;
    }
    for name in ["onesoidc.h", "onesoidc.hpp", "onesoidc_qt.hpp"] {
        copy(
            root.join(CRATE).join("include").join(name),
            include.join(name),
        )?;
    }
    let version = env!("CARGO_PKG_VERSION");
    // A static link of a library built with `tpm` must name the TSS libraries.
    let tpm_libraries: &[&str] = if tpm { &crate::tpm::LIBRARIES } else { &[] };
    let pc_libraries: String = tpm_libraries.iter().map(|l| format!(" -l{l}")).collect();
    let cmake_libraries: String = tpm_libraries.iter().map(|l| format!(";{l}")).collect();
    let templates = root.join(CRATE).join("cmake");
    let fill = |template: &str, to: PathBuf| {
        let from = templates.join(template);
        let text = fs::read_to_string(&from)
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@VERSION@", version)
            .replace("@TPM_LIBS_PC@", &pc_libraries)
            .replace("@TPM_LIBS_CMAKE@", &cmake_libraries);
        fs::write(&to, text).map_err(|e| format!("cannot write {}: {e}", to.display()))
    };
    fill("onesoidc.pc.in", pkgconfig.join("onesoidc.pc"))?;
    fill(
        "onesoidcConfig.cmake.in",
        cmake.join("onesoidcConfig.cmake"),
    )?;
    fill(
        "onesoidcConfigVersion.cmake.in",
        cmake.join("onesoidcConfigVersion.cmake"),
    )?;
    Ok(())
}

/// The C ABI's part of `cargo xtask test`.
pub fn test() -> Result<(), String> {
    let started = Instant::now();
    let root = crate::workspace_root();
    check_header(&root)?;
    if !tools_ready()? {
        return Ok(());
    }
    let target = crate::target_dir(&root);
    let work = target.join("ffi");
    let prefix = work.join("prefix");
    // With the TSS libraries (always under CI), the library and the CLI
    // are built with `tpm`, and the C test also loads a TPM identity.
    let tpm = crate::tpm::ready()?;
    // The debug build: its dependencies are already built for the tests,
    // and valgrind reports lines.
    build(false, tpm)?;
    let mut cli_build = vec!["build", "--package", "onesoidc-cli", "--bin", "onesoidc"];
    if tpm {
        cli_build.extend(["--features", crate::tpm::FEATURE]);
    }
    crate::cargo(&cli_build)?;
    install(&root, &target, false, tpm, &prefix)?;

    let project = |name: &str| root.join(CRATE).join(name);
    let plain = Builds {
        examples: cmake_build(
            &project("examples"),
            &work.join("build-examples"),
            &prefix,
            None,
        )?,
        c_test: Some(cmake_build(
            &project("tests/c"),
            &work.join("build-tests"),
            &prefix,
            None,
        )?),
        cpp_tests: None,
    };
    let mut sanitized = Vec::new();
    for sanitizer in &SANITIZERS {
        let dir = work.join(format!("build-{}", sanitizer.name));
        let flags = Some((sanitizer.flags, sanitizer.qt));
        sanitized.push((
            sanitizer,
            Builds {
                examples: cmake_build(&project("examples"), &dir.join("examples"), &prefix, flags)?,
                c_test: match sanitizer.c_test {
                    true => Some(cmake_build(
                        &project("tests/c"),
                        &dir.join("c"),
                        &prefix,
                        flags,
                    )?),
                    false => None,
                },
                cpp_tests: Some(cmake_build(
                    &project("tests/cpp"),
                    &dir.join("cpp"),
                    &prefix,
                    flags,
                )?),
            },
        ));
    }
    pkg_config_build(&root, &work, &prefix)?;

    let cli = target
        .join("debug")
        .join(format!("onesoidc{}", std::env::consts::EXE_SUFFIX));
    let idp = DevIdp::start(&cli)?;
    eprintln!("xtask: ffi: dev-idp at {}", idp.host);
    let device = work.join("device");
    let _ = fs::remove_dir_all(&device);
    register(&cli, &idp.host, &device, &[])?;
    // A TPM identity on a private swtpm, stopped with the dev IdP.
    let swtpm = match tpm {
        true => Some(crate::tpm::Swtpm::start(&work.join("swtpm"))?),
        false => None,
    };
    let tpm_device = match &swtpm {
        Some(swtpm) => {
            let dir = work.join("device-tpm");
            let _ = fs::remove_dir_all(&dir);
            let tcti = swtpm.tcti();
            register(
                &cli,
                &idp.host,
                &dir,
                &[
                    "--security",
                    "tpm",
                    "--tcti",
                    &tcti,
                    "--key-type",
                    "ECC:p256",
                ],
            )?;
            eprintln!("xtask: ffi: a TPM identity on {tcti} in {}", dir.display());
            Some((dir, tcti))
        }
        None => None,
    };
    let tpm_test = tpm_device.as_ref().map(|(dir, tcti)| TpmTest {
        env: vec![
            (
                "ONESOIDC_TEST_TPM_DEVICE_DIR".to_string(),
                dir.display().to_string(),
            ),
            ("TPM2TOOLS_TCTI".to_string(), tcti.clone()),
        ],
    });
    let result = run_programs(&plain, &sanitized, &idp, &device, tpm_test.as_ref());
    drop(swtpm);
    drop(idp);
    eprintln!(
        "xtask: ffi: C, C++ and Qt checks took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    result
}

/// The C test's TPM part: the environment naming the TPM identity and its
/// TPM, and the line the test prints when that part ran.
struct TpmTest {
    env: Vec<(String, String)>,
}

impl TpmTest {
    const RAN: &str = "tpm identity: device token and CIBA login signed in the TPM";

    /// Fails unless the C test's output says the TPM part ran (`tpm`
    /// present) or was skipped.
    fn check(tpm: Option<&TpmTest>, text: &str, what: &str) -> Result<(), String> {
        match tpm {
            Some(_) => expect(text, Self::RAN, what),
            None => Ok(()),
        }
    }

    fn env(tpm: Option<&TpmTest>) -> Vec<(String, String)> {
        tpm.map(|t| t.env.clone()).unwrap_or_default()
    }
}

/// The build directories of one configuration (plain or sanitized).
struct Builds {
    examples: PathBuf,
    /// The C test (built plain for valgrind, and under ASan+UBSan).
    c_test: Option<PathBuf>,
    /// The C++ and Qt layers' tests (`onesoidc-ffi/tests/cpp`).
    cpp_tests: Option<PathBuf>,
}

/// A second (third) build of the programs with compiler sanitizers. The
/// Rust library is not instrumented: ASan still sees every heap access of
/// the C/C++ code (the allocator is intercepted process-wide); TSan sees
/// the C++ side's synchronisation and the threads' creation and joins.
struct Sanitizer {
    name: &'static str,
    /// CMAKE_C_FLAGS / CMAKE_CXX_FLAGS and the linker's.
    flags: &'static str,
    /// The runtime's options variable and its value (`{dir}` is the
    /// sanitizer files' directory, `onesoidc-ffi/tests/sanitizers`).
    options: &'static [(&'static str, &'static str)],
    /// Whether the C test runs under it too.
    c_test: bool,
    /// Whether every example mode runs under it, or only the threaded ones
    /// (events and managers).
    all_modes: bool,
    /// Whether the self-destroy variants run under it.
    lifetimes: bool,
    /// Whether the Qt programs are built and run under it. Not under TSan:
    /// Debian's Qt is not built with it, so a queued call's hand-off
    /// between threads (inside libQt6Core) is invisible to TSan, which
    /// then reports the slot object's release as a race.
    qt: bool,
}

const SANITIZERS: [Sanitizer; 2] = [
    Sanitizer {
        name: "asan",
        flags: "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g",
        options: &[
            (
                "ASAN_OPTIONS",
                "halt_on_error=1:detect_leaks=1:suppressions={dir}/asan.supp",
            ),
            (
                "LSAN_OPTIONS",
                "suppressions={dir}/lsan.supp:print_suppressions=0",
            ),
            ("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"),
        ],
        c_test: true,
        all_modes: true,
        lifetimes: true,
        qt: true,
    },
    Sanitizer {
        name: "tsan",
        flags: "-fsanitize=thread -fno-omit-frame-pointer -g",
        options: &[(
            "TSAN_OPTIONS",
            "halt_on_error=1:second_deadlock_stack=1:suppressions={dir}/tsan.supp",
        )],
        c_test: false,
        all_modes: false,
        lifetimes: true,
        qt: false,
    },
];

/// What a sanitizer prints for each finding.
const SANITIZER_REPORTS: [&str; 4] = [
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
];

/// The self-destroy variants of `tests/cpp/test_lifetimes.cpp` and how many
/// handles each makes (all at once).
const LIFETIME_VARIANTS: [&str; 4] = [
    "login-reset",
    "login-reassign",
    "subscription-reset",
    "subscription-reassign",
];
const LIFETIME_COUNT: &str = "100";

/// The Qt registry variants of `tests/cpp/test_qt_registry.cpp`.
const QT_REGISTRY_VARIANTS: [&str; 2] = ["removed", "destroyed"];

/// Whether the tools are there (installing them under CI); `false` after
/// the skip notice outside CI (`system::find_or_install`).
fn tools_ready() -> Result<bool, String> {
    crate::system::tools_ready(
        "ffi",
        "the C/C++/Qt examples and the C test under valgrind",
        &PACKAGES,
        missing_tools,
    )
}

/// What the checks need and this machine lacks.
fn missing_tools() -> Vec<&'static str> {
    let runs = crate::system::runs;
    let mut missing = Vec::new();
    for (tool, args) in [
        ("cmake", &["--version"][..]),
        ("c++", &["--version"][..]),
        ("valgrind", &["--version"][..]),
        ("pkg-config", &["--version"][..]),
    ] {
        if !runs(tool, args) {
            missing.push(tool);
        }
    }
    if !runs("pkg-config", &["--exists", "Qt6Core"]) {
        missing.push("Qt 6 (Qt6Core)");
    }
    missing
}

/// Configures and builds the CMake project in `source` into `build`
/// against the install tree `prefix`, with `flags` added to the compilers'
/// and the linker's (a sanitizer's; with `false`, Qt is left out);
/// returns the build directory.
fn cmake_build(
    source: &Path,
    build: &Path,
    prefix: &Path,
    flags: Option<(&str, bool)>,
) -> Result<PathBuf, String> {
    let started = Instant::now();
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(source)
        .arg("-B")
        .arg(build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg("-DCMAKE_BUILD_TYPE=Debug")
        .arg("-Wno-dev");
    if let Some((flags, qt)) = flags {
        if !qt {
            configure.arg("-DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON");
        }
        for variable in ["CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS", "CMAKE_EXE_LINKER_FLAGS"] {
            configure.arg(format!("-D{variable}={flags}"));
        }
    }
    run(&mut configure)?;
    run(Command::new("cmake")
        .arg("--build")
        .arg(build)
        .args(["--parallel", "2"]))?;
    eprintln!(
        "xtask: ffi: built {} ({:.1}s)",
        build.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(build.to_path_buf())
}

/// Compiles the C example through `pkg-config --cflags --libs onesoidc`,
/// as a Makefile-based consumer would, and runs its `version` mode.
fn pkg_config_build(root: &Path, work: &Path, prefix: &Path) -> Result<(), String> {
    let pc_path = prefix.join("lib").join("pkgconfig");
    let output = Command::new("pkg-config")
        .args(["--cflags", "--libs", "onesoidc"])
        .env("PKG_CONFIG_PATH", &pc_path)
        .output()
        .map_err(|e| format!("cannot run pkg-config: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "pkg-config --cflags --libs onesoidc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let flags = String::from_utf8_lossy(&output.stdout).to_string();
    let program = work.join("onesoidc_example_pkgconfig");
    run(Command::new("cc")
        .arg("-std=c11")
        .arg("-Wall")
        .arg("-Werror")
        .arg(
            root.join(CRATE)
                .join("examples")
                .join("c")
                .join("onesoidc_example.c"),
        )
        .arg("-o")
        .arg(&program)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display())))?;
    let version = output_of(
        Command::new(&program)
            .arg("version")
            .env_remove("LD_LIBRARY_PATH"),
    )?;
    expect(&version, "onesoidc ", "the pkg-config build's `version`")?;
    eprintln!("xtask: ffi: pkg-config build works ({})", version.trim());
    Ok(())
}

/// Registers a device with the dev IdP into `dir` (auto-approved), with
/// `extra` arguments (`--security tpm --tcti …`).
fn register(cli: &Path, host: &str, dir: &Path, extra: &[&str]) -> Result<(), String> {
    let dir_arg = dir.display().to_string();
    output_of(
        Command::new(cli)
            .args([
                "register",
                "-a",
                host,
                "--domain",
                "ffi.local",
                "-t",
                "FFI test device",
                "-l",
                "CI",
                "-r",
                "SERVER",
                "--config-dir",
                &dir_arg,
                "--key-dir",
                &dir_arg,
            ])
            .args(extra),
    )?;
    Ok(())
}

/// The example modes and what each must print.
const C_MODES: [(&str, &[&str]); 9] = [
    ("version", &["onesoidc "]),
    ("device-config", &["device id", "issuer"]),
    ("device-token", &["device access token:"]),
    (
        "well-known",
        &["https://vhh.example.com", "authenticated alice"],
    ),
    ("ciba", &["auth_req_id", "approved"]),
    (
        "ciba-events",
        &["STARTED", "AUTHENTICATED", "authenticated alice"],
    ),
    ("qr", &["scan this code", "authenticated alice"]),
    (
        "qr-events",
        &["QR_SESSION_CREATED", "QR_SCANNED", "AUTHENTICATED"],
    ),
    ("token-manager", &["TOKEN_REFRESHED", "device", "ciba_user"]),
];

/// The plain C++ examples (`examples/cpp/SECTION.cpp`, built as
/// `onesoidc_cpp_SECTION`) and what each must print.
const CPP_EXAMPLES: [(&str, &[&str]); 6] = [
    ("device_token", &["device access token:", "Bearer"]),
    (
        "applications",
        &["vhh-server: https://vhh.example.com", "authenticated alice"],
    ),
    ("ciba", &["auth_req_id", "approved: authenticated alice"]),
    (
        "ciba_events",
        &["STARTED", "AUTHENTICATED", "authenticated alice"],
    ),
    (
        "qr_events",
        &["QR_SESSION_CREATED", "QR_SCANNED", "authenticated alice"],
    ),
    (
        "token_manager",
        &["TOKEN_REFRESHED", "manager device", "manager ciba_user"],
    ),
];

/// The C++ examples that start threads of the library's (run under TSan).
const THREADED_CPP_EXAMPLES: [&str; 3] = ["ciba_events", "qr_events", "token_manager"];

/// The Qt example's modes and what each must print.
const QT_MODES: [(&str, &[&str]); 8] = [
    ("device-config", &["device id", "issuer"]),
    ("device-token", &["requestDeviceAccessToken:"]),
    (
        "well-known",
        &["application vhh-server", "authenticated alice"],
    ),
    (
        "ciba",
        &["cibaRequest: auth_req_id", "checkCibaStatus: approved"],
    ),
    ("qr", &["scan this code", "scanned", "authenticated alice"]),
    (
        "ciba-events",
        &[
            "started",
            "waitingForAuthorization",
            "authenticated alice",
            "finished 0",
        ],
    ),
    (
        "qr-events",
        &[
            "qrSessionCreated",
            "waitingForAuthorization",
            "authenticated alice",
            "finished 0",
        ],
    ),
    ("token-manager", &["tokensRefreshed", "device"]),
];

/// Example modes that start threads of the library's (events, managers):
/// the ones run under ThreadSanitizer.
const THREADED_MODES: [&str; 3] = ["ciba-events", "qr-events", "token-manager"];

fn run_programs(
    plain: &Builds,
    sanitized: &[(&Sanitizer, Builds)],
    idp: &DevIdp,
    device: &Path,
    tpm: Option<&TpmTest>,
) -> Result<(), String> {
    let config = device.join("device.yml");
    let env = vec![
        (
            "ONESOIDC_DEVICE_CONFIG".to_string(),
            config.display().to_string(),
        ),
        ("ONESOIDC_KEY_DIR".to_string(), device.display().to_string()),
        ("QT_QPA_PLATFORM".to_string(), "offscreen".to_string()),
    ];
    let mut plain_runs = Runs::new("plain", env.clone());
    run_examples(&plain.examples, &mut plain_runs, true, true)?;
    let supp_dir = crate::workspace_root()
        .join(CRATE)
        .join("tests")
        .join("sanitizers");
    for (sanitizer, builds) in sanitized {
        let started = Instant::now();
        let mut env = env.clone();
        for (name, value) in sanitizer.options {
            env.push((
                name.to_string(),
                value.replace("{dir}", &supp_dir.display().to_string()),
            ));
        }
        let mut runs = Runs::new(sanitizer.name, env);
        run_examples(
            &builds.examples,
            &mut runs,
            sanitizer.all_modes,
            sanitizer.qt,
        )?;
        if let Some(cpp) = &builds.cpp_tests {
            if sanitizer.lifetimes {
                for variant in LIFETIME_VARIANTS {
                    let text = runs.run(
                        &cpp.join("test_lifetimes"),
                        &[variant, LIFETIME_COUNT],
                        &format!("test_lifetimes {variant}"),
                    )?;
                    expect(&text, "handlers ran to the end", "test_lifetimes")?;
                }
            }
            let text = runs.run(&cpp.join("test_api"), &[], "test_api")?;
            expect(&text, " 0 failed", "test_api")?;
            let qt_test = cpp.join("test_qt_registry");
            if sanitizer.qt {
                for variant in QT_REGISTRY_VARIANTS {
                    let text =
                        runs.run(&qt_test, &[variant], &format!("test_qt_registry {variant}"))?;
                    expect(&text, "finished 0, authenticated alice", "test_qt_registry")?;
                }
            }
        }
        if let Some(c_test) = &builds.c_test {
            let text = runs.run_c_test(&c_test.join("test_onesoidc"), idp, device, tpm)?;
            expect(&text, " 0 failed", "test_onesoidc")?;
            TpmTest::check(tpm, &text, "test_onesoidc")?;
        }
        eprintln!(
            "xtask: ffi: {}: {} runs, {} sanitizer reports ({:.1}s)",
            sanitizer.name,
            runs.count,
            runs.reports,
            started.elapsed().as_secs_f64()
        );
    }
    let c_test = plain
        .c_test
        .as_ref()
        .ok_or("the plain build has no C test")?
        .join("test_onesoidc");
    if tpm.is_some() {
        // The TPM part runs plain and under ASan, not under valgrind: there
        // the TPM identity's first request (discovery) hit the 30 s HTTP
        // deadline while its CIBA login passed: valgrind runs one thread at
        // a time, and the TSS libraries' work, slowed down by it, starves
        // the request's thread past a wall-clock deadline.
        let text = plain_runs.run_c_test(&c_test, idp, device, tpm)?;
        expect(&text, " 0 failed", "test_onesoidc")?;
        TpmTest::check(tpm, &text, "test_onesoidc")?;
    }
    run_c_test_under_valgrind(&c_test, idp, device)
}

/// Every mode of the C (and Qt) examples and every C++ example, or only
/// the threaded ones, each checked for what it must print.
fn run_examples(examples: &Path, runs: &mut Runs, all_modes: bool, qt: bool) -> Result<(), String> {
    let wanted_mode = |mode: &str| all_modes || THREADED_MODES.contains(&mode);
    for (mode, wanted) in C_MODES.into_iter().filter(|(m, _)| wanted_mode(m)) {
        let what = format!("onesoidc_example {mode}");
        let text = runs.run(&examples.join("onesoidc_example"), &[mode], &what)?;
        for needle in wanted {
            expect(&text, needle, &what)?;
        }
    }
    for (section, wanted) in CPP_EXAMPLES
        .into_iter()
        .filter(|(s, _)| all_modes || THREADED_CPP_EXAMPLES.contains(s))
    {
        let program = format!("onesoidc_cpp_{section}");
        let text = runs.run(&examples.join(&program), &[], &program)?;
        for needle in wanted {
            expect(&text, needle, &program)?;
        }
    }
    for (mode, wanted) in QT_MODES.into_iter().filter(|(m, _)| qt && wanted_mode(m)) {
        let what = format!("onesoidc_qt_example {mode}");
        let text = runs.run(&examples.join("onesoidc_qt_example"), &[mode], &what)?;
        for needle in wanted {
            expect(&text, needle, &what)?;
        }
    }
    Ok(())
}

/// Runs of one build: their environment, and how many ran and how many
/// sanitizer reports they printed.
struct Runs {
    name: &'static str,
    env: Vec<(String, String)>,
    count: usize,
    reports: usize,
}

impl Runs {
    fn new(name: &'static str, env: Vec<(String, String)>) -> Self {
        Runs {
            name,
            env,
            count: 0,
            reports: 0,
        }
    }

    /// Runs `program ARGS` with a deadline; its output, or an error with it
    /// when it fails or a sanitizer reported something.
    fn run(&mut self, program: &Path, args: &[&str], what: &str) -> Result<String, String> {
        let started = Instant::now();
        let result = output_of(timed(program).args(args).envs(self.env.clone()));
        self.finish(result, what, started)
    }

    /// The C test, with its own environment (no default identity).
    fn run_c_test(
        &mut self,
        program: &Path,
        idp: &DevIdp,
        device: &Path,
        tpm: Option<&TpmTest>,
    ) -> Result<String, String> {
        let started = Instant::now();
        let result = output_of(
            timed(program)
                .envs(self.env.clone())
                .envs(TpmTest::env(tpm))
                .env("ONESOIDC_TEST_DEVICE_DIR", device)
                .env("ONESOIDC_TEST_HOST", &idp.host)
                .env_remove("ONESOIDC_DEVICE_CONFIG")
                .env_remove("ONESOIDC_KEY_DIR"),
        );
        self.finish(result, "test_onesoidc", started)
    }

    fn finish(
        &mut self,
        result: Result<String, String>,
        what: &str,
        started: Instant,
    ) -> Result<String, String> {
        self.count += 1;
        let text = match &result {
            Ok(text) | Err(text) => text,
        };
        let reports: usize = SANITIZER_REPORTS
            .iter()
            .map(|report| text.matches(report).count())
            .sum();
        self.reports += reports;
        let text = result?;
        if reports > 0 {
            return Err(format!(
                "{what} ({}) printed {reports} sanitizer report(s):\n{text}",
                self.name
            ));
        }
        eprintln!(
            "xtask: ffi: {}: {what} ok ({:.1}s)",
            self.name,
            started.elapsed().as_secs_f64()
        );
        Ok(text)
    }
}

fn run_c_test_under_valgrind(program: &Path, idp: &DevIdp, device: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut valgrind = Command::new("timeout");
    valgrind
        .args(["--kill-after=10", VALGRIND_TIMEOUT_S, "valgrind"])
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--track-origins=yes",
        ])
        .arg(format!(
            "--suppressions={}",
            crate::workspace_root()
                .join(CRATE)
                .join("tests")
                .join("c")
                .join("valgrind.supp")
                .display()
        ))
        .arg(program)
        .env("ONESOIDC_TEST_DEVICE_DIR", device)
        .env("ONESOIDC_TEST_HOST", &idp.host)
        .env_remove("ONESOIDC_TEST_TPM_DEVICE_DIR")
        .env_remove("ONESOIDC_DEVICE_CONFIG")
        .env_remove("ONESOIDC_KEY_DIR")
        .env_remove("LD_LIBRARY_PATH");
    let text = output_of(&mut valgrind)?;
    expect(&text, " 0 failed", "test_onesoidc under valgrind")?;
    for line in text.lines().filter(|l| {
        l.ends_with(" failed") || l.contains("ERROR SUMMARY") || l.contains("definitely lost")
    }) {
        eprintln!("xtask: ffi: test_onesoidc: {line}");
    }
    eprintln!(
        "xtask: ffi: the C test passed under valgrind ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `timeout --kill-after=5 PROGRAM_TIMEOUT_S program`: every run has a
/// deadline. Without `cargo run`'s LD_LIBRARY_PATH (target/debug/deps),
/// so the program loads the installed library through its rpath, as a
/// consumer's would.
fn timed(program: &Path) -> Command {
    let mut command = Command::new("timeout");
    command
        .args(["--kill-after=5", PROGRAM_TIMEOUT_S])
        .arg(program)
        .env_remove("LD_LIBRARY_PATH");
    command
}

fn expect(text: &str, needle: &str, what: &str) -> Result<(), String> {
    if text.contains(needle) {
        Ok(())
    } else {
        Err(format!(
            "{what} did not print {needle:?}; it printed:\n{text}"
        ))
    }
}

/// Runs `command`, echoing nothing; fails with its output on a non-zero exit.
fn run(command: &mut Command) -> Result<(), String> {
    output_of(command).map(drop)
}

/// Runs `command` with no stdin; its stdout and stderr together, or an
/// error with both on a non-zero exit.
fn output_of(command: &mut Command) -> Result<String, String> {
    let name = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("{name} failed ({}):\n{text}", output.status))
    }
}

/// `onesoidc dev-idp` on a free loopback port; stopped when dropped.
struct DevIdp {
    child: Child,
    host: String,
}

impl DevIdp {
    fn start(cli: &Path) -> Result<DevIdp, String> {
        let mut child = Command::new(cli)
            .args(["dev-idp", "--port", "0"])
            .args(DEV_IDP_ARGS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {} dev-idp: {e}", cli.display()))?;
        let stdout = child.stdout.take().ok_or("dev-idp has no stdout")?;
        let mut idp = DevIdp {
            child,
            host: String::new(),
        };
        // The banner's `issuer http://127.0.0.1:PORT/oidc` line; then keep
        // reading so the server never writes into a closed pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.trim().strip_prefix("issuer") {
                    let _ = tx.send(issuer.trim().to_string());
                }
            }
        });
        let issuer = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .map_err(|_| "dev-idp did not print its issuer within 30 s".to_string())?;
        idp.host = issuer
            .strip_suffix("/oidc")
            .ok_or_else(|| format!("dev-idp's issuer {issuer} does not end in /oidc"))?
            .to_string();
        Ok(idp)
    }
}

impl Drop for DevIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
