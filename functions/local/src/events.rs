//! The local EventBridge bus.
//!
//! RDS and ECS state changes are published here in AWS's event shapes (`RDS DB Snapshot Event`,
//! `RDS DB Instance Event`, `ECS Deployment State Change`) and delivered to the subscriber the run
//! installs (the core `resume` step), so the `waitForTaskToken` path runs as on AWS. Every event,
//! including the `tenantflow` `Run Completed` notifications of the `Events` port, is appended to
//! `<state>/events.jsonl`.

use crate::clock::Clock;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tenantflow_core::ports::Events;
use tenantflow_core::StepError;

pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "local";

/// What the bus calls for each AWS-service event.
pub type Subscriber = Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

pub struct LocalBus {
    log: PathBuf,
    clock: Arc<dyn Clock>,
    seq: AtomicU64,
    subscriber: RwLock<Option<Subscriber>>,
    log_lock: Mutex<()>,
}

impl LocalBus {
    pub fn new(log: PathBuf, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(LocalBus {
            log,
            clock,
            seq: AtomicU64::new(0),
            subscriber: RwLock::new(None),
            log_lock: Mutex::new(()),
        })
    }

    /// Installs (or with `None` removes) the target of RDS/ECS events.
    pub fn subscribe(&self, s: Option<Subscriber>) {
        if let Ok(mut g) = self.subscriber.write() {
            *g = s;
        }
    }

    fn envelope(
        &self,
        source: &str,
        detail_type: &str,
        resources: Vec<String>,
        detail: Value,
    ) -> Value {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        json!({
            "version": "0",
            "id": format!("local-event-{n:08}"),
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": self.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "region": REGION,
            "resources": resources,
            "detail": detail,
        })
    }

    fn append(&self, event: &Value) {
        let _g = self.log_lock.lock();
        let line = event.to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
        {
            // Best effort: the log is for people; delivery does not depend on it.
            let _ = writeln!(f, "{line}");
        }
    }

    /// Logs and delivers an AWS-service event to the subscriber (awaiting the delivery).
    pub async fn publish(&self, event: Value) {
        self.append(&event);
        let sub = self.subscriber.read().ok().and_then(|g| g.clone());
        if let Some(sub) = sub {
            sub(event).await;
        }
    }

    pub async fn snapshot_event(&self, snapshot_id: &str, available: bool) {
        let arn = format!("arn:aws:rds:{REGION}:{ACCOUNT}:snapshot:{snapshot_id}");
        let (id, msg, cat) = if available {
            ("RDS-EVENT-0042", "Manual snapshot created", "creation")
        } else {
            ("RDS-EVENT-0043", "Manual snapshot failed", "failure")
        };
        let detail = json!({
            "EventCategories": [cat],
            "SourceType": "SNAPSHOT",
            "SourceArn": arn,
            "Date": self.clock.now().to_rfc3339(),
            "Message": msg,
            "SourceIdentifier": snapshot_id,
            "EventID": id,
        });
        let e = self.envelope("aws.rds", "RDS DB Snapshot Event", vec![arn], detail);
        self.publish(e).await
    }

    pub async fn instance_event(&self, instance_id: &str, available: bool, message: &str) {
        let arn = format!("arn:aws:rds:{REGION}:{ACCOUNT}:db:{instance_id}");
        let (id, cat) = if available {
            ("RDS-EVENT-0043", "notification")
        } else {
            ("RDS-EVENT-0031", "failure")
        };
        let detail = json!({
            "EventCategories": [cat],
            "SourceType": "DB_INSTANCE",
            "SourceArn": arn,
            "Date": self.clock.now().to_rfc3339(),
            "Message": message,
            "SourceIdentifier": instance_id,
            "EventID": id,
        });
        let e = self.envelope("aws.rds", "RDS DB Instance Event", vec![arn], detail);
        self.publish(e).await
    }

    pub async fn deployment_event(
        &self,
        cluster: &str,
        service: &str,
        deployment_id: &str,
        state: &str,
        reason: &str,
    ) {
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}");
        let detail = json!({
            "eventType": if state == "FAILED" { "ERROR" } else { "INFO" },
            "eventName": format!("SERVICE_DEPLOYMENT_{state}"),
            "clusterArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"),
            "deploymentId": deployment_id,
            "updatedAt": self.clock.now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "reason": reason,
        });
        let e = self.envelope("aws.ecs", "ECS Deployment State Change", vec![arn], detail);
        self.publish(e).await
    }
}

/// The `Events` port (run notifications): logged, not delivered.
#[async_trait]
impl Events for LocalBus {
    async fn put_event(&self, detail_type: &str, detail: &Value) -> Result<(), StepError> {
        let e = self.envelope("tenantflow", detail_type, vec![], detail.clone());
        self.append(&e);
        Ok(())
    }
}
