//! `infra/template.yaml` evaluated for one stack (xy-0146-prod, account 123456789012, eu-west-1)
//! and checked against what the code and AWS need, reading files only (no AWS):
//! - every EventBridge rule pattern against AWS-shaped sample events and near misses
//!   (`events/eventbridge/`), matched by moto's EventBridge pattern matcher (someone else's
//!   implementation of content filtering, from `.ci/tools/python.sh`);
//! - every rule/schedule target's `Input` (or the matched events themselves, when it has none)
//!   parsed by its handler through `dispatch`;
//! - the IAM each function's code needs, evaluated against its role's statements (wildcards and
//!   the condition operators the template uses);
//! - asynchronously invoked functions have an on-failure destination that an alarm watches;
//! - the migration build reads the release folder (S3 source) and pulls an ECR image with its role.
//!
//! A small CloudFormation evaluator resolves `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`,
//! `Fn::Join`, `Fn::Split`, `Fn::Select` and the condition functions with chosen parameters.

use serde_json::{json, Map, Value as Json};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tenantflow_core::steps::{dispatch, StepName};
use tenantflow_core::testing::FakeWorld;
use tenantflow_core::StepError;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";
const NS: &str = "xy-0146-prod";
const GENERATION: &str = "xy-0146-prod-20261103101500";
const DB_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ------------------------------------------------------------------ evaluator

/// The template with parameter values.
struct Stack {
    doc: Yaml,
    params: BTreeMap<String, String>,
}

/// What an intrinsic evaluates to: a value, or `AWS::NoValue` (dropped from its parent).
enum Eval {
    Value(Json),
    NoValue,
}

impl Stack {
    fn new(overrides: &[(&str, &str)]) -> Stack {
        let doc: Yaml = serde_yaml::from_str(&read(&root().join("infra/template.yaml")))
            .expect("template is YAML");
        let mut params = BTreeMap::new();
        for (name, p) in doc["Parameters"].as_mapping().expect("Parameters") {
            let name = name.as_str().expect("name").to_string();
            let default = match &p["Default"] {
                Yaml::String(s) => Some(s.clone()),
                Yaml::Number(n) => Some(n.to_string()),
                _ => None,
            };
            params.insert(name, default.unwrap_or_default());
        }
        for (k, v) in [
            ("Customer", "xy"),
            ("Project", "0146"),
            ("Environment", "prod"),
            (
                "MigrationSecretArn",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:flyway-AbCdEf",
            ),
            ("RdsEndpointSuffix", "c9akciq32.eu-west-1.rds.amazonaws.com"),
            ("CodeBuildSecurityGroupId", "sg-0123456789abcdef0"),
            ("CodeBuildVpcId", "vpc-0123456789abcdef0"),
            ("CodeBuildSubnetIds", "subnet-0a,subnet-0b"),
        ]
        .into_iter()
        .chain(overrides.iter().copied())
        {
            assert!(params.contains_key(k), "template has no parameter {k}");
            params.insert(k.to_string(), v.to_string());
        }
        Stack { doc, params }
    }

    fn resource(&self, id: &str) -> &Yaml {
        let r = &self.doc["Resources"][id];
        assert!(!r.is_null(), "template has no resource {id}");
        r
    }

