//! From recorded calls to IAM requests, and their evaluation.
//!
//! [`authorizations`] turns one recorded call into the IAM requests AWS authorises for it: the
//! action, each resource ARN the action is authorised against (derived per operation from the
//! request's parameters, for the stack's account and region), and the condition keys the request
//! carries. Some calls are authorised as more than one action: RDS tag-on-create (a `Tags` list
//! on CreateDBSnapshot / RestoreDBInstanceFromDBSnapshot is also `rds:AddTagsToResource`), and
//! objects of a bucket encrypted with a customer key (GetObject is also `kms:Decrypt`, PutObject
//! `kms:GenerateDataKey`, on that key). An operation without a rule here is an error, so no call
//! goes unevaluated.
//!
//! [`check`] runs `.ci/emulator/evaluate.mjs` (iam-simulate + iam-data) on them against the
//! expanded template's policies and fails the test on any call that is not allowed, naming the
//! function, action and resource. Each check also writes its figures to
//! `$CARGO_TARGET_TMPDIR/emulator-iam/<test>.json`.
//!
//! Context keys filled from every call: `aws:SecureTransport = true` (the adapters use the SDK's
//! default HTTPS endpoints in production; moto is plain HTTP only here). For an RDS request on an
//! instance or snapshot (or on `db:*` / `snapshot:*`), `aws:ResourceTag/<key>` for each tag the
//! resource carried when the call was made ([`Call::resource_tags`], read from the emulator), and
//! every other `aws:ResourceTag/…` key is known absent (the resource lacks that tag, or there is
//! no single resource), as IAM evaluates it; a call whose tags were not read fills none, so a
//! policy that decides on them makes it unevaluable.

use super::record::Call;
use super::template::Template;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// One IAM request.
#[derive(Debug, Clone, Serialize)]
pub struct Authz {
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub context: Map<String, Value>,
    /// Condition keys starting with one of these are known to be absent from the request when
    /// the context lacks them (the evaluator then lets IAM treat them as absent instead of
    /// calling the request unevaluable).
    #[serde(rename = "absentKeyPrefixes", skip_serializing_if = "Vec::is_empty")]
    pub absent_key_prefixes: Vec<String>,
    /// Who and what: `create-db: RDS.RestoreDBInstanceFromDBSnapshot via emulator`.
    pub label: String,
}

/// Adds the tags the RDS resource `resource` carried to `context` (see the module doc); true
/// when its tags are known, i.e. every other resource tag key is absent.
fn resource_tag_context(c: &Call, resource: &str, context: &mut Map<String, Value>) -> bool {
    let (Some(read), Some(key)) = (&c.resource_tags, super::record::rds_resource_of(resource))
    else {
        return false;
    };
    if let Some(tags) = read.get(&key) {
        for (k, v) in tags {
            context.insert(format!("aws:ResourceTag/{k}"), json!(v));
        }
    }
    true
}

fn s<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str).filter(|v| !v.is_empty())
}

/// Keys `<prefix>.1…`, `<prefix>.2…` of an awsQuery list (`Tags.Tag.1.Key`).
fn query_list(p: &Value, prefix: &str, field: &str) -> Vec<String> {
    (1..)
        .map_while(|i| s(p, &format!("{prefix}.{i}.{field}")).map(str::to_string))
        .collect()
}

