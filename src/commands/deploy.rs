//! `tenantflow deploy`.

use crate::cli::DeployArgs;
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(_state: &Path, _args: &DeployArgs) -> Result<u8> {
    bail!("`deploy` is not wired to the local backend yet")
}
