//! `tenantflow sfn run`: the engine's own command (`statemachine::cli`), run as is.

use anyhow::Result;
pub use statemachine::cli::SfnRunArgs;

/// Runs a definition; the exit code is the engine command's (0 SUCCEEDED, 1 other, 2 bad input).
pub fn run(args: SfnRunArgs) -> Result<u8> {
    let code = statemachine::cli::sfn_run_main(args);
    Ok(u8::try_from(code).unwrap_or(1))
}
