//! [`Events`] on EventBridge: run notifications (`source: tenantflow`).

use crate::errors::classify;
use async_trait::async_trait;
use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use tenantflow_core::ports::Events;
use tenantflow_core::StepError;

/// Source of every event tenantflow puts.
pub const EVENT_SOURCE: &str = "tenantflow";

/// EventBridge adapter writing to `bus`.
#[derive(Clone, Debug)]
pub struct EventBridgeEvents {
    client: Client,
    bus: String,
}

impl EventBridgeEvents {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventBridgeEvents {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl Events for EventBridgeEvents {
    async fn put_event(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StepError> {
        let entry = PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify("PutEvents", e))?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        // A partial failure comes back as a 200 with a per-entry error code.
        let failed = out.entries().iter().find(|e| e.error_code().is_some());
        let code = failed.and_then(|e| e.error_code()).unwrap_or("Unknown");
        let msg = format!(
            "PutEvents: entry failed: {code}: {}",
            failed.and_then(|e| e.error_message()).unwrap_or("")
        );
        if code == "InternalFailure" || THROTTLING_ERRORS.contains(&code) {
            Err(StepError::Transient(msg))
        } else {
            Err(StepError::Internal(msg))
        }
    }
}
