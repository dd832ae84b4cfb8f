//! **Test utility, not part of OnesID**: a loopback HTTP proxy that injects
//! faults between a client and a [`DevIdp`].
//!
//! The proxy forwards requests to the real provider, so every assertion,
//! token and error stays genuine, until a test tells it to misbehave: refuse
//! connections, hang, answer 502 with an HTML page, cut a body short, send
//! 2 MiB, or answer anything at all ([`Fault`]). The device's `host` points at
//! the proxy, and the provider names itself by the proxy's address (so the
//! `aud` of client assertions, the issuer and the endpoints in discovery all
//! say the proxy): [`start_behind_proxy`] sets that up.
//!
//! ```
//! use onesoidc_devidp::faults::{Fault, start_behind_proxy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (idp, proxy) = start_behind_proxy(Default::default()).await?;
//! assert_eq!(idp.host(), proxy.host());
//! proxy.set(Fault::Down).await; // connections are refused from now on
//! proxy.set(Fault::Forward).await; // and accepted again
//! # Ok(()) }
//! ```
//!
//! It speaks just enough HTTP/1.1 for onesoidc's requests (a head and a
//! `Content-Length` body), answers one request per connection and closes it
//! (`Connection: close`), listens on loopback only, and every wait it does
//! is bounded. It ends when the [`FaultProxy`] is dropped.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::{DevIdp, DevIdpConfig};

/// Size of the body [`Fault::Oversized`] and [`Fault::OversizedChunked`] send: 2 MiB.
pub const OVERSIZED_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Longest request head or body the proxy reads.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Longest upstream response the proxy buffers.
const MAX_UPSTREAM_BYTES: usize = 8 * 1024 * 1024;
/// How long the proxy waits for a client's request, or for the provider.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Fault::StallBody`] holds a connection open at most.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// What the proxy does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Forward it to the provider and relay the answer (the default).
    Forward,
    /// The provider is down: the proxy closes its listening socket, so
    /// connections are refused (`ECONNREFUSED`). Only meaningful with
    /// [`FaultProxy::set`]; for one path ([`FaultProxy::set_for`]) it closes
    /// the connection without answering, like [`Fault::Hangup`].
    Down,
    /// Read the request, then close the connection without answering.
    Hangup,
    /// Answer `code` with an HTML page (`text/html`), as a load balancer does.
    Status {
        /// The HTTP status.
        code: u16,
        /// The HTML page.
        body: String,
    },
    /// Wait `delay`, then forward. A client that gives up meanwhile is not
    /// forwarded at all.
    Slow {
        /// How long to wait before forwarding.
        delay: Duration,
    },
    /// Send the head (200, `Content-Length: 4096`) and a few bytes of body,
    /// then nothing, holding the connection open until the client gives up.
    StallBody,
    /// Send a 200 whose `Content-Length` promises more than the body it
    /// sends, then close the connection.
    Truncated,
    /// Answer 200 with a 2 MiB body and its `Content-Length`.
    Oversized,
    /// Answer 200 with a 2 MiB body in chunks, without `Content-Length`.
    OversizedChunked,
    /// A provider under load: `status` (429 or 503) with a `Retry-After`
    /// header (seconds or an HTTP date) and an empty body.
    Busy {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` value, as sent.
        retry_after: String,
    },
    /// Answer exactly this.
    Body {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type`.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
}

impl Fault {
    /// `502 Bad Gateway` with a typical load balancer's HTML page.
    pub fn bad_gateway() -> Fault {
        Fault::html(502, "Bad Gateway")
    }

    /// `code` with an HTML error page longer than 200 characters, over several lines.
    pub fn html(code: u16, title: &str) -> Fault {
        let filler =
            "The server encountered a temporary error and could not complete your request. ";
        Fault::Status {
            code,
            body: format!(
                "<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1></center>\r\n<p>{}</p>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                filler.repeat(4)
            ),
        }
    }

    /// A 200 `application/json` answer with `json` as its body.
    pub fn json(json: &serde_json::Value) -> Fault {
        Fault::Body {
            status: 200,
            content_type: "application/json".into(),
            body: json.to_string().into_bytes(),
        }
    }
}

#[derive(Debug, Default)]
struct Rules {
    default: Option<Fault>,
    paths: HashMap<String, Fault>,
}

