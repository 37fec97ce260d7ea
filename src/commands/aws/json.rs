//! `--json` output of the `aws` commands.

use anyhow::Result;

/// Prints `v` as one line of JSON.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    crate::outln!("{}", serde_json::to_string(v)?);
    Ok(())
}
