//! `resume`: the second half of the `waitForTaskToken` pair, the target of the EventBridge rules
//! for `RDS DB Instance Event`, `RDS DB Snapshot Event` and `ECS Deployment State Change`.
//!
//! It finds the waiting token by resource id, re-reads the resource's state (an event is only a
//! hint), and if the state is terminal sends the result and deletes the token. Events for
//! resources nobody waits on (other databases, automated snapshots, other services) are ignored
//! with success, so EventBridge does not retry them. A malformed event is `InvalidInput`.

use super::wait::{is_safe_resource_id, settle, ResourceKind, Waited};
use super::{parse_input, Ports};
use crate::error::StepError;
use crate::names::{InstanceId, SnapshotId};
use crate::ports::{Databases, Records, Services, Workflows};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The EventBridge envelope (only the fields resume reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RdsDetail {
    #[serde(default)]
    source_identifier: Option<String>,
    #[serde(default)]
    source_arn: Option<String>,
    #[serde(default, rename = "EventID")]
    event_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsDetail {
    deployment_id: String,
    #[serde(default)]
    event_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeOutput {
    pub kind: Option<ResourceKind>,
    pub resource: Option<String>,
    /// True when a waiting task got its result.
    pub resumed: bool,
    /// Why nothing was done, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl ResumeOutput {
    fn ignored(kind: Option<ResourceKind>, resource: Option<String>, why: String) -> Self {
        ResumeOutput {
            kind,
            resource,
            resumed: false,
            ignored: Some(why),
            status: None,
        }
    }
}

/// Entry point used by [`super::dispatch`]: parses the input and runs the step.
pub async fn run(ports: &Ports, input: Value) -> Result<ResumeOutput, StepError> {
    let event: Event = parse_input(input)?;
    resume(
        &*ports.databases,
        &*ports.services,
        &*ports.records,
        &*ports.workflows,
        event,
    )
    .await
}

fn detail_error(e: serde_path_to_error::Error<serde_json::Error>) -> StepError {
    let path = e.path().to_string();
    let field = if path == "." {
        "detail".to_string()
    } else {
        format!("detail.{path}")
    };
    StepError::invalid(field, e.into_inner().to_string())
}

/// The RDS resource id of an event: from `SourceArn` (`…:db:<id>` / `…:snapshot:<id>`), else
/// `SourceIdentifier`. AWS's own samples write `SourceIdentifier` as `rds:<id>`, and the snapshot
/// sample's ARN as `…:snapshot:rds:<id>` ("Overview of events for Amazon RDS",
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-cloudwatch-events.sample.html>), so
/// a leading `rds:` is dropped. (Automated snapshots are named `rds:…` too; they then name no
/// waited-on resource and are ignored.)
fn rds_id(detail: &Value) -> Result<String, StepError> {
    let d: RdsDetail = serde_path_to_error::deserialize(detail).map_err(detail_error)?;
    let from_arn = d
        .source_arn
        .as_deref()
        .and_then(|a| a.split_once(":db:").or_else(|| a.split_once(":snapshot:")))
        .map(|(_, id)| id.to_string());
    tracing::debug!(event_id = ?d.event_id, "rds event");
    let id = from_arn.or(d.source_identifier).ok_or_else(|| {
        StepError::invalid(
            "detail.SourceIdentifier",
            "neither SourceArn nor SourceIdentifier",
        )
    })?;
    Ok(match id.strip_prefix("rds:") {
        Some(rest) => rest.to_string(),
        None => id,
    })
}

pub async fn resume<
    D: Databases + ?Sized,
    S: Services + ?Sized,
    R: Records + ?Sized,
    W: Workflows + ?Sized,
>(
    db: &D,
    services: &S,
    records: &R,
    workflows: &W,
    event: Event,
) -> Result<ResumeOutput, StepError> {
    // Parse everything before the first port call.
    let (kind, id) = match event.detail_type.as_str() {
        "RDS DB Instance Event" => (ResourceKind::DbInstance, rds_id(&event.detail)?),
        "RDS DB Snapshot Event" => (ResourceKind::DbSnapshot, rds_id(&event.detail)?),
        "ECS Deployment State Change" => {
            let d: EcsDetail =
                serde_path_to_error::deserialize(&event.detail).map_err(detail_error)?;
            tracing::debug!(event = ?d.event_name, resources = ?event.resources, "ecs event");
            (ResourceKind::EcsDeployment, d.deployment_id)
        }
        other => {
            return Err(StepError::invalid(
                "detail-type",
                format!(
                    "{other:?} (source {:?}) is not an event resume handles",
                    event.source
                ),
            ))
        }
    };
    let valid = match kind {
        ResourceKind::DbInstance => InstanceId::parse(&id).is_ok(),
        ResourceKind::DbSnapshot => SnapshotId::parse(&id).is_ok(),
        ResourceKind::EcsDeployment => is_safe_resource_id(&id),
    };
    if !valid {
        return Ok(ResumeOutput::ignored(
            Some(kind),
            Some(id),
            "not a resource tenantflow names".into(),
        ));
    }

    let Some(record) = records.get_token(kind, &id).await? else {
        return Ok(ResumeOutput::ignored(
            Some(kind),
            Some(id),
            "no task waits on it".into(),
        ));
    };
    let waited = match kind {
        ResourceKind::DbInstance => Waited::Instance(InstanceId::parse(&id)?),
        ResourceKind::DbSnapshot => Waited::Snapshot(SnapshotId::parse(&id)?),
        ResourceKind::EcsDeployment => match record.service {
            Some(service) => Waited::Deployment {
                service,
                id: id.clone(),
            },
            None => {
                return Err(StepError::Internal(format!(
                    "wait record of {} {id} names no service",
                    kind.as_str()
                )))
            }
        },
    };
    let verdict = waited.judge(db, services).await?;
    let resumed = settle(workflows, records, kind, &record.token, &id, &verdict).await?;
    let status = verdict.status();
    tracing::info!(tenant = %record.tenant, kind = kind.as_str(), resource = %id, %status, resumed, "event handled");
    Ok(ResumeOutput {
        kind: Some(kind),
        resource: Some(id),
        resumed,
        ignored: None,
        status: Some(status),
    })
}
