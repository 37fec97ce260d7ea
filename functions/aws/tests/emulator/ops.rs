//! The operator commands (`tenantflow_aws::ops`, what `tenantflow aws …` runs) against the
//! emulator: adopt on instances named any way, push of a good and a tampered release, status of a
//! finished and of a running run (held at a step by a [`Gate`]), `push --wait` following a run to
//! its end on the engine's virtual clock (and saying what to check when none starts), retry after
//! a partly failed run, recover after a run stopped mid-way, unlock refused while the holder
//! runs, the janitor in report mode, and the stack outputs read from CloudFormation. The commands
//! act as an operator, whose role the template does not define, so their calls are not evaluated
//! for IAM.

use super::env::Env;
use super::invariants::{check, Expect};
use super::layers::Fault;
use super::stack::{old_instance, OLD_RELEASE};
use super::workflow::{run_release, run_release_with, run_started, Gate, RUN_GEN};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenantflow_aws::ops::adopt::{self, Action, AdoptOptions, Selector};
use tenantflow_aws::ops::push::{push, LocalRelease};
use tenantflow_aws::ops::runs::RunStatus;
use tenantflow_aws::ops::watch::{await_start, watch, Polling, Sleeper};
use tenantflow_aws::ops::{locks, retry, runs, Ops, OpsError, StackOutputs};
use tenantflow_aws::Clients;
use tenantflow_core::model::ActivePointer;
use tenantflow_core::names::{tags, Namespace};
use tenantflow_core::ports::{Databases, LockTake, Parameters, Records};
use tenantflow_core::recover::{Action as RecoveryAction, RecoveryOutcome};
use tenantflow_core::steps::list_tenants::discover;
use tenantflow_core::steps::StepName;

fn outputs(env: &Env) -> StackOutputs {
    let t = env.template();
    StackOutputs {
        namespace: t.namespace(),
        bucket: t.release_bucket(),
        state_machine_arn: t
            .env_value(StepName::Trigger, "TENANTFLOW_STATE_MACHINE_ARN")
            .expect("the trigger's state machine ARN"),
        table: t
            .env_value(StepName::Snapshot, "TENANTFLOW_TABLE")
            .expect("the records table"),
        default_cluster: env.default_cluster(),
    }
}

/// The operator's clients: moto for everything, Step Functions from the harness's engine API.
fn ops(env: &Env) -> Ops {
    let mut c = Clients::from_conf(&env.conf);
    c.sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&env.conf)
            .endpoint_url(&env.sfn.endpoint)
            .build(),
    );
    Ops::with_clients(c, outputs(env))
}

async fn create_instance(env: &Env, id: &str) {
    env.admin
        .rds
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("app")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap();
}

