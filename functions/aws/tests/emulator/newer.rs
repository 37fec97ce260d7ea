//! The `newer` refusal on the emulator (`list_tenants::standing`): a tenant whose pointer records
//! a release holding a versioned script the new release lacks is never downgraded. Independent:
//! the tenant is reported `skipped` with `Tenantflow.Newer` and the others deploy. All-or-nothing:
//! the run refuses at its plan, before any lock, snapshot or instance.
//! Mirrors `tests/runs_retry.rs` (the local deploy).

use super::env::Env;
use super::invariants::{check, Expect};
use super::stack::old_instance;
use super::workflow::{run_release, RUN_GEN};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tenantflow_core::manifest::Manifest;

/// The first script every uploaded release has (`Env::upload_release`).
pub const V1: (&str, &str) = (
    "V1__base.sql",
    "CREATE TABLE customer (id BIGINT PRIMARY KEY);\n",
);

/// The manifest override of a release holding only [`V1`] (it lacks every other release's V2).
pub fn v1_only() -> Value {
    let sha: String = Sha256::digest(V1.1.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"scripts": [{"name": V1.0, "sha256": sha}]})
}

/// The published manifest of release `id`.
pub async fn manifest_of(env: &Env, id: &str) -> Manifest {
    let out = env
        .admin
        .s3
        .get_object()
        .bucket(env.template().release_bucket())
        .key(format!("releases/{id}/manifest.json"))
        .send()
        .await
        .unwrap();
    Manifest::parse(&out.body.collect().await.unwrap().into_bytes()).unwrap()
}

/// Points `tenant` (seeded by `add_tenant`) at release `id` with its script-set digest recorded,
/// as a flip to `id` would have left it.
pub async fn record_release(env: &Env, tenant: &str, id: &str) {
    let digest = manifest_of(env, id).await.script_set_digest().unwrap();
    let name = format!("/tenantflow/{tenant}/db");
    let current = env
        .admin
        .ssm
        .get_parameter()
        .name(&name)
        .send()
        .await
        .unwrap();
    let mut pointer: Value =
        serde_json::from_str(current.parameter().unwrap().value().unwrap()).unwrap();
    pointer["release"] = json!(id);
    pointer["scripts"] = json!(digest);
    env.admin
        .ssm
        .put_parameter()
        .name(&name)
        .value(pointer.to_string())
        .overwrite(true)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    env.contents.set_instance(&old_instance(tenant), id);
}

async fn setup(test: &str, suffixes: &[&str]) -> (Arc<Env>, Vec<String>) {
    let ns = env_namespace();
    let env = Env::new(test, vec![]).await;
    env.deploy_stack().await;
    let mut names = Vec::new();
    for s in suffixes {
        let t = format!("{ns}-{s}");
        env.add_tenant(&t).await;
        names.push(t);
    }
    (env, names)
}

fn env_namespace() -> String {
    super::template::template().namespace()
}

async fn pointer_release(env: &Env, tenant: &str) -> String {
    let out = env
        .admin
        .ssm
        .get_parameter()
        .name(format!("/tenantflow/{tenant}/db"))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(out.parameter().unwrap().value().unwrap()).unwrap();
    v["release"].as_str().unwrap_or_default().to_string()
}

fn report_error(run: &super::workflow::Run, tenant: &str) -> Option<String> {
    run.report.as_ref().and_then(|r| {
        r["tenants"]
            .as_array()?
            .iter()
            .find(|x| x["tenant"] == tenant)
            .and_then(|x| x["error"].as_str().map(str::to_string))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_skips_a_tenant_on_a_newer_release() {
    let (env, ts) = setup("newer_independent", &["a", "b"]).await;
    // `a` really deployed to r-two (V1, V2): its pointer records r-two's script set.
    let (key, version) = env
        .upload_release("r-two", json!({"tenants": {"tenants": [ts[0]]}}))
        .await;
    let first = run_release(&env, &key, &version, false).await;
    assert_eq!(first.outcome(&ts[0]).as_deref(), Some("deployed"));

    // r-one lacks V2: `a` is on a newer release, `b` (no record) deploys.
    let (key, version) = env.upload_release("r-one", v1_only()).await;
    let run = run_release(&env, &key, &version, false).await;
    let skipped = Expect {
        tenant: ts[0].clone(),
        outcome: "skipped",
        instance: format!("{}-{RUN_GEN}", ts[0]),
        release: "r-two".into(),
        kept: vec![],
    };
    let deployed = Expect {
        tenant: ts[1].clone(),
        outcome: "deployed",
        instance: format!("{}-{RUN_GEN}", ts[1]),
        release: "r-one".into(),
        kept: vec![],
    };
    check(&env, &run, &[skipped, deployed], 2).await;
    assert_eq!(
        report_error(&run, &ts[0]).as_deref(),
        Some("Tenantflow.Newer"),
        "{:?}",
        run.report
    );
    // No child execution touched `a`: no snapshot of its active generation in the second run.
    let snapshots_of_a = env
        .rec
        .calls()
        .iter()
        .filter(|c| {
            c.operation == "CreateDBSnapshot"
                && c.params["DBInstanceIdentifier"] == format!("{}-{RUN_GEN}", ts[0]).as_str()
        })
        .count();
    assert_eq!(snapshots_of_a, 0);
    env.check_iam();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_refuses_before_preparing_anything() {
    let (env, ts) = setup("newer_all_or_nothing", &["a", "b"]).await;
    env.upload_release("r-two", json!({})).await;
    record_release(&env, &ts[0], "r-two").await;
    let before = env.rec.calls().len();
    let mut extra = v1_only();
    extra["fleet"] = json!("all-or-nothing");
    let (key, version) = env.upload_release("r-one", extra).await;
    let run = run_release(&env, &key, &version, false).await;
    assert_eq!(run.result.status.as_str(), "FAILED", "{:?}", run.result);
    assert_eq!(
        run.result.error.as_deref(),
        Some("Tenantflow.Newer"),
        "{:?}",
        run.result.cause
    );
    let cause = run.result.cause.clone().unwrap_or_default();
    assert!(cause.contains(&ts[0]) && cause.contains("V2"), "{cause}");
    let calls = env.rec.calls();
    let effects: Vec<String> = calls[before..]
        .iter()
        .filter(|c| {
            matches!(
                c.operation.as_str(),
                "CreateDBSnapshot"
                    | "RestoreDBInstanceFromDBSnapshot"
                    | "CreateDBInstance"
                    | "PutParameter"
                    | "UpdateItem"
                    | "PutItem"
                    | "StartBuild"
            )
        })
        .map(|c| format!("{} {} {}", c.caller, c.operation, c.params))
        .collect();
    assert!(effects.is_empty(), "the refused run acted: {effects:#?}");
    // Every tenant as it was: its own instance, no snapshot, its pointer's release.
    let instances = env.admin.rds.describe_db_instances().send().await.unwrap();
    let mut ids: Vec<&str> = instances
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_identifier())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![old_instance(&ts[0]), old_instance(&ts[1])]);
    let snapshots = env
        .admin
        .rds
        .describe_db_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert!(snapshots.db_snapshots().is_empty());
    assert_eq!(pointer_release(&env, &ts[0]).await, "r-two");
    assert_eq!(
        pointer_release(&env, &ts[1]).await,
        super::stack::OLD_RELEASE
    );
    env.check_iam();
}
