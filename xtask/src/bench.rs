//! `cargo xtask bench [ITEM...]`: every benchmark of BENCHMARKS.md, each
//! figure printed next to its target.
//!
//! Items (all by default; name some, e.g. `cargo xtask bench 3 7`, to run
//! only those):
//!
//! 1. `TokenManager::access_token()` on a valid token:
//!    `cargo bench -p onesoidc-benches --bench access_token` (criterion,
//!    then interleaved batches: the figures checked), and `--bench
//!    contended` (several threads at once, reported).
//! 2. 10,000 callers on an expired token: `bench-stampede`.
//! 3. client assertions vs the bare signature:
//!    `cargo bench -p onesoidc-benches --bench assertion` (criterion).
//! 4. 10,000 managers expiring together: `cargo bench -p onesoidc-tokens --bench fleet`.
//! 5. `onesoidc device-token --no-cache` vs openid-client (Node), whole
//!    processes: `bench-e2e`; installs `interop/bench/` (openid-client, pinned) with
//!    `npm ci` into `<target>/bench-node/`. Without node/npm onesoidc is
//!    measured alone. `ONESOIDC_BENCH_E2E_ALT=LABEL=PATH` adds another
//!    onesoidc build to the same rounds.
//! 6. CIBA approval to tokens: `bench-ciba`.
//! 7. `onesoidc --version` cold start: `bench-cold-start`.
//! 8. `onesoidc device-token` served from its cache vs `--no-cache`:
//!    `bench-cli-cache --items 8`.
//! 9. 50 `onesoidc device-token` processes at once on an empty cache:
//!    `bench-cli-cache --items 9`.
//! 10. 20 processes with a token manager each sharing one Redis for 60 s,
//!     through a killed lease holder and a Redis outage: `bench-redis-fleet`
//!     (redis-server from `$ONESOIDC_REDIS_SERVER` or `PATH`; without it the
//!     item is not measured).
//! 11. A cold `onesoidc device-token` (cached discovery) through a proxy
//!     adding a 50 ms round trip, beside the uncached flows and openid-client:
//!     `bench-cli-cache --items 11` (node as for item 5).
//! 12. A device token through the C API vs through Rust: `bench-ffi`, with
//!     the C driver `benches/c/ffi_device_token.c` compiled here against the
//!     release `libonesoidc.so`; and the size of that library, stripped.
//! 13. `onesoidc-resource`: access-token checks vs bare aws-lc-rs
//!     verification (ES256, RS256), a cached opaque token's check vs a bare
//!     map look-up and its introspection calls, and the layer's added
//!     latency in an axum server on loopback: `bench-resource`.
//! 14. TPM signatures on swtpm per algorithm, the native signer vs
//!     `openssl pkeyutl -provider tpm2` per signature (same key), and a
//!     device token with a TPM key vs a file key: the `tpm_bench` example
//!     of onesoidc-tpm, built `--release` here (it links the TSS libraries,
//!     so it stays out of the benches crate); needs swtpm, tpm2-openssl and
//!     libtss2-dev (`tpm.rs`), else the item is not measured.
//! 15. DPoP (RFC 9449): `DpopKey::proof` vs the bare signature of the same
//!     bytes, ES256, interleaved: `cargo bench -p onesoidc-benches --bench
//!     dpop_proof`; `device-token --dpop` vs bearer on loopback and through
//!     item 11's 50 ms proxy, and the round trips of nonce-requiring DPoP:
//!     `bench-cli-cache --items 15`.
//!
//! The harness binaries (`benches/src/bin/`) and `onesoidc` are built with
//! `--release` first. Criterion's results go to `<target>/criterion`; the
//! medians are read from its `estimates.json` files. The table is also
//! written to `<target>/bench/results.md`, with the machine and the load
//! average, for BENCHMARKS.md. Nothing here fails on a missed target:
//! these are benchmarks, not tests.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

const ITEMS: [&str; 15] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
];

/// One line of the results table.
struct Row {
    item: String,
    what: String,
    measured: String,
    target: String,
    met: String,
}

