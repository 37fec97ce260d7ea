//! `trigger`: turns an S3 "Object Created" event for `releases/<id>/manifest.json` into a run.
//!
//! The execution name is `<release-id>-<16 hex of sha256(bucket/key/version-id or etag)>`, so a
//! duplicate delivery of the same event starts nothing new: Step Functions answers a StartExecution
//! with the same name and input with the original execution.

use super::list_tenants::{release_id_of_key, Overrides, RunInput};
use super::{parse_input, Ports};
use crate::error::StepError;
use crate::ports::Workflows;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Step Functions' execution-name limit.
pub const MAX_EXECUTION_NAME: usize = 80;
/// `-` plus 16 hex characters.
const HASH_SUFFIX: usize = 17;

/// The EventBridge S3 event, only the fields the trigger reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Event {
    pub source: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub detail: S3Detail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Detail {
    pub bucket: S3Bucket,
    pub object: S3Object,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Bucket {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Object {
    pub key: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(rename = "version-id", default)]
    pub version_id: Option<String>,
}

/// Output of `trigger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerOutput {
    pub execution_arn: String,
    pub name: String,
    /// True when this event was a duplicate delivery of one that already started the run.
    pub duplicate: bool,
}

/// Entry point used by [`super::dispatch`].
pub async fn run(ports: &Ports, input: Value) -> Result<TriggerOutput, StepError> {
    let event: S3Event = parse_input(input)?;
    trigger(ports.workflows.as_ref(), event).await
}

/// Validates the event and starts (or finds) the run.
pub async fn trigger<W: Workflows + ?Sized>(
    workflows: &W,
    event: S3Event,
) -> Result<TriggerOutput, StepError> {
    if event.source != "aws.s3" {
        return Err(StepError::invalid(
            "source",
            format!("{:?} is not aws.s3", event.source),
        ));
    }
    if event.detail_type != "Object Created" {
        return Err(StepError::invalid(
            "detail-type",
            format!("{:?} is not \"Object Created\"", event.detail_type),
        ));
    }
    let bucket = event.detail.bucket.name;
    if bucket.is_empty() {
        return Err(StepError::invalid("detail.bucket.name", "is empty"));
    }
    let key = event.detail.object.key;
    let release_id = release_id_of_key(&key)
        .map_err(|e| match e {
            StepError::InvalidInput { message, .. } => {
                StepError::invalid("detail.object.key", message)
            }
            other => other,
        })?
        .to_string();
    let version_id = event
        .detail
        .object
        .version_id
        .filter(|v| !v.is_empty() && v != "null");
    let identity = match (&version_id, &event.detail.object.etag) {
        (Some(v), _) => v.clone(),
        (None, Some(etag)) if !etag.is_empty() => etag.clone(),
        _ => {
            return Err(StepError::invalid(
                "detail.object",
                "needs a version-id or an etag to name the run",
            ))
        }
    };
    let name = execution_name(&release_id, &bucket, &key, &identity);
    let input = RunInput {
        bucket,
        key,
        version_id,
        overrides: Overrides::default(),
        tenant_list: None,
    };
    // Field order is fixed by the struct, so a duplicate delivery sends byte-identical input.
    let input = serde_json::to_string(&input)
        .map_err(|e| StepError::Internal(format!("serialize run input: {e}")))?;
    let started = workflows.start_execution(&name, &input).await?;
    Ok(TriggerOutput {
        execution_arn: started.execution_arn,
        name,
        duplicate: started.duplicate,
    })
}