    fn resources_of(&self, kind: &str) -> Vec<String> {
        self.doc["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind))
            .map(|(id, _)| id.as_str().expect("id").to_string())
            .collect()
    }

    fn condition(&self, name: &str) -> bool {
        let c = &self.doc["Conditions"][name];
        assert!(!c.is_null(), "no condition {name}");
        match self.eval(c) {
            Eval::Value(Json::Bool(b)) => b,
            _ => panic!("condition {name} is not a boolean"),
        }
    }

    /// Evaluates `v`, which must not be `AWS::NoValue`.
    fn value(&self, v: &Yaml) -> Json {
        match self.eval(v) {
            Eval::Value(j) => j,
            Eval::NoValue => panic!("unexpected AWS::NoValue for {v:?}"),
        }
    }

    fn string(&self, v: &Yaml) -> String {
        match self.value(v) {
            Json::String(s) => s,
            other => panic!("expected a string, got {other}"),
        }
    }

    fn eval(&self, v: &Yaml) -> Eval {
        match v {
            Yaml::Tagged(t) => self.function(t.tag.to_string().trim_start_matches('!'), &t.value),
            Yaml::Mapping(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().expect("one entry");
                match k.as_str() {
                    Some(f) if f == "Ref" || f == "Condition" || f.starts_with("Fn::") => {
                        self.function(f.trim_start_matches("Fn::"), arg)
                    }
                    _ => Eval::Value(self.object(m)),
                }
            }
            Yaml::Mapping(m) => Eval::Value(self.object(m)),
            Yaml::Sequence(items) => Eval::Value(Json::Array(
                items
                    .iter()
                    .filter_map(|i| match self.eval(i) {
                        Eval::Value(v) => Some(v),
                        Eval::NoValue => None,
                    })
                    .collect(),
            )),
            Yaml::String(s) => Eval::Value(Json::String(s.clone())),
            Yaml::Bool(b) => Eval::Value(Json::Bool(*b)),
            Yaml::Number(n) => Eval::Value(serde_json::to_value(n).expect("number")),
            Yaml::Null => Eval::Value(Json::Null),
        }
    }

    fn object(&self, m: &serde_yaml::Mapping) -> Json {
        let mut out = Map::new();
        for (k, v) in m {
            if let Eval::Value(v) = self.eval(v) {
                out.insert(k.as_str().expect("string key").to_string(), v);
            }
        }
        Json::Object(out)
    }

    fn function(&self, f: &str, arg: &Yaml) -> Eval {
        let list = || {
            arg.as_sequence()
                .unwrap_or_else(|| panic!("{f} takes a list"))
        };
        Eval::Value(match f {
            "Ref" => match self.reference(arg.as_str().expect("Ref name")) {
                Some(v) => Json::String(v),
                None => return Eval::NoValue,
            },
            "Condition" => Json::Bool(self.condition(arg.as_str().expect("condition name"))),
            "GetAtt" => {
                let (id, attr) = match arg {
                    Yaml::String(s) => s.split_once('.').expect("X.Attr"),
                    Yaml::Sequence(p) => (p[0].as_str().expect("id"), p[1].as_str().expect("attr")),
                    _ => panic!("GetAtt {arg:?}"),
                };
                Json::String(self.attribute(id, attr))
            }
            "Sub" => Json::String(match arg {
                Yaml::String(s) => self.substitute(s, &BTreeMap::new()),
                Yaml::Sequence(p) => {
                    let vars = p[1]
                        .as_mapping()
                        .expect("Sub variables")
                        .iter()
                        .map(|(k, v)| (k.as_str().expect("var").to_string(), self.string(v)))
                        .collect();
                    self.substitute(p[0].as_str().expect("Sub text"), &vars)
                }
                _ => panic!("Sub {arg:?}"),
            }),
            "If" => {
                let l = list();
                let branch = if self.condition(l[0].as_str().expect("condition")) {
                    &l[1]
                } else {
                    &l[2]
                };
                return self.eval(branch);
            }
            "Join" => {
                let l = list();
                let sep = l[0].as_str().expect("separator");
                let parts = match self.value(&l[1]) {
                    Json::Array(a) => a,
                    other => panic!("Join of {other}"),
                };
                Json::String(
                    parts
                        .iter()
                        .map(|p| p.as_str().expect("string part").to_string())
                        .collect::<Vec<_>>()
                        .join(sep),
                )
            }
            "Split" => {
                let l = list();
                let sep = l[0].as_str().expect("separator");
                Json::Array(self.string(&l[1]).split(sep).map(|s| json!(s)).collect())
            }
            "Select" => {
                let l = list();
                let i: usize = match &l[0] {
                    Yaml::Number(n) => n.as_u64().expect("index") as usize,
                    Yaml::String(s) => s.parse().expect("index"),
                    other => panic!("Select index {other:?}"),
                };
                match self.value(&l[1]) {
                    // CloudFormation fails the stack on an index out of range.
                    Json::Array(a) => a
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| panic!("Select {i} out of range in {a:?}")),
                    other => panic!("Select from {other}"),
                }
            }
            "Equals" => {
                let l = list();
                Json::Bool(self.value(&l[0]) == self.value(&l[1]))
            }
            "Not" => Json::Bool(!matches!(self.value(&list()[0]), Json::Bool(true))),
            "And" => Json::Bool(list().iter().all(|c| self.value(c) == json!(true))),
            "Or" => Json::Bool(list().iter().any(|c| self.value(c) == json!(true))),
            other => panic!("intrinsic {other} is not supported by this test"),
        })
    }