impl Row {
    fn new(item: &str, what: &str, measured: String, target: &str, met: Option<bool>) -> Row {
        Row {
            item: item.into(),
            what: what.into(),
            measured,
            target: target.into(),
            met: match met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "n/a",
            }
            .into(),
        }
    }

    /// A `ROW\titem\twhat\tmeasured\ttarget\tmet` line of a harness.
    fn parse(line: &str) -> Option<Row> {
        let mut fields = line.strip_prefix("ROW\t")?.split('\t');
        Some(Row {
            item: fields.next()?.into(),
            what: fields.next()?.into(),
            measured: fields.next()?.into(),
            target: fields.next()?.into(),
            met: fields.next()?.into(),
        })
    }

    fn failed(item: &str, what: &str, why: String) -> Row {
        Row {
            item: item.into(),
            what: what.into(),
            measured: format!("not measured: {why}"),
            target: String::new(),
            met: "n/a".into(),
        }
    }
}

struct Bench {
    root: PathBuf,
    target: PathBuf,
    criterion: PathBuf,
    started: SystemTime,
    rows: Vec<Row>,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let selected: Vec<&str> = if args.is_empty() {
        ITEMS.to_vec()
    } else {
        let mut chosen = Vec::new();
        for arg in args {
            let item = ITEMS.iter().find(|i| **i == arg.as_str()).ok_or_else(|| {
                format!(
                    "bench: unknown item {arg:?} (items are 1 to {})",
                    ITEMS.len()
                )
            })?;
            chosen.push(*item);
        }
        chosen
    };
    let wall = Instant::now();
    let root = crate::workspace_root();
    let target = crate::target_dir(&root);
    let mut bench = Bench {
        criterion: target.join("criterion"),
        root,
        target,
        started: SystemTime::now(),
        rows: Vec::new(),
    };
    let load_before = load_average();
    eprintln!("bench: load average {load_before} (1, 5, 15 min) before the run");

    let needs_release = selected.iter().any(|i| {
        [
            "2", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
        ]
        .contains(i)
    });
    if needs_release {
        crate::cargo(&[
            "build",
            "--release",
            "--package",
            "onesoidc-cli",
            "--bin",
            "onesoidc",
            "--package",
            "onesoidc-benches",
            "--bins",
        ])?;
    }
    for item in &selected {
        let started = Instant::now();
        match *item {
            "1" => bench.access_token(),
            "2" => bench.harness("2", "bench-stampede", &[]),
            "3" => bench.assertions(),
            "4" => bench.fleet(),
            "5" => bench.end_to_end(),
            "6" => bench.harness("6", "bench-ciba", &[]),
            "7" => {
                let cli = bench.onesoidc();
                bench.harness("7", "bench-cold-start", &["--onesoidc".into(), cli]);
            }
            "8" | "9" => {
                let args = vec![
                    "--onesoidc".to_string(),
                    bench.onesoidc(),
                    "--items".into(),
                    item.to_string(),
                ];
                bench.harness(item, "bench-cli-cache", &args);
            }
            "10" => bench.redis_fleet(),
            "11" => bench.cold_behind_proxy(),
            "12" => bench.ffi(),
            "13" => bench.harness("13", "bench-resource", &[]),
            "14" => bench.tpm(),
            "15" => {
                bench.dpop();
                let args = vec![
                    "--onesoidc".to_string(),
                    bench.onesoidc(),
                    "--items".into(),
                    "15".into(),
                ];
                bench.harness("15", "bench-cli-cache", &args);
            }
            _ => unreachable!(),
        }
        eprintln!(
            "bench: item {item} took {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    let load_after = load_average();

    let table = table(&bench.rows);
    println!();
    println!("{table}");
    let summary = format!(
        "{}\n\nload average (1, 5, 15 min): {load_before} before, {load_after} after; took {:.0} s\n",
        machine(),
        wall.elapsed().as_secs_f64()
    );
    println!("{summary}");
    let out = bench.target.join("bench");
    let results = out.join("results.md");
    fs::create_dir_all(&out)
        .and_then(|()| fs::write(&results, format!("{summary}\n{table}\n")))
        .map_err(|e| format!("cannot write {}: {e}", results.display()))?;
    eprintln!("bench: results written to {}", results.display());
    Ok(())
}

impl Bench {
    fn onesoidc(&self) -> String {
        self.release_bin("onesoidc").to_string_lossy().into_owned()
    }

    fn release_bin(&self, name: &str) -> PathBuf {
        self.target
            .join("release")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    }

    /// Runs a harness binary and keeps its `ROW` lines.
    fn harness(&mut self, item: &str, name: &str, args: &[String]) {
        self.harness_with(item, name, args, &[]);
    }

    /// [`Bench::harness`] without the environment variables `unset`.
    fn harness_with(&mut self, item: &str, name: &str, args: &[String], unset: &[&str]) {
        let program = self.release_bin(name);
        let mut command = Command::new(&program);
        command.args(args).current_dir(&self.root);
        for variable in unset {
            command.env_remove(variable);
        }
        match run_capturing(command, &format!("{name} {}", args.join(" "))) {
            Ok(lines) => {
                let rows: Vec<Row> = lines.iter().filter_map(|l| Row::parse(l)).collect();
                if rows.is_empty() {
                    self.rows
                        .push(Row::failed(item, name, "it printed no results".into()));
                }
                self.rows.extend(rows);
            }
            Err(e) => self.rows.push(Row::failed(item, name, e)),
        }
    }

    /// `cargo bench ARGS`, with criterion writing to `<target>/criterion`.
    fn cargo_bench(&self, args: &[&str]) -> Result<Vec<String>, String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .arg("bench")
            .args(args)
            .current_dir(&self.root)
            .env("CRITERION_HOME", &self.criterion);
        run_capturing(command, &format!("cargo bench {}", args.join(" ")))
    }

    /// Criterion's median for `group/function`, in ns, from this run.
    fn median_ns(&self, group: &str, function: &str) -> Result<f64, String> {
        let path = self
            .criterion
            .join(group)
            .join(function)
            .join("new")
            .join("estimates.json");
        let fresh = fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= self.started);
        if !fresh {
            return Err(format!("{} was not written by this run", path.display()));
        }
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        json_number_after(&text, "\"median\"", "\"point_estimate\"")
            .ok_or_else(|| format!("no median in {}", path.display()))
    }

