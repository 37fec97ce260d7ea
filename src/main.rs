//! `tenantflow`: see `tenantflow --help` and the README.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tenantflow::cli::Cli::parse();
    match tenantflow::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(tenantflow::commands::exit::EXIT_FAILED)
        }
    }
}
