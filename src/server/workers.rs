//! The proxy listener and its worker threads.
//!
//! Each worker is one OS thread running a single-threaded tokio runtime. The
//! listener's accept loop (on the control runtime) hands every new connection to
//! the worker serving the fewest open connections, so a few long-lived keep-alive
//! connections (a sidecar's usual client) still spread over the workers. From
//! then on the connection, its requests and the upstream connections those
//! requests check out all live on that worker (the upstream client keeps one
//! pool per thread): serving a request wakes no other thread.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::connection::{Control, Registry, Signal, Tracked};
use super::ServerError;
use crate::proxy::Proxy;
use crate::telemetry::logging::ClientAddr;

/// The proxy's worker threads, each waiting for connections.
pub(crate) struct Workers {
    workers: Vec<Worker>,
    done: Vec<oneshot::Receiver<()>>,
}

/// The acceptor's handle on one worker.
struct Worker {
    connections: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Connections the worker is serving now.
    open: Arc<AtomicUsize>,
}

impl Workers {
    /// Starts `count` worker threads (at least one) serving `proxy`, each
    /// closing its client connections that stay idle for `idle_timeout`. They
    /// stop once `drain` turns true and every connection they serve has closed.
    pub(crate) fn start(
        count: usize,
        proxy: Arc<Proxy>,
        drain: watch::Receiver<bool>,
        idle_timeout: Duration,
    ) -> Result<Self, ServerError> {
        let count = count.max(1);
        let mut workers = Vec::with_capacity(count);
        let mut done = Vec::with_capacity(count);
        for index in 0..count {
            let (connections, incoming) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let (finished_tx, finished_rx) = oneshot::channel();
            let (proxy, drain, counter) = (proxy.clone(), drain.clone(), open.clone());
            std::thread::Builder::new()
                .name(format!("signet-proxy-{index}"))
                .spawn(move || {
                    if let Err(e) = run_worker(incoming, counter, proxy, drain, idle_timeout) {
                        tracing::error!(worker = index, error = %e, "proxy worker stopped");
                    }
                    let _ = finished_tx.send(());
                })
                .map_err(ServerError::Worker)?;
            workers.push(Worker { connections, open });
            done.push(finished_rx);
        }
        Ok(Self { workers, done })
    }

    /// Accepts connections on `listener` and hands each to the least busy
    /// worker until `drain` turns true; then waits until every worker has
    /// finished its connections.
    pub(crate) async fn serve(self, listener: TcpListener, mut drain: watch::Receiver<bool>) {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                },
                () = drained(&mut drain) => break,
            };
            self.hand_over(stream);
        }
        drop(listener);
        let Workers { workers, done } = self;
        // Closing the channels tells idle workers no more connections come.
        drop(workers);
        for worker in done {
            let _ = worker.await;
        }
    }

    fn hand_over(&self, stream: TcpStream) {
        // Responses are written as they stream: never hold a small write back.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let mut stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "dropping an accepted connection that cannot be handed to a worker");
                return;
            }
        };
        loop {
            let Some(worker) = self
                .workers
                .iter()
                .filter(|w| !w.connections.is_closed())
                .min_by_key(|w| w.open.load(Ordering::Relaxed))
            else {
                tracing::error!("no proxy worker is running; dropping the connection");
                return;
            };
            // Counted here, so the next pick already sees it.
            worker.open.fetch_add(1, Ordering::Relaxed);
            match worker.connections.send(stream) {
                Ok(()) => return,
                // That worker stopped (it logged why): try another.
                Err(mpsc::error::SendError(back)) => {
                    worker.open.fetch_sub(1, Ordering::Relaxed);
                    stream = back;
                }
            }
        }
    }
}

/// Runs one worker: a single-threaded runtime serving the connections it is
/// handed until the acceptor stops, then until those connections close. The
/// worker also closes its connections that stay idle for `idle_timeout`, and
/// tells all of them to drain once `drain` turns true.
fn run_worker(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    open: Arc<AtomicUsize>,
    proxy: Arc<Proxy>,
    mut drain: watch::Receiver<bool>,
    idle_timeout: Duration,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut registry = Registry::new(idle_timeout);
        let mut check = tokio::time::interval(registry.check_every());
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Every connection task holds a receiver; all gone = all connections closed.
        let (closed_tx, closed_rx) = watch::channel(());
        let mut closed_rx = Some(closed_rx);
        let mut draining = false;
        loop {
            tokio::select! {
                handed = incoming.recv(), if closed_rx.is_some() => {
                    let Some(stream) = handed else {
                        // The acceptor has stopped: wait for the open connections.
                        closed_rx = None;
                        continue;
                    };
                    let Some(closed) = closed_rx.clone() else { continue };
                    let open = (OpenConnection(open.clone()), proxy.metrics().client_connection());
                    let stream = match TcpStream::from_std(stream) {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot serve a handed-over connection");
                            continue;
                        }
                    };
                    let control = Control::new();
                    registry.add(&control);
                    let task = serve_connection(stream, proxy.clone(), control, closed);
                    tokio::spawn(async move {
                        task.await;
                        drop(open);
                    });
                }
                _ = check.tick() => {
                    let closed = registry.close_idle(Instant::now());
                    if closed > 0 {
                        proxy.metrics().client_connections_closed_idle(closed as u64);
                        tracing::debug!(closed, timeout = ?idle_timeout, "closing idle client connections");
                    }
                }
                () = drained(&mut drain), if !draining => {
                    draining = true;
                    registry.drain();
                }
                () = closed_tx.closed(), if closed_rx.is_none() => break,
            }
        }
        Ok(())
    })
}