    /// `Ref`: a parameter, a pseudo parameter, or a resource's physical id. `None` is NoValue.
    fn reference(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::NoValue" => return None,
            "AWS::Partition" => "aws".into(),
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT.into(),
            "AWS::StackName" => "tenantflow-xy-0146-prod".into(),
            _ if self.params.contains_key(name) => self.params[name].clone(),
            id => {
                let r = self.resource(id);
                let props = &r["Properties"];
                match r["Type"].as_str().expect("Type") {
                    "AWS::S3::Bucket" => self.string(&props["BucketName"]),
                    "AWS::SQS::Queue" => format!(
                        "https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{}",
                        self.string(&props["QueueName"])
                    ),
                    "AWS::SNS::Topic" => format!(
                        "arn:aws:sns:{REGION}:{ACCOUNT}:{}",
                        self.string(&props["TopicName"])
                    ),
                    "AWS::Serverless::StateMachine" => format!(
                        "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}",
                        self.string(&props["Name"])
                    ),
                    "AWS::CodeBuild::Project" => self.string(&props["Name"]),
                    "AWS::KMS::Key" => format!("key-{id}"),
                    _ => id.to_string(),
                }
            }
        })
    }

    fn attribute(&self, id: &str, attr: &str) -> String {
        let r = self.resource(id);
        let props = &r["Properties"];
        match (r["Type"].as_str().expect("Type"), attr) {
            ("AWS::S3::Bucket", "Arn") => {
                format!("arn:aws:s3:::{}", self.string(&props["BucketName"]))
            }
            ("AWS::SQS::Queue", "Arn") => {
                format!(
                    "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
                    self.string(&props["QueueName"])
                )
            }
            ("AWS::SQS::Queue", "QueueName") => self.string(&props["QueueName"]),
            ("AWS::KMS::Key", "Arn") => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/key-{id}"),
            ("AWS::Serverless::Function", "Arn") => {
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{id}")
            }
            ("AWS::Logs::LogGroup", "Arn") => format!(
                "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{}:*",
                self.string(&props["LogGroupName"])
            ),
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{id}"),
            ("AWS::Events::Rule", "Arn") => format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{id}"),
            ("AWS::DynamoDB::Table", "Arn") => format!(
                "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}",
                self.string(&props["TableName"])
            ),
            ("AWS::CodeBuild::Project", "Arn") => {
                format!(
                    "arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{}",
                    self.string(&props["Name"])
                )
            }
            (kind, attr) => panic!("GetAtt {id}.{attr} ({kind}) is not modelled by this test"),
        }
    }

    fn substitute(&self, text: &str, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').expect("closing brace");
            let name = &after[..end];
            let value = if let Some(v) = vars.get(name) {
                v.clone()
            } else if let Some((id, attr)) = name
                .split_once('.')
                .filter(|(id, _)| !id.starts_with("AWS:"))
            {
                self.attribute(id, attr)
            } else {
                self.reference(name)
                    .unwrap_or_else(|| panic!("Sub of AWS::NoValue"))
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    // -------------------------------------------------------------- IAM

    /// Every evaluated policy statement of a SAM function's role, or of an IAM role.
    fn statements(&self, id: &str) -> Vec<Json> {
        let r = self.resource(id);
        let policies = self.value(&r["Properties"]["Policies"]);
        let mut out = Vec::new();
        for p in policies.as_array().expect("Policies is a list") {
            let doc = p.get("PolicyDocument").unwrap_or(p);
            if let Some(list) = doc.get("Statement").and_then(Json::as_array) {
                out.extend(list.iter().cloned());
            }
        }
        out
    }

    /// Whether the role of `id` allows `action` on `resource` with request `context`.
    fn allows(&self, id: &str, action: &str, resource: &str, context: &[(&str, &str)]) -> bool {
        self.statements(id).iter().any(|s| {
            s["Effect"] == "Allow"
                && strings(&s["Action"])
                    .iter()
                    .any(|a| glob(&a.to_lowercase(), &action.to_lowercase()))
                && strings(&s["Resource"]).iter().any(|r| glob(r, resource))
                && conditions_hold(&s["Condition"], context)
        })
    }
}

fn strings(v: &Json) -> Vec<String> {
    match v {
        Json::String(s) => vec![s.clone()],
        Json::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("string").to_string())
            .collect(),
        Json::Null => vec![],
        other => panic!("expected string(s), got {other}"),
    }
}