pub fn authorizations(t: &Template, c: &Call) -> Result<Vec<Authz>, String> {
    let (acct, region) = (t.account(), t.region());
    let p = &c.params;
    let arn = |svc: &str, res: &str| format!("arn:aws:{svc}:{region}:{acct}:{res}");
    let or_arn = |v: &str, svc: &str, res: String| {
        if v.starts_with("arn:") {
            v.to_string()
        } else {
            arn(svc, &res)
        }
    };
    let mut out: Vec<(String, String, Map<String, Value>)> = Vec::new();
    let mut one = |action: &str, resource: String, ctx: Map<String, Value>| {
        out.push((action.to_string(), resource, ctx))
    };
    let none = Map::new;
    let missing = |what: &str| format!("{}.{}: no {what} in the request", c.service, c.operation);
    let op = c.operation.as_str();
    match c.service.as_str() {
        "RDS" => {
            let db = |id: &str| or_arn(id, "rds", format!("db:{id}"));
            let snap = |id: &str| or_arn(id, "rds", format!("snapshot:{id}"));
            let tag_keys = query_list(p, "Tags.Tag", "Key");
            let tag_ctx = || {
                let mut m = Map::new();
                let vals = query_list(p, "Tags.Tag", "Value");
                for (k, v) in tag_keys.iter().zip(vals.iter()) {
                    m.insert(format!("aws:RequestTag/{k}"), json!(v));
                }
                m.insert("aws:TagKeys".into(), json!(tag_keys));
                m
            };
            let action = format!("rds:{op}");
            match op {
                "DescribeDBInstances" => match s(p, "DBInstanceIdentifier") {
                    Some(id) => one(&action, db(id), none()),
                    None => one(&action, arn("rds", "db:*"), none()),
                },
                "DescribeDBSnapshots" => {
                    match (s(p, "DBSnapshotIdentifier"), s(p, "DBInstanceIdentifier")) {
                        (Some(id), _) => one(&action, snap(id), none()),
                        (None, Some(id)) => one(&action, db(id), none()),
                        (None, None) => one(&action, arn("rds", "snapshot:*"), none()),
                    }
                }
                "CreateDBSnapshot" => {
                    let src = s(p, "DBInstanceIdentifier").ok_or_else(|| missing("instance"))?;
                    let id = s(p, "DBSnapshotIdentifier").ok_or_else(|| missing("snapshot"))?;
                    one(&action, db(src), tag_ctx());
                    one(&action, snap(id), tag_ctx());
                    if !tag_keys.is_empty() {
                        one("rds:AddTagsToResource", snap(id), tag_ctx());
                    }
                }
                "RestoreDBInstanceFromDBSnapshot" => {
                    let id = s(p, "DBInstanceIdentifier").ok_or_else(|| missing("instance"))?;
                    let from = s(p, "DBSnapshotIdentifier").ok_or_else(|| missing("snapshot"))?;
                    one(&action, db(id), tag_ctx());
                    one(&action, snap(from), tag_ctx());
                    // Groups left out of the request are the account's defaults; RDS still
                    // authorises the restore against them.
                    let group = |k: &str, ty: &str| {
                        arn("rds", &format!("{ty}:{}", s(p, k).unwrap_or("default")))
                    };
                    one(&action, group("DBSubnetGroupName", "subgrp"), tag_ctx());
                    one(&action, group("DBParameterGroupName", "pg"), tag_ctx());
                    one(&action, group("OptionGroupName", "og"), tag_ctx());
                    if !tag_keys.is_empty() {
                        one("rds:AddTagsToResource", db(id), tag_ctx());
                    }
                }
                "ModifyDBInstance" | "DeleteDBInstance" | "RebootDBInstance" => {
                    let id = s(p, "DBInstanceIdentifier").ok_or_else(|| missing("instance"))?;
                    one(&action, db(id), none());
                }
                "DeleteDBSnapshot" => {
                    let id = s(p, "DBSnapshotIdentifier").ok_or_else(|| missing("snapshot"))?;
                    one(&action, snap(id), none());
                }
                "AddTagsToResource" | "RemoveTagsFromResource" | "ListTagsForResource" => {
                    let r = s(p, "ResourceName").ok_or_else(|| missing("ResourceName"))?;
                    one(&action, r.to_string(), none());
                }
                "DescribeAccountAttributes" => one(&action, "*".into(), none()),
                _ => return Err(format!("no ARN rule for RDS.{op}")),
            }
        }
        "SSM" => {
            let param = |name: &str| {
                if name.starts_with("arn:") {
                    name.to_string()
                } else {
                    arn(
                        "ssm",
                        &format!("parameter/{}", name.trim_start_matches('/')),
                    )
                }
            };
            let action = format!("ssm:{op}");
            match op {
                "GetParameter"
                | "PutParameter"
                | "DeleteParameter"
                | "GetParameterHistory"
                | "LabelParameterVersion" => {
                    let n = s(p, "Name").ok_or_else(|| missing("Name"))?;
                    one(&action, param(n), none());
                }
                "GetParameters" | "DeleteParameters" => {
                    for n in p["Names"].as_array().into_iter().flatten() {
                        one(&action, param(n.as_str().unwrap_or_default()), none());
                    }
                }
                "GetParametersByPath" => {
                    let path = s(p, "Path").ok_or_else(|| missing("Path"))?;
                    let mut ctx = Map::new();
                    ctx.insert(
                        "ssm:Recursive".into(),
                        json!(p["Recursive"].as_bool().unwrap_or(false).to_string()),
                    );
                    one(&action, param(path), ctx);
                }
                _ => return Err(format!("no ARN rule for SSM.{op}")),
            }
        }
        "S3" => {
            let bucket = s(p, "bucket").ok_or_else(|| missing("bucket"))?;
            let key = s(p, "key").unwrap_or("");
            let q = &p["query"];
            let object = format!("arn:aws:s3:::{bucket}/{key}");
            let kms = t.bucket_key(bucket);
            match op {
                "GetObject" => {
                    let action = if s(q, "versionId").is_some() {
                        "s3:GetObjectVersion"
                    } else {
                        "s3:GetObject"
                    };
                    one(action, object, none());
                    if let Some(k) = kms {
                        one("kms:Decrypt", k, none());
                    }
                }
                "HeadObject" => one("s3:GetObject", object, none()),
                "PutObject" => {
                    one("s3:PutObject", object, none());
                    if let Some(k) = kms {
                        one("kms:GenerateDataKey", k, none());
                    }
                }
                "DeleteObject" => one("s3:DeleteObject", object, none()),
                "ListObjectsV2" | "ListObjects" => {
                    let mut ctx = Map::new();
                    for (k, ck) in [
                        ("prefix", "s3:prefix"),
                        ("delimiter", "s3:delimiter"),
                        ("max-keys", "s3:max-keys"),
                    ] {
                        if let Some(v) = q.get(k).and_then(Value::as_str) {
                            ctx.insert(ck.into(), json!(v));
                        }
                    }
                    one("s3:ListBucket", format!("arn:aws:s3:::{bucket}"), ctx);
                }
                _ => return Err(format!("no ARN rule for S3.{op}")),
            }
        }
        "ECS" => {
            let cluster = s(p, "cluster").unwrap_or("default");
            let cluster_name = cluster.rsplit('/').next().unwrap_or(cluster);
            let svc = |name: &str| or_arn(name, "ecs", format!("service/{cluster_name}/{name}"));
            let mut ctx = Map::new();
            ctx.insert(
                "ecs:cluster".into(),
                json!(or_arn(cluster, "ecs", format!("cluster/{cluster_name}"))),
            );
            let action = format!("ecs:{op}");
            match op {
                "UpdateService" => {
                    let n = s(p, "service").ok_or_else(|| missing("service"))?;
                    one(&action, svc(n), ctx);
                }
                "DescribeServices" => {
                    for n in p["services"].as_array().into_iter().flatten() {
                        one(&action, svc(n.as_str().unwrap_or_default()), ctx.clone());
                    }
                }
                _ => return Err(format!("no ARN rule for ECS.{op}")),
            }
        }
        "CodeBuild" => {
            let project = |n: &str| or_arn(n, "codebuild", format!("project/{n}"));
            let action = format!("codebuild:{op}");
            match op {
                "StartBuild" => {
                    let n = s(p, "projectName").ok_or_else(|| missing("projectName"))?;
                    one(&action, project(n), none());
                }
                "BatchGetBuilds" | "StopBuild" => {
                    let ids: Vec<String> = match op {
                        "StopBuild" => s(p, "id").into_iter().map(str::to_string).collect(),
                        _ => p["ids"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect(),
                    };
                    for id in ids {
                        // Build ids are `<project>:<uuid>` (or a build ARN).
                        let name = id
                            .strip_prefix(&format!("arn:aws:codebuild:{region}:{acct}:build/"))
                            .unwrap_or(&id)
                            .split(':')
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        one(&action, project(&name), none());
                    }
                }
                _ => return Err(format!("no ARN rule for CodeBuild.{op}")),
            }
        }
        "SFN" => {
            let action = format!("states:{op}");
            match op {
                "StartExecution" => {
                    let sm = s(p, "stateMachineArn").ok_or_else(|| missing("stateMachineArn"))?;
                    one(&action, sm.to_string(), none());
                }
                "DescribeExecution" | "StopExecution" | "RedriveExecution" => {
                    let e = s(p, "executionArn").ok_or_else(|| missing("executionArn"))?;
                    one(&action, e.to_string(), none());
                }
                "SendTaskSuccess" | "SendTaskFailure" | "SendTaskHeartbeat" => {
                    one(&action, "*".into(), none())
                }
                _ => return Err(format!("no ARN rule for SFN.{op}")),
            }
        }
        "Secrets Manager" => match op {
            "GetSecretValue" | "DescribeSecret" => {
                let id = s(p, "SecretId").ok_or_else(|| missing("SecretId"))?;
                one(
                    &format!("secretsmanager:{op}"),
                    or_arn(id, "secretsmanager", format!("secret:{id}")),
                    none(),
                );
            }
            _ => return Err(format!("no ARN rule for Secrets Manager.{op}")),
        },
        "EventBridge" => match op {
            "PutEvents" => {
                for e in p["Entries"].as_array().into_iter().flatten() {
                    let bus = s(e, "EventBusName").unwrap_or("default");
                    let mut ctx = Map::new();
                    if let Some(v) = s(e, "Source") {
                        ctx.insert("events:source".into(), json!(v));
                    }
                    if let Some(v) = s(e, "DetailType") {
                        ctx.insert("events:detail-type".into(), json!(v));
                    }
                    one(
                        "events:PutEvents",
                        or_arn(bus, "events", format!("event-bus/{bus}")),
                        ctx,
                    );
                }
            }
            "PutRule" | "PutTargets" | "DescribeRule" => {
                let n = s(p, "Name")
                    .or(s(p, "Rule"))
                    .ok_or_else(|| missing("rule"))?;
                one(
                    &format!("events:{op}"),
                    or_arn(n, "events", format!("rule/{n}")),
                    none(),
                );
            }
            _ => return Err(format!("no ARN rule for EventBridge.{op}")),
        },
        "DynamoDB" => {
            let table = |n: &str| or_arn(n, "dynamodb", format!("table/{n}"));
            match op {
                "TransactWriteItems" => {
                    for item in p["TransactItems"].as_array().into_iter().flatten() {
                        for (kind, action) in [
                            ("Put", "PutItem"),
                            ("Update", "UpdateItem"),
                            ("Delete", "DeleteItem"),
                            ("ConditionCheck", "ConditionCheckItem"),
                        ] {
                            if let Some(n) = item.get(kind).and_then(|x| s(x, "TableName")) {
                                one(&format!("dynamodb:{action}"), table(n), none());
                            }
                        }
                    }
                }
                "TransactGetItems" => {
                    for item in p["TransactItems"].as_array().into_iter().flatten() {
                        if let Some(n) = item.get("Get").and_then(|x| s(x, "TableName")) {
                            one("dynamodb:GetItem", table(n), none());
                        }
                    }
                }
                "BatchWriteItem" | "BatchGetItem" => {
                    for n in p["RequestItems"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|x| x.0)
                    {
                        one(&format!("dynamodb:{op}"), table(n), none());
                    }
                }
                _ => {
                    let n = s(p, "TableName").ok_or_else(|| {
                        format!("no ARN rule for DynamoDB.{op} (no TableName in the request)")
                    })?;
                    // An item's partition key is the `dynamodb:LeadingKeys` the policy scopes
                    // (the table's key attribute is `pk`, a string).
                    let mut ctx = none();
                    let key = p.get("Key").or_else(|| p.get("Item"));
                    if let Some(pk) = key.and_then(|k| k["pk"]["S"].as_str()) {
                        ctx.insert("dynamodb:LeadingKeys".into(), json!([pk]));
                    }
                    one(&format!("dynamodb:{op}"), table(n), ctx);
                }
            }
        }
        "Lambda" => match op {
            "Invoke" => {
                let f = s(p, "FunctionName").ok_or_else(|| missing("FunctionName"))?;
                // A service invoking on a rule's behalf carries the rule as the source.
                let mut ctx = Map::new();
                if let Some(src) = s(p, "SourceArn") {
                    ctx.insert("aws:SourceArn".into(), json!(src));
                    ctx.insert("aws:SourceAccount".into(), json!(acct));
                }
                one(
                    "lambda:InvokeFunction",
                    or_arn(f, "lambda", format!("function:{f}")),
                    ctx,
                );
            }
            _ => return Err(format!("no ARN rule for Lambda.{op}")),
        },
        other => return Err(format!("no ARN rule for service {other} ({op})")),
    }
    let label = format!("{}: {}.{} via {}", c.caller, c.service, c.operation, c.via);
    Ok(out
        .into_iter()
        .map(|(action, resource, mut context)| {
            context.insert("aws:SecureTransport".into(), json!("true"));
            let tags_known = resource_tag_context(c, &resource, &mut context);
            Authz {
                principal: c.principal.clone(),
                action,
                resource,
                context,
                absent_key_prefixes: if tags_known {
                    vec!["aws:ResourceTag/".to_string()]
                } else {
                    Vec::new()
                },
                label: label.clone(),
            }
        })
        .collect())
}

/// The evaluator's answer for one request.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub authz: Authz,
    pub decision: String,
    pub detail: String,
}

