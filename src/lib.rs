//! signet: a SigV4 signing reverse proxy.
//!
//! Unsigned HTTP comes in; signet resolves the AWS target from its route table,
//! re-signs the request with AWS Signature Version 4 using credentials it keeps
//! fresh in the background, and forwards it upstream, streaming both ways.
//!
//! Module map (see `docs/architecture.md`):
//! - [`sigv4`]: the pure signer (no I/O, depends on nothing else in the crate).
//! - [`routing`]: route table and AWS endpoint knowledge.
//! - [`config`]: typed, validated settings.
//! - [`credentials`]: credential sources and their background refreshers.
//! - [`proxy`]: the request handler (prepare, body modes, error responses).
//! - [`upstream`]: pooled TLS client with retry, timeout and load-shedding layers.
//! - [`admin`], [`telemetry`]: health, readiness, metrics, logs.
//! - [`cli`]: the `signet` command line.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod error_chain;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod sigv4;
pub mod telemetry;
pub mod upstream;