/// IAM wildcards: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// IAM condition evaluation for the operators the template uses; a key missing from the request
/// context fails its condition (no `...IfExists` in the template).
fn conditions_hold(cond: &Json, context: &[(&str, &str)]) -> bool {
    let Some(ops) = cond.as_object() else {
        return true;
    };
    ops.iter().all(|(op, keys)| {
        keys.as_object()
            .expect("condition keys")
            .iter()
            .all(|(key, wanted)| {
                let Some((_, actual)) = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))
                else {
                    return false;
                };
                let wanted = match wanted {
                    Json::Bool(b) => vec![b.to_string()],
                    other => strings(other),
                };
                wanted.iter().any(|w| match op.as_str() {
                    "StringEquals" | "ArnEquals" => w == actual,
                    "StringLike" | "ArnLike" => glob(w, actual),
                    "Bool" => w.eq_ignore_ascii_case(actual),
                    other => panic!("condition operator {other} is not modelled by this test"),
                })
            })
    })
}

fn rds(kind: &str, id: &str) -> String {
    format!("arn:aws:rds:{REGION}:{ACCOUNT}:{kind}:{id}")
}

// ------------------------------------------------------------------ rule/schedule targets

/// (source resource, target) for every EventBridge rule target and Scheduler schedule target.
fn targets(stack: &Stack) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for id in stack.resources_of("AWS::Events::Rule") {
        let props = stack.value(&stack.resource(&id)["Properties"]);
        for t in props["Targets"].as_array().expect("Targets") {
            out.push((id.clone(), t.clone()));
        }
    }
    for id in stack.resources_of("AWS::Scheduler::Schedule") {
        let props = stack.value(&stack.resource(&id)["Properties"]);
        out.push((id, props["Target"].clone()));
    }
    out
}

/// The function logical id an ARN names (`arn:aws:lambda:…:function:<LogicalId>` here).
fn function_of(arn: &str) -> Option<String> {
    arn.split_once(":function:").map(|(_, f)| f.to_string())
}

fn step_of(stack: &Stack, function: &str) -> StepName {
    let code = stack.resource(function)["Properties"]["CodeUri"]
        .as_str()
        .expect("CodeUri");
    let name = code
        .strip_prefix("../functions/")
        .expect("../functions/<fn>");
    StepName::parse(name).unwrap_or_else(|| panic!("{name} is not a step"))
}

fn samples() -> (BTreeMap<String, Json>, BTreeMap<String, Vec<String>>) {
    let dir = root().join("events/eventbridge");
    let expected: Json =
        serde_json::from_str(&read(&dir.join("expected.json"))).expect("expected.json");
    let expected: BTreeMap<String, Vec<String>> =
        serde_json::from_value(expected["expected"].clone()).expect("expected map");
    let mut events = BTreeMap::new();
    for name in expected.keys() {
        let path = dir.join(format!("{name}.json"));
        events.insert(
            name.clone(),
            serde_json::from_str(&read(&path)).expect("sample JSON"),
        );
    }
    let on_disk = std::fs::read_dir(&dir)
        .expect("events/eventbridge")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .filter(|n| n != "expected")
        .count();
    assert_eq!(
        on_disk,
        events.len(),
        "every sample in events/eventbridge is in expected.json"
    );
    (events, expected)
}

/// Replaces EventBridge Scheduler context attributes (`<aws.scheduler.*>`) with sample values,
/// as Scheduler does before invoking (EventBridge Scheduler User Guide, "Adding context attributes").
fn scheduler_context(input: &str) -> String {
    input
        .replace(
            "<aws.scheduler.schedule-arn>",
            "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/janitor",
        )
        .replace("<aws.scheduler.scheduled-time>", "2026-11-04T03:00:00Z")
        .replace(
            "<aws.scheduler.execution-id>",
            "d7b5a1c3-0000-4000-8000-000000000000",
        )
        .replace("<aws.scheduler.attempt-number>", "1")
}

/// An input transformer applied to `event`: `InputPathsMap` (simple `$.a.b` paths) into
/// `InputTemplate` (EventBridge User Guide, "Transforming target input").
fn transform(t: &Json, event: &Json) -> Json {
    let mut text = t["InputTemplate"]
        .as_str()
        .expect("InputTemplate")
        .to_string();
    for (var, path) in t["InputPathsMap"].as_object().into_iter().flatten() {
        let ptr = path
            .as_str()
            .expect("path")
            .trim_start_matches('$')
            .replace('.', "/");
        let v = event.pointer(&ptr).cloned().unwrap_or(Json::Null);
        let rendered = match v {
            Json::String(s) => s,
            other => other.to_string(),
        };
        text = text.replace(&format!("<{var}>"), &rendered);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("InputTemplate renders {text}: {e}"))
}

