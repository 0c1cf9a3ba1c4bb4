//! `serve`: bind, answer until told to stop, then stop cleanly.
//!
//! The steps, in order:
//!
//! 1. open the storage (creating its directories) and take its lock shared
//!    (`gc` takes it exclusive), so a bad `--root` fails before anything
//!    listens;
//! 2. bind the address, and print the address actually bound on stderr
//!    (`--addr 127.0.0.1:0` lets the kernel pick a free port; tests read
//!    it from that line); with `--token-realm` and no URL, the realm is
//!    `/token` on that address;
//! 3. sweep stale upload sessions now and every hour;
//! 4. serve: axum on hyper, on tokio's multi-threaded runtime, every
//!    connection its own task, so many clients push and pull at once;
//! 5. on SIGTERM or Ctrl-C stop accepting connections and let the requests
//!    in progress finish — an upload half-way through completes — for up
//!    to [`SHUTDOWN_GRACE`]; after that (or at a second signal) exit anyway:
//!    an interrupted upload leaves only its session directory, which the
//!    next sweep or `gc` removes.
//!
//! axum's `serve` with `with_graceful_shutdown`; tokio's signal handling.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::auth::Auth;
use crate::routes::{App, router};
use crate::storage::Storage;
use crate::uploads::{UPLOAD_MAX_AGE, Uploads};

/// How long requests in progress may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often stale upload sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

/// What `serve` needs.
#[derive(Debug)]
pub struct ServeOptions {
    pub addr: String,
    pub root: PathBuf,
    pub auth: Auth,
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
    // 1. The storage.
    let storage = Storage::open(&options.root)
        .await
        .with_context(|| format!("open the registry storage in {}", options.root.display()))?;
    let _lock = storage
        .try_lock(false)
        .with_context(|| format!("lock {}", options.root.display()))?
        .with_context(|| {
            format!(
                "gc is running on {}: wait for it to finish, then start the registry",
                options.root.display()
            )
        })?;

    // 2. The socket; then the token realm, which may name the address
    //    the kernel picked.
    let listener = TcpListener::bind(&options.addr)
        .await
        .with_context(|| format!("listen on {}", options.addr))?;
    let bound: SocketAddr = listener.local_addr().context("read the bound address")?;
    eprintln!(
        "ch06-registry: listening on http://{bound}, storing under {}",
        options.root.display()
    );
    let mut auth = options.auth;
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
    let app = Arc::new(App {
        uploads: Uploads::new(storage.clone()),
        storage,
        auth,
    });

    // 3. Stale uploads.
    let sweeper = app.clone();
    tokio::spawn(async move {
        loop {
            match sweeper.uploads.purge_stale(UPLOAD_MAX_AGE).await {
                Ok(removed) if !removed.is_empty() => {
                    eprintln!("ch06-registry: removed {} stale uploads", removed.len());
                }
                Ok(_) => {}
                Err(e) => eprintln!("ch06-registry: sweep uploads: {e}"),
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    });

    // 4. Serve; 5. stop on a signal, waiting a while for requests in progress.
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let mut stop_rx = stopping_rx.clone();
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
        let _ = stop_rx.wait_for(|stopping| *stopping).await;
    });
    let signals = async move {
        let first = stop_signal().await?;
        eprintln!(
            "ch06-registry: {first}: no new connections; finishing requests in progress \
             (up to {} s, or until a second signal)",
            SHUTDOWN_GRACE.as_secs()
        );
        let _ = stopping_tx.send(true);
        tokio::select! {
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => {}
            second = stop_signal() => { second?; }
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        served = server => served.context("serve HTTP")?,
        waited = signals => {
            waited.context("wait for signals")?;
            eprintln!("ch06-registry: stopping with requests still in progress; their upload sessions stay for gc");
            return Ok(());
        }
    }
    let _ = stopping_rx.borrow_and_update();
    eprintln!("ch06-registry: stopped");
    Ok(())
}
// ANCHOR_END: serve
