//! `serve`: bind, answer until told to stop, then stop cleanly.
//!
//! The steps, in order:
//!
//! 1. bind the address, so that a bad or busy one fails before anything
//!    is made on disk, and print the address actually bound on stderr
//!    (`--addr 127.0.0.1:0` lets the kernel pick a free port; tests read
//!    it from that line); with `--token-realm` and no URL, the realm is
//!    `/token` on that address;
//! 2. open the storage (creating its directories) and take its lock shared
//!    (`gc` takes it exclusive);
//! 3. sweep stale upload sessions now and every hour;
//! 4. serve: hyper's HTTP/1.1 on tokio's multi-threaded runtime, every
//!    connection its own task, so many clients push and pull at once, and
//!    none can hold the server hostage (below);
//! 5. on SIGTERM or Ctrl-C stop accepting connections and let the requests
//!    in progress finish — an upload half-way through completes — for up
//!    to [`SHUTDOWN_GRACE`]; after that (or at a second signal) exit anyway:
//!    an interrupted upload leaves only its session directory, which the
//!    next sweep or `gc` removes.
//!
//! **Connections that do nothing.** Each open connection costs a file
//! descriptor, and a process has only `RLIMIT_NOFILE` of them (often
//! 1024). A client that opens a thousand connections and sends nothing
//! would otherwise exhaust them: `accept` fails with `EMFILE`, and the
//! server answers no one. So: a request's headers must arrive within
//! `--header-timeout`, which also closes a kept-alive connection idle that
//! long (hyper's `header_read_timeout`); a connection on which nothing
//! moves either way for `--idle-timeout` (a stalled body, a client that
//! stopped reading) is closed; at most half the descriptor limit are
//! served at once, the rest wait in the kernel's listen queue, leaving
//! descriptors for the storage's files; and if `accept` fails anyway
//! (`EMFILE`, `ENFILE`), the server waits a little, doubling up to a
//! second, instead of spinning or stopping.
//!
//! hyper's `http1::Builder`, hyper-util's `GracefulShutdown`; tokio's
//! signal handling; getrlimit(2), accept(2) (`EMFILE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::auth::Auth;
use crate::proxy::{Proxy, ProxyOptions};
use crate::routes::{App, router};
use crate::storage::{RootLock, Storage};
use crate::uploads::{UPLOAD_MAX_AGE, Uploads};

/// How long requests in progress may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often stale upload sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);
/// The longest wait between two `accept` attempts that failed.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a connection may do nothing.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a request's headers to arrive, counted from when the server is
    /// ready for them: also how long a kept-alive connection may sit idle.
    pub header: Duration,
    /// For anything to move on a connection during a request (a stalled
    /// body, a client that stopped reading the answer).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(30),
            idle: Duration::from_secs(300),
        }
    }
}

/// What `serve` needs.
#[derive(Debug)]
pub struct ServeOptions {
    pub addr: String,
    pub root: PathBuf,
    pub auth: Auth,
    pub timeouts: Timeouts,
    /// With `--proxy-remote-url`: a pull-through cache of that registry.
    pub proxy: Option<ProxyOptions>,
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); returns which.
async fn stop_signal() -> std::io::Result<&'static str> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

// ANCHOR: serve
/// Runs the registry until a stop signal.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    // 1. The socket, before anything else: a bad or busy address leaves
    //    nothing behind.
    let listener = TcpListener::bind(&options.addr)
        .await
        .with_context(|| format!("listen on {}", options.addr))?;
    let bound: SocketAddr = listener.local_addr().context("read the bound address")?;

    // 2. The storage; then the token realm, which may name the address
    //    the kernel picked.
    let (storage, _lock) = open_storage(&options.root).await?;
    eprintln!(
        "ch06-registry: listening on http://{bound}, storing under {}",
        options.root.display()
    );
    let mut auth = options.auth;
    name_token_realm(&mut auth, bound);
    let proxy = match &options.proxy {
        Some(proxy) => {
            eprintln!(
                "ch06-registry: a pull-through cache of {}, tags re-checked after {} s",
                proxy.remote_url,
                proxy.ttl.as_secs()
            );
            Some(Proxy::new(proxy)?)
        }
        None => None,
    };
    let app = Arc::new(App {
        uploads: Uploads::new(storage.clone()),
        storage,
        auth,
        proxy,
    });

    // 3. Stale uploads.
    sweep_uploads_hourly(app.clone());

    // 4. Serve until a signal; 5. then wait a while for requests in
    //    progress, each connection closing once its request is answered.
    let graceful = GracefulShutdown::new();
    let first = tokio::select! {
        failed = accept_connections(&listener, app, options.timeouts, &graceful) => {
            return failed;
        }
        first = stop_signal() => first.context("wait for signals")?,
    };
    drop(listener);
    finish_requests(graceful, first).await
}
// ANCHOR_END: serve

