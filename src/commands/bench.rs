//! `tenantflow bench`.

use crate::cli::BenchArgs;
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(_state: &Path, _args: &BenchArgs) -> Result<u8> {
    bail!("`bench` is not wired to the local backend yet")
}
