//! Execution history: AWS event types, one log per execution, written as JSON lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// One history event, shaped like the `HistoryEvent` of GetExecutionHistory.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEvent {
    #[serde(serialize_with = "ser_ts")]
    pub timestamp: DateTime<Utc>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub id: u64,
    #[serde(rename = "previousEventId")]
    pub previous_event_id: u64,
    /// The `…EventDetails` member, e.g. `{"stateEnteredEventDetails": {...}}`.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

fn ser_ts<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_ts(t))
}

/// RFC 3339 with milliseconds and `Z`, as Step Functions writes timestamps.
pub(crate) fn fmt_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Sees every history event of every execution.
pub trait Observer: Send + Sync {
    fn on_event(&self, execution_name: &str, event: &HistoryEvent);
}

/// The details member name AWS uses for an event type.
fn details_key(event_type: &str) -> String {
    if event_type.ends_with("StateEntered") {
        return "stateEnteredEventDetails".into();
    }
    if event_type.ends_with("StateExited") {
        return "stateExitedEventDetails".into();
    }
    let mut k = String::with_capacity(event_type.len() + 12);
    let mut chars = event_type.chars();
    if let Some(c) = chars.next() {
        k.push(c.to_ascii_lowercase());
    }
    k.extend(chars);
    k.push_str("EventDetails");
    k
}

/// The history of one execution.
pub(crate) struct HistoryLog {
    name: String,
    count: AtomicU64,
    max_payload: AtomicU64,
    file: Option<Mutex<BufWriter<File>>>,
    observer: Option<Arc<dyn Observer>>,
}

impl HistoryLog {
    pub fn new(name: &str, dir: Option<&Path>, observer: Option<Arc<dyn Observer>>) -> HistoryLog {
        let file = dir.and_then(|d| {
            let _ = std::fs::create_dir_all(d);
            File::create(d.join(format!("{}.jsonl", file_safe(name))))
                .ok()
                .map(|f| Mutex::new(BufWriter::new(f)))
        });
        HistoryLog {
            name: name.to_string(),
            count: AtomicU64::new(0),
            max_payload: AtomicU64::new(0),
            file,
            observer,
        }
    }

    pub fn wants_details(&self) -> bool {
        self.file.is_some() || self.observer.is_some()
    }

    /// Appends an event and returns its id. `details` is only built when someone looks.
    pub fn emit(
        &self,
        now: DateTime<Utc>,
        previous: u64,
        event_type: &str,
        details: impl FnOnce() -> Option<Value>,
    ) -> u64 {
        let id = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.wants_details() {
            return id;
        }
        let mut map = Map::new();
        if let Some(d) = details() {
            map.insert(details_key(event_type), d);
        }
        let ev = HistoryEvent {
            timestamp: now,
            event_type: event_type.to_string(),
            id,
            previous_event_id: previous,
            details: map,
        };
        if let Some(f) = &self.file {
            if let Ok(line) = serde_json::to_string(&ev) {
                let mut w = f.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(w, "{line}");
            }
        }
        if let Some(o) = &self.observer {
            o.on_event(&self.name, &ev);
        }
        id
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn note_payload(&self, bytes: u64) {
        self.max_payload.fetch_max(bytes, Ordering::Relaxed);
    }

    pub fn max_payload(&self) -> u64 {
        self.max_payload.load(Ordering::Relaxed)
    }

    pub fn flush(&self) {
        if let Some(f) = &self.file {
            let _ = f.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}

/// Execution names may contain characters that are not safe in file names.
pub(crate) fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether a Task's `Resource` is a bare Lambda function ARN
/// (`arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`), whose attempts
/// AWS records as `LambdaFunctionScheduled`/`Started`/`Succeeded`/`Failed`/`TimedOut` events
/// (`LambdaFunction…EventDetails` in the HistoryEvent API) rather than as `Task*` events.
pub(crate) fn is_lambda_function_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    parts.len() == 7
        && parts[0] == "arn"
        && parts[2] == "lambda"
        && parts[5] == "function"
        && !parts[6].is_empty()
}

/// `(resourceType, resource)` as the Task* events show them.
pub(crate) fn split_resource(arn: &str) -> (String, String) {
    if let Some(rest) = arn.strip_prefix("arn:aws:states:::") {
        if let Some(i) = rest.rfind(':') {
            return (rest[..i].to_string(), rest[i + 1..].to_string());
        }
        return (rest.to_string(), String::new());
    }
    if arn.contains(":lambda:") {
        return ("lambda".into(), arn.to_string());
    }
    if arn.contains(":activity:") {
        return ("activity".into(), arn.to_string());
    }
    ("task".into(), arn.to_string())
}