    fn access_token(&mut self) {
        let lines =
            match self.cargo_bench(&["--package", "onesoidc-benches", "--bench", "access_token"]) {
                Ok(lines) => lines,
                Err(e) => {
                    self.rows.push(Row::failed("1", "access_token()", e));
                    return;
                }
            };
        // The interleaved measurement: the figures checked.
        let Some(&[token, floor, ratio]) = paired(&lines, "access_token").as_deref() else {
            self.rows.push(Row::failed(
                "1",
                "access_token()",
                "the access_token bench printed no PAIRED line".into(),
            ));
            return;
        };
        // Criterion's medians, one function after the other, for reference.
        let criterion = match (
            self.median_ns("read_path", "access_token"),
            self.median_ns("read_path", "bare_arc_swap_load_full"),
        ) {
            (Ok(t), Ok(f)) => format!("; criterion medians {t:.1} ns / {f:.1} ns"),
            (Err(e), _) | (_, Err(e)) => format!("; criterion: {e}"),
        };
        self.rows.push(Row::new(
            "1",
            "access_token() on a valid token, single thread",
            format!("median {token:.1} ns (interleaved){criterion}"),
            "≤ 50 ns",
            Some(token <= 50.0),
        ));
        self.rows.push(Row::new(
            "1",
            "access_token() / bare arc-swap load + Arc clone",
            format!("{token:.1} ns / {floor:.1} ns; median per-round ratio {ratio:.2}×"),
            "≤ 2×",
            Some(ratio <= 2.0),
        ));
        self.contended();
        self.rows.push(Row::new(
            "1",
            "no lock held across an await",
            "read path takes no lock; slow path's std Mutex guards end before each .await (clippy::await_holding_lock, denied by CI's -D warnings)".into(),
            "none",
            Some(true),
        ));
    }

    /// Item 1's reported figure: several threads reading one manager.
    fn contended(&mut self) {
        let what = "(info) 1 / 2 / 4 threads reading one manager at once";
        let lines =
            match self.cargo_bench(&["--package", "onesoidc-benches", "--bench", "contended"]) {
                Ok(lines) => lines,
                Err(e) => {
                    self.rows.push(Row::failed("1", what, e));
                    return;
                }
            };
        let figures: Option<Vec<String>> = ["1", "2", "4"]
            .iter()
            .map(|threads| {
                let ns = tagged(&lines, "CONTENDED", threads)?;
                Some(format!("{:.1}", ns.first()?))
            })
            .collect();
        match figures {
            Some(figures) => self.rows.push(Row::new(
                "1",
                what,
                format!(
                    "{} ns per call and thread (medians of 5 runs)",
                    figures.join(" / ")
                ),
                "",
                None,
            )),
            None => self.rows.push(Row::failed(
                "1",
                what,
                "the contended bench printed no CONTENDED lines".into(),
            )),
        }
    }

