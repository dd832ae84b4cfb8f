//! Shared pieces of the onesoidc benchmark harnesses (`cargo xtask bench`).
//!
//! The harnesses are binaries (`src/bin/`), not tests: `cargo test` builds
//! them and runs none. Each prints what it measured, then one line per
//! figure for `cargo xtask bench` to put in its table:
//!
//! ```text
//! ROW<TAB>item<TAB>what<TAB>measured<TAB>target<TAB>met
//! ```
//!
//! where `met` is `yes`, `NO` or `n/a`. See `BENCHMARKS.md` at the root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use onesoidc_devidp::faults::{FaultProxy, start_behind_proxy};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// The value after `--name` on the command line, if any.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Prints a table row for `cargo xtask bench`.
pub fn row(item: &str, what: &str, measured: &str, target: &str, met: Option<bool>) {
    let met = match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "n/a",
    };
    println!("ROW\t{item}\t{what}\t{measured}\t{target}\t{met}");
}

/// Summary statistics of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Smallest value.
    pub min: f64,
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarizes `values`; `None` when empty.
    ///
    /// ```
    /// let s = onesoidc_benches::Summary::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
    /// assert_eq!((s.min, s.median, s.p90, s.max), (1.0, 2.5, 10.0, 10.0));
    /// ```
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        // Nearest rank: the smallest value with at least 90 % at or below it.
        let rank = (0.9 * n as f64).ceil() as usize;
        Some(Summary {
            n,
            min: v[0],
            median,
            p90: v[rank.clamp(1, n) - 1],
            max: v[n - 1],
        })
    }

    /// Summarizes durations, in milliseconds.
    pub fn of_ms(durations: &[Duration]) -> Option<Summary> {
        let ms: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Self::of(&ms)
    }
}

/// The median of `values` (NaN when empty).
///
/// ```
/// assert_eq!(onesoidc_benches::median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
/// assert!(onesoidc_benches::median(&[]).is_nan());
/// ```
pub fn median(values: &[f64]) -> f64 {
    Summary::of(values).map_or(f64::NAN, |s| s.median)
}

/// Nanoseconds per call of `f`, over a batch of `n` calls.
///
/// ```
/// use std::time::Duration;
/// let ns = onesoidc_benches::batch_ns(3, || std::thread::sleep(Duration::from_millis(1)));
/// assert!(ns >= 1e6, "each call sleeps 1 ms: {ns} ns");
/// ```
pub fn batch_ns<T>(n: u32, mut f: impl FnMut() -> T) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    started.elapsed().as_secs_f64() * 1e9 / f64::from(n.max(1))
}

/// Calls per batch so that one batch of `f` takes about `length`.
/// Calibrated on batches doubling from one call until one takes 1 ms, then
/// on the fastest of three such batches (one preempted batch would
/// otherwise shrink every batch after it).
///
/// ```
/// use std::time::Duration;
/// let sleep = || std::thread::sleep(Duration::from_millis(1));
/// let n = onesoidc_benches::batch_size(Duration::from_millis(10), sleep);
/// assert!((2..=10).contains(&n), "{n} calls of ≥ 1 ms in 10 ms");
/// ```
pub fn batch_size<T>(length: Duration, mut f: impl FnMut() -> T) -> u32 {
    let mut n = 1u32;
    while batch_ns(n, &mut f) * f64::from(n) < 1e6 && n < 1 << 30 {
        n *= 2;
    }
    let one = (0..3)
        .map(|_| batch_ns(n, &mut f))
        .fold(f64::INFINITY, f64::min)
        .max(0.1);
    ((length.as_secs_f64() * 1e9 / one) as u32).max(1)
}

/// Device tokens valid for a day (for the read-path benchmarks).
pub fn day_long_tokens() -> onesoidc_core::TokenSet {
    onesoidc_core::TokenSet {
        access_token: "eyJhbGciOiJFUzI1NiJ9.device.token".to_string().into(),
        token_type: "Bearer".into(),
        expires_at: Some(SystemTime::now() + Duration::from_secs(24 * 3600)),
        refresh_token: None,
        id_token: None,
        scope: None,
        dpop_jkt: None,
    }
}

/// Polls `future` once with a no-op waker and returns its output.
///
/// # Panics
///
/// When it is not ready: the benchmarks time calls that must not wait.
pub fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the future had to wait"),
    }
}

/// Whether this is a real `cargo bench` run (`--bench`), not `cargo test
/// --benches` (which only wants to know the benchmarks run) nor a
/// profiler's `--profile-time` (which wants only the filtered function).
pub fn measuring_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time")
}

/// A coin (xorshift) for which side of an interleaved pair goes first: a
/// strict alternation can fall in step with a periodic cost (a reseed every
/// N uses, a timer) and charge it to one side every time.
///
/// ```
/// let mut coin = onesoidc_benches::Coin::seeded();
/// let heads = (0..1000).filter(|_| coin.flip()).count();
/// assert!((300..700).contains(&heads));
/// ```
pub struct Coin(u64);

