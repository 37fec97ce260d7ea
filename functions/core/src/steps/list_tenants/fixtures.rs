//! Test fixtures shared by the fleet steps' tests: a published release and a planned run on the
//! in-memory fakes.

use super::{plan, ExecutionInfo, Plan, PlanInput, RunInput};
use crate::testing::FakeWorld;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const BUCKET: &str = "tenantflow-releases";
pub const RUN: &str = "r1-0123456789abcdef";
pub const ARN: &str =
    "arn:aws:states:eu-west-1:123456789012:execution:tenantflow-release:r1-0123456789abcdef";
pub const SQL: &[u8] = b"CREATE TABLE points (id bigint);\n";

pub fn tenant(i: usize) -> String {
    format!("c{i:03}-app-prod")
}

/// Seeds `n` tenants and publishes release `r1` whose manifest is the default merged with `extra`.
pub fn world(n: usize, extra: Value) -> FakeWorld {
    let w = FakeWorld::new();
    for i in 0..n {
        w.seed_tenant(&tenant(i), "20260101000000", "r0");
    }
    let mut manifest = json!({
        "release": "r1",
        "scripts": [{"name": "V1__points.sql", "sha256": hex::encode(Sha256::digest(SQL))}],
    });
    if let (Some(m), Value::Object(e)) = (manifest.as_object_mut(), extra) {
        m.extend(e);
    }
    w.objects.seed(
        BUCKET,
        "releases/r1/manifest.json",
        manifest.to_string().as_bytes(),
    );
    w.objects.seed(BUCKET, "releases/r1/V1__points.sql", SQL);
    // `tenantflow release pack` writes SHA256SUMS next to the manifest (when the manifest is valid).
    if let Ok(m) = crate::manifest::Manifest::parse(manifest.to_string().as_bytes()) {
        let sums = m.sha256sums().expect("sums");
        w.objects
            .seed(BUCKET, "releases/r1/SHA256SUMS", sums.as_bytes());
    }
    w
}

pub fn input(overrides: Value) -> PlanInput {
    PlanInput {
        input: RunInput {
            bucket: BUCKET.into(),
            key: "releases/r1/manifest.json".into(),
            version_id: None,
            overrides: serde_json::from_value(overrides).unwrap_or_default(),
            tenant_list: None,
        },
        execution: ExecutionInfo {
            name: RUN.into(),
            arn: ARN.into(),
            start_time: "2026-11-03T10:15:00.123Z".into(),
        },
    }
}

pub async fn planned(w: &FakeWorld, overrides: Value) -> Plan {
    plan(
        &*w.objects,
        &*w.params,
        &*w.db,
        &w.settings,
        input(overrides),
    )
    .await
    .unwrap_or_else(|e| panic!("plan: {e}"))
}