async fn create_service(env: &Env, name: &str) {
    env.admin
        .ecs
        .create_service()
        .cluster(env.default_cluster())
        .service_name(name)
        .task_definition("tenant-app")
        .desired_count(1)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_plans_applies_and_reruns() {
    let env = Env::new("ops_adopt", vec![]).await;
    env.deploy_stack().await;
    let ns = env.template().namespace();
    let o = ops(&env);
    // Named as a generation, with a service: adoptable.
    let acme = format!("{ns}-acme");
    create_instance(&env, &format!("{acme}-20250101000000")).await;
    create_service(&env, &acme).await;
    // Named as a generation, no ECS service.
    create_instance(&env, &format!("{ns}-delta-20250101000000")).await;
    // Named any other way: adoptable as it is (adopt never renames; the tag makes it the
    // tenant's, see `an_adopted_instance_keeps_its_name_until_its_first_deploy`).
    let beta = format!("{ns}-beta");
    create_instance(&env, &format!("{beta}-db")).await;
    create_service(&env, &beta).await;
    // Another stack's namespace; not a namespace at all.
    create_instance(&env, "other-app-prod-db").await;
    create_instance(&env, "scratch").await;
    // Already under tenantflow (pointer names it).
    let old = format!("{ns}-old");
    env.add_tenant(&old).await;

    let opts = AdoptOptions {
        selector: Selector::pattern(r"^(?P<ns>[a-z0-9-]+?)(?:-db|-\d{14})?$").unwrap(),
        release: "baseline".into(),
        cluster: None,
    };
    let plan = adopt::plan(&o, &opts).await.unwrap();
    let item = |inst: &str| {
        plan.items
            .iter()
            .find(|i| i.instance == inst)
            .unwrap_or_else(|| panic!("{inst} in the plan: {plan:#?}"))
            .clone()
    };
    let a = item(&format!("{acme}-20250101000000"));
    assert_eq!(a.action, Action::Adopt, "{a:#?}");
    assert_eq!(a.namespace, acme);
    let p = a.pointer.clone().unwrap();
    let described = env
        .admin
        .rds
        .describe_db_instances()
        .db_instance_identifier(&a.instance)
        .send()
        .await
        .unwrap();
    let ep = described.db_instances()[0].endpoint().unwrap();
    assert_eq!(
        p.endpoint,
        ep.address().unwrap(),
        "the instance's own endpoint"
    );
    assert_eq!(i32::from(p.port), ep.port().unwrap());
    assert_eq!(p.generation.to_string(), "20250101000000");
    assert_eq!(p.release, "baseline");
    assert_eq!(
        a.service
            .as_ref()
            .map(|s| (s.cluster.as_str(), s.service.as_str())),
        Some((env.default_cluster().as_str(), acme.as_str()))
    );

    let blocked = |inst: &str, needle: &str| {
        let i = item(inst);
        assert_eq!(i.action, Action::Blocked, "{i:#?}");
        assert!(
            i.blockers.iter().any(|b| b.contains(needle)),
            "{inst}: a blocker saying {needle:?}: {:?}",
            i.blockers
        );
    };
    blocked(
        &format!("{ns}-delta-20250101000000"),
        "no ACTIVE ECS service",
    );
    let b = item(&format!("{beta}-db"));
    assert_eq!(b.action, Action::Adopt, "{b:#?}");
    assert_eq!(b.namespace, beta);
    assert_eq!(
        b.pointer.as_ref().map(|p| p.instance_id.as_str()),
        Some(b.instance.as_str()),
        "the pointer names the instance under its own name"
    );
    blocked("other-app-prod-db", "does not belong to this stack");
    blocked("scratch", "must be <customer>-<project>-<env>");
    assert_eq!(item(&old_instance(&old)).action, Action::Adopted);
    assert_eq!(plan.count(Action::Adopt), 2);

    // The plan wrote nothing.
    let params = o.parameters();
    assert!(params
        .get(&format!("/tenantflow/{acme}/db"))
        .await
        .unwrap()
        .is_none());

    let mut applied = plan.clone();
    adopt::apply(&o, &mut applied).await.unwrap();
    let written: ActivePointer = serde_json::from_str(
        &params
            .get(&format!("/tenantflow/{acme}/db"))
            .await
            .unwrap()
            .unwrap()
            .value,
    )
    .unwrap();
    assert_eq!(written, p);
    let tags_now = o
        .databases()
        .list_instances(&acme)
        .await
        .unwrap()
        .pop()
        .unwrap()
        .tags;
    assert_eq!(tags_now.get(tags::NAMESPACE), Some(&acme));
    assert_eq!(
        tags_now.get(tags::ROLE).map(String::as_str),
        Some(tags::ROLE_ACTIVE)
    );
    // Nothing was written for a blocked instance.
    for t in [format!("{ns}-delta")] {
        assert!(params
            .get(&format!("/tenantflow/{t}/db"))
            .await
            .unwrap()
            .is_none());
    }
    // list-tenants' discovery now deploys the adopted tenant.
    let found = discover(&params, &o.stack.settings()).await.unwrap();
    assert!(found.tenants.contains(&Namespace::parse(&acme).unwrap()));
    assert!(found.tenants.contains(&Namespace::parse(&beta).unwrap()));

    // Re-run: adopted now, and applying again changes nothing.
    let again = adopt::plan(&o, &opts).await.unwrap();
    assert_eq!(
        again
            .items
            .iter()
            .find(|i| i.instance == a.instance)
            .unwrap()
            .action,
        Action::Adopted
    );
    assert_eq!(again.count(Action::Adopt), 0);
    let mut again_applied = again.clone();
    adopt::apply(&o, &mut again_applied).await.unwrap();
    let v = params
        .get(&format!("/tenantflow/{acme}/db"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.version, 1, "the pointer was written once");

    // By tag: the tag's value is the namespace.
    let by_tag = adopt::plan(
        &o,
        &AdoptOptions {
            selector: Selector::Tag(tags::NAMESPACE.to_string()),
            release: "baseline".into(),
            cluster: None,
        },
    )
    .await
    .unwrap();
    let names: Vec<&str> = by_tag.items.iter().map(|i| i.namespace.as_str()).collect();
    assert_eq!(names, vec![acme.as_str(), beta.as_str(), old.as_str()]);
    assert!(by_tag.items.iter().all(|i| i.action == Action::Adopted));
}

/// Issue 13: instances adopted under their own names (selected by a tag holding the namespace),
/// then a release run. The deployed tenant moves onto a `<ns>-<timestamp>` generation and its
/// teardown deletes the adopted instance, authorised by the `tenantflow:namespace` tag adopt
/// wrote (every call passes the IAM check); the tenant whose migration fails stays on its
/// adopted instance, which nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_instance_keeps_its_name_until_its_first_deploy() {
    let ns = super::template::template().namespace();
    let (acme, beta) = (format!("{ns}-acme"), format!("{ns}-beta"));
    let env = Env::new(
        "ops_adopt_deploy",
        vec![Fault::MigrationFails {
            instance: format!("{beta}-{RUN_GEN}"),
        }],
    )
    .await;
    env.deploy_stack().await;
    let (legacy_acme, legacy_beta) = ("legacy-acme-db", "legacy-beta-db");
    env.add_legacy_instance(legacy_acme, &[("customer", &acme)], &acme)
        .await;
    env.add_legacy_instance(legacy_beta, &[("customer", &beta)], &beta)
        .await;
    // Named as another tenant's generation: its pointer would be skipped, so it is blocked.
    let zeta = format!("{ns}-zeta-20250101000000");
    env.add_legacy_instance(
        &zeta,
        &[("customer", &format!("{ns}-eta"))],
        &format!("{ns}-eta"),
    )
    .await;

    let o = ops(&env);
    let opts = AdoptOptions {
        selector: Selector::Tag("customer".into()),
        release: OLD_RELEASE.into(),
        cluster: None,
    };
    let mut plan = adopt::plan(&o, &opts).await.unwrap();
    let item = |inst: &str| {
        plan.items
            .iter()
            .find(|i| i.instance == inst)
            .cloned()
            .unwrap()
    };
    assert_eq!(item(legacy_acme).action, Action::Adopt, "{plan:#?}");
    assert_eq!(item(legacy_beta).action, Action::Adopt, "{plan:#?}");
    let z = item(&zeta);
    assert_eq!(z.action, Action::Blocked);
    assert!(
        z.blockers
            .iter()
            .any(|b| b.contains("list-tenants would skip it")
                && b.contains("a generation of tenant")),
        "{:?}",
        z.blockers
    );
    adopt::apply(&o, &mut plan).await.unwrap();
    let tags_of = |id: &str| {
        let rds = env.admin.rds.clone();
        let id = id.to_string();
        async move {
            rds.describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .ok()
                .and_then(|o| o.db_instances().first().cloned())
        }
    };
    let acme_legacy = tags_of(legacy_acme).await.expect("adopted, not renamed");
    assert!(acme_legacy
        .tag_list()
        .iter()
        .any(|t| t.key() == Some(tags::NAMESPACE) && t.value() == Some(acme.as_str())));

    let (key, version) = env.upload_release("r-adopted", json!({})).await;
    let run = run_release(&env, &key, &version, false).await;
    check(
        &env,
        &run,
        &[
            Expect {
                tenant: acme.clone(),
                outcome: "deployed",
                instance: format!("{acme}-{RUN_GEN}"),
                release: "r-adopted".into(),
                kept: vec![],
            },
            Expect {
                tenant: beta.clone(),
                outcome: "rolled-back",
                instance: legacy_beta.into(),
                release: OLD_RELEASE.into(),
                kept: vec![],
            },
        ],
        2,
    )
    .await;

    // acme: the adopted instance was deleted by teardown, after the flip and the rollout.
    assert!(
        tags_of(legacy_acme).await.is_none(),
        "legacy-acme-db deleted"
    );
    let calls = env.rec.calls();
    let on = |id: &str, op: &str| -> Vec<usize> {
        calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.operation == op && c.params["DBInstanceIdentifier"] == id)
            .map(|(i, _)| i)
            .collect()
    };
    let deleted = on(legacy_acme, "DeleteDBInstance");
    assert_eq!(deleted.len(), 1, "one delete of the adopted instance");
    let delete = &calls[deleted[0]];
    assert_eq!(delete.caller, "teardown");
    let flipped = calls.iter().position(|c| {
        c.caller == "flip-ssm"
            && c.operation == "PutParameter"
            && c.params["Name"] == format!("/tenantflow/{acme}/db").as_str()
    });
    assert!(
        flipped.is_some_and(|f| f < deleted[0]),
        "deleted after the flip"
    );
    // Authorised by its tag: the request carried it, and without it the delete is denied (the
    // instance's name is outside the stack's `<ns>-*`).
    let t = super::template::template();
    let reqs = super::authz::authorizations(t, delete).unwrap();
    assert_eq!(
        reqs[0]
            .context
            .get(&format!("aws:ResourceTag/{}", tags::NAMESPACE)),
        Some(&json!(acme))
    );
    let mut untagged = reqs.clone();
    for r in &mut untagged {
        r.context.retain(|k, _| !k.starts_with("aws:ResourceTag/"));
    }
    let verdicts = super::authz::evaluate(t, &untagged);
    assert!(
        verdicts.iter().all(|v| v.decision == "ImplicitlyDenied"),
        "{:?}",
        verdicts
            .iter()
            .map(|v| (&v.decision, &v.detail))
            .collect::<Vec<_>>()
    );

    // beta: still served by its adopted instance, which nothing modified or deleted.
    for op in ["ModifyDBInstance", "DeleteDBInstance", "RebootDBInstance"] {
        assert!(on(legacy_beta, op).is_empty(), "{op} on {legacy_beta}");
    }
    let beta_legacy = tags_of(legacy_beta).await.expect("still there");
    assert_eq!(beta_legacy.db_instance_status(), Some("available"));
    assert!(
        tags_of(&format!("{beta}-{RUN_GEN}")).await.is_none(),
        "candidate removed"
    );
    env.check_iam();
}

