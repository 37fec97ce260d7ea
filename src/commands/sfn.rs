//! `tenantflow sfn run`: the engine's own command (see the `statemachine` crate).

use anyhow::{bail, Result};

/// Placeholder until the engine's `SfnRunArgs` lands.
#[derive(Debug, clap::Args)]
pub struct SfnRunArgs {
    /// The definition file.
    pub definition: std::path::PathBuf,
}

pub fn run(_args: SfnRunArgs) -> Result<u8> {
    bail!("`sfn run` is not wired to the engine yet")
}
