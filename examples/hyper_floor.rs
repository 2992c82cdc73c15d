//! The floor of signet's HTTP stack: a bare hyper reverse proxy with signet's
//! threading (one single-threaded tokio runtime per worker thread, one pool of
//! upstream HTTP/1.1 connections per thread) and nothing else: no routing, no
//! signing, no header policy, no retries, no log, no metrics. One difference
//! in how connections arrive: each worker accepts on its own copy of the
//! listener, where signet hands each accepted connection to its least busy
//! worker.
//!
//! `bench/load.sh` runs it as the `hyper-floor` target, beside the nginx hop and
//! signet, to show how much of signet's cost per request is the stack itself.
//!
//! Usage: `hyper_floor LISTEN_ADDR UPSTREAM_ADDR [WORKERS]`, for example
//! `hyper_floor 127.0.0.1:8081 127.0.0.1:8080 2`.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Reply = Response<Either<Incoming, Empty<Bytes>>>;

thread_local! {
    /// This thread's idle upstream connections.
    static IDLE: RefCell<Vec<http1::SendRequest<Incoming>>> = const { RefCell::new(Vec::new()) };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hyper_floor LISTEN_ADDR UPSTREAM_ADDR [WORKERS]";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let workers = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let mut threads = Vec::new();
    for _ in 0..workers {
        let listener = listener.try_clone()?;
        threads.push(std::thread::spawn(move || worker(listener, upstream)));
    }
    for thread in threads {
        if let Ok(Err(e)) = thread.join() {
            eprintln!("worker stopped: {e}");
        }
    }
    Ok(())
}

/// One worker: accepts on its copy of the listener and serves every connection
/// it accepted on its own runtime.
fn worker(listener: std::net::TcpListener, upstream: SocketAddr) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors or similar: wait instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |request| forward(request, upstream));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Sends `request` upstream on an idle pooled connection (or a new one) and
/// answers with the upstream's response, its body streaming.
async fn forward(request: Request<Incoming>, upstream: SocketAddr) -> Result<Reply, Infallible> {
    let pooled = IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        idle.retain(|s| !s.is_closed());
        idle.iter()
            .position(http1::SendRequest::is_ready)
            .map(|i| idle.swap_remove(i))
    });
    let sender = match pooled {
        Some(sender) => Some(sender),
        None => open(upstream).await,
    };
    let Some(mut sender) = sender else {
        return Ok(bad_gateway());
    };
    let pending = sender.send_request(request);
    IDLE.with(|idle| idle.borrow_mut().push(sender));
    Ok(match pending.await {
        Ok(response) => response.map(Either::Left),
        Err(_) => bad_gateway(),
    })
}

/// Opens an upstream connection and starts its task on this thread.
async fn open(upstream: SocketAddr) -> Option<http1::SendRequest<Incoming>> {
    let stream = TcpStream::connect(upstream).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

fn bad_gateway() -> Reply {
    let mut response = Response::new(Either::Right(Empty::new()));
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}
