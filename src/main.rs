//! The `signet` binary: a thin shell over [`signet::cli`].

fn main() -> std::process::ExitCode {
    signet::cli::main()
}
