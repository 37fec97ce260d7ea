//! The typed trigger: the core `trigger` step turns the published manifest's S3 event into a run,
//! as EventBridge does on AWS, and the run's request gets the CLI's overrides.

use super::DeployOptions;
use crate::error::LocalError;
use crate::events::{ACCOUNT, REGION};
use crate::ports::LocalPorts;
use crate::state::PublishedRelease;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;
use tenantflow_core::steps::list_tenants::RunInput;
use tenantflow_core::steps::trigger;

/// A run the trigger started: its execution name and its state machine input.
pub(super) struct Triggered {
    pub name: String,
    pub input: RunInput,
}

/// Runs the core `trigger` on the S3 event of `published` and returns the run it started, with
/// `opts`' overrides in its input.
pub(super) async fn trigger(
    ports: &LocalPorts,
    published: &PublishedRelease,
    at: DateTime<Utc>,
    opts: &DeployOptions,
) -> Result<Triggered, LocalError> {
    let started = trigger::run(&ports.ports(), object_created_event(published, at)).await?;
    let request = run_request(ports, &started.name)?;
    let mut input: RunInput =
        serde_json::from_value(request).map_err(|cause| LocalError::InvalidJson {
            name: request_file(ports, &started.name).display().to_string(),
            cause,
        })?;
    input.overrides = super::preflight::overrides(opts);
    input.tenant_list = opts.tenant_list.clone();
    Ok(Triggered {
        name: started.name,
        input,
    })
}

/// The EventBridge S3 "Object Created" event for a published manifest.
fn object_created_event(p: &PublishedRelease, at: DateTime<Utc>) -> Value {
    json!({
        "version": "0",
        "id": format!("local-s3-{}-{}", p.id, p.version_id),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": REGION,
        "resources": [format!("arn:aws:s3:::{}", p.bucket)],
        "detail": {
            "version": "0",
            "bucket": {"name": p.bucket},
            "object": {"key": p.key, "size": p.size, "etag": p.etag.trim_matches('"'), "version-id": p.version_id, "sequencer": "0"},
            "request-id": "local",
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject"
        }
    })
}

/// The input `start_execution` recorded for run `name`: from memory when this process started it,
/// else from its `request.json` (a duplicate event names a run started earlier).
fn run_request(ports: &LocalPorts, name: &str) -> Result<Value, LocalError> {
    let started = ports.workflows.take_started();
    if let Some(r) = started.into_iter().find(|r| r.name == name) {
        return Ok(r.input);
    }
    let f = request_file(ports, name);
    let text = std::fs::read_to_string(&f).map_err(|e| LocalError::io(&f, e))?;
    serde_json::from_str(&text).map_err(|cause| LocalError::InvalidJson {
        name: f.display().to_string(),
        cause,
    })
}

fn request_file(ports: &LocalPorts, name: &str) -> PathBuf {
    ports.layout.run_dir(name).join("request.json")
}
