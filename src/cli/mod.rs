//! The `signet` command line.

use std::process::ExitCode;

/// Entry point of the `signet` binary.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