/// Evaluates requests with `.ci/emulator/evaluate.mjs`.
pub fn evaluate(t: &Template, reqs: &[Authz]) -> Vec<Verdict> {
    if reqs.is_empty() {
        return Vec::new();
    }
    let tools = super::tools::tools();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(reqs).unwrap()).unwrap();
    let out = std::process::Command::new(&tools.node)
        .arg(&tools.evaluate_script)
        .arg(&t.path)
        .arg(file.path())
        .output()
        .expect("run evaluate.mjs");
    assert!(
        out.status.success(),
        "evaluate.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("evaluator JSON");
    assert_eq!(results.len(), reqs.len(), "one verdict per request");
    reqs.iter()
        .zip(results)
        .map(|(a, r)| Verdict {
            authz: a.clone(),
            decision: r["decision"].as_str().unwrap_or("Invalid").to_string(),
            detail: r["detail"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// Evaluates every call and fails (naming function, action and resource) on any that is not
/// allowed or cannot be evaluated. Writes the figures for `test` first.
pub fn check(test: &str, calls: &[Call]) {
    let t = super::template::template();
    let mut reqs = Vec::new();
    let mut unruled = Vec::new();
    for c in calls {
        match authorizations(t, c) {
            Ok(v) => reqs.extend(v),
            Err(e) => unruled.push(format!("{} ({}): {e}", c.caller, c.principal)),
        }
    }
    let verdicts = evaluate(t, &reqs);
    let bad: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.decision != "Allowed")
        .collect();
    let line = |v: &Verdict| {
        format!(
            "{} ({}) {} on {} [{}: {}] ({})",
            v.authz.label.split(':').next().unwrap_or_default(),
            v.authz.principal,
            v.authz.action,
            v.authz.resource,
            v.decision,
            v.detail,
            v.authz.label
        )
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulator-iam");
    let _ = std::fs::create_dir_all(&dir);
    let mut by_via: std::collections::BTreeMap<String, usize> = Default::default();
    for c in calls {
        *by_via.entry(c.via.clone()).or_default() += 1;
    }
    let summary = json!({
        "test": test,
        "calls": calls.len(),
        "callsByVia": by_via,
        "evaluated": verdicts.len(),
        "denied": bad.iter().map(|v| line(v)).collect::<Vec<_>>(),
        "unevaluated": unruled,
        "requests": verdicts.iter().map(|v| json!({
            "principal": v.authz.principal, "action": v.authz.action,
            "resource": v.authz.resource, "decision": v.decision, "label": v.authz.label,
        })).collect::<Vec<_>>(),
    });
    let _ = std::fs::write(
        dir.join(format!("{test}.json")),
        serde_json::to_vec_pretty(&summary).unwrap(),
    );
    let mut msg = String::new();
    if !unruled.is_empty() {
        msg += &format!(
            "{} call(s) have no ARN rule (add one to authz.rs):\n  {}\n",
            unruled.len(),
            unruled.join("\n  ")
        );
    }
    if !bad.is_empty() {
        let mut lines: Vec<String> = bad.iter().map(|v| line(v)).collect();
        lines.sort();
        lines.dedup();
        msg += &format!(
            "{} of {} IAM requests are not allowed by {}:\n  {}\n",
            bad.len(),
            verdicts.len(),
            super::template::template_path().display(),
            lines.join("\n  ")
        );
    }
    assert!(msg.is_empty(), "{test}: {msg}");
}
