//! Writes the generated definition to `statemachine/deploy.asl.json` (`make definition`), or to
//! the path given as the only argument.

use std::path::{Path, PathBuf};

/// `statemachine/deploy.asl.json`: this crate lives in `statemachine/workflow`.
fn committed_path() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .expect("statemachine/")
        .join("deploy.asl.json")
}

fn main() -> std::io::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(committed_path, PathBuf::from);
    std::fs::write(&path, workflow::definition_text())?;
    println!("wrote {}", path.display());
    Ok(())
}