async fn handled(step: StepName, input: Json) -> Result<Json, StepError> {
    dispatch(step, &FakeWorld::new().ports(), input).await
}

// ------------------------------------------------------------------ moto

fn moto_python() -> Option<PathBuf> {
    let python = std::env::var_os("TENANTFLOW_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/py/moto/bin/python"));
    if python.exists() {
        return Some(python);
    }
    let why = format!(
        "{} not found; run .ci/tools/python.sh (make tools)",
        python.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED event pattern test: {why}");
    None
}

/// The rules each event matches, by moto's `EventPattern`.
fn match_with_moto(
    python: &Path,
    patterns: &Json,
    events: &BTreeMap<String, Json>,
) -> BTreeMap<String, Vec<String>> {
    let mut child = Command::new(python)
        .arg(root().join("tests/infra/match_events.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run moto's python");
    let request = json!({"patterns": patterns, "events": events});
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let out = child.wait_with_output().expect("moto matcher");
    assert!(
        out.status.success(),
        "matcher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("matcher output")
}

// ------------------------------------------------------------------ tests

/// Every rule against AWS-shaped events (S3 "Object Created", RDS DB Instance / DB Snapshot Event,
/// ECS Deployment State Change, as the AWS samples write them: RDS's `SourceIdentifier` is
/// `rds:<id>`) and near misses (other namespaces, accounts, buckets, keys, event names).
#[test]
fn rule_patterns_match_real_events_and_nothing_else() {
    let Some(python) = moto_python() else {
        return;
    };
    let stack = Stack::new(&[]);
    let mut patterns = Map::new();
    for id in stack.resources_of("AWS::Events::Rule") {
        // Schedule rules (ScheduleExpression) have no pattern and match no event.
        let props = &stack.resource(&id)["Properties"];
        if props.get("EventPattern").is_none() {
            continue;
        }
        patterns.insert(id, stack.value(&props["EventPattern"]));
    }
    assert!(patterns.len() >= 3, "rules: {:?}", patterns.keys());
    let (events, expected) = samples();
    let got = match_with_moto(&python, &Json::Object(patterns.clone()), &events);
    for (name, want) in &expected {
        assert_eq!(
            got.get(name),
            Some(want),
            "{name}: matched by {:?}",
            got.get(name)
        );
    }
    // Every rule is exercised by at least one sample that must match it.
    for rule in patterns.keys() {
        assert!(
            expected.values().any(|rules| rules.contains(rule)),
            "no sample matches {rule}"
        );
    }
}

/// What a target sends must parse as its handler's input: the schedule's static `Input`, an
/// `InputTransformer`'s output, or (neither) every sample event the rule matches.
#[tokio::test]
async fn every_target_input_is_accepted_by_its_handler() {
    let stack = Stack::new(&[]);
    let (events, expected) = samples();
    let mut checked = 0;
    for (source, target) in targets(&stack) {
        let Some(function) = function_of(target["Arn"].as_str().expect("target Arn")) else {
            continue;
        };
        let step = step_of(&stack, &function);
        let inputs: Vec<(String, Json)> = if let Some(input) = target["Input"].as_str() {
            let text = scheduler_context(input);
            vec![(
                "Input".into(),
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{source}: Input is not JSON: {e}")),
            )]
        } else {
            let matched: Vec<(String, Json)> = expected
                .iter()
                .filter(|(_, rules)| rules.contains(&source))
                .map(|(name, _)| (name.clone(), events[name].clone()))
                .collect();
            assert!(
                !matched.is_empty(),
                "{source}: no sample event to check its target with"
            );
            match target.get("InputTransformer") {
                Some(t) => matched
                    .into_iter()
                    .map(|(n, e)| (n, transform(t, &e)))
                    .collect(),
                None => matched,
            }
        };
        for (what, input) in inputs {
            let r = handled(step, input).await;
            assert!(
                r.is_ok(),
                "{source} → {} with {what}: {:?}",
                step.as_str(),
                r.err()
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} target inputs checked");
}

/// The janitor's schedule sends the janitor's own input (JanitorInput denies unknown fields).
#[tokio::test]
async fn the_scheduled_janitor_input_is_janitor_input() {
    let stack = Stack::new(&[]);
    let schedule = stack.value(&stack.resource("JanitorSchedule")["Properties"]);
    let input: Json = serde_json::from_str(&scheduler_context(
        schedule["Target"]["Input"].as_str().expect("Input"),
    ))
    .expect("JSON");
    let report = handled(StepName::Janitor, input)
        .await
        .expect("janitor accepts its schedule's input");
    assert_eq!(report["orphanCount"], 0);
    // The old envelope input is what a scheduled run sent before; it is refused.
    let envelope =
        json!({"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}});
    assert_eq!(
        handled(StepName::Janitor, envelope)
            .await
            .unwrap_err()
            .asl_name(),
        "Tenantflow.InvalidInput"
    );
}

/// (role, action, resource, request context) the code needs.
type Need<'a> = (&'a str, &'a str, String, Vec<(&'a str, &'a str)>);

/// IAM each function's code needs, on resources named as the code names them.
#[test]
fn roles_allow_what_the_code_calls() {
    let stack = Stack::new(&[]);
    let db = rds("db", GENERATION);
    let snap = rds("snapshot", GENERATION);
    let bucket = format!("{NS}-rel-{ACCOUNT}-{REGION}");
    let cases: Vec<Need> = vec![
        // RdsDatabases::restore_instance: RestoreDBInstanceFromDBSnapshot with Tags, authorised on
        // the new instance, the snapshot and the groups copied from the template (Service
        // Authorization Reference for RDS; tags on create need rds:AddTagsToResource).
        (
            "CreateDbFunction",
            "rds:RestoreDBInstanceFromDBSnapshot",
            db.clone(),
            vec![],
        ),
        (
            "CreateDbFunction",
            "rds:RestoreDBInstanceFromDBSnapshot",
            snap.clone(),
            vec![],
        ),
        (
            "CreateDbFunction",
            "rds:RestoreDBInstanceFromDBSnapshot",
            rds("subgrp", "tenants-private"),
            vec![],
        ),
        (
            "CreateDbFunction",
            "rds:AddTagsToResource",
            db.clone(),
            vec![],
        ),
        // The in-place rollback restores the safety-net snapshot the same way.
        (
            "RollbackFunction",
            "rds:RestoreDBInstanceFromDBSnapshot",
            db.clone(),
            vec![],
        ),
        (
            "RollbackFunction",
            "rds:RestoreDBInstanceFromDBSnapshot",
            snap.clone(),
            vec![],
        ),
        (
            "RollbackFunction",
            "rds:RestoreDBInstanceFromDBSnapshot",
            rds("pg", "tenant-pg16"),
            vec![],
        ),
        (
            "RollbackFunction",
            "rds:RestoreDBInstanceFromDBSnapshot",
            rds("og", "default:postgres-16"),
            vec![],
        ),
        (
            "RollbackFunction",
            "rds:AddTagsToResource",
            db.clone(),
            vec![],
        ),
        (
            "RollbackFunction",
            "rds:DescribeDBInstances",
            db.clone(),
            vec![],
        ),
        (
            "RollbackFunction",
            "rds:ModifyDBInstance",
            db.clone(),
            vec![],
        ),
        // list-tenants: the manifest, the scripts, SHA256SUMS; listing snapshots for the retention
        // headroom (a DescribeDBSnapshots without identifier is authorised on snapshot:*).
        (
            "ListTenantsFunction",
            "s3:GetObject",
            format!("arn:aws:s3:::{bucket}/releases/r1/SHA256SUMS"),
            vec![],
        ),
        (
            "ListTenantsFunction",
            "rds:DescribeDBSnapshots",
            rds("snapshot", "*"),
            vec![],
        ),
        // The migration build downloads the release folder as its S3 source
        // ("Allow CodeBuild to interact with other AWS services").
        (
            "MigrationRole",
            "s3:GetObject",
            format!("arn:aws:s3:::{bucket}/releases/r1/V1__a.sql"),
            vec![],
        ),
        (
            "MigrationRole",
            "s3:GetObjectVersion",
            format!("arn:aws:s3:::{bucket}/releases/r1/SHA256SUMS"),
            vec![],
        ),
        (
            "MigrationRole",
            "s3:ListBucket",
            format!("arn:aws:s3:::{bucket}"),
            vec![("s3:prefix", "releases/r1/")],
        ),
        (
            "MigrationRole",
            "s3:GetBucketLocation",
            format!("arn:aws:s3:::{bucket}"),
            vec![],
        ),
        (
            "MigrationRole",
            "s3:GetBucketAcl",
            format!("arn:aws:s3:::{bucket}"),
            vec![],
        ),
        (
            "MigrationRole",
            "kms:Decrypt",
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/key-TenantflowKey"),
            vec![],
        ),
    ];
    let mut missing = Vec::new();
    for (role, action, resource, ctx) in &cases {
        if !stack.allows(role, action, resource, ctx) {
            missing.push(format!("{role}: {action} on {resource}"));
        }
    }
    assert!(
        missing.is_empty(),
        "not allowed:\n  {}",
        missing.join("\n  ")
    );
    // Scoping holds: another namespace's instance is not restorable.
    assert!(!stack.allows(
        "RollbackFunction",
        "rds:RestoreDBInstanceFromDBSnapshot",
        &rds("db", "xy-0146-qa-20261103101500"),
        &[]
    ));
    assert!(!stack.allows(
        "MigrationRole",
        "s3:GetObject",
        &format!("arn:aws:s3:::{bucket}/runs/r1/report.json"),
        &[]
    ));
}

/// Restoring an encrypted snapshot with a customer-managed key needs kms:CreateGrant and
/// kms:DescribeKey on it; scoped to requests RDS makes (kms:ViaService, and grants for AWS
/// resources only). RDS User Guide, "Encrypting Amazon RDS resources" / AWS KMS Developer Guide,
/// "kms:ViaService".
#[test]
fn an_encrypted_fleet_key_is_usable_through_rds_only() {
    let via_rds = ("kms:ViaService", "rds.eu-west-1.amazonaws.com");
    let without = Stack::new(&[]);
    let with = Stack::new(&[("DatabaseKmsKeyArn", DB_KEY)]);
    for role in ["CreateDbFunction", "RollbackFunction"] {
        assert!(!without.allows(
            role,
            "kms:CreateGrant",
            DB_KEY,
            &[via_rds, ("kms:GrantIsForAWSResource", "true")]
        ));
        assert!(
            with.allows(
                role,
                "kms:CreateGrant",
                DB_KEY,
                &[via_rds, ("kms:GrantIsForAWSResource", "true")]
            ),
            "{role}"
        );
        assert!(
            with.allows(role, "kms:DescribeKey", DB_KEY, &[via_rds]),
            "{role}"
        );
        assert!(
            !with.allows(
                role,
                "kms:CreateGrant",
                DB_KEY,
                &[("kms:GrantIsForAWSResource", "true")]
            ),
            "{role}: not via RDS"
        );
        assert!(
            !with.allows(
                role,
                "kms:CreateGrant",
                DB_KEY,
                &[via_rds, ("kms:GrantIsForAWSResource", "false")]
            ),
            "{role}"
        );
        assert!(
            !with.allows(role, "kms:Decrypt", DB_KEY, &[via_rds]),
            "{role}: no more than the restore needs"
        );
    }
}

/// Functions invoked asynchronously (rule and schedule targets) lose a failed event after Lambda's
/// retries unless an on-failure destination takes it (Lambda Developer Guide, "Retaining records of
/// asynchronous invocations"); an alarm must watch that destination, and the role must be able to
/// write to it (the queue is SSE-KMS).
#[test]
fn async_invocations_that_fail_land_in_a_watched_queue() {
    let stack = Stack::new(&[]);
    let mut functions: Vec<String> = targets(&stack)
        .iter()
        .filter_map(|(_, t)| function_of(t["Arn"].as_str()?))
        .collect();
    functions.sort();
    functions.dedup();
    assert_eq!(
        functions,
        [
            "JanitorFunction",
            "RecoverFunction",
            "ResumeFunction",
            "TriggerFunction"
        ]
    );
    let alarms: Vec<Json> = stack
        .resources_of("AWS::CloudWatch::Alarm")
        .iter()
        .map(|a| stack.value(&stack.resource(a)["Properties"]))
        .collect();
    for f in &functions {
        let config = stack.value(&stack.resource(f)["Properties"]["EventInvokeConfig"]);
        let on_failure = &config["DestinationConfig"]["OnFailure"];
        assert_eq!(on_failure["Type"], "SQS", "{f}: {config}");
        let queue_arn = on_failure["Destination"].as_str().expect("destination");
        let queue = queue_arn.rsplit(':').next().expect("queue name");
        assert!(
            alarms.iter().any(|a| a["Namespace"] == "AWS/SQS"
                && a["Dimensions"][0]["Value"] == queue
                && a["AlarmActions"].as_array().is_some_and(|x| !x.is_empty())),
            "{f}: no alarm on {queue}"
        );
        let key = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/key-TenantflowKey");
        assert!(
            stack.allows(f, "kms:GenerateDataKey", &key, &[]),
            "{f}: cannot encrypt for the queue"
        );
    }
}

/// The build's source is the release folder (Flyway reads it with `filesystem:`, never `s3:`);
/// an ECR image is pulled with the project's role, scoped to its repository.
#[test]
fn migration_build_reads_the_release_folder_and_pulls_from_ecr_with_its_role() {
    let stack = Stack::new(&[]);
    let project = stack.value(&stack.resource("MigrationProject")["Properties"]);
    assert_eq!(project["Source"]["Type"], "S3");
    assert_eq!(
        project["Source"]["Location"],
        format!("{NS}-rel-{ACCOUNT}-{REGION}/releases/")
    );
    let spec = project["Source"]["BuildSpec"].as_str().expect("BuildSpec");
    assert!(
        spec.contains("FLYWAY_LOCATIONS=\"filesystem:"),
        "Flyway reads a folder"
    );
    assert!(
        !spec.contains("FLYWAY_LOCATIONS=\"s3:"),
        "the Flyway image cannot read s3: locations"
    );
    assert!(
        spec.contains("sha256sum -c"),
        "scripts are checked before Flyway runs"
    );
    assert_eq!(
        project["Environment"]["ImagePullCredentialsType"],
        "CODEBUILD"
    );
    assert!(!stack.allows("MigrationRole", "ecr:GetAuthorizationToken", "*", &[]));

    for (image, repository) in [
        (
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/mirror/flyway:10.21",
            "arn:aws:ecr:eu-west-1:111122223333:repository/mirror/flyway",
        ),
        (
            "123456789012.dkr.ecr.eu-central-1.amazonaws.com/flyway@sha256:0123abcd",
            "arn:aws:ecr:eu-central-1:123456789012:repository/flyway",
        ),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flyway",
            "arn:aws:ecr:eu-west-1:123456789012:repository/flyway",
        ),
    ] {
        let ecr = Stack::new(&[("FlywayImage", image)]);
        let project = ecr.value(&ecr.resource("MigrationProject")["Properties"]);
        assert_eq!(
            project["Environment"]["ImagePullCredentialsType"], "SERVICE_ROLE",
            "{image}"
        );
        assert!(
            ecr.allows("MigrationRole", "ecr:GetAuthorizationToken", "*", &[]),
            "{image}"
        );
        for action in [
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchCheckLayerAvailability",
        ] {
            assert!(
                ecr.allows("MigrationRole", action, repository, &[]),
                "{image}: {action} on {repository}"
            );
        }
        assert!(!ecr.allows(
            "MigrationRole",
            "ecr:BatchGetImage",
            "arn:aws:ecr:eu-west-1:111122223333:repository/other",
            &[]
        ));
    }
    for image in [
        "flyway/flyway:10",
        "public.ecr.aws/flyway/flyway:10",
        "ghcr.io/acme/flyway:10",
    ] {
        let other = Stack::new(&[("FlywayImage", image)]);
        let project = other.value(&other.resource("MigrationProject")["Properties"]);
        assert_eq!(
            project["Environment"]["ImagePullCredentialsType"], "CODEBUILD",
            "{image}"
        );
    }
}

/// The RDS rule matches on `resources`: AWS writes `detail.SourceIdentifier` as `rds:<id>`, so a
/// prefix on it never matches a generation.
#[test]
fn the_rds_rule_does_not_filter_on_source_identifier() {
    let stack = Stack::new(&[]);
    let pattern = stack.value(&stack.resource("RdsEventsRule")["Properties"]["EventPattern"]);
    assert!(
        pattern["detail"].get("SourceIdentifier").is_none(),
        "{pattern}"
    );
    let prefixes: Vec<&str> = pattern["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|p| p["prefix"].as_str())
        .collect();
    assert!(
        prefixes.contains(&format!("arn:aws:rds:{REGION}:{ACCOUNT}:db:{NS}-").as_str()),
        "{prefixes:?}"
    );
}

#[test]
fn glob_matches_like_iam() {
    assert!(glob(
        "arn:aws:rds:*:db:xy-*",
        "arn:aws:rds:eu-west-1:1:db:xy-1"
    ));
    assert!(glob("*", ""));
    assert!(glob("a?c", "abc"));
    assert!(!glob("a?c", "ac"));
    assert!(!glob(
        "arn:*:db:xy-*",
        "arn:aws:rds:eu-west-1:1:snapshot:xy-1"
    ));
}
