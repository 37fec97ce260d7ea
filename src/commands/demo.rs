//! `tenantflow demo`.

use crate::cli::DemoArgs;
use anyhow::{bail, Result};
use std::path::Path;

pub fn run(_state: &Path, _args: &DemoArgs) -> Result<u8> {
    bail!("`demo` is not wired to the local backend yet")
}