/// A release folder as `tenantflow release pack` writes it.
fn release_dir(id: &str, v2: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let scripts = [
        (
            "V1__base.sql",
            "CREATE TABLE customer (id BIGINT PRIMARY KEY);\n".to_string(),
        ),
        ("V2__note.sql", v2.to_string()),
    ];
    let mut entries = Vec::new();
    for (name, body) in &scripts {
        std::fs::write(dir.path().join(name), body).unwrap();
        entries.push(json!({"name": name, "sha256": hex::encode(Sha256::digest(body.as_bytes()))}));
    }
    let manifest = json!({
        "release": id, "scripts": entries, "strategy": "blue-green", "fleet": "independent",
        "waves": {"maxFailurePercent": 100.0}, "tenants": {}, "writeFreeze": true,
        "bakeSeconds": 60, "snapshotRetention": 2,
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let sums = tenantflow_core::manifest::Manifest::parse(&bytes)
        .and_then(|m| m.sha256sums())
        .unwrap();
    std::fs::write(dir.path().join("SHA256SUMS"), sums).unwrap();
    std::fs::write(dir.path().join("manifest.json"), bytes).unwrap();
    dir
}

async fn versions(env: &Env, prefix: &str) -> usize {
    env.admin
        .s3
        .list_object_versions()
        .bucket(env.template().release_bucket())
        .prefix(prefix)
        .send()
        .await
        .unwrap()
        .versions()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_good_then_identical_then_tampered() {
    let env = Env::new("ops_push", vec![]).await;
    env.deploy_stack().await;
    let o = ops(&env);
    let id = "ops-push-1";
    let good = release_dir(id, "ALTER TABLE customer ADD COLUMN note TEXT;\n");
    let release = LocalRelease::read(good.path()).await.unwrap();
    let out = push(&o, &release).await.unwrap();
    assert!(!out.already_published);
    assert_eq!(
        out.uploaded,
        vec![
            "V1__base.sql",
            "V2__note.sql",
            "SHA256SUMS",
            "manifest.json"
        ],
        "scripts first, manifest last"
    );
    // Each object carries its S3 SHA-256 checksum.
    let head = env
        .admin
        .s3
        .head_object()
        .bucket(&out.bucket)
        .key(&out.manifest_key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert!(head.checksum_sha256().is_some(), "{head:?}");
    // The run name printed is the one the trigger gives the run the upload starts.
    let delivered = env
        .deliver(&env.object_created(&out.manifest_key, &out.version_id))
        .await;
    let started = match delivered.as_slice() {
        [(StepName::Trigger, Ok(v))] => v.clone(),
        other => panic!("the upload starts one run: {other:?}"),
    };
    assert_eq!(started["name"], out.run_name.as_str());
    assert_eq!(started["executionArn"], out.execution_arn.as_str());

    // The same folder again: nothing uploaded, no new manifest version, the same run name.
    let before = versions(&env, &format!("releases/{id}/")).await;
    let again = push(&o, &release).await.unwrap();
    assert!(again.already_published);
    assert!(again.uploaded.is_empty());
    assert_eq!(again.run_name, out.run_name);
    assert_eq!(versions(&env, &format!("releases/{id}/")).await, before);

    // Same id, other content (re-packed): refused before any upload.
    let other = release_dir(id, "ALTER TABLE customer ADD COLUMN other TEXT;\n");
    let r = LocalRelease::read(other.path()).await.unwrap();
    match push(&o, &r).await {
        Err(OpsError::Refused(m)) => {
            assert!(
                m.contains("already published") && m.contains("V2__note.sql"),
                "{m}"
            )
        }
        other => panic!("a changed release must be refused: {other:?}"),
    }
    assert_eq!(versions(&env, &format!("releases/{id}/")).await, before);

    // A script edited after packing: the manifest's sha256 no longer matches, refused locally as
    // list-tenants would refuse it.
    let tampered = release_dir("ops-push-2", "ALTER TABLE customer ADD COLUMN note TEXT;\n");
    std::fs::write(
        tampered.path().join("V2__note.sql"),
        "DROP TABLE customer;\n",
    )
    .unwrap();
    let err = LocalRelease::read(tampered.path()).await.unwrap_err();
    assert!(
        matches!(&err, OpsError::Step(tenantflow_core::StepError::InvalidInput { field, .. }) if field.starts_with("manifest.scripts")),
        "{err:?}"
    );
    assert!(err.to_string().contains("sha256"), "{err}");
    assert_eq!(versions(&env, "releases/ops-push-2/").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_finished_run() {
    let env = Env::new("ops_status", vec![]).await;
    env.deploy_stack().await;
    let ns = env.template().namespace();
    let tenants = [format!("{ns}-st1"), format!("{ns}-st2")];
    for t in &tenants {
        env.add_tenant(t).await;
    }
    let (key, version) = env.upload_release("ops-status-1", json!({})).await;
    let run = run_release(&env, &key, &version, false).await;
    let o = ops(&env);

    let listed = runs::list_runs(&o).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r.name == run.name && r.status == "SUCCEEDED"),
        "{listed:?}"
    );
    let st = runs::status(&o, Some(&run.name)).await.unwrap();
    assert_eq!(st.run.status, "SUCCEEDED");
    assert_eq!(st.run.execution_arn, run.execution_arn);
    assert_eq!(st.planned, Some(2));
    assert!(
        st.maps.is_empty(),
        "Map counts are read only while a run runs"
    );
    assert!(
        st.held.is_empty(),
        "a finished run holds no lock: {:?}",
        st.held
    );
    let report = st.report.expect("the run's report");
    assert_eq!(report.status, "SUCCEEDED");
    assert_eq!((report.counts.total, report.counts.deployed), (2, 2));
    assert_eq!(outcomes(&report), all(&tenants, "deployed"));
    // Each tenant's duration comes from its child's ResultWriter dates (the engine's virtual
    // clock: a deploy waits on snapshot, restore, build and rollout, so it takes minutes).
    for t in &report.tenants {
        let d = t
            .duration_seconds
            .unwrap_or_else(|| panic!("{}: no duration", t.tenant));
        assert!(d >= 60, "{}: {d} s", t.tenant);
    }
    // The same by ARN, and the newest run by default.
    let by_arn = runs::status(&o, Some(&run.execution_arn)).await.unwrap();
    assert_eq!(by_arn.run.name, run.name);
    assert_eq!(runs::status(&o, None).await.unwrap().run.name, run.name);
    // An unknown run says so.
    assert!(matches!(
        runs::status(&o, Some("no-such-run")).await,
        Err(OpsError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_refused_while_the_holder_runs() {
    let env = Env::new("ops_unlock", vec![]).await;
    env.deploy_stack().await;
    let ns = env.template().namespace();
    let tenant = format!("{ns}-lk");
    env.add_tenant(&tenant).await;
    let o = ops(&env);
    // A run that holds the tenant: registered with the engine API, RUNNING.
    let started = o
        .clients
        .sfn
        .start_execution()
        .state_machine_arn(&o.stack.state_machine_arn)
        .name("ops-unlock-run")
        .input("{}")
        .send()
        .await
        .unwrap();
    let holder = started.execution_arn().to_string();
    let t = Namespace::parse(&tenant).unwrap();
    let records = o.records();
    assert!(matches!(
        records.acquire(&t, &holder, &holder).await.unwrap(),
        LockTake::Taken(_)
    ));
    match locks::unlock(&o, &tenant).await {
        Err(OpsError::Refused(m)) => assert!(m.contains("RUNNING"), "{m}"),
        other => panic!("unlock must refuse while the holder runs: {other:?}"),
    }
    assert_eq!(
        records.get_tenant(&t).await.unwrap().unwrap().holder,
        Some(holder.clone())
    );
    // The janitor (report mode) does not count a running holder as stale.
    assert!(locks::janitor(&o, false)
        .await
        .unwrap()
        .stale_locks
        .is_empty());

    // The holder fails: the janitor reports the lock without releasing it, unlock releases it.
    env.sfn.set_status(&holder, "FAILED");
    let report = locks::janitor(&o, false).await.unwrap();
    assert_eq!(report.stale_locks.len(), 1);
    assert!(!report.stale_locks[0].released);
    assert!(records
        .get_tenant(&t)
        .await
        .unwrap()
        .unwrap()
        .holder
        .is_some());
    let u = locks::unlock(&o, &tenant).await.unwrap();
    assert!(u.released);
    assert_eq!(u.holder_status.as_deref(), Some("FAILED"));
    assert_eq!(records.get_tenant(&t).await.unwrap().unwrap().holder, None);
    // Again: nothing to release.
    let u = locks::unlock(&o, &tenant).await.unwrap();
    assert!(!u.released && u.holder.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_outputs_from_cloudformation() {
    let env = Env::new("ops_stack", vec![]).await;
    let want = outputs(&env);
    let cfn = aws_sdk_cloudformation::Client::new(&env.conf);
    let out = |k: &str, v: &str| json!({"Value": v, "Description": k});
    let template = json!({
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            "Namespace": out("Namespace", &want.namespace),
            "ReleaseBucketName": out("ReleaseBucketName", &want.bucket),
            "ReleaseStateMachineArn": out("ReleaseStateMachineArn", &want.state_machine_arn),
            "RecordsTableName": out("RecordsTableName", &want.table),
            "DefaultEcsCluster": out("DefaultEcsCluster", &want.default_cluster),
        }
    });
    cfn.create_stack()
        .stack_name("tenantflow-ops")
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    let got = StackOutputs::describe(&cfn, "tenantflow-ops")
        .await
        .unwrap();
    assert_eq!(got, want);
    // Every output the commands read is one infra/template.yaml declares.
    let yaml =
        std::fs::read_to_string(super::tools::repo_root().join("infra/template.yaml")).unwrap();
    let outputs_section = yaml.split("\nOutputs:\n").nth(1).unwrap();
    for k in [
        "Namespace",
        "ReleaseBucketName",
        "ReleaseStateMachineArn",
        "RecordsTableName",
        "DefaultEcsCluster",
    ] {
        assert!(
            outputs_section.contains(&format!("\n  {k}:"))
                || outputs_section.starts_with(&format!("  {k}:")),
            "infra/template.yaml has no output {k}"
        );
    }
}

/// Sleeps on the engine's virtual clock (what `watch` waits with in these tests), counting.
struct EngineSleeper {
    clock: statemachine::Clock,
    slept: Mutex<Vec<Duration>>,
}

#[async_trait::async_trait]
impl Sleeper for EngineSleeper {
    async fn sleep(&self, d: Duration) {
        self.slept.lock().unwrap().push(d);
        self.clock.sleep(d).await;
    }
}

/// No time passes at all; `then` runs at each sleep (the n-th, from 1), standing in for what
/// happens meanwhile.
struct Instant<F> {
    slept: Mutex<Vec<Duration>>,
    then: F,
}

#[async_trait::async_trait]
impl<F, Fut> Sleeper for Instant<F>
where
    F: Fn(usize) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = ()> + Send,
{
    async fn sleep(&self, d: Duration) {
        let n = {
            let mut s = self.slept.lock().unwrap();
            s.push(d);
            s.len()
        };
        (self.then)(n).await;
    }
}

fn instant<F, Fut>(then: F) -> Instant<F>
where
    F: Fn(usize) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = ()> + Send,
{
    Instant {
        slept: Mutex::new(Vec::new()),
        then,
    }
}

/// `(tenant, outcome)` of every tenant the report names, sorted.
fn outcomes(report: &tenantflow_core::steps::report::RunReport) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = report
        .tenants
        .iter()
        .map(|t| {
            (
                t.tenant.clone(),
                serde_json::to_value(t.outcome)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

/// What DESIGN §8 expects of a tenant that stayed on its old generation.
fn rolled_back(t: &str) -> Expect {
    Expect {
        tenant: t.to_string(),
        outcome: "rolled-back",
        instance: old_instance(t),
        release: OLD_RELEASE.to_string(),
        kept: vec![],
    }
}

/// `(tenant, outcome)` for each of `tenants`.
fn all(tenants: &[String], outcome: &str) -> Vec<(String, String)> {
    tenants
        .iter()
        .map(|t| (t.clone(), outcome.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_running_run() {
    let env = Env::new("ops_status_running", vec![]).await;
    env.deploy_stack().await;
    let ns = env.template().namespace();
    let tenants = [format!("{ns}-rn1"), format!("{ns}-rn2")];
    for t in &tenants {
        env.add_tenant(t).await;
    }
    let (key, version) = env.upload_release("ops-running-1", json!({})).await;
    // Held just before rn1's flip: rn1 is locked with a candidate in its journal.
    let (gate, key_) = Gate::new(StepName::FlipSsm, Some(&tenants[0]));
    let run = tokio::spawn({
        let env = env.clone();
        async move { run_release_with(&env, &key, &version, false, Some(gate)).await }
    });
    let mut key_ = key_;
    let _clock = (&mut key_.reached)
        .await
        .expect("the run reaches rn1's flip");
    let o = ops(&env);
    let st = runs::status(&o, None).await.unwrap();
    assert_eq!(st.run.status, "RUNNING");
    assert_eq!(st.planned, Some(2));
    assert!(st.report.is_none(), "no report while it runs");
    // One wave: its Map run's counts, as DescribeMapRun gives them.
    assert_eq!(st.maps.len(), 1, "{:?}", st.maps);
    let m = &st.maps[0];
    assert_eq!(m.status, "RUNNING");
    assert_eq!(m.total, 2);
    assert!(m.running >= 1, "rn1's child is running: {m:?}");
    assert_eq!(
        m.pending + m.running + m.succeeded + m.failed + m.timed_out + m.aborted,
        m.total,
        "{m:?}"
    );
    assert!(m.map_run_arn.contains(":mapRun:"), "{}", m.map_run_arn);
    // The records table: rn1 held by this run, its journal showing the candidate.
    let held = st
        .held
        .iter()
        .find(|h| h.tenant == tenants[0])
        .unwrap_or_else(|| panic!("rn1 is held: {:?}", st.held));
    assert!(
        held.journal.to_string().contains(RUN_GEN),
        "the journal names the candidate: {}",
        held.journal
    );
    key_.proceed();
    let run = run.await.unwrap();
    assert_eq!(run.result.status.as_str(), "SUCCEEDED");
    let done = runs::status(&o, Some(&run.name)).await.unwrap();
    assert_eq!(done.run.status, "SUCCEEDED");
    assert!(done.maps.is_empty() && done.held.is_empty(), "{done:?}");
    assert_eq!(
        outcomes(done.report.as_ref().unwrap()),
        all(&tenants, "deployed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_wait_follows_the_run_to_its_end() {
    let env = Env::new("ops_push_wait", vec![]).await;
    env.deploy_stack().await;
    let ns = env.template().namespace();
    let tenants = [format!("{ns}-pw1"), format!("{ns}-pw2")];
    for t in &tenants {
        env.add_tenant(t).await;
    }
    let o = ops(&env);
    let dir = release_dir("ops-wait-1", "ALTER TABLE customer ADD COLUMN note TEXT;\n");
    let out = push(&o, &LocalRelease::read(dir.path()).await.unwrap())
        .await
        .unwrap();
    // `--wait`: the run is not there yet; S3's event reaches the trigger during the second wait.
    let polling = Polling {
        interval: Duration::from_secs(10),
        start_timeout: Duration::from_secs(120),
    };
    let event = env.object_created(&out.manifest_key, &out.version_id);
    let sleeper = instant(|n| {
        let (env, event) = (env.clone(), event.clone());
        async move {
            if n == 2 {
                let d = env.deliver(&event).await;
                assert!(
                    matches!(d.as_slice(), [(StepName::Trigger, Ok(_))]),
                    "{d:?}"
                );
            }
        }
    });
    let started = await_start(&o, &out.execution_arn, &out.manifest_key, polling, &sleeper)
        .await
        .unwrap();
    assert_eq!(started, "RUNNING");
    assert_eq!(sleeper.slept.lock().unwrap().len(), 2);

    // Then it follows the run on the engine's clock, from before its first step to its end.
    let (gate, mut key) = Gate::new(StepName::ListTenants, None);
    let run = tokio::spawn({
        let (env, name, arn) = (env.clone(), out.run_name.clone(), out.execution_arn.clone());
        async move { run_started(&env, &name, &arn, false, Some(gate)).await }
    });
    let clock = (&mut key.reached).await.expect("the run starts");
    let sleeper = Arc::new(EngineSleeper {
        clock,
        slept: Mutex::new(Vec::new()),
    });
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn({
        let (o, arn, sleeper) = (o.clone(), out.execution_arn.clone(), sleeper.clone());
        async move {
            let mut polls: Vec<RunStatus> = Vec::new();
            let mut first = Some(first_tx);
            let fin = watch(
                &o,
                Some(&arn),
                Duration::from_secs(30),
                sleeper.as_ref(),
                &mut |st| {
                    polls.push(st.clone());
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                },
            )
            .await
            .unwrap();
            (polls, fin)
        }
    });
    // The first poll happens while the run is held before its plan.
    first_rx.await.unwrap();
    key.proceed();
    let run = run.await.unwrap();
    let (polls, fin) = watcher.await.unwrap();
    assert_eq!(run.result.status.as_str(), "SUCCEEDED");
    assert_eq!(polls[0].run.status, "RUNNING");
    assert!(polls[0].report.is_none());
    assert!(polls.len() >= 2, "{} polls", polls.len());
    assert!(polls[..polls.len() - 1]
        .iter()
        .all(|p| p.run.status == "RUNNING"));
    assert_eq!(
        polls.last(),
        Some(&fin),
        "the last reading is the one returned"
    );
    let slept = sleeper.slept.lock().unwrap().clone();
    assert_eq!(slept.len(), polls.len() - 1, "one sleep between two polls");
    assert!(slept.iter().all(|d| *d == Duration::from_secs(30)));
    // The final document is the run's status once it ended.
    assert_eq!(fin.run.status, "SUCCEEDED");
    assert_eq!(fin, runs::status(&o, Some(&out.run_name)).await.unwrap());
    assert_eq!(
        outcomes(fin.report.as_ref().unwrap()),
        all(&tenants, "deployed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_wait_says_what_to_check_when_no_run_starts() {
    let env = Env::new("ops_push_wait_timeout", vec![]).await;
    env.deploy_stack().await;
    let o = ops(&env);
    let dir = release_dir("ops-wait-2", "ALTER TABLE customer ADD COLUMN note TEXT;\n");
    let out = push(&o, &LocalRelease::read(dir.path()).await.unwrap())
        .await
        .unwrap();
    // The upload event never reaches the trigger.
    let sleeper = instant(|_| async {});
    let polling = Polling {
        interval: Duration::from_secs(10),
        start_timeout: Duration::from_secs(60),
    };
    match await_start(&o, &out.execution_arn, &out.manifest_key, polling, &sleeper).await {
        Err(OpsError::Timeout(m)) => {
            for needle in [
                "within 60s",
                "ReleaseUploadedRule",
                "EventsDeadLetterQueue",
                "trigger",
                &out.run_name,
            ] {
                assert!(m.contains(needle), "{needle:?} in {m}");
            }
        }
        other => panic!("no run started: a timeout, got {other:?}"),
    }
    let slept = sleeper.slept.lock().unwrap().clone();
    assert_eq!(slept.iter().sum::<Duration>(), Duration::from_secs(60));
    assert!(env.sfn.executions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_a_partly_failed_run() {
    let ns = super::template::template().namespace();
    let (a, b, c) = (format!("{ns}-ra"), format!("{ns}-rb"), format!("{ns}-rc"));
    let env = Env::new(
        "ops_retry",
        vec![Fault::MigrationFails {
            instance: format!("{b}-{RUN_GEN}"),
        }],
    )
    .await;
    env.deploy_stack().await;
    for t in [&a, &b, &c] {
        env.add_tenant(t).await;
    }
    let o = ops(&env);
    // rc is locked by another run that is still running: the run skips it.
    let other = o
        .clients
        .sfn
        .start_execution()
        .state_machine_arn(&o.stack.state_machine_arn)
        .name("ops-retry-other")
        .input("{}")
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string();
    let rc = Namespace::parse(&c).unwrap();
    let records = o.records();
    assert!(matches!(
        records.acquire(&rc, &other, &other).await.unwrap(),
        LockTake::Taken(_)
    ));
    let (key, version) = env.upload_release("ops-retry-1", json!({})).await;
    let first = run_release(&env, &key, &version, false).await;
    let report = runs::status(&o, Some(&first.name))
        .await
        .unwrap()
        .report
        .unwrap();
    assert_eq!(
        outcomes(&report),
        vec![
            (a.clone(), "deployed".to_string()),
            (b.clone(), "rolled-back".to_string()),
            (c.clone(), "skipped".to_string()),
        ]
    );
    // The other run ends and its lock is released.
    env.sfn.set_status(&other, "SUCCEEDED");
    assert!(locks::unlock(&o, &c).await.unwrap().released);

    let plan = retry::retry_plan(&o, &first.name).await.unwrap();
    let mut planned = plan.tenants.clone();
    planned.sort();
    assert_eq!(planned, vec![b.clone(), c.clone()]);
    assert!(plan.needs_attention.is_empty());
    let started = retry::start_limited_run(&o, &plan).await.unwrap();
    assert!(started.started);
    let name = started
        .execution_arn
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let second = run_started(&env, &name, &started.execution_arn, false, None).await;
    // The retry ran exactly the rolled-back and the skipped tenant: rb fails again (its
    // migration still does), rc deploys, ra was not touched.
    let retried = runs::status(&o, Some(&name)).await.unwrap();
    assert_eq!(retried.planned, Some(2));
    assert_eq!(
        outcomes(retried.report.as_ref().unwrap()),
        vec![
            (b.clone(), "rolled-back".to_string()),
            (c.clone(), "deployed".to_string()),
        ]
    );
    check(
        &env,
        &second,
        &[
            rolled_back(&b),
            Expect {
                tenant: c.clone(),
                outcome: "deployed",
                instance: format!("{c}-{RUN_GEN}"),
                release: "ops-retry-1".to_string(),
                kept: vec![],
            },
        ],
        2,
    )
    .await;

    // Asked again: the first retry is found, no second execution.
    let before = env.sfn.executions().len();
    let again = retry::start_limited_run(&o, &retry::retry_plan(&o, &first.name).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        again,
        retry::LimitedRun {
            execution_arn: started.execution_arn.clone(),
            started: false
        }
    );
    assert_eq!(env.sfn.executions().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_settles_a_run_that_died_midway() {
    let env = Env::new("ops_recover", vec![]).await;
    env.deploy_stack().await;
    let ns = env.template().namespace();
    let t = format!("{ns}-rv");
    env.add_tenant(&t).await;
    let o = ops(&env);
    let (key, version) = env.upload_release("ops-recover-1", json!({})).await;
    // The run flips rv to its candidate, then is stopped before the app is rolled.
    let (gate, mut gk) = Gate::new(StepName::RollEcs, Some(&t));
    let run = tokio::spawn({
        let env = env.clone();
        async move { run_release_with(&env, &key, &version, false, Some(gate)).await }
    });
    (&mut gk.reached)
        .await
        .expect("the run reaches the rollout");
    gk.stop();
    let mut run = run.await.unwrap();
    assert_eq!(run.result.status.as_str(), "ABORTED", "{:?}", run.result);
    let pointer = |v: String| serde_json::from_str::<serde_json::Value>(&v).unwrap();
    let params = o.parameters();
    let ptr = format!("/tenantflow/{t}/db");
    assert_eq!(
        pointer(params.get(&ptr).await.unwrap().unwrap().value)["instanceId"],
        format!("{t}-{RUN_GEN}").as_str(),
        "the run died flipped"
    );

    // The journal shows the work; unlock refuses until recover settled it.
    let st = runs::status(&o, Some(&run.name)).await.unwrap();
    assert_eq!(st.run.status, "ABORTED");
    assert_eq!(st.held.len(), 1, "{:?}", st.held);
    match locks::unlock(&o, &t).await {
        Err(OpsError::Refused(m)) => assert!(m.contains("recover"), "{m}"),
        other => panic!("unlock must refuse an unsettled journal: {other:?}"),
    }
    let found = retry::stranded(&o).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].record.tenant.to_string(), t);
    assert_eq!(found[0].holder_status, "ABORTED");
    let settled = retry::settle(&o, &found).await.unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(
        (settled[0].action, settled[0].outcome),
        (RecoveryAction::RolledBack, RecoveryOutcome::Recovered),
        "{settled:?}"
    );
    // Settled: nothing stranded, the lock is gone, unlock has nothing to do.
    assert!(retry::stranded(&o).await.unwrap().is_empty());
    let rv = Namespace::parse(&t).unwrap();
    assert_eq!(
        o.records().get_tenant(&rv).await.unwrap().unwrap().holder,
        None
    );
    let u = locks::unlock(&o, &t).await.unwrap();
    assert!(!u.released && u.holder.is_none());
    // DESIGN §8, with recovery's account of the tenant as the run's.
    run.report = Some(json!({"tenants": [{"tenant": t, "outcome": settled[0].action.as_str()}]}));
    check(&env, &run, &[rolled_back(&t)], 2).await;
}
