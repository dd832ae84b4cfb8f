//! The dev IdP's console and phone page in a real browser: headless
//! Chromium, driven through chromedriver, clicks what a developer clicks
//! while `onesoidc register`, `ciba` and `qr` wait in other processes:
//!
//! 1. a registration approved with **Approve**, and one rejected with **Reject**;
//! 2. a CIBA login started by `onesoidc ciba`, approved with **Approve**;
//! 3. one whose binding message is HTML, shown as text, denied with **Deny**;
//! 4. a QR login completed on the phone page (pick alice, **Confirm**,
//!    **Approve**), and one scanned with **Scan as bob** in the console.
//!
//! Screenshots of the console and the phone page go to
//! `<target dir>/console-screenshots/`.
//!
//! Needs `ONESOIDC_CHROMEDRIVER` (chromedriver's path; `cargo xtask test`
//! sets it, and installs Debian's chromium and chromium-driver under CI).
//! Without it the test says so in one line and passes, except under CI
//! (`CI` set), where it fails. `ONESOIDC_CHROMIUM` names the browser
//! (default `/usr/bin/chromium`). Nothing listens beyond loopback.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use serde_json::{Value, json};

/// Every wait (for the browser, the provider or a command) ends after this long.
const DEADLINE: Duration = Duration::from_secs(15);

/// Chromium's flags: headless, as root, and quiet on the network.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

const DESKTOP: (u32, u32) = (1400, 1000);
const PHONE: (u32, u32) = (412, 860);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// chromedriver on a free loopback port, stopped when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromedriver {
    /// Starts chromedriver, or `None` (after one line) when there is none
    /// outside CI.
    fn start() -> Option<Chromedriver> {
        let Some(path) = std::env::var_os("ONESOIDC_CHROMEDRIVER").filter(|p| !p.is_empty()) else {
            assert!(
                !in_ci(),
                "CI is set but ONESOIDC_CHROMEDRIVER is not: run this test through `cargo xtask test`, \
                 which installs chromium and chromium-driver and sets it"
            );
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "console_browser: skipped: set ONESOIDC_CHROMEDRIVER=/usr/bin/chromedriver (apt-get install chromium chromium-driver), or run `cargo xtask test`"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut child = std::process::Command::new(&path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.to_string_lossy()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("started successfully") => return Some(driver),
                Ok(_) => {}
                Err(e) => panic!("chromedriver did not start within {DEADLINE:?}: {e}"),
            }
        }
    }
}

/// Where the screenshots go: `<target dir>/console-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp
        .parent()
        .map_or_else(|| tmp.clone(), |target| target.to_path_buf())
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser, with the waits and clicks the scenario needs.
struct Browser {
    client: Client,
    shots: PathBuf,
}

type Step<T> = Result<T, String>;

impl Browser {
    async fn connect(driver: &Chromedriver, profile: &std::path::Path) -> Browser {
        let chromium =
            std::env::var("ONESOIDC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            DEADLINE,
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&driver.url),
        )
        .await
        .expect("chromedriver opens a session in time")
        .expect("chromedriver opens a Chromium session");
        Browser {
            client,
            shots: screenshot_dir(),
        }
    }

    async fn goto(&self, url: &str) -> Step<()> {
        self.client
            .goto(url)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))
    }

    /// Waits (up to the deadline) for `css` to match.
    async fn wait_for(&self, css: &str) -> Step<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(DEADLINE)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("no element matches {css} within {DEADLINE:?}: {e}"))
    }

    /// Waits until `css` matches nothing.
    async fn wait_gone(&self, css: &str) -> Step<()> {
        let started = Instant::now();
        loop {
            let found = self
                .client
                .find_all(Locator::Css(css))
                .await
                .map_err(|e| format!("cannot look for {css}: {e}"))?;
            if found.is_empty() {
                return Ok(());
            }
            if started.elapsed() > DEADLINE {
                return Err(format!("{css} still there after {DEADLINE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // the polling period of this wait
        }
    }

    /// Clicks `css` once it is there. A section replaced by a live update
    /// between finding and clicking is looked up again.
    async fn click(&self, css: &str) -> Step<()> {
        let started = Instant::now();
        loop {
            let element = self.wait_for(css).await?;
            match element.click().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_stale_element_reference() && started.elapsed() < DEADLINE => {}
                Err(e) => return Err(format!("cannot click {css}: {e}")),
            }
        }
    }

    async fn text(&self, css: &str) -> Step<String> {
        let element = self.wait_for(css).await?;
        element
            .text()
            .await
            .map_err(|e| format!("cannot read the text of {css}: {e}"))
    }

    async fn inner_html(&self, css: &str) -> Step<String> {
        let element = self.wait_for(css).await?;
        element
            .html(true)
            .await
            .map_err(|e| format!("cannot read the HTML of {css}: {e}"))
    }

    async fn count(&self, css: &str) -> Step<usize> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|found| found.len())
            .map_err(|e| format!("cannot look for {css}: {e}"))
    }

    async fn resize(&self, (width, height): (u32, u32)) -> Step<()> {
        self.client
            .set_window_size(width, height)
            .await
            .map_err(|e| format!("cannot resize the window: {e}"))
    }

    /// Saves a PNG of the window as `name`.png and returns its path.
    async fn shot(&self, name: &str) -> Step<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| format!("cannot take a screenshot: {e}"))?;
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("console_browser: screenshot {}", path.display());
        Ok(path)
    }

    /// No `alert()` ran: a binding message's script stayed text.
    async fn no_alert(&self) -> Step<()> {
        match self.client.get_alert_text().await {
            Err(CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::NoSuchAlert =>
            {
                Ok(())
            }
            Ok(text) => Err(format!("an alert is open: {text:?}")),
            Err(e) => Err(format!("cannot ask for alerts: {e}")),
        }
    }
}

