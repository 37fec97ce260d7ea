//! `tenantflow plan --aws`'s input read from a seeded emulator fleet
//! (`tenantflow_aws::ops::plan_input::read_fleet`), then planned by the local plan as the CLI
//! does: each tenant's action (up-to-date, deploy, newer, locked by a run), the quota figures
//! from `DescribeAccountAttributes` (served by the harness: moto lacks it, see
//! `layers::HarnessQuotas`) and the concurrency they bind. Nothing on the emulator changes.

use super::env::Env;
use super::layers::HarnessQuotas;
use super::newer::{record_release, v1_only, V1};
use serde_json::json;
use tenantflow_aws::ops::plan_input::{read_fleet, Quota, StackLimits};
use tenantflow_aws::ops::{Ops, StackOutputs};
use tenantflow_aws::Clients;
use tenantflow_core::model::Outcome;
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::{Headroom, Records};
use tenantflow_core::steps::StepName;
use tenantflow_local::plan::{plan, Fleet, PlanOptions};

fn ops(env: &Env) -> Ops {
    let t = env.template();
    let stack = StackOutputs {
        namespace: t.namespace(),
        bucket: t.release_bucket(),
        state_machine_arn: t
            .env_value(StepName::Trigger, "TENANTFLOW_STATE_MACHINE_ARN")
            .expect("the trigger's state machine ARN"),
        table: t
            .env_value(StepName::Snapshot, "TENANTFLOW_TABLE")
            .expect("the records table"),
        default_cluster: env.default_cluster(),
    };
    Ops::with_clients(Clients::from_conf(&env.conf), stack)
}

/// The release folder as `tenantflow release pack` left it: the manifest's scripts, the
/// manifest, `SHA256SUMS` (downloaded from the bucket: byte for byte what was pushed).
async fn release_dir(env: &Env, id: &str, scripts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in scripts
        .iter()
        .copied()
        .chain(["manifest.json", "SHA256SUMS"])
    {
        let out = env
            .admin
            .s3
            .get_object()
            .bucket(env.template().release_bucket())
            .key(format!("releases/{id}/{name}"))
            .send()
            .await
            .unwrap();
        let bytes = out.body.collect().await.unwrap().into_bytes();
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_aws_reads_actions_and_quotas_from_the_stack() {
    let env = Env::new("plan_aws", vec![]).await;
    env.deploy_stack().await;
    let ns = env.template().namespace();
    let [current, newer, fresh, locked] =
        ["current", "newer", "fresh", "locked"].map(|s| format!("{ns}-{s}"));
    for t in [&current, &newer, &fresh, &locked] {
        env.add_tenant(t).await;
    }
    env.upload_release("r-two", json!({})).await;
    env.upload_release("r-one", v1_only()).await;
    record_release(&env, &current, "r-one").await;
    record_release(&env, &newer, "r-two").await;
    let o = ops(&env);
    let holder = format!(
        "arn:aws:states:{}:{}:execution:tenantflow-release:other-run",
        env.template().region(),
        env.template().account()
    );
    let taken = o
        .records()
        .acquire(&Namespace::parse(&locked).unwrap(), &holder, &holder)
        .await
        .unwrap();
    assert!(matches!(taken, tenantflow_core::ports::LockTake::Taken(_)));
    // A retained snapshot: it counts against the manual-snapshot quota.
    let tag = |k: &str, v: &str| aws_sdk_rds::types::Tag::builder().key(k).value(v).build();
    env.admin
        .rds
        .create_db_snapshot()
        .db_instance_identifier(super::stack::old_instance(&fresh))
        .db_snapshot_identifier(format!("{fresh}-20251201000000"))
        .tags(tag("tenantflow:namespace", &fresh))
        .send()
        .await
        .unwrap();

    let quotas = HarnessQuotas {
        admin_rds: env.admin.rds.clone(),
        max_instances: 6,
        max_snapshots: 100,
    };
    let limits = StackLimits {
        build_concurrency: 20,
        default_max_concurrency: 10,
    };
    let fleet = read_fleet(&o, &quotas, limits, "r-one").await.unwrap();
    assert_eq!(fleet.quotas.db_instances, Quota { used: 4, max: 6 });
    assert_eq!(fleet.quotas.manual_snapshots, Quota { used: 1, max: 100 });
    assert_eq!(
        fleet.input.headroom,
        Headroom {
            instances: 2,
            snapshots: 99
        }
    );
    assert_eq!(fleet.input.instances.len(), 4);
    assert_eq!(fleet.input.snapshots.len(), 1);
    assert_eq!(fleet.locked, vec![(locked.clone(), holder.clone())]);
    assert_eq!(
        fleet.input.manifests.keys().collect::<Vec<_>>(),
        ["r-one", "r-two"],
        "the planned release and the one a pointer records"
    );
    assert_eq!(fleet.input.default_max_concurrency, Some(10));

    let dir = release_dir(&env, "r-one", &[V1.0]).await;
    let calls_before = env.rec.calls().len();
    let sim = plan(
        dir.path(),
        PlanOptions {
            fleet: Fleet::Given(Box::new(fleet.input.clone())),
            deploy: Default::default(),
            durations: None,
            limits: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(env.rec.calls().len(), calls_before, "the plan ran locally");
    let row = |t: &str| {
        sim.report
            .tenants
            .iter()
            .find(|r| r.tenant == t)
            .unwrap_or_else(|| panic!("{t} in {:#?}", sim.report.tenants))
            .clone()
    };
    assert_eq!(row(&current).outcome, Outcome::UpToDate);
    assert_eq!(row(&fresh).outcome, Outcome::Deployed);
    let n = row(&newer);
    assert_eq!(n.outcome, Outcome::Skipped);
    assert_eq!(n.error.as_deref(), Some("Tenantflow.Newer"));
    let l = row(&locked);
    assert_eq!(l.outcome, Outcome::Skipped);
    assert_eq!(l.error.as_deref(), Some("Tenantflow.Locked"));
    assert!(
        l.cause.as_deref().unwrap_or_default().contains(&holder),
        "{l:?}"
    );
    // Two instances free (6 - 4 used): the instance quota binds the concurrency.
    let p = sim.plan.expect("the simulated run planned");
    assert_eq!(p.max_concurrency, 2);
    let c = p.concurrency.unwrap();
    assert_eq!((c.instances, c.binding.as_str()), (2, "instances"));
    assert_eq!(c.snapshots, Some(99));
    assert_eq!((c.cap, c.builds), (10, 20));

    // The stack is as it was: the lock still held, the pointers unchanged.
    let rec = o
        .records()
        .get_tenant(&Namespace::parse(&locked).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.holder.as_deref(), Some(holder.as_str()));
}
