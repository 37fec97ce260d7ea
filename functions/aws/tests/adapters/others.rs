//! `S3Objects`, `SecretsManagerSecrets`, `CodeBuildMigrations`, `EventBridgeEvents`, settings.

use crate::common;
use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
use aws_sdk_codebuild::operation::start_build::{StartBuildError, StartBuildOutput};
use aws_sdk_codebuild::types::error::AccountLimitExceededException;
use aws_sdk_codebuild::types::{Build, BuildPhase, PhaseContext, StatusType};
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_sdk_s3::types::Object;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
use aws_smithy_mocks::mock;
use std::collections::HashMap;
use tenantflow_aws::{
    AwsSettings, CodeBuildMigrations, EventBridgeEvents, S3Objects, SecretsManagerSecrets,
};
use tenantflow_core::names::InstanceId;
use tenantflow_core::ports::{Events, MigrationRequest, Migrations, Objects, Secrets};
use tenantflow_core::StepError;

const BUCKET: &str = "tenantflow-releases-123456789012";

#[tokio::test]
async fn s3_get_put_list() {
    let get = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET) && r.key() == Some("releases/r1/manifest.json")
        })
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"{\"release\":\"r1\"}"))
                .build()
        });
    let missing = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some("nope"))
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let put = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(|r| r.key() == Some("runs/x/tenants.json"))
        .then_output(|| PutObjectOutput::builder().build());
    let l1 = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|r| r.continuation_token().is_none() && r.prefix() == Some("releases/r1/"))
        .then_output(|| {
            ListObjectsV2Output::builder()
                .contents(Object::builder().key("releases/r1/V1__a.sql").build())
                .is_truncated(true)
                .next_continuation_token("c2")
                .build()
        });
    let l2 = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|r| r.continuation_token() == Some("c2"))
        .then_output(|| {
            ListObjectsV2Output::builder()
                .contents(Object::builder().key("releases/r1/manifest.json").build())
                .is_truncated(false)
                .build()
        });
    let s3 = S3Objects::new(client!(aws_sdk_s3, &[&get, &missing, &put, &l1, &l2]));
    assert_eq!(
        s3.get(BUCKET, "releases/r1/manifest.json").await,
        Ok(Some(b"{\"release\":\"r1\"}".to_vec()))
    );
    assert_eq!(s3.get(BUCKET, "nope").await, Ok(None));
    assert_eq!(s3.put(BUCKET, "runs/x/tenants.json", b"[]").await, Ok(()));
    assert_eq!(put.num_calls(), 1);
    assert_eq!(
        s3.list(BUCKET, "releases/r1/").await,
        Ok(vec![
            "releases/r1/V1__a.sql".to_string(),
            "releases/r1/manifest.json".to_string()
        ])
    );
}

#[tokio::test]
async fn s3_slow_down_is_transient() {
    let r = mock!(aws_sdk_s3::Client::put_object).then_error(|| {
        aws_sdk_s3::operation::put_object::PutObjectError::generic(common::code("SlowDown"))
    });
    let s3 = S3Objects::new(client!(aws_sdk_s3, &[&r]));
    let e = s3.put(BUCKET, "k", b"x").await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

#[tokio::test]
async fn secret_value_is_returned_but_never_shown() {
    let r = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| r.secret_id() == Some("tenantflow/xy-0146-prod/db"))
        .then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string("hunter2-very-secret")
                .build()
        });
    let s = SecretsManagerSecrets::new(client!(aws_sdk_secretsmanager, &[&r]));
    let v = s
        .get_secret("tenantflow/xy-0146-prod/db")
        .await
        .expect("ok");
    assert_eq!(v.expose(), "hunter2-very-secret");
    assert!(!format!("{v:?}").contains("hunter2"));
}

#[tokio::test]
async fn missing_secret_is_not_found() {
    let r = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
        GetSecretValueError::ResourceNotFoundException(ResourceNotFoundException::builder().build())
    });
    let s = SecretsManagerSecrets::new(client!(aws_sdk_secretsmanager, &[&r]));
    let e = s.get_secret("x").await;
    assert!(matches!(e, Err(StepError::NotFound(_))), "{e:?}");
}

fn request() -> MigrationRequest {
    MigrationRequest {
        instance_id: InstanceId::parse("xy-0146-prod-20261103101500").expect("valid"),
        bucket: BUCKET.into(),
        prefix: "releases/r1/".into(),
        release: "r1".into(),
        sha256sums: Some("ab".repeat(32)),
    }
}

#[tokio::test]
async fn codebuild_start_passes_the_candidate_and_release() {
    let r = mock!(aws_sdk_codebuild::Client::start_build)
        .match_requests(|r| {
            let env: HashMap<&str, &str> = r
                .environment_variables_override()
                .iter()
                .map(|v| (v.name(), v.value()))
                .collect();
            r.project_name() == Some("tenantflow-migrate")
                && env.get("TENANTFLOW_INSTANCE") == Some(&"xy-0146-prod-20261103101500")
                && env.get("TENANTFLOW_RELEASE_BUCKET") == Some(&BUCKET)
                && env.get("TENANTFLOW_RELEASE_PREFIX") == Some(&"releases/r1/")
                && env.get("TENANTFLOW_RELEASE") == Some(&"r1")
        })
        .then_output(|| {
            StartBuildOutput::builder()
                .build_value(
                    Build::builder()
                        .id("tenantflow-migrate:b1")
                        .build_status(StatusType::InProgress)
                        .build(),
                )
                .build()
        });
    let m = CodeBuildMigrations::new(client!(aws_sdk_codebuild, &[&r]), "tenantflow-migrate");
    let s = m.start(&request()).await.expect("started");
    assert_eq!(
        (s.build_id.as_str(), s.status.as_str()),
        ("tenantflow-migrate:b1", "IN_PROGRESS")
    );
}