    fn assertions(&mut self) {
        let lines =
            match self.cargo_bench(&["--package", "onesoidc-benches", "--bench", "assertion"]) {
                Ok(lines) => lines,
                Err(e) => {
                    self.rows.push(Row::failed("3", "client assertions", e));
                    return;
                }
            };
        let per_second = |ns: f64| 1e9 / ns;
        for alg in ["ES256", "RS256", "ES384", "ES512"] {
            // The interleaved measurement: its ratio is the one checked.
            let Some(&[assertion, sign, raw, share]) = paired(&lines, alg).as_deref() else {
                self.rows.push(Row::failed(
                    "3",
                    alg,
                    "the assertion bench printed no PAIRED line".into(),
                ));
                continue;
            };
            // Criterion's medians, one function after the other.
            let group = format!("assertion_{alg}");
            let criterion = match (
                self.median_ns(&group, "client_assertion"),
                self.median_ns(&group, "pem_signer_sign"),
                self.median_ns(&group, "aws_lc_sign"),
            ) {
                (Ok(a), Ok(s), Ok(r)) => format!(
                    "; criterion medians {:.0}/s vs {:.0}/s = {:.1} %, raw {:.0}/s",
                    per_second(a),
                    per_second(s),
                    s / a * 100.0,
                    per_second(r)
                ),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => format!("; criterion: {e}"),
            };
            let reported = if matches!(alg, "ES384" | "ES512") {
                " (reported)"
            } else {
                ""
            };
            self.rows.push(Row::new(
                "3",
                &format!("{alg} client_assertion vs PemSigner::sign{reported}"),
                format!(
                    "interleaved {:.0}/s vs {:.0}/s = {:.1} % (raw aws-lc-rs {:.0}/s){criterion}",
                    per_second(assertion),
                    per_second(sign),
                    share * 100.0,
                    per_second(raw)
                ),
                "≥ 90 %",
                Some(share >= 0.9),
            ));
            if alg == "ES256" {
                self.rows.push(Row::new(
                    "3",
                    "ES256 assertions per second, one core",
                    format!(
                        "{:.0}/s ({:.1} µs each, interleaved median)",
                        per_second(assertion),
                        assertion / 1e3
                    ),
                    "≥ 20,000/s",
                    Some(per_second(assertion) >= 20_000.0),
                ));
            }
        }
    }

    /// Item 15: a DPoP proof vs the bare signature of the same bytes.
    fn dpop(&mut self) {
        let what = "ES256 DpopKey::proof vs Signer::sign of the same bytes";
        let lines =
            match self.cargo_bench(&["--package", "onesoidc-benches", "--bench", "dpop_proof"]) {
                Ok(lines) => lines,
                Err(e) => {
                    self.rows.push(Row::failed("15", what, e));
                    return;
                }
            };
        let Some(&[proof, sign, share]) = paired(&lines, "ES256").as_deref() else {
            self.rows.push(Row::failed(
                "15",
                what,
                "the dpop_proof bench printed no PAIRED line".into(),
            ));
            return;
        };
        self.rows.push(Row::new(
            "15",
            what,
            format!(
                "interleaved {:.0}/s vs {:.0}/s = {:.1} % ({:.1} µs per proof, one core)",
                1e9 / proof,
                1e9 / sign,
                share * 100.0,
                proof / 1e3
            ),
            "≥ 90 %",
            Some(share >= 0.9),
        ));
    }

    fn fleet(&mut self) {
        match self.cargo_bench(&["--package", "onesoidc-tokens", "--bench", "fleet"]) {
            Ok(lines) => self.fleet_rows(&lines),
            Err(e) => self.rows.push(Row::failed("4", "fleet", e)),
        }
    }

