//! `tenantflow init`.

use crate::cli::InitArgs;
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(_state: &Path, _args: &InitArgs) -> Result<u8> {
    bail!("`init` is not wired to the local backend yet")
}