// ANCHOR: open_storage
/// Opens the storage under `root` and takes its lock shared, which fails
/// while `gc` holds it; the lock is held as long as the registry runs.
async fn open_storage(root: &Path) -> anyhow::Result<(Storage, RootLock)> {
    let storage = Storage::open(root)
        .await
        .with_context(|| format!("open the registry storage in {}", root.display()))?;
    let lock = storage
        .try_lock(false)
        .with_context(|| format!("lock {}", root.display()))?
        .with_context(|| {
            format!(
                "gc is running on {}: wait for it to finish, then start the registry",
                root.display()
            )
        })?;
    Ok((storage, lock))
}
// ANCHOR_END: open_storage

// ANCHOR: name_token_realm
/// With tokens, names the realm `/token` on the bound address unless
/// `--token-realm` gave a URL, and says where tokens come from.
fn name_token_realm(auth: &mut Auth, bound: SocketAddr) {
    if let Some(tokens) = auth.tokens_mut() {
        if tokens.realm.is_empty() {
            tokens.realm = format!("http://{bound}/token");
        }
        eprintln!(
            "ch06-registry: bearer tokens from {}, good for {} s",
            tokens.realm,
            tokens.ttl.as_secs()
        );
    }
}
// ANCHOR_END: name_token_realm

// ANCHOR: sweep_uploads_hourly
/// Starts a task that removes stale upload sessions now and every
/// [`SWEEP_EVERY`].
fn sweep_uploads_hourly(app: Arc<App>) {
    tokio::spawn(async move {
        loop {
            match app.uploads.purge_stale(UPLOAD_MAX_AGE).await {
                Ok(removed) if !removed.is_empty() => {
                    eprintln!("ch06-registry: removed {} stale uploads", removed.len());
                }
                Ok(_) => {}
                Err(e) => eprintln!("ch06-registry: sweep uploads: {e}"),
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    });
}
// ANCHOR_END: sweep_uploads_hourly

// ANCHOR: finish_requests
/// After the `first` stop signal: waits for the requests in progress, for
/// at most [`SHUTDOWN_GRACE`] or until a second signal.
async fn finish_requests(graceful: GracefulShutdown, first: &str) -> anyhow::Result<()> {
    eprintln!(
        "ch06-registry: {first}: no new connections; finishing requests in progress \
         (up to {} s, or until a second signal)",
        SHUTDOWN_GRACE.as_secs()
    );
    tokio::select! {
        _ = graceful.shutdown() => {
            eprintln!("ch06-registry: stopped");
        }
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            eprintln!("ch06-registry: stopping with requests still in progress; their upload sessions stay for gc");
        }
        second = stop_signal() => {
            second.context("wait for signals")?;
            eprintln!("ch06-registry: stopping with requests still in progress; their upload sessions stay for gc");
        }
    }
    Ok(())
}
// ANCHOR_END: finish_requests

/// How many connections to serve at once: half the descriptor limit
/// (`RLIMIT_NOFILE`, soft), so that each may also open a file or two of
/// the storage, and at least 8.
pub fn connection_limit() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    usize::try_from(soft / 2).unwrap_or(usize::MAX).max(8)
}

// ANCHOR: accept_connections
/// Accept connections for ever, each served in a task of its own, at most
/// [`connection_limit`] at once. Returns only on an error that is not
/// about one connection or about descriptors running out.
async fn accept_connections(
    listener: &TcpListener,
    app: Arc<App>,
    timeouts: Timeouts,
    graceful: &GracefulShutdown,
) -> anyhow::Result<()> {
    let service = TowerToHyperService::new(router(app));
    let slots = Arc::new(Semaphore::new(connection_limit()));
    let mut backoff = Duration::ZERO;
    loop {
        // 1. A free slot: while all are taken, new connections wait in
        //    the kernel's listen queue.
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .context("connection slots")?;
        // 2. A connection; out of descriptors, wait and try again.
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) if is_resource_error(&e) => {
                if backoff.is_zero() {
                    eprintln!("ch06-registry: accept: {e}: waiting for connections to close");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(10), ACCEPT_BACKOFF_MAX);
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(e) => return Err(e).context("accept a connection"),
        };
        backoff = Duration::ZERO;
        // 3. HTTP/1.1 on it, with both timeouts, until it closes.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleTimeout::new(stream, timeouts.idle));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header)
            .serve_connection(io, service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
}
// ANCHOR_END: accept_connections

/// An error of one connection only (it went away before we took it).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Out of descriptors or memory for sockets: passes once some close.
fn is_resource_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

/// A connection that fails with `TimedOut` once nothing has moved on it,
/// either way, for `idle`: reading and writing push the deadline back.
struct IdleTimeout {
    stream: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, idle: Duration) -> IdleTimeout {
        IdleTimeout {
            stream,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// After a poll of the stream: moved, so later; or still waiting, and
    /// for too long?
    fn check<T>(
        &mut self,
        polled: Poll<std::io::Result<T>>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.deadline.as_mut().reset(Instant::now() + self.idle);
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "nothing moved on the connection for the idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.check(polled, cx)
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.check(polled, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.check(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