    /// The rows of item 4, from the fleet bench's output.
    fn fleet_rows(&mut self, lines: &[String]) {
        // "spread: busiest window t = 3531 s with 372 refreshes = 3.72 % (target <= 5 %); mean ..."
        let busiest = lines.iter().find_map(|l| {
            let rest = l.split("busiest window ").nth(1)?;
            let (detail, percent) = rest.split(" %").next()?.rsplit_once(" = ")?;
            Some((percent.trim().parse::<f64>().ok()?, detail.trim()))
        });
        match busiest {
            Some((percent, detail)) => self.rows.push(Row::new(
                "4",
                "10,000 managers expiring together: busiest 1-s window",
                format!("{percent:.2} % of the refreshes ({detail})"),
                "≤ 5 %",
                Some(percent <= 5.0),
            )),
            None => self.rows.push(Row::failed(
                "4",
                "busiest window",
                "the fleet bench printed no `busiest window` line".into(),
            )),
        }
        // "memory: RSS ... : 1520 bytes = 1.48 KiB per manager (target <= 4 KiB)"
        let per_manager = lines.iter().find_map(|l| {
            let before = l.split(" KiB per manager").next()?;
            if before.len() == l.len() {
                return None;
            }
            before.rsplit(' ').next()?.parse::<f64>().ok()
        });
        match per_manager {
            Some(kib) => self.rows.push(Row::new(
                "4",
                "resident memory per idle manager",
                format!("{kib:.2} KiB"),
                "≤ 4 KiB",
                Some(kib <= 4.0),
            )),
            None => self.rows.push(Row::failed(
                "4",
                "memory per manager",
                "the fleet bench printed no `KiB per manager` line".into(),
            )),
        }
    }

    fn end_to_end(&mut self) {
        let mut args = vec!["--onesoidc".to_string(), self.onesoidc()];
        match self.node_client() {
            Ok(Some((node, script))) => {
                args.extend(["--node".into(), node, "--script".into()]);
                args.push(script.to_string_lossy().into_owned());
            }
            Ok(None) => {}
            Err(e) => {
                self.rows.push(Row::failed("5", "openid-client install", e));
                return;
            }
        }
        // Another onesoidc build to compare, e.g. one without aws-lc's CPU
        // jitter entropy (see BENCHMARKS.md).
        if let Ok(alt) = std::env::var("ONESOIDC_BENCH_E2E_ALT") {
            args.extend(["--alt".into(), alt]);
        }
        self.harness("5", "bench-e2e", &args);
    }

    /// Item 12: the C API against Rust, and the library's stripped size.
    /// Item 13: onesoidc-tpm's `tpm_bench` example, release.
    fn tpm(&mut self) {
        let what = "TPM signatures on swtpm";
        match crate::tpm::ready() {
            Ok(true) => {}
            Ok(false) => {
                let why = "swtpm, tpm2-openssl or libtss2-dev missing".into();
                return self.rows.push(Row::failed("14", what, why));
            }
            Err(e) => return self.rows.push(Row::failed("14", what, e)),
        }
        let build = [
            "build",
            "--release",
            "--package",
            crate::tpm::CRATE,
            "--example",
            "tpm_bench",
        ];
        if let Err(e) = crate::cargo(&build) {
            return self.rows.push(Row::failed("14", what, e));
        }
        let example = self
            .target
            .join("release")
            .join("examples")
            .join("tpm_bench");
        let mut command = Command::new(&example);
        command.current_dir(&self.root).env("TSS2_LOG", "all+none");
        match run_capturing(command, "tpm_bench") {
            Ok(lines) => {
                let rows: Vec<Row> = lines.iter().filter_map(|l| Row::parse(l)).collect();
                if rows.is_empty() {
                    self.rows
                        .push(Row::failed("14", what, "it printed no results".into()));
                }
                self.rows.extend(rows);
            }
            Err(e) => self.rows.push(Row::failed("14", what, e)),
        }
    }

