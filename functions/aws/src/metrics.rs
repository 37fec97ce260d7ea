//! CloudWatch metrics as Embedded Metric Format (EMF) log lines: Lambda ships stdout to CloudWatch
//! Logs, which extracts the metric, so no PutMetricData call (and no extra latency) is needed.

use serde_json::{json, Value};

/// Metric namespace the SAM template's alarms watch.
pub const METRIC_NAMESPACE: &str = "Tenantflow";
/// Janitor metric: orphaned instances plus orphaned snapshots.
pub const ORPHAN_RESOURCES: &str = "OrphanResources";

/// One EMF document with a single `Count` metric, dimensioned by the stack namespace when known.
pub fn emf_count(
    metric: &str,
    value: u64,
    stack_namespace: Option<&str>,
    timestamp_ms: i64,
) -> Value {
    let dimensions: Vec<Vec<&str>> = match stack_namespace {
        Some(_) => vec![vec!["Namespace"]],
        None => vec![vec![]],
    };
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        metric: value,
    });
    if let (Some(ns), Some(obj)) = (stack_namespace, doc.as_object_mut()) {
        obj.insert("Namespace".into(), Value::String(ns.to_string()));
    }
    doc
}

/// The janitor's orphan count as an EMF line, from the step's output (`orphanCount`).
pub fn janitor_metric(
    output: &Value,
    stack_namespace: Option<&str>,
    timestamp_ms: i64,
) -> Option<String> {
    let count = output.get("orphanCount")?.as_u64()?;
    Some(emf_count(ORPHAN_RESOURCES, count, stack_namespace, timestamp_ms).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janitor_metric_is_emf_with_namespace_dimension() {
        let line = janitor_metric(
            &json!({"orphanCount": 3}),
            Some("xy-0146-prod"),
            1_700_000_000_000,
        )
        .expect("metric");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["OrphanResources"], 3);
        assert_eq!(v["Namespace"], "xy-0146-prod");
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Tenantflow");
        assert_eq!(m["Dimensions"], json!([["Namespace"]]));
        assert_eq!(m["Metrics"][0]["Name"], "OrphanResources");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn no_metric_without_orphan_count() {
        assert!(janitor_metric(&json!({"other": 1}), None, 0).is_none());
    }
}