/// The Flyway image cannot read `s3:` locations (no AWS SDK: flyway/flyway#3668), so the build's
/// source is the release folder: an S3 source override "<bucket>/releases/<id>/" (the folder form
/// of API_ProjectSource's location), plus the digest of the SHA256SUMS the plan verified.
#[tokio::test]
async fn codebuild_start_makes_the_release_folder_the_source() {
    let d = "ab".repeat(32);
    let r = mock!(aws_sdk_codebuild::Client::start_build)
        .match_requests(move |r| {
            r.source_type_override() == Some(&aws_sdk_codebuild::types::SourceType::S3)
                && r.source_location_override() == Some(&format!("{BUCKET}/releases/r1/")[..])
                && r.environment_variables_override()
                    .iter()
                    .any(|v| v.name() == "TENANTFLOW_SHA256SUMS_SHA256" && v.value() == d.as_str())
        })
        .then_output(|| {
            StartBuildOutput::builder()
                .build_value(
                    Build::builder()
                        .id("tenantflow-migrate:b2")
                        .build_status(StatusType::InProgress)
                        .build(),
                )
                .build()
        });
    let m = CodeBuildMigrations::new(client!(aws_sdk_codebuild, &[&r]), "tenantflow-migrate");
    m.start(&request()).await.expect("started");
    assert_eq!(r.num_calls(), 1, "request did not name the release folder");
}

#[tokio::test]
async fn codebuild_account_limit_is_quota_exceeded() {
    let r = mock!(aws_sdk_codebuild::Client::start_build).then_error(|| {
        StartBuildError::AccountLimitExceededException(
            AccountLimitExceededException::builder().build(),
        )
    });
    let m = CodeBuildMigrations::new(client!(aws_sdk_codebuild, &[&r]), "tenantflow-migrate");
    let e = m.start(&request()).await;
    assert!(matches!(e, Err(StepError::QuotaExceeded(_))), "{e:?}");
}

#[tokio::test]
async fn codebuild_status_reports_the_failed_phase() {
    let r = mock!(aws_sdk_codebuild::Client::batch_get_builds)
        .match_requests(|r| r.ids() == ["tenantflow-migrate:b1"])
        .then_output(|| {
            BatchGetBuildsOutput::builder()
                .builds(
                    Build::builder()
                        .id("tenantflow-migrate:b1")
                        .build_status(StatusType::Failed)
                        .phases(
                            BuildPhase::builder()
                                .phase_status(StatusType::Succeeded)
                                .build(),
                        )
                        .phases(
                            BuildPhase::builder()
                                .phase_status(StatusType::Failed)
                                .contexts(
                                    PhaseContext::builder()
                                        .message("flyway migrate exited 1")
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let m = CodeBuildMigrations::new(client!(aws_sdk_codebuild, &[&r]), "tenantflow-migrate");
    let s = m.status("tenantflow-migrate:b1").await.expect("ok");
    assert_eq!(s.status, "FAILED");
    assert_eq!(s.message.as_deref(), Some("flyway migrate exited 1"));
    let none = mock!(aws_sdk_codebuild::Client::batch_get_builds).then_output(|| {
        BatchGetBuildsOutput::builder()
            .builds_not_found("x")
            .build()
    });
    let m = CodeBuildMigrations::new(client!(aws_sdk_codebuild, &[&none]), "p");
    assert!(matches!(m.status("x").await, Err(StepError::NotFound(_))));
}

#[tokio::test]
async fn eventbridge_put_and_partial_failure() {
    let ok = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| {
            r.entries().first().is_some_and(|e| {
                e.source() == Some("tenantflow")
                    && e.detail_type() == Some("Run Completed")
                    && e.event_bus_name() == Some("default")
                    && e.detail() == Some(r#"{"status":"succeeded"}"#)
            })
        })
        .then_output(|| PutEventsOutput::builder().failed_entry_count(0).build());
    let ev = EventBridgeEvents::new(client!(aws_sdk_eventbridge, &[&ok]), "default");
    let detail = serde_json::json!({"status": "succeeded"});
    assert_eq!(ev.put_event("Run Completed", &detail).await, Ok(()));
    assert_eq!(ok.num_calls(), 1);

    let throttled = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("ThrottlingException")
                    .error_message("slow down")
                    .build(),
            )
            .build()
    });
    let ev = EventBridgeEvents::new(client!(aws_sdk_eventbridge, &[&throttled]), "default");
    let e = ev.put_event("Run Completed", &detail).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

#[test]
fn settings_from_env_lookup() {
    let env: HashMap<&str, &str> = [
        ("TENANTFLOW_STATE_MACHINE_ARN", common::STATE_MACHINE_ARN),
        ("TENANTFLOW_BUILD_CONCURRENCY", "5"),
        ("TENANTFLOW_DEFAULT_CLUSTER", "apps"),
    ]
    .into_iter()
    .collect();
    let s = AwsSettings::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("valid");
    assert_eq!(
        s.state_machine_arn.as_deref(),
        Some(common::STATE_MACHINE_ARN)
    );
    assert_eq!(s.steps.build_concurrency, 5);
    assert_eq!(s.steps.default_max_concurrency, 10);
    assert_eq!(s.steps.default_cluster, "apps");
    assert_eq!(s.migration_project, "tenantflow-migrate");
    let bad = AwsSettings::from_lookup(|k| {
        (k == "TENANTFLOW_BUILD_CONCURRENCY").then(|| "lots".to_string())
    });
    assert!(bad.is_err());
}