    fn ffi(&mut self) {
        let what = "device token through the C API / through Rust";
        if let Err(e) = crate::cargo(&["build", "--release", "--package", "onesoidc-ffi"]) {
            self.rows.push(Row::failed("12", what, e));
            return;
        }
        let library = self.target.join("release").join("libonesoidc.so");
        match self.c_driver() {
            Ok(driver) => {
                // `cargo run` (how xtask runs) puts target/debug/deps on
                // LD_LIBRARY_PATH, which would beat the driver's rpath and
                // load the debug libonesoidc.so.
                let driver = driver.to_string_lossy().into_owned();
                self.harness_with(
                    "12",
                    "bench-ffi",
                    &["--c-driver".into(), driver],
                    &["LD_LIBRARY_PATH"],
                );
            }
            Err(e) => self.rows.push(Row::failed("12", what, e)),
        }
        let size = "libonesoidc.so, release, stripped (x86_64)";
        match stripped_size(&library, &self.target.join("bench-ffi")) {
            Ok((stripped, full)) => self.rows.push(Row::new(
                "12",
                size,
                format!(
                    "{:.1} MiB ({stripped} bytes; {:.1} MiB before strip)",
                    stripped as f64 / 1048576.0,
                    full as f64 / 1048576.0
                ),
                "report",
                None,
            )),
            Err(e) => self.rows.push(Row::failed("12", size, e)),
        }
    }

    /// Compiles `benches/c/ffi_device_token.c` against the release library.
    fn c_driver(&self) -> Result<PathBuf, String> {
        let out = self.target.join("bench-ffi");
        fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let driver = out.join("ffi_device_token");
        let release = self.target.join("release");
        let status = Command::new("cc")
            .args(["-O2", "-std=c11", "-Wall", "-Werror"])
            .arg(
                self.root
                    .join("benches")
                    .join("c")
                    .join("ffi_device_token.c"),
            )
            .arg("-I")
            .arg(self.root.join("onesoidc-ffi").join("include"))
            .arg("-L")
            .arg(&release)
            .arg("-lonesoidc")
            .arg(format!("-Wl,-rpath,{}", release.display()))
            .arg("-o")
            .arg(&driver)
            .status()
            .map_err(|e| format!("cannot run cc: {e}"))?;
        if status.success() {
            Ok(driver)
        } else {
            Err(format!(
                "cc failed on benches/c/ffi_device_token.c ({status})"
            ))
        }
    }

    /// Item 10, with a redis-server if there is one (the harness says
    /// "not measured" without).
    fn redis_fleet(&mut self) {
        let mut args = Vec::new();
        let server = std::env::var("ONESOIDC_REDIS_SERVER")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| crate::system::on_path("redis-server"));
        match server {
            Some(server) => args.extend(["--redis-server".into(), server]),
            None => eprintln!(
                "bench: no redis-server (apt-get install redis-server, or set ONESOIDC_REDIS_SERVER): item 10 is not measured"
            ),
        }
        self.harness("10", "bench-redis-fleet", &args);
    }

    /// Item 11: with openid-client beside it when node/npm are there.
    fn cold_behind_proxy(&mut self) {
        let mut args = vec![
            "--onesoidc".to_string(),
            self.onesoidc(),
            "--items".into(),
            "11".into(),
        ];
        match self.node_client() {
            Ok(Some((node, script))) => {
                args.extend(["--node".into(), node, "--script".into()]);
                args.push(script.to_string_lossy().into_owned());
            }
            Ok(None) => {}
            Err(e) => {
                self.rows
                    .push(Row::failed("11", "openid-client install", e));
                return;
            }
        }
        self.harness("11", "bench-cli-cache", &args);
    }

    /// node and the installed openid-client script, or `None` without node/npm.
    fn node_client(&self) -> Result<Option<(String, PathBuf)>, String> {
        let node = std::env::var("ONESOIDC_INTEROP_NODE").unwrap_or_else(|_| "node".into());
        let npm = crate::interop::npm();
        let works = |program: &str| {
            Command::new(program)
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !works(&node) || !works(npm) {
            eprintln!(
                "bench: node/npm not found: item 5 measures onesoidc alone (no openid-client comparison)"
            );
            return Ok(None);
        }
        let cache = self.target.join("bench-node");
        crate::interop::npm_install(
            "bench",
            &self.root.join("interop").join("bench"),
            &["package.json", "package-lock.json", "device_token.mjs"],
            "openid-client",
            &cache,
        )?;
        Ok(Some((node, cache.join("device_token.mjs"))))
    }
}

/// The size of `library` after `strip` (of a copy in `dir`), and before.
fn stripped_size(library: &std::path::Path, dir: &std::path::Path) -> Result<(u64, u64), String> {
    let copy = dir.join("libonesoidc.stripped.so");
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::copy(library, &copy).map_err(|e| format!("cannot copy {}: {e}", library.display()))?;
    let status = Command::new("strip")
        .arg(&copy)
        .status()
        .map_err(|e| format!("cannot run strip: {e}"))?;
    if !status.success() {
        return Err(format!("strip failed ({status})"));
    }
    let size = |path: &std::path::Path| {
        fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))
    };
    Ok((size(&copy)?, size(library)?))
}

