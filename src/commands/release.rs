//! `tenantflow release pack DIR`.

use crate::cli::{PackArgs, EXIT_OK};
use crate::pack::{pack as write_manifest, PackOptions, MANIFEST};
use anyhow::Result;

pub fn pack(args: &PackArgs) -> Result<u8> {
    let opts = PackOptions {
        id: args.id.clone(),
        strategy: args.strategy.map(Into::into),
        fleet: args.fleet.map(Into::into),
        description: args.description.clone(),
        health_check: args.health_check.clone(),
    };
    let manifest = write_manifest(&args.dir, &opts)?;
    if args.json {
        crate::outln!("{}", serde_json::to_string(&manifest)?);
    } else {
        crate::outln!(
            "wrote {} for release {} ({} scripts):",
            args.dir.join(MANIFEST).display(),
            manifest.release,
            manifest.scripts.len()
        );
        for s in &manifest.scripts {
            crate::outln!("  {}  {}", s.sha256, s.name);
        }
    }
    Ok(EXIT_OK)
}