/// One connection in a worker's open count; leaves it when dropped.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one client connection (HTTP/1.1, or h2c by its preface) until it
/// closes or its worker closes it for being idle; once told to drain it
/// finishes what is in flight and closes (an idle connection closes at once).
async fn serve_connection(
    stream: TcpStream,
    proxy: Arc<Proxy>,
    control: Arc<Control>,
    _closed: watch::Receiver<()>,
) {
    let requests = control.clone();
    let client = ClientAddr::new(stream.peer_addr().ok());
    let service = service_fn(move |request: Request<Incoming>| {
        let proxy = proxy.clone();
        let busy = requests.begin();
        let client = client.clone();
        async move {
            let response = proxy.handle(client, request.map(Body::new)).await;
            Ok::<_, Infallible>(response.map(|body| Tracked::new(body, busy)))
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    let ended = std::future::poll_fn(|cx| {
        let signal = control.poll_signal(cx);
        if signal != Signal::Run && !draining {
            draining = true;
            connection.as_mut().graceful_shutdown();
        }
        let polled = connection.as_mut().poll(cx).map(Some);
        if signal == Signal::Close {
            // Idle: the shutdown above has had one go at saying goodbye (an
            // h2 GOAWAY); whatever is left (a request head still arriving)
            // is dropped with the connection.
            return Poll::Ready(None);
        }
        polled
    })
    .await;
    if let Some(Err(e)) = ended {
        tracing::trace!(error = %e, "client connection ended with an error");
    }
}

/// Resolves once `drain` turns true (or its sender is gone).
async fn drained(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|d| *d).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts `count` workers behind a fresh listener and returns its address.
    async fn serve(count: usize) -> (std::net::SocketAddr, Vec<Arc<AtomicUsize>>) {
        let settings = crate::config::Settings::from_str(
            r#"
            [credentials.default]
            kind = "static"
            access_key_id = "AKIAIOSFODNN7EXAMPLE"
            secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            "#,
            crate::config::ConfigFormat::Toml,
        )
        .unwrap();
        let state = crate::proxy::ProxyState::build(&settings, None)
            .await
            .unwrap();
        let metrics = Arc::new(crate::telemetry::Metrics::new());
        let upstream = crate::upstream::Upstream::new(&settings.tls, metrics.clone()).unwrap();
        let proxy = Arc::new(Proxy::new(state, upstream, metrics));
        let (_drain_tx, drain) = watch::channel(false);
        let workers = Workers::start(count, proxy, drain.clone(), Duration::from_secs(60)).unwrap();
        let counters = workers.workers.iter().map(|w| w.open.clone()).collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _keep = _drain_tx;
            workers.serve(listener, drain).await;
        });
        (addr, counters)
    }

    async fn until(mut check: impl FnMut() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("condition not reached in 2 s");
    }

    #[tokio::test]
    async fn skips_a_worker_that_stopped() {
        let (dead_tx, dead_rx) = mpsc::unbounded_channel();
        drop(dead_rx);
        let (live_tx, mut live_rx) = mpsc::unbounded_channel();
        let workers = Workers {
            workers: vec![
                Worker {
                    connections: dead_tx,
                    open: Arc::default(),
                },
                Worker {
                    connections: live_tx,
                    open: Arc::new(AtomicUsize::new(5)),
                },
            ],
            done: Vec::new(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        workers.hand_over(accepted);
        assert!(live_rx.try_recv().is_ok());
        assert_eq!(workers.workers[0].open.load(Ordering::Relaxed), 0);
        assert_eq!(workers.workers[1].open.load(Ordering::Relaxed), 6);
    }

    #[tokio::test]
    async fn spreads_connections_evenly_and_forgets_closed_ones() {
        let (addr, open) = serve(3).await;
        let mut clients = Vec::new();
        for _ in 0..6 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let counts = || {
            open.iter()
                .map(|o| o.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        };
        until(|| counts().iter().sum::<usize>() == 6).await;
        assert_eq!(counts(), vec![2, 2, 2]);
        clients.truncate(3);
        until(|| counts().iter().sum::<usize>() == 3).await;
        // New connections go to the workers with the fewest.
        let before = counts();
        let extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        until(|| counts().iter().sum::<usize>() == 4).await;
        let least = before.iter().min().copied().unwrap();
        let after = counts();
        let grown: Vec<usize> = (0..3).filter(|&i| after[i] > before[i]).collect();
        assert_eq!(grown.len(), 1);
        assert_eq!(before[grown[0]], least);
        drop(extra);
    }
}
