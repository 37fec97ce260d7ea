//! `S3Objects`, `EventBridgeEvents`, settings.

use crate::common;
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_sdk_s3::types::Object;
use aws_smithy_mocks::mock;
use std::collections::HashMap;
use tenantflow_aws::{AwsSettings, EventBridgeEvents, S3Objects};
use tenantflow_core::ports::{Events, Objects};
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