impl Rules {
    fn for_path(&self, path: &str) -> Fault {
        self.paths
            .get(path)
            .or(self.default.as_ref())
            .cloned()
            .unwrap_or(Fault::Forward)
    }

    fn down(&self) -> bool {
        self.default == Some(Fault::Down)
    }
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Rules>,
    /// Bumped by every change of the rules.
    version: watch::Sender<u64>,
    /// The version the accept loop has applied (listener closed or open).
    applied: watch::Sender<u64>,
    /// Why the listener could not be opened again, if it could not.
    bind_error: Mutex<Option<String>>,
    requests: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, path: &str) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(path.to_string())
            .or_default() += 1;
    }
}

/// A running fault proxy on `127.0.0.1`; see the [module docs](self).
///
/// Dropping it stops the proxy and every connection it holds.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`DevIdp`] behind a new [`FaultProxy`]: the provider names
/// itself by the proxy's address, so a device provisioned with
/// [`DevIdp::provision_device`] talks to the proxy.
pub async fn start_behind_proxy(config: DevIdpConfig) -> io::Result<(DevIdp, FaultProxy)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let proxy = FaultProxy::start(listener.local_addr()?).await?;
    let idp = DevIdp::serve(listener, Some(proxy.host()), config).await?;
    Ok((idp, proxy))
}

