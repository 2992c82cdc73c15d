//! The proxy listener's worker threads.
//!
//! Each worker is one OS thread running a single-threaded tokio runtime with its
//! own listening socket on the proxy address (`SO_REUSEPORT`: the kernel spreads
//! new connections over the workers). A connection, its request tasks and the
//! upstream connections those requests check out all live on the worker that
//! accepted it (the upstream client keeps one pool per thread), so a request is
//! served without waking another thread. The control plane (signals, reload,
//! credential refreshers, the admin listener) runs on the main runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

use super::ServerError;
use crate::proxy::Proxy;

/// Backlog of each worker's listening socket.
const BACKLOG: u32 = 1024;

/// The proxy's listening sockets, bound but not yet served.
pub(crate) struct ProxyListeners {
    sockets: Vec<std::net::TcpListener>,
    addr: SocketAddr,
}

impl ProxyListeners {
    /// Binds `count` sockets (at least one) to `addr`; a port of 0 picks one
    /// free port that all of them share.
    pub(crate) fn bind(addr: SocketAddr, count: usize) -> Result<Self, ServerError> {
        let fail = |source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        };
        let mut sockets = Vec::with_capacity(count.max(1));
        let mut bound = addr;
        for _ in 0..count.max(1) {
            let socket = match bound {
                SocketAddr::V4(_) => TcpSocket::new_v4(),
                SocketAddr::V6(_) => TcpSocket::new_v6(),
            }
            .map_err(fail)?;
            socket.set_reuseaddr(true).map_err(fail)?;
            socket.set_reuseport(true).map_err(fail)?;
            socket.bind(bound).map_err(fail)?;
            let listener = socket.listen(BACKLOG).map_err(fail)?;
            bound = listener.local_addr().map_err(fail)?;
            sockets.push(listener.into_std().map_err(fail)?);
        }
        Ok(Self {
            sockets,
            addr: bound,
        })
    }

    /// The address the sockets are bound to (the real port when 0 was asked).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts one worker thread per socket, serving `proxy` until `drain` turns
    /// true and every connection has finished.
    pub(crate) fn serve(
        self,
        proxy: Arc<Proxy>,
        drain: watch::Receiver<bool>,
    ) -> Result<Workers, ServerError> {
        let mut done = Vec::with_capacity(self.sockets.len());
        for (index, socket) in self.sockets.into_iter().enumerate() {
            let (finished_tx, finished_rx) = oneshot::channel();
            let proxy = proxy.clone();
            let drain = drain.clone();
            std::thread::Builder::new()
                .name(format!("signet-proxy-{index}"))
                .spawn(move || {
                    if let Err(e) = serve_one(socket, proxy, drain) {
                        tracing::error!(worker = index, error = %e, "proxy worker stopped");
                    }
                    let _ = finished_tx.send(());
                })
                .map_err(ServerError::Worker)?;
            done.push(finished_rx);
        }
        Ok(Workers { done })
    }
}

/// Runs one worker: a single-threaded runtime serving `socket`.
fn serve_one(
    socket: std::net::TcpListener,
    proxy: Arc<Proxy>,
    drain: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        socket.set_nonblocking(true)?;
        let listener = TcpListener::from_std(socket)?;
        serve_connections(listener, proxy, drain).await;
        Ok(())
    })
}

/// Accepts connections until `drain` turns true, then lets every open
/// connection finish its in-flight requests (idle ones close at once) and
/// returns when the last one has closed.
async fn serve_connections(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    mut drain: watch::Receiver<bool>,
) {
    // Every connection task holds a receiver; all gone = all connections closed.
    let (closed_tx, closed_rx) = watch::channel(());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = drain.wait_for(|d| *d) => break,
        };
        // Responses are written as they stream: never hold a small write back.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let proxy = proxy.clone();
        let drain = drain.clone();
        let closed = closed_rx.clone();
        tokio::spawn(serve_connection(stream, proxy, drain, closed));
    }
    drop(closed_rx);
    drop(listener);
    closed_tx.closed().await;
}

/// Serves one client connection (HTTP/1.1, or h2c by its preface) until it
/// closes; once `drain` turns true it finishes what is in flight and closes.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    proxy: Arc<Proxy>,
    mut drain: watch::Receiver<bool>,
    _closed: watch::Receiver<()>,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.handle(request.map(Body::new)).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "client connection ended with an error");
                }
                return;
            }
            _ = drain.wait_for(|d| *d), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Handles a failed `accept`: a connection that died while queued is
/// skipped; anything else (out of file descriptors, ...) is logged and
/// accepting pauses for a second instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// The running workers.
pub(crate) struct Workers {
    done: Vec<oneshot::Receiver<()>>,
}

impl Workers {
    /// Resolves when every worker has drained and stopped.
    pub(crate) async fn finished(self) {
        for worker in self.done {
            let _ = worker.await;
        }
    }
}
