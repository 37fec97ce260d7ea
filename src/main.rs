//! `tenantflow`: see `tenantflow --help` and the README.
use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(tenantflow::cli::main(std::env::args_os()))
}
