//! EventBridge, as far as the stack uses it: the template's rules route an event to their targets.
//!
//! moto sends no S3, RDS or ECS events, so the harness builds them (in AWS's shapes) and delivers
//! them through the template's own rules: an event reaches a function only if a rule's pattern
//! matches it, and each delivery is recorded as `lambda:InvokeFunction` by the
//! `events.amazonaws.com` service principal with the rule as `aws:SourceArn`, which the function's
//! resource policy (the template's `AWS::Lambda::Permission`s) must allow.

use super::env::Env;
use super::record::Call;
use serde_json::{json, Value};
use tenantflow_core::steps::StepName;

/// Whether an EventBridge pattern matches `event`. Supports what event patterns commonly use:
/// nested objects, lists of literals, `prefix`, `suffix`, `wildcard`, `anything-but`, `exists`;
/// any other operator fails the test rather than guessing.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(p) = pattern.as_object() else {
        panic!("an event pattern must be an object: {pattern}")
    };
    p.iter().all(|(k, rule)| {
        let v = event.get(k);
        match rule {
            Value::Object(_) => v.is_some_and(|v| matches(rule, v)),
            Value::Array(alts) => {
                let values: Vec<&Value> = match v {
                    Some(Value::Array(xs)) => xs.iter().collect(),
                    Some(x) => vec![x],
                    None => vec![],
                };
                alts.iter().any(|alt| match alt {
                    Value::Object(op) => operator(op, &values),
                    lit => values.contains(&lit),
                })
            }
            other => panic!("pattern field {k} must be an object or a list, not {other}"),
        }
    })
}

fn operator(op: &serde_json::Map<String, Value>, values: &[&Value]) -> bool {
    let (name, arg) = op.iter().next().expect("an operator");
    let strs = || values.iter().filter_map(|v| v.as_str());
    match name.as_str() {
        "prefix" => strs().any(|s| s.starts_with(arg.as_str().unwrap_or_default())),
        "suffix" => strs().any(|s| s.ends_with(arg.as_str().unwrap_or_default())),
        "wildcard" => strs().any(|s| glob(arg.as_str().unwrap_or_default(), s)),
        "exists" => arg.as_bool() == Some(!values.is_empty()),
        "anything-but" => {
            let banned: Vec<&Value> = match arg {
                Value::Array(xs) => xs.iter().collect(),
                x => vec![x],
            };
            !values.is_empty() && values.iter().all(|v| !banned.contains(v))
        }
        other => panic!("event pattern operator {other} is not modelled by the harness"),
    }
}

/// `*` matches any run of characters.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || !s.ends_with(last) || s.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The steps the template's rules deliver `event` to, each delivery recorded for IAM.
pub fn route(env: &Env, event: &Value) -> Vec<StepName> {
    let t = env.template();
    let mut steps = Vec::new();
    for rule in t.doc["rules"].as_array().into_iter().flatten() {
        if !matches(&rule["pattern"], event) {
            continue;
        }
        for target in rule["targets"].as_array().into_iter().flatten() {
            let arn = target["arn"].as_str().unwrap_or_default();
            let Some(step) = t.step_of_function(arn) else {
                continue;
            };
            env.rec.push(Call {
                principal: "service:events.amazonaws.com".into(),
                caller: format!("rule {}", rule["logicalId"].as_str().unwrap_or_default()),
                service: "Lambda".into(),
                operation: "Invoke".into(),
                params: json!({"FunctionName": arn, "SourceArn": rule["arn"]}),
                status: None,
                via: "service".into(),
                resource_tags: None,
            });
            steps.push(step);
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = json!({"source": ["aws.rds"], "detail": {"SourceIdentifier": [{"prefix": "xy-"}]}});
        assert!(matches(
            &p,
            &json!({"source": "aws.rds", "detail": {"SourceIdentifier": "xy-1"}})
        ));
        assert!(!matches(
            &p,
            &json!({"source": "aws.rds", "detail": {"SourceIdentifier": "zz-1"}})
        ));
        assert!(!matches(
            &p,
            &json!({"source": "aws.ecs", "detail": {"SourceIdentifier": "xy-1"}})
        ));
        let w = json!({"resources": [{"wildcard": "arn:*:service/*/xy-0146-dev-*"}]});
        assert!(matches(
            &w,
            &json!({"resources": ["arn:aws:ecs:r:a:service/c/xy-0146-dev-a"]})
        ));
        assert!(!matches(
            &w,
            &json!({"resources": ["arn:aws:ecs:r:a:service/c/xy-0146-devx"]})
        ));
        assert!(glob(
            "releases/*/manifest.json",
            "releases/r1/manifest.json"
        ));
        assert!(!glob("releases/*/manifest.json", "releases/r1/x.json"));
    }
}
