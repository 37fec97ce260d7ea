//! `tenantflow status`.

use crate::cli::StatusArgs;
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(_state: &Path, _args: &StatusArgs) -> Result<u8> {
    bail!("`status` is not wired to the local backend yet")
}
