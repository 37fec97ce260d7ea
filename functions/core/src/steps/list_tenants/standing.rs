//! Where each selected tenant stands against the release: to deploy, already up to date, or on a
//! newer release (refused, never downgraded).
//!
//! - **Up to date**: the pointer names this release and records this release's script-set digest
//!   (`scripts`, written by the flip). Release ids are free strings, never compared for order.
//! - **Newer**: the pointer records the script set of another release, and that set holds a
//!   versioned script this release lacks. What a recorded set holds is read from that release's
//!   own manifest in the release bucket (a published release is immutable), checked against the
//!   recorded digest: the pointer keeps only the 64-character digest, far from SSM's 4 KB limit
//!   whatever the length of the schema's history. One read per distinct recorded release.
//! - Anything else is deployed: a pointer without a record (an adopted or `init` tenant), or one
//!   whose recorded release's manifest is gone or no longer has the recorded digest (Flyway's
//!   validation still refuses a release that lacks an applied script).

use crate::error::StepError;
use crate::flyway::Version;
use crate::manifest::{release_prefix, validate_release_id, Manifest};
use crate::model::ActivePointer;
use crate::names::Namespace;
use crate::ports::Objects;
use std::collections::{BTreeMap, BTreeSet};

/// The selected tenants, sorted into what the run does with each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Standing {
    /// Tenants the run deploys, in selection order.
    pub deploy: Vec<Namespace>,
    /// Tenants already on this release, with their active generation.
    pub up_to_date: Vec<(Namespace, String)>,
    /// Tenants on a newer release, with what they hold that this release lacks.
    pub newer: Vec<(Namespace, String)>,
}

/// Sorts `tenants` (each with its pointer in `pointers`) against `manifest`, the release being
/// deployed, whose manifests live in `bucket`.
pub async fn classify<O: Objects + ?Sized>(
    objects: &O,
    bucket: &str,
    manifest: &Manifest,
    pointers: &BTreeMap<Namespace, ActivePointer>,
    tenants: Vec<Namespace>,
) -> Result<Standing, StepError> {
    let digest = manifest.script_set_digest()?;
    let ours: BTreeSet<Version> = manifest.versions()?.into_iter().collect();
    let mut recorded: BTreeMap<(String, String), Option<BTreeSet<Version>>> = BTreeMap::new();
    let mut out = Standing::default();
    for t in tenants {
        let Some(p) = pointers.get(&t) else {
            out.deploy.push(t);
            continue;
        };
        let Some(theirs) = &p.scripts else {
            out.deploy.push(t);
            continue;
        };
        if p.release == manifest.release && *theirs == digest {
            out.up_to_date.push((t, p.generation.to_string()));
            continue;
        }
        let key = (p.release.clone(), theirs.clone());
        if !recorded.contains_key(&key) {
            let versions = recorded_versions(objects, bucket, &p.release, theirs).await?;
            recorded.insert(key.clone(), versions);
        }
        let lacking: Vec<&Version> = recorded[&key]
            .iter()
            .flatten()
            .filter(|v| !ours.contains(*v))
            .collect();
        if lacking.is_empty() {
            out.deploy.push(t);
        } else {
            let list = lacking
                .iter()
                .map(|v| format!("V{v}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.newer.push((
                t,
                format!(
                    "the tenant is on release {} whose versioned scripts {list} release {} lacks; \
                     tenantflow never downgrades: deploy a release that holds every applied script",
                    p.release, manifest.release
                ),
            ));
        }
    }
    Ok(out)
}

/// The versions of the release `release`'s versioned scripts, if its manifest in `bucket` still
/// has the script-set digest `digest`; `None` when that cannot be told.
async fn recorded_versions<O: Objects + ?Sized>(
    objects: &O,
    bucket: &str,
    release: &str,
    digest: &str,
) -> Result<Option<BTreeSet<Version>>, StepError> {
    if validate_release_id("release", release).is_err() {
        return Ok(None);
    }
    let key = format!("{}manifest.json", release_prefix(release));
    let Some(bytes) = objects.get(bucket, &key).await? else {
        tracing::warn!(
            release,
            "the recorded release's manifest is gone; deploying"
        );
        return Ok(None);
    };
    let Ok(m) = Manifest::parse(&bytes) else {
        return Ok(None);
    };
    if m.script_set_digest().ok().as_deref() != Some(digest) {
        tracing::warn!(release, "the recorded release's scripts changed; deploying");
        return Ok(None);
    }
    Ok(m.versions().ok().map(|v| v.into_iter().collect()))
}