/// Runs `command`, echoing its stdout (all but `ROW` lines) and returning
/// every line; stderr passes through. Fails on a non-zero exit.
/// The numbers of a bench's `PAIRED<TAB>label<TAB>number...` line (its
/// interleaved measurement).
fn paired(lines: &[String], label: &str) -> Option<Vec<f64>> {
    tagged(lines, "PAIRED", label)
}

/// The numbers of a bench's `TAG<TAB>label<TAB>number...` line.
fn tagged(lines: &[String], tag: &str, label: &str) -> Option<Vec<f64>> {
    lines.iter().find_map(|line| {
        let mut fields = line.strip_prefix(tag)?.strip_prefix('\t')?.split('\t');
        if fields.next()? != label {
            return None;
        }
        fields.map(|x| x.parse().ok()).collect()
    })
}

fn run_capturing(mut command: Command, name: &str) -> Result<Vec<String>, String> {
    eprintln!("bench: {name}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if !line.starts_with("ROW\t") {
            println!("{line}");
        }
        lines.push(line);
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for {name}: {e}"))?;
    if status.success() {
        Ok(lines)
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

/// The number after `key` that follows `section` in a JSON text.
fn json_number_after(text: &str, section: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(section)? + section.len()..];
    let rest = &rest[rest.find(key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| item | what | measured | target | met? |\n| --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.item, r.what, r.measured, r.target, r.met
        ));
    }
    out
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// nproc, CPU model, memory and date, for the record.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .map_or("unknown".into(), |m| m.trim().to_string());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".into(), |kib| {
            format!("{:.1} GiB", kib / 1048576.0)
        });
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("machine: {cpus} CPUs ({model}), {memory} memory; date {date}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_medians() {
        let text = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1.5,"standard_error":0.1},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":70.1,"upper_bound":75.2},"point_estimate":72.25,"standard_error":0.3}}"#;
        assert_eq!(
            json_number_after(text, "\"median\"", "\"point_estimate\""),
            Some(72.25)
        );
        assert_eq!(
            json_number_after(text, "\"slope\"", "\"point_estimate\""),
            None
        );
    }

    #[test]
    fn parses_the_fleet_bench() {
        let mut bench = Bench {
            root: PathBuf::new(),
            target: PathBuf::new(),
            criterion: PathBuf::new(),
            started: SystemTime::now(),
            rows: Vec::new(),
        };
        bench.fleet_rows(&[
            "memory: RSS 3.0 MiB -> 19.2 MiB for 10000 idle managers (registry, task, timer, tokens): 1700 bytes = 1.66 KiB per manager (target <= 4 KiB)".into(),
            "spread: busiest window t = 3525 s with 374 refreshes = 3.74 % (target <= 5 %); mean 3.23 %".into(),
        ]);
        let measured: Vec<&str> = bench.rows.iter().map(|r| r.measured.as_str()).collect();
        assert_eq!(
            measured,
            [
                "3.74 % of the refreshes (t = 3525 s with 374 refreshes)",
                "1.66 KiB"
            ]
        );
        assert!(bench.rows.iter().all(|r| r.met == "yes"));
    }

    #[test]
    fn reads_paired_lines_by_label() {
        let lines = [
            "paired: access_token 61.5 ns".to_string(),
            "PAIRED\tES256\t31500.0\t28600.0\t28300.0\t0.9080".to_string(),
            "PAIRED\taccess_token\t61.50\t44.50\t1.3900".to_string(),
        ];
        assert_eq!(paired(&lines, "access_token"), Some(vec![61.5, 44.5, 1.39]));
        assert_eq!(paired(&lines, "ES256").map(|v| v.len()), Some(4));
        assert_eq!(paired(&lines, "RS256"), None);
    }

    #[test]
    fn parses_harness_rows() {
        let row = Row::parse("ROW\t7\tcold start\tmedian 1.2 ms\t≤ 5 ms\tyes").unwrap();
        assert_eq!((row.item.as_str(), row.met.as_str()), ("7", "yes"));
        assert!(Row::parse("stampede: round 1").is_none());
    }
}