impl Coin {
    /// A coin seeded from the clock.
    pub fn seeded() -> Coin {
        Coin(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1),
        )
    }

    /// Heads or tails.
    pub fn flip(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 & 1 == 0
    }
}

/// The dev IdP on its own thread and current-thread runtime, so the
/// harness's own runtime (the client side being measured) does not share
/// its workers with the provider.
pub struct ProviderThread {
    idp: DevIdp,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ProviderThread {
    /// Starts a provider with `config` on 127.0.0.1 (ephemeral port).
    pub fn start(config: DevIdpConfig) -> io::Result<ProviderThread> {
        let (provider, ()) =
            Self::start_with(move || async move { Ok((DevIdp::start(config).await?, ())) })?;
        Ok(provider)
    }

    /// Starts a provider behind a [`DelayProxy`] adding `rtt` to every
    /// round trip (and one more to each new connection): the provider
    /// names itself by the proxy's address, so a device provisioned with
    /// [`DevIdp::provision_device`] talks to it through the proxy.
    pub fn start_behind_delay(
        config: DevIdpConfig,
        rtt: Duration,
    ) -> io::Result<(ProviderThread, DelayProxy)> {
        Self::start_with(move || async move {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let proxy = DelayProxy::start(listener.local_addr()?, rtt).await?;
            let idp = DevIdp::serve(listener, Some(proxy.host()), config).await?;
            Ok((idp, proxy))
        })
    }

    /// Starts a provider behind a [`FaultProxy`] (its faults are set from
    /// any runtime; it runs on the provider's thread).
    pub fn start_behind_fault_proxy(
        config: DevIdpConfig,
    ) -> io::Result<(ProviderThread, FaultProxy)> {
        Self::start_with(move || start_behind_proxy(config))
    }

    /// Starts whatever `start` starts (a provider and something beside it,
    /// `T`) on the provider's thread and runtime, which run until the
    /// returned [`ProviderThread`] is dropped.
    pub fn start_with<T, F, Fut>(start: F) -> io::Result<(ProviderThread, T)>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<(DevIdp, T)>>,
    {
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<(DevIdp, T)>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dev-idp".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match start().await {
                        Ok((idp, beside)) => {
                            let _ = ready_tx.send(Ok((idp.clone(), beside)));
                            // Runs until stopped (or the handle is dropped).
                            let _ = stop_rx.await;
                            idp.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let (idp, beside) = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the dev IdP thread ended before it started"))??;
        Ok((
            ProviderThread {
                idp,
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            beside,
        ))
    }

    /// A handle on the provider (control methods, stats).
    pub fn idp(&self) -> &DevIdp {
        &self.idp
    }
}

impl Drop for ProviderThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback TCP proxy that adds network latency: each new connection
/// waits one round trip (`rtt`, the TCP handshake) before its first bytes
/// go on, and every chunk in either direction arrives `rtt / 2` after it
/// was sent. So a request on a new connection takes two round trips plus
/// the server's time, one on a kept-alive connection one round trip.
/// Timers are tokio's (1 ms resolution). It ends, with every connection,
/// when dropped.
pub struct DelayProxy {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Starts a proxy on an ephemeral loopback port forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, rtt: Duration) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            let mut relays = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let opened = tokio::time::Instant::now();
                        relays.spawn(relay(client, upstream, opened, rtt));
                    }
                    Some(_) = relays.join_next(), if !relays.is_empty() => {}
                }
            }
        });
        Ok(DelayProxy {
            addr,
            connections,
            task,
        })
    }

    /// `http://127.0.0.1:{port}`.
    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One proxied connection, both directions, until either side closes.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    opened: tokio::time::Instant,
    rtt: Duration,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let half = rtt / 2;
    // The handshake: nothing reaches the server before one round trip.
    let up = delayed_pipe(client_read, server_write, Some(opened + rtt), half);
    let down = delayed_pipe(server_read, client_write, None, half);
    let _ = tokio::join!(up, down);
}

/// Copies `from` to `to`, each chunk (and the end of the stream) written
/// `delay` after it was read, and never before `not_before`.
async fn delayed_pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    not_before: Option<tokio::time::Instant>,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buffer).await.unwrap_or(0);
            let now = tokio::time::Instant::now();
            let at = not_before.map_or(now, |t| t.max(now)) + delay;
            // An empty chunk is the end of the stream.
            if tx.send((at, buffer[..n].to_vec())).is_err() || n == 0 {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if chunk.is_empty() {
                let _ = to.shutdown().await;
                break;
            }
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}

/// `/proc/loadavg`'s first three fields, for the record.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Formats a ratio like `0.93×`.
pub fn times(ratio: f64) -> String {
    format!("{ratio:.2}×")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_samples() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(
            (s.min, s.median, s.p90, s.max, s.n),
            (1.0, 3.0, 5.0, 5.0, 3)
        );
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Summary::of(&values).unwrap();
        assert_eq!((s.median, s.p90), (5.5, 9.0));
        assert!(Summary::of(&[]).is_none());
    }
}
