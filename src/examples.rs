//! The example releases (`examples/releases/*`), used by `init`, `demo` and `bench`.
//!
//! A binary run from the source tree uses the folders in the tree, so the demo output names files
//! the user can open. A binary copied elsewhere writes its built-in copy of the same files to a
//! temporary folder instead.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const INITIAL: &str = "0001-initial";
pub const LOYALTY: &str = "0002-loyalty-points";
pub const UNIQUE_EMAIL: &str = "0003-unique-email";

macro_rules! files {
    ($($release:literal / $file:literal),* $(,)?) => {
        &[$(($release, $file, include_str!(concat!("../examples/releases/", $release, "/", $file)))),*]
    };
}

/// Every file of every example release, built into the binary.
const EMBEDDED: &[(&str, &str, &str)] = files![
    "0001-initial" / "V1__create_schema.sql",
    "0001-initial" / "manifest.json",
    "0001-initial" / "SHA256SUMS",
    "0002-loyalty-points" / "V1__create_schema.sql",
    "0002-loyalty-points" / "V2__loyalty_points.sql",
    "0002-loyalty-points" / "R__customer_summary_view.sql",
    "0002-loyalty-points" / "manifest.json",
    "0002-loyalty-points" / "SHA256SUMS",
    "0003-unique-email" / "V1__create_schema.sql",
    "0003-unique-email" / "V2__loyalty_points.sql",
    "0003-unique-email" / "R__customer_summary_view.sql",
    "0003-unique-email" / "V3__unique_customer_email.sql",
    "0003-unique-email" / "manifest.json",
    "0003-unique-email" / "SHA256SUMS",
];

/// The folder that holds the example release folders.
pub fn releases_root() -> Result<PathBuf> {
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/releases");
    if in_tree.join(INITIAL).join("manifest.json").is_file() {
        return Ok(in_tree);
    }
    let root = std::env::temp_dir()
        .join(format!("tenantflow-examples-{}", env!("CARGO_PKG_VERSION")))
        .join("releases");
    for (release, file, text) in EMBEDDED {
        let dir = root.join(release);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(root)
}

/// The folder of one example release.
pub fn release(id: &str) -> Result<PathBuf> {
    Ok(releases_root()?.join(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_are_every_file_in_the_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/releases");
        let mut on_disk = Vec::new();
        for release in std::fs::read_dir(&root).unwrap() {
            let release = release.unwrap();
            for f in std::fs::read_dir(release.path()).unwrap() {
                let name = format!(
                    "{}/{}",
                    release.file_name().to_string_lossy(),
                    f.unwrap().file_name().to_string_lossy()
                );
                on_disk.push(name);
            }
        }
        let mut embedded: Vec<String> = EMBEDDED
            .iter()
            .map(|(r, f, _)| format!("{r}/{f}"))
            .collect();
        on_disk.sort();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
