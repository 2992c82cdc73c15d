//! Telemetry: Prometheus metrics ([`metrics`]) and structured, redacted logs
//! ([`logging`]) written to stdout through per-thread buffers ([`lines`]).

mod json;
pub mod lines;
pub mod logging;
pub mod metrics;

pub use logging::{access_log, AccessRecord, LogFormat, TelemetryError};
pub use metrics::{CredentialGauge, InFlightGuard, Metrics};