/// A running `onesoidc` command.
struct Cli {
    name: String,
    child: tokio::process::Child,
}

fn cli(args: &[&str]) -> Cli {
    let child = tokio::process::Command::from(common::command(args))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    Cli {
        name: format!("onesoidc {}", args[0]),
        child,
    }
}

impl Cli {
    /// Waits for the command to exit; its exit code and stdout.
    async fn finish(self) -> Step<(Option<i32>, String)> {
        let name = self.name;
        let output = tokio::time::timeout(DEADLINE, self.child.wait_with_output())
            .await
            .map_err(|_| format!("{name} did not finish within {DEADLINE:?}"))?
            .map_err(|e| format!("{name}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            eprintln!(
                "console_browser: {name} exited with {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok((output.status.code(), stdout))
    }

    /// Waits for success; the last JSON line of stdout.
    async fn succeed(self) -> Step<Value> {
        let name = self.name.clone();
        let (code, stdout) = self.finish().await?;
        if code != Some(0) {
            return Err(format!("{name} exited with {code:?}, not 0"));
        }
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or("null");
        serde_json::from_str(last).map_err(|e| format!("{name} printed no JSON ({e}): {stdout}"))
    }
}

/// Awaits `future` (one of the provider's `next_*`) up to the deadline.
async fn next<T>(what: &str, future: impl std::future::Future<Output = T>) -> Step<T> {
    tokio::time::timeout(DEADLINE, future)
        .await
        .map_err(|_| format!("no {what} arrived within {DEADLINE:?}"))
}

fn sub_of(tokens: &Value) -> Step<String> {
    tokens["id_token_claims"]["sub"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no ID token claims in {tokens}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_clicks_through_the_console_and_the_phone_page() {
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let fast = Duration::from_secs(1);
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: fast,
        qr_interval: fast,
        registration_poll_interval: fast,
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::connect(&driver, profile.path()).await;
    let outcome = scenario(&idp, &browser).await;
    if outcome.is_err() {
        let _ = browser.shot("failure").await;
    }
    let _ = browser.client.close().await;
    drop(driver);
    idp.shutdown().await;
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

async fn scenario(idp: &DevIdp, browser: &Browser) -> Step<()> {
    let host = idp.host();
    let console = idp.console_url();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path().to_str().unwrap().to_string();
    let other = tempfile::tempdir().map_err(|e| e.to_string())?;
    let o = other.path().to_str().unwrap().to_string();
    let identity = ["--config", &format!("{d}/device.yml"), "--key-dir", &d].map(String::from);
    let with_identity = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| (*a).to_string())
            .chain(identity.iter().cloned())
            .collect()
    };
    let run = |args: Vec<String>| cli(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // 1. A registration, approved by clicking Approve.
    let title = "Kiosk 7";
    let register = cli(&[
        "register",
        "-a",
        &host,
        "-dn",
        "dev.local",
        "-t",
        title,
        "-l",
        "Lobby",
        "-r",
        "SERVER",
        "--config-dir",
        &d,
        "--key-dir",
        &d,
        "--poll-interval",
        "1",
        "--json",
    ]);
    let code = next("registration", idp.next_registration()).await?;
    browser.goto(&console).await?;
    browser
        .click(&format!(
            r#"[data-registration="{code}"] button[data-action="approve"]"#
        ))
        .await?;
    let registered = register.succeed().await?;
    let client_id = registered["client_id"]
        .as_str()
        .ok_or("no client_id")?
        .to_string();
    let device = format!(r#"[data-device="{client_id}"]"#);
    let shown = browser.text(&format!("{device} .title")).await?;
    if !shown.starts_with(title) {
        return Err(format!("the new device shows as {shown:?}, not {title:?}"));
    }
    browser
        .wait_gone(&format!("[data-registration=\"{code}\"]"))
        .await?;

    // A second registration stays pending for the screenshot; rejected below.
    let rejected = cli(&[
        "register",
        "-a",
        &host,
        "-dn",
        "dev.local",
        "-t",
        "Reception tablet",
        "-l",
        "Front desk",
        "-r",
        "PUBLIC",
        "--key-type",
        "RSA:2048",
        "--config-dir",
        &o,
        "--key-dir",
        &o,
        "--poll-interval",
        "1",
        "--json",
    ]);
    let rejected_code = next("registration", idp.next_registration()).await?;

    // A QR login waits on the device while the CIBA logins happen.
    let phone_login = run(with_identity(&["qr", "--json", "-m", "Kiosk 7: sign in?"]));
    let session = next("QR session", idp.next_qr_session()).await?;
    browser
        .wait_for(&format!(r#"[data-qr="{session}"]"#))
        .await?;

    // 2. A CIBA login started by `onesoidc ciba`, approved by clicking.
    let approved = run(with_identity(&[
        "ciba",
        "-u",
        "alice",
        "-m",
        "Kiosk 7: open the door",
        "--json",
    ]));
    let request = next("CIBA request", idp.next_ciba_request()).await?;
    browser
        .click(&format!(
            r#"[data-ciba="{}"] button[data-action="approve"]"#,
            request.auth_req_id
        ))
        .await?;
    let tokens = approved.succeed().await?;
    if sub_of(&tokens)? != "alice" {
        return Err(format!("the approved login is not alice's: {tokens}"));
    }

    // 3. A binding message with HTML in it: shown as text, then denied.
    let message = r#"<script>alert("pwned")</script> & <b>bold</b>"#;
    let denied = run(with_identity(&[
        "ciba", "-u", "bob", "-m", message, "--json",
    ]));
    let request = next("CIBA request", idp.next_ciba_request()).await?;
    let row = format!(r#"[data-ciba="{}"]"#, request.auth_req_id);
    let binding = format!("{row} .binding");
    let text = browser.text(&binding).await?;
    if text != message {
        return Err(format!(
            "the binding message shows as {text:?}, not {message:?}"
        ));
    }
    let inner = browser.inner_html(&binding).await?;
    if browser
        .count(&format!("{binding} script, {binding} b"))
        .await?
        != 0
        || !inner.contains("&lt;script&gt;")
    {
        return Err(format!("the binding message became markup: {inner}"));
    }
    browser.no_alert().await?;
    browser.shot("console").await?;
    browser
        .click(&format!(r#"{row} button[data-action="deny"]"#))
        .await?;
    let (code_denied, _) = denied.finish().await?;
    if code_denied != Some(3) {
        return Err(format!("a denied login exits 3, not {code_denied:?}"));
    }
    browser.wait_gone(&row).await?;

    // The second registration: Reject.
    browser
        .click(&format!(
            r#"[data-registration="{rejected_code}"] button[data-action="reject"]"#
        ))
        .await?;
    let (code_rejected, _) = rejected.finish().await?;
    if code_rejected != Some(3) {
        return Err(format!(
            "a rejected registration exits 3, not {code_rejected:?}"
        ));
    }

    // 4. The QR login, on the phone page at the code's cb_url.
    browser.resize(PHONE).await?;
    browser.goto(&idp.cb_url(&session)).await?;
    browser
        .click(r#"[data-step="pick"] button[data-user="alice"]"#)
        .await?;
    browser.shot("phone-pick").await?;
    browser.click("#confirm").await?;
    let request = next("CIBA request", idp.next_ciba_request()).await?;
    if request.login_hint != "alice" || request.qr_session_id.as_deref() != Some(&session) {
        return Err(format!("the phone's scan started {request:?}"));
    }
    let approve = r#"[data-step="approve"] button[data-action="approve"]"#;
    browser.wait_for(approve).await?;
    let asked = browser.text(r#"[data-step="approve"] .binding"#).await?;
    if asked != "Kiosk 7: sign in?" {
        return Err(format!("the phone shows {asked:?} as the binding message"));
    }
    browser.shot("phone").await?;
    browser.click(approve).await?;
    browser.wait_for(r#"[data-step="approved"]"#).await?;
    browser.shot("phone-approved").await?;
    let tokens = phone_login.succeed().await?;
    if sub_of(&tokens)? != "alice" {
        return Err(format!("the QR login is not alice's: {tokens}"));
    }

    // And one scanned from the console: Scan as bob, then Approve.
    browser.resize(DESKTOP).await?;
    browser.goto(&console).await?;
    let console_login = run(with_identity(&["qr", "--json"]));
    let session = next("QR session", idp.next_qr_session()).await?;
    browser
        .click(&format!(
            r#"[data-qr="{session}"] button[data-username="bob"]"#
        ))
        .await?;
    let request = next("CIBA request", idp.next_ciba_request()).await?;
    if request.login_hint != "bob" || request.qr_session_id.as_deref() != Some(&session) {
        return Err(format!("the scan started {request:?}"));
    }
    browser
        .click(&format!(
            r#"[data-ciba="{}"] button[data-action="approve"]"#,
            request.auth_req_id
        ))
        .await?;
    let tokens = console_login.succeed().await?;
    if sub_of(&tokens)? != "bob" {
        return Err(format!("the console's QR login is not bob's: {tokens}"));
    }
    browser.wait_for("#events tr.err").await?;
    browser.shot("console-after").await?;
    Ok(())
}