impl FaultProxy {
    /// Starts a proxy on an ephemeral loopback port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Rules::default()),
            version: watch::channel(0).0,
            applied: watch::channel(0).0,
            bind_error: Mutex::new(None),
            requests: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn(accept_loop(shared.clone(), listener, addr));
        Ok(FaultProxy { shared, addr, task })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`: the `host` a device behind the proxy uses.
    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the proxy does with every request from now on (paths set with
    /// [`set_for`](Self::set_for) keep their own). Returns once it is in
    /// force: after `set(Fault::Down)` connections are refused, after any
    /// other fault they are accepted again.
    ///
    /// # Panics
    ///
    /// When leaving [`Fault::Down`] and the port cannot be bound again.
    pub async fn set(&self, fault: Fault) {
        self.update(|rules| rules.default = Some(fault)).await;
    }

    /// What the proxy does with requests for `path` (exact, without the
    /// query) from now on; [`Fault::Forward`] to forward them again.
    pub async fn set_for(&self, path: &str, fault: Fault) {
        self.update(|rules| {
            rules.paths.insert(path.to_string(), fault);
        })
        .await;
    }

    /// Forward everything again (all rules dropped).
    pub async fn reset(&self) {
        self.update(|rules| *rules = Rules::default()).await;
    }

    async fn update(&self, change: impl FnOnce(&mut Rules)) {
        let version = {
            let mut rules = self.shared.rules();
            change(&mut rules);
            let mut version = 0;
            self.shared.version.send_modify(|v| {
                *v += 1;
                version = *v;
            });
            version
        };
        let mut applied = self.shared.applied.subscribe();
        // The accept loop runs until the proxy is dropped, so this ends.
        let _ = applied.wait_for(|v| *v >= version).await;
        if let Some(error) = self
            .shared
            .bind_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            panic!("fault proxy: cannot listen on {} again: {error}", self.addr);
        }
    }

    /// How many requests the proxy has received (answered or not), all paths.
    pub fn requests(&self) -> u64 {
        self.lock_requests().values().sum()
    }

    /// How many requests for `path` the proxy has received.
    pub fn requests_to(&self, path: &str) -> u64 {
        self.lock_requests().get(path).copied().unwrap_or(0)
    }

    fn lock_requests(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    let mut version = shared.version.subscribe();
    let mut connections = JoinSet::new();
    loop {
        let current = *version.borrow_and_update();
        let down = shared.rules().down();
        if down {
            // Closing the listening socket makes connects fail with ECONNREFUSED.
            listener = None;
        } else if listener.is_none() {
            listener = rebind(&shared, addr).await;
        }
        shared.applied.send_replace(current);
        loop {
            tokio::select! {
                changed = version.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                accepted = accept(listener.as_ref()) => {
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(handle(shared.clone(), stream));
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Listens on `addr` again; retries briefly in case the port is busy.
async fn rebind(shared: &Shared, addr: SocketAddr) -> Option<TcpListener> {
    let mut last = None;
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                *shared
                    .bind_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                return Some(listener);
            }
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    *shared
        .bind_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = last.map(|e| e.to_string());
    None
}

/// A request as read from the client.
struct Request {
    path: String,
    /// The head with `Connection: close` instead of any connection header.
    head: Vec<u8>,
    body: Vec<u8>,
}

async fn handle(shared: Arc<Shared>, mut client: TcpStream) {
    let request = match tokio::time::timeout(IO_TIMEOUT, read_request(&mut client)).await {
        Ok(Ok(request)) => request,
        Ok(Err(e)) => {
            tracing::debug!(%e, "fault proxy: unreadable request");
            return;
        }
        Err(_) => return,
    };
    shared.count(&request.path);
    let fault = shared.rules().for_path(&request.path);
    tracing::debug!(path = %request.path, ?fault, "fault proxy");
    let result = match fault {
        Fault::Forward => forward(&shared, &mut client, &request).await,
        Fault::Down | Fault::Hangup => Ok(()),
        Fault::Status { code, body } => {
            respond(
                &mut client,
                code,
                "text/html; charset=utf-8",
                body.as_bytes(),
            )
            .await
        }
        Fault::Slow { delay } => {
            let mut probe = [0u8; 1];
            tokio::select! {
                () = tokio::time::sleep(delay) => forward(&shared, &mut client, &request).await,
                // The request was read whole: any read now is the client leaving.
                _ = client.read(&mut probe) => Ok(()),
            }
        }
        Fault::StallBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4096\r\nconnection: close\r\n\r\n{\"access_token\":\"";
            let mut probe = [0u8; 1];
            match client.write_all(head.as_bytes()).await {
                Ok(()) => {
                    let _ = tokio::time::timeout(STALL_LIMIT, client.read(&mut probe)).await;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Fault::Truncated => {
            let response = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{\"access_token\":\"abc";
            client.write_all(response.as_bytes()).await
        }
        Fault::Oversized => {
            let body = vec![b' '; OVERSIZED_BODY_BYTES];
            respond(&mut client, 200, "application/json", &body).await
        }
        Fault::OversizedChunked => oversized_chunked(&mut client).await,
        Fault::Busy {
            status,
            retry_after,
        } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nretry-after: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                reason(status),
                retry_after.replace(['\r', '\n'], "")
            );
            client.write_all(head.as_bytes()).await
        }
        Fault::Body {
            status,
            content_type,
            body,
        } => respond(&mut client, status, &content_type, &body).await,
    };
    if let Err(e) = result {
        tracing::debug!(%e, "fault proxy: connection ended early");
    }
    let _ = client.shutdown().await;
}

async fn read_request(client: &mut TcpStream) -> io::Result<Request> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line.split(' ').nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut length = 0;
    let mut rewritten = format!("{request_line}\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = line[name.len() + 1..]
                .trim()
                .parse::<usize>()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        }
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    rewritten.push_str("connection: close\r\n\r\n");
    if length > MAX_REQUEST_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "body too long"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request {
        path,
        head: rewritten.into_bytes(),
        body,
    })
}

/// Sends the request to the provider and relays its answer, with
/// `Connection: close` (the proxy answers one request per connection).
async fn forward(shared: &Shared, client: &mut TcpStream, request: &Request) -> io::Result<()> {
    let response = tokio::time::timeout(IO_TIMEOUT, async {
        let mut upstream = TcpStream::connect(shared.upstream).await?;
        upstream.write_all(&request.head).await?;
        upstream.write_all(&request.body).await?;
        let mut response = Vec::new();
        (&mut upstream)
            .take(MAX_UPSTREAM_BYTES as u64)
            .read_to_end(&mut response)
            .await?;
        Ok::<_, io::Error>(response)
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let Some(head_end) = find(&response, b"\r\n\r\n") else {
        return client.write_all(&response).await;
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    let mut out = String::new();
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    client.write_all(out.as_bytes()).await?;
    client.write_all(&response[head_end + 4..]).await
}

async fn respond(
    client: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body).await
}

async fn oversized_chunked(client: &mut TcpStream) -> io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    client.write_all(head.as_bytes()).await?;
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..OVERSIZED_BODY_BYTES / chunk.len() {
        client
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await?;
        client.write_all(&chunk).await?;
        client.write_all(b"\r\n").await?;
    }
    client.write_all(b"0\r\n\r\n").await
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
