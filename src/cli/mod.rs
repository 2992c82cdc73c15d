//! The `signet` command line: a thin shell over the library.
//!
//! `signet` with no subcommand is `signet serve`. Every subcommand reports bad
//! input with one line on stderr and a non-zero exit code; nothing here panics
//! on user input.

pub mod sign;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin::health::HealthArgs;
use crate::config::{ServeArgs, Settings};

/// signet: a SigV4 signing reverse proxy.
///
/// Internal services send signet plain, unsigned HTTP. signet finds the AWS
/// service, region and endpoint from its routes (or from the Host when it is an
/// AWS endpoint), signs the request with AWS Signature Version 4 using
/// credentials it keeps fresh in the background, forwards it upstream, and
/// streams the answer back.
///
/// Run with no arguments to start on the embedded default configuration: a local
/// gateway on 127.0.0.1:8080 (admin on 127.0.0.1:9090) that routes by Host to AWS
/// endpoints, with credentials from the standard AWS environment.
#[derive(Debug, Parser)]
#[command(name = "signet", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `signet serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands of `signet`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default).
    Serve(ServeArgs),
    /// Sign one raw HTTP request read on stdin and print the result; the tool for
    /// investigating `SignatureDoesNotMatch`.
    Sign(sign::SignArgs),
    /// Validate the configuration, print it with secrets redacted, and resolve
    /// each credentials source once.
    Check(CheckArgs),
    /// Probe a running signet's admin endpoint; exit 0 when healthy, 1 otherwise.
    Health(HealthArgs),
}

/// Arguments of `signet check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration and override flags, as for `signet serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Also call sts:GetCallerIdentity with each source, signed by signet.
    #[arg(long)]
    pub identity: bool,
    /// Only validate and print the configuration; do not resolve credentials.
    #[arg(long)]
    pub config_only: bool,
}

/// Entry point of the `signet` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout and usage errors to stderr.
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    match cli.command {
        None => crate::server::main(cli.serve),
        Some(Command::Serve(args)) => crate::server::main(args),
        Some(Command::Sign(args)) => sign::run(
            &args,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
            &|name| std::env::var(name).ok(),
        ),
        Some(Command::Check(args)) => check(&args),
        Some(Command::Health(args)) => crate::admin::health::run(&args),
    }
}

/// Runs `signet check`: exit 0 when the configuration is valid and every
/// credentials source resolves, 1 when a source fails, 2 on a bad configuration.
fn check(args: &CheckArgs) -> ExitCode {
    let settings = match Settings::load(&args.serve) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signet: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "# effective configuration (secrets redacted)");
    let _ = writeln!(out, "{}", settings.redacted_toml());
    if args.config_only {
        return ExitCode::SUCCESS;
    }
    let runtime = match build_runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let _ = writeln!(out, "# credentials");
    match runtime.block_on(crate::credentials::check(
        &settings.credentials,
        args.identity,
        &settings.tls,
        &mut out,
    )) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("signet: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds a tokio runtime from `builder`, or reports on stderr why it cannot
/// and returns the exit code to use.
pub(crate) fn build_runtime(
    mut builder: tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("signet: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}
