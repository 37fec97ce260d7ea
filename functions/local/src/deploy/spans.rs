//! Each tenant's span in virtual time: from its first child execution's start to its last one's
//! end (all-or-nothing runs a tenant in several Maps). The deploy report's `durationSeconds`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use statemachine::{HistoryEvent, Observer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A tenant's first child-execution start and last stop.
pub(super) type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

/// Records every tenant's span from the engine's history events, and passes each event on to the
/// caller's observer.
pub(super) struct TenantSpans {
    inner: Option<Arc<dyn Observer>>,
    exec_tenant: Mutex<HashMap<String, String>>,
    spans: Mutex<HashMap<String, Span>>,
}

impl TenantSpans {
    pub fn new(inner: Option<Arc<dyn Observer>>) -> Self {
        TenantSpans {
            inner,
            exec_tenant: Mutex::new(HashMap::new()),
            spans: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds from the tenant's first start to its last end, once it has ended.
    pub fn seconds(&self, tenant: &str) -> Option<f64> {
        let spans = self.spans.lock().ok()?;
        let (start, end) = spans.get(tenant)?;
        end.map(|end| (end - *start).num_milliseconds() as f64 / 1000.0)
    }

    fn started(&self, execution_name: &str, event: &HistoryEvent) {
        let tenant = event
            .details
            .get("executionStartedEventDetails")
            .and_then(|d| d.get("input"))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| v.get("tenant").and_then(Value::as_str).map(str::to_string));
        if let Some(t) = tenant {
            if let Ok(mut m) = self.exec_tenant.lock() {
                m.insert(execution_name.to_string(), t.clone());
            }
            if let Ok(mut s) = self.spans.lock() {
                s.entry(t).or_insert((event.timestamp, None));
            }
        }
    }

    fn ended(&self, execution_name: &str, event: &HistoryEvent) {
        let tenant = self
            .exec_tenant
            .lock()
            .ok()
            .and_then(|m| m.get(execution_name).cloned());
        if let (Some(t), Ok(mut s)) = (tenant, self.spans.lock()) {
            if let Some(span) = s.get_mut(&t) {
                span.1 = Some(span.1.map_or(event.timestamp, |e| e.max(event.timestamp)));
            }
        }
    }
}

impl Observer for TenantSpans {
    fn on_event(&self, execution_name: &str, event: &HistoryEvent) {
        match event.event_type.as_str() {
            "ExecutionStarted" => self.started(execution_name, event),
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut" => {
                self.ended(execution_name, event)
            }
            _ => {}
        }
        if let Some(o) = &self.inner {
            o.on_event(execution_name, event);
        }
    }
}