/// `<release-id>-<16 hex of sha256(bucket/key/identity)>`, at most 80 characters. The release id
/// (letters, digits, `.`, `_`, `-`) is already in the execution-name charset; it is cut if long.
pub fn execution_name(release_id: &str, bucket: &str, key: &str, identity: &str) -> String {
    let digest = Sha256::digest(format!("{bucket}/{key}/{identity}").as_bytes());
    let hash = hex::encode(&digest[..8]);
    let head: String = release_id
        .chars()
        .take(MAX_EXECUTION_NAME - HASH_SUFFIX)
        .collect();
    format!("{head}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{ExecutionState, Started};
    use async_trait::async_trait;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Step Functions' StartExecution idempotency, in memory.
    #[derive(Default)]
    struct FakeWorkflows {
        started: Mutex<BTreeMap<String, String>>,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl Workflows for FakeWorkflows {
        async fn start_execution(&self, name: &str, input: &str) -> Result<Started, StepError> {
            *self
                .calls
                .lock()
                .map_err(|e| StepError::Internal(e.to_string()))? += 1;
            let mut started = self
                .started
                .lock()
                .map_err(|e| StepError::Internal(e.to_string()))?;
            let arn = format!("arn:aws:states:local:000000000000:execution:tenantflow:{name}");
            match started.get(name) {
                Some(prev) if prev == input => Ok(Started {
                    execution_arn: arn,
                    duplicate: true,
                }),
                Some(_) => Err(StepError::Conflict(format!(
                    "execution {name} exists with other input"
                ))),
                None => {
                    started.insert(name.to_string(), input.to_string());
                    Ok(Started {
                        execution_arn: arn,
                        duplicate: false,
                    })
                }
            }
        }
        async fn send_task_success(&self, _: &str, _: &str) -> Result<(), StepError> {
            Err(StepError::Internal("unexpected".into()))
        }
        async fn send_task_failure(&self, _: &str, _: &str, _: &str) -> Result<(), StepError> {
            Err(StepError::Internal("unexpected".into()))
        }
        async fn execution_status(&self, _: &str) -> Result<Option<ExecutionState>, StepError> {
            Err(StepError::Internal("unexpected".into()))
        }
    }

    fn event(key: &str, version: Option<&str>, etag: &str) -> Value {
        let mut object =
            json!({"key": key, "size": 812, "etag": etag, "sequencer": "00617F08299329D189"});
        if let Some(v) = version {
            object["version-id"] = json!(v);
        }
        json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-03T10:15:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:s3:::tenantflow-releases"],
            "detail": {
                "version": "0",
                "bucket": {"name": "tenantflow-releases"},
                "object": object,
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "reason": "PutObject"
            }
        })
    }

    async fn fire(wf: &FakeWorkflows, ev: Value) -> Result<TriggerOutput, StepError> {
        trigger(wf, parse_input(ev)?).await
    }

    #[tokio::test]
    async fn starts_a_named_run_and_treats_a_redelivery_as_duplicate() {
        let wf = FakeWorkflows::default();
        let ev = event("releases/2026-11-03-points/manifest.json", Some("v1"), "e1");
        let first = fire(&wf, ev.clone()).await.unwrap();
        assert!(!first.duplicate);
        assert!(first.name.starts_with("2026-11-03-points-"));
        assert_eq!(first.name.len(), "2026-11-03-points-".len() + 16);
        let second = fire(&wf, ev).await.unwrap();
        assert!(second.duplicate);
        assert_eq!(second.name, first.name);
        assert_eq!(second.execution_arn, first.execution_arn);
        let started = wf.started.lock().unwrap();
        assert_eq!(started.len(), 1);
        let input: Value = serde_json::from_str(started.values().next().unwrap()).unwrap();
        assert_eq!(
            input,
            json!({"bucket": "tenantflow-releases", "key": "releases/2026-11-03-points/manifest.json", "versionId": "v1", "overrides": {}})
        );
    }

    #[tokio::test]
    async fn a_new_object_version_is_a_new_run() {
        let wf = FakeWorkflows::default();
        let key = "releases/r1/manifest.json";
        let a = fire(&wf, event(key, Some("v1"), "e")).await.unwrap();
        let b = fire(&wf, event(key, Some("v2"), "e")).await.unwrap();
        assert_ne!(a.name, b.name);
        // Unversioned bucket: the etag names the run.
        let c = fire(&wf, event(key, None, "etag-1")).await.unwrap();
        let d = fire(&wf, event(key, None, "etag-2")).await.unwrap();
        assert_ne!(c.name, d.name);
        assert_eq!(wf.started.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn same_name_other_input_is_a_conflict() {
        let wf = FakeWorkflows::default();
        let ev = event("releases/r1/manifest.json", Some("v1"), "e");
        let out = fire(&wf, ev.clone()).await.unwrap();
        wf.started
            .lock()
            .unwrap()
            .insert(out.name.clone(), "{\"other\":true}".into());
        let err = fire(&wf, ev).await.unwrap_err();
        assert_eq!(err.asl_name(), "Tenantflow.Conflict");
    }

    #[tokio::test]
    async fn bad_events_fail_before_any_call() {
        let wf = FakeWorkflows::default();
        let cases = [
            (
                event("releases/r1/other.json", Some("v"), "e"),
                "detail.object.key",
            ),
            (
                event("uploads/r1/manifest.json", Some("v"), "e"),
                "detail.object.key",
            ),
            (
                event("releases/../manifest.json", Some("v"), "e"),
                "detail.object.key",
            ),
            (
                event("releases/a/b/manifest.json", Some("v"), "e"),
                "detail.object.key",
            ),
            (
                event("releases/r1/manifest.json", None, ""),
                "detail.object",
            ),
        ];
        for (ev, field) in cases {
            match fire(&wf, ev).await {
                Err(StepError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected InvalidInput({field}), got {other:?}"),
            }
        }
        let mut wrong_type = event("releases/r1/manifest.json", Some("v"), "e");
        wrong_type["detail-type"] = json!("Object Deleted");
        match fire(&wf, wrong_type).await {
            Err(StepError::InvalidInput { field, .. }) => assert_eq!(field, "detail-type"),
            other => panic!("{other:?}"),
        }
        match fire(&wf, json!({"source": "aws.s3"})).await {
            Err(StepError::InvalidInput { message, .. }) => {
                assert!(message.contains("detail-type"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*wf.calls.lock().unwrap(), 0);
    }

    #[test]
    fn long_release_ids_are_cut_to_fit_80_characters() {
        let id = "r".repeat(64);
        let name = execution_name(&id, "b", "k", "v");
        assert_eq!(name.len(), MAX_EXECUTION_NAME);
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    }
}
