//! Parsing and validating a definition into [`crate::model`]. Every problem is collected with
//! the path of the state it belongs to, e.g. `States.Fleet.ItemProcessor.States.Snapshot`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::choice::Rule;
use crate::error::{names, DefinitionError, ValidationError};
use crate::intrinsics;
use crate::jsonpath::{Path, ResultPath};
use crate::model::*;
use crate::template::Template;

/// A parsed and validated state machine, cheap to clone.
#[derive(Debug, Clone)]
pub struct Definition {
    pub(crate) machine: Arc<Machine>,
    pub(crate) name: String,
}

impl Definition {
    /// Parses and validates definition text (after any substitution).
    pub fn from_json(text: &str) -> Result<Definition, DefinitionError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| DefinitionError::single("$", format!("invalid JSON: {e}")))?;
        Definition::from_value(v)
    }

    pub fn from_value(v: Value) -> Result<Definition, DefinitionError> {
        let mut p = Parser::default();
        let Value::Object(top) = &v else {
            return Err(DefinitionError::single(
                "$",
                "the definition must be a JSON object",
            ));
        };
        if top.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata") {
            p.err(
                "QueryLanguage",
                "QueryLanguage JSONata is not supported yet (set on the state machine); only JSONPath is",
            );
        }
        collect_names(top, &mut p.all_names);
        let machine = p.machine(top, "", true);
        if !p.errors.is_empty() {
            return Err(DefinitionError { errors: p.errors });
        }
        Ok(Definition {
            machine: Arc::new(machine),
            name: "StateMachine".to_string(),
        })
    }

    /// Names the state machine (used in ARNs and the context object). Defaults to `StateMachine`.
    pub fn with_name(mut self, name: impl Into<String>) -> Definition {
        self.name = name.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn collect_names(m: &Map<String, Value>, out: &mut HashSet<String>) {
    if let Some(Value::Object(states)) = m.get("States") {
        for (name, s) in states {
            out.insert(name.clone());
            if let Value::Object(s) = s {
                if let Some(Value::Array(bs)) = s.get("Branches") {
                    for b in bs {
                        if let Value::Object(b) = b {
                            collect_names(b, out);
                        }
                    }
                }
                for key in ["ItemProcessor", "Iterator"] {
                    if let Some(Value::Object(p)) = s.get(key) {
                        collect_names(p, out);
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct Parser {
    errors: Vec<ValidationError>,
    all_names: HashSet<String>,
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultPath",
            "Result",
        ],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Retry",
            "Catch",
            "Credentials",
        ],
        "Choice" => &["InputPath", "OutputPath", "Choices", "Default"],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Branches",
            "Retry",
            "Catch",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ItemSelector",
            "ResultSelector",
            "ResultPath",
            "ItemsPath",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
            "Retry",
            "Catch",
        ],
        _ => return None,
    })
}

impl Parser {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.errors.push(ValidationError {
            path: if path.is_empty() {
                "$".into()
            } else {
                path.into()
            },
            message: msg.into(),
        });
    }

    fn machine(&mut self, m: &Map<String, Value>, prefix: &str, top: bool) -> Machine {
        let at = |f: &str| join(prefix, f);
        let start_at = match m.get("StartAt") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                self.err(&at("StartAt"), "StartAt is required and must be a string");
                String::new()
            }
        };
        let timeout_seconds = match m.get("TimeoutSeconds") {
            Some(v) if top => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.err(&at("TimeoutSeconds"), "must be a positive integer");
                    None
                }
            },
            _ => None,
        };
        let mut states = HashMap::new();
        match m.get("States") {
            Some(Value::Object(sm)) if !sm.is_empty() => {
                for (name, sv) in sm {
                    let spath = join(prefix, &format!("States.{name}"));
                    if name.is_empty() || name.chars().count() > 80 {
                        self.err(&spath, "state names must be 1 to 80 characters long");
                    }
                    if let Some(s) = self.state(name, sv, &spath) {
                        states.insert(name.clone(), Arc::new(s));
                    }
                }
            }
            _ => self.err(
                &at("States"),
                "States is required and must be a non-empty object",
            ),
        }
        let machine = Machine {
            start_at,
            states,
            timeout_seconds,
        };
        self.check_graph(&machine, m, prefix);
        machine
    }

    fn check_graph(&mut self, machine: &Machine, raw: &Map<String, Value>, prefix: &str) {
        let Some(Value::Object(raw_states)) = raw.get("States") else {
            return;
        };
        let exists = |n: &str| raw_states.contains_key(n);
        if !machine.start_at.is_empty() && !exists(&machine.start_at) {
            let msg = self.missing("StartAt", &machine.start_at);
            self.err(&join(prefix, "StartAt"), msg);
        }
        // Every target must exist in this scope.
        let mut edges: HashMap<&str, Vec<String>> = HashMap::new();
        for (name, s) in &machine.states {
            let spath = join(prefix, &format!("States.{name}"));
            let mut targets: Vec<(String, String)> = Vec::new();
            if let Next::To(n) = &s.next {
                targets.push(("Next".into(), n.clone()));
            }
            if let Kind::Choice { choices, default } = &s.kind {
                for (i, (_, n)) in choices.iter().enumerate() {
                    targets.push((format!("Choices[{i}].Next"), n.clone()));
                }
                if let Some(d) = default {
                    targets.push(("Default".into(), d.clone()));
                }
            }
            for (i, c) in s.catch.iter().enumerate() {
                targets.push((format!("Catch[{i}].Next"), c.next.clone()));
            }
            for (field, t) in &targets {
                if !exists(t) {
                    let msg = self.missing(field, t);
                    self.err(&spath, msg);
                }
            }
            edges.insert(name.as_str(), targets.into_iter().map(|(_, t)| t).collect());
        }
        // Reachability from StartAt.
        let mut seen: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = VecDeque::new();
        if exists(&machine.start_at) {
            queue.push_back(machine.start_at.as_str());
        }
        while let Some(n) = queue.pop_front() {
            if !seen.insert(n) {
                continue;
            }
            if let Some(ts) = edges.get(n) {
                for t in ts {
                    if let Some((k, _)) = raw_states.get_key_value(t.as_str()) {
                        queue.push_back(k.as_str());
                    }
                }
            }
        }
        for name in raw_states.keys() {
            if !seen.contains(name.as_str()) && machine.states.contains_key(name) {
                self.err(
                    &join(prefix, &format!("States.{name}")),
                    format!(
                        "state '{name}' is unreachable from StartAt '{}'",
                        machine.start_at
                    ),
                );
            }
        }
        // At least one way out.
        let terminal = machine.states.values().any(|s| {
            matches!(s.next, Next::End) || matches!(s.kind, Kind::Succeed | Kind::Fail { .. })
        });
        if !terminal && !machine.states.is_empty() {
            self.err(
                &join(prefix, "States"),
                "no terminal state: at least one state must have End, or be Succeed or Fail",
            );
        }
    }

    fn missing(&self, field: &str, target: &str) -> String {
        if self.all_names.contains(target) {
            format!(
                "{field} target '{target}' is outside this scope: a transition cannot leave its Map or Parallel branch (or enter one)"
            )
        } else {
            format!("{field} target '{target}' does not exist")
        }
    }

    fn state(&mut self, name: &str, v: &Value, path: &str) -> Option<State> {
        let Value::Object(m) = v else {
            self.err(path, "a state must be a JSON object");
            return None;
        };
        let kind_name = match m.get("Type") {
            Some(Value::String(t)) => t.as_str(),
            _ => {
                self.err(path, "Type is required");
                return None;
            }
        };
        if m.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata") {
            self.err(
                path,
                format!("state '{name}' sets QueryLanguage JSONata, which is not supported yet; only JSONPath is"),
            );
            return None;
        }
        let Some(fields) = allowed(kind_name) else {
            self.err(path, format!("unknown state Type '{kind_name}'"));
            return None;
        };
        for k in m.keys() {
            if !COMMON.contains(&k.as_str()) && !fields.contains(&k.as_str()) {
                let hint = match k.as_str() {
                    "Assign" | "Arguments" | "Output" | "Items" => {
                        " (JSONata and workflow variables are not supported yet)"
                    }
                    _ => "",
                };
                self.err(
                    path,
                    format!("field '{k}' is not valid in a {kind_name} state{hint}"),
                );
            }
        }
        let io = self.io(m, path);
        let next = self.next(m, kind_name, path);
        let retry = self.retry(m, path);
        let catch = self.catch(m, path);
        let kind = match kind_name {
            "Pass" => Kind::Pass {
                result: m.get("Result").cloned(),
            },
            "Task" => Kind::Task(self.task(m, path)?),
            "Choice" => self.choice(m, path)?,
            "Wait" => Kind::Wait(self.wait(m, path)?),
            "Succeed" => Kind::Succeed,
            "Fail" => Kind::Fail {
                error: self.text(m, "Error", "ErrorPath", path),
                cause: self.text(m, "Cause", "CausePath", path),
            },
            "Parallel" => {
                let mut branches = Vec::new();
                match m.get("Branches") {
                    Some(Value::Array(bs)) if !bs.is_empty() => {
                        for (i, b) in bs.iter().enumerate() {
                            let bpath = format!("{path}.Branches[{i}]");
                            match b {
                                Value::Object(bm) => {
                                    branches.push(Arc::new(self.machine(bm, &bpath, false)))
                                }
                                _ => self.err(&bpath, "a branch must be an object"),
                            }
                        }
                    }
                    _ => self.err(path, "Branches is required and must be a non-empty array"),
                }
                Kind::Parallel { branches }
            }
            "Map" => Kind::Map(Box::new(self.map(m, path)?)),
            _ => return None,
        };
        Some(State {
            name: name.to_string(),
            kind,
            io,
            next,
            retry,
            catch,
        })
    }

    fn io(&mut self, m: &Map<String, Value>, path: &str) -> Io {
        let select = |p: &mut Parser, field: &str| match m.get(field) {
            None => Select::Whole,
            Some(Value::Null) => Select::Null,
            Some(Value::String(s)) => match Path::parse(s) {
                Ok(pp) => Select::Path(pp),
                Err(e) => {
                    p.err(path, format!("{field}: {e}"));
                    Select::Whole
                }
            },
            Some(_) => {
                p.err(path, format!("{field} must be a string or null"));
                Select::Whole
            }
        };
        let input_path = select(self, "InputPath");
        let output_path = select(self, "OutputPath");
        let parameters = self.template(m, "Parameters", path);
        let result_selector = self.template(m, "ResultSelector", path);
        let result_path = self.result_path(m.get("ResultPath"), path, "ResultPath");
        Io {
            input_path,
            output_path,
            parameters,
            result_selector,
            result_path,
        }
    }

    fn result_path(&mut self, v: Option<&Value>, path: &str, field: &str) -> ResultPath {
        match v {
            None => ResultPath::Replace,
            Some(Value::Null) => ResultPath::Discard,
            Some(Value::String(s)) => ResultPath::parse(s).unwrap_or_else(|e| {
                self.err(path, format!("{field}: {e}"));
                ResultPath::Replace
            }),
            Some(_) => {
                self.err(path, format!("{field} must be a string or null"));
                ResultPath::Replace
            }
        }
    }

    fn template(&mut self, m: &Map<String, Value>, field: &str, path: &str) -> Option<Template> {
        let v = m.get(field)?;
        match Template::compile(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(path, format!("{field}: {e}"));
                None
            }
        }
    }

    fn next(&mut self, m: &Map<String, Value>, kind: &str, path: &str) -> Next {
        let next = m.get("Next");
        let end = m.get("End");
        let flows = !matches!(kind, "Choice" | "Succeed" | "Fail");
        if !flows {
            if next.is_some() || end.is_some() {
                self.err(path, format!("a {kind} state cannot have Next or End"));
            }
            return Next::None;
        }
        match (next, end) {
            (Some(Value::String(n)), None) => Next::To(n.clone()),
            (None, Some(Value::Bool(true))) => Next::End,
            (Some(_), Some(_)) => {
                self.err(path, "Next and End cannot both be set");
                Next::End
            }
            (Some(_), None) => {
                self.err(path, "Next must be a string");
                Next::End
            }
            (None, Some(_)) => {
                self.err(path, "End must be true when present");
                Next::End
            }
            (None, None) => {
                self.err(path, "the state needs either Next or \"End\": true");
                Next::End
            }
        }
    }

    fn error_list(&mut self, v: Option<&Value>, path: &str) -> Vec<String> {
        match v {
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                let list: Vec<String> = a
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect();
                if list.iter().any(|e| e == names::ALL) && list.len() > 1 {
                    self.err(path, "States.ALL must appear alone in its ErrorEquals");
                }
                list
            }
            _ => {
                self.err(path, "ErrorEquals must be a non-empty array of strings");
                Vec::new()
            }
        }
    }

    fn retry(&mut self, m: &Map<String, Value>, path: &str) -> Vec<Retrier> {
        let Some(v) = m.get("Retry") else {
            return Vec::new();
        };
        let Value::Array(items) = v else {
            self.err(path, "Retry must be an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in items.iter().enumerate() {
            let rpath = format!("{path}.Retry[{i}]");
            let Value::Object(r) = r else {
                self.err(&rpath, "a retrier must be an object");
                continue;
            };
            let errors = self.error_list(r.get("ErrorEquals"), &rpath);
            if errors.iter().any(|e| e == names::ALL) && i + 1 != items.len() {
                self.err(&rpath, "a retrier with States.ALL must be the last one");
            }
            let num = |p: &mut Parser, f: &str, default: f64, min: f64| match r.get(f) {
                None => default,
                Some(v) => match v.as_f64() {
                    Some(x) if x >= min => x,
                    _ => {
                        p.err(&rpath, format!("{f} must be a number >= {min}"));
                        default
                    }
                },
            };
            let interval_seconds = num(self, "IntervalSeconds", 1.0, 1.0);
            let max_attempts = num(self, "MaxAttempts", 3.0, 0.0) as u32;
            let backoff_rate = num(self, "BackoffRate", 2.0, 1.0);
            let max_delay_seconds = r
                .get("MaxDelaySeconds")
                .map(|_| num(self, "MaxDelaySeconds", 0.0, 1.0));
            let jitter_full = match r.get("JitterStrategy").map(|v| v.as_str()) {
                None | Some(Some("NONE")) => false,
                Some(Some("FULL")) => true,
                _ => {
                    self.err(&rpath, "JitterStrategy must be FULL or NONE");
                    false
                }
            };
            out.push(Retrier {
                errors,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                jitter_full,
            });
        }
        out
    }

    fn catch(&mut self, m: &Map<String, Value>, path: &str) -> Vec<Catcher> {
        let Some(v) = m.get("Catch") else {
            return Vec::new();
        };
        let Value::Array(items) = v else {
            self.err(path, "Catch must be an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in items.iter().enumerate() {
            let cpath = format!("{path}.Catch[{i}]");
            let Value::Object(c) = c else {
                self.err(&cpath, "a catcher must be an object");
                continue;
            };
            let errors = self.error_list(c.get("ErrorEquals"), &cpath);
            if errors.iter().any(|e| e == names::ALL) && i + 1 != items.len() {
                self.err(&cpath, "a catcher with States.ALL must be the last one");
            }
            let next = match c.get("Next") {
                Some(Value::String(n)) => n.clone(),
                _ => {
                    self.err(&cpath, "Next is required in a catcher");
                    continue;
                }
            };
            let result_path = self.result_path(c.get("ResultPath"), &cpath, "ResultPath");
            out.push(Catcher {
                errors,
                result_path,
                next,
            });
        }
        out
    }

    fn num(&mut self, m: &Map<String, Value>, field: &str, path: &str) -> Option<Num> {
        let path_field = format!("{field}Path");
        match (m.get(field), m.get(&path_field)) {
            (Some(_), Some(_)) => {
                self.err(path, format!("{field} and {path_field} cannot both be set"));
                None
            }
            (Some(v), None) => match v.as_f64() {
                Some(x) if x >= 0.0 => Some(Num::Fixed(x)),
                _ => {
                    self.err(path, format!("{field} must be a non-negative number"));
                    None
                }
            },
            (None, Some(Value::String(s))) => match Path::parse(s) {
                Ok(p) => Some(Num::Path(p)),
                Err(e) => {
                    self.err(path, format!("{path_field}: {e}"));
                    None
                }
            },
            (None, Some(_)) => {
                self.err(path, format!("{path_field} must be a path string"));
                None
            }
            (None, None) => None,
        }
    }

    fn task(&mut self, m: &Map<String, Value>, path: &str) -> Option<TaskSpec> {
        let resource = match m.get("Resource") {
            Some(Value::String(r)) if !r.is_empty() => r.clone(),
            _ => {
                self.err(path, "Resource is required and must be a string");
                return None;
            }
        };
        let pattern = if resource.ends_with(".waitForTaskToken") {
            Pattern::WaitForTaskToken
        } else if resource.ends_with(".sync") || resource.contains(".sync:") {
            Pattern::Sync
        } else {
            Pattern::RequestResponse
        };
        let timeout = self.num(m, "TimeoutSeconds", path);
        let heartbeat = self.num(m, "HeartbeatSeconds", path);
        if let (Some(Num::Fixed(t)), Some(Num::Fixed(h))) = (&timeout, &heartbeat) {
            if h >= t {
                self.err(path, "HeartbeatSeconds must be smaller than TimeoutSeconds");
            }
        }
        Some(TaskSpec {
            resource,
            pattern,
            timeout,
            heartbeat,
        })
    }

    fn choice(&mut self, m: &Map<String, Value>, path: &str) -> Option<Kind> {
        let mut choices = Vec::new();
        match m.get("Choices") {
            Some(Value::Array(items)) if !items.is_empty() => {
                for (i, c) in items.iter().enumerate() {
                    let cpath = format!("{path}.Choices[{i}]");
                    let next = match c.get("Next") {
                        Some(Value::String(n)) => n.clone(),
                        _ => {
                            self.err(&cpath, "a top-level choice rule needs Next");
                            continue;
                        }
                    };
                    match Rule::parse(c) {
                        Ok(r) => choices.push((r, next)),
                        Err(e) => self.err(&cpath, e),
                    }
                }
            }
            _ => self.err(path, "Choices is required and must be a non-empty array"),
        }
        let default = match m.get("Default") {
            None => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => {
                self.err(path, "Default must be a string");
                None
            }
        };
        Some(Kind::Choice { choices, default })
    }

    fn wait(&mut self, m: &Map<String, Value>, path: &str) -> Option<WaitSpec> {
        let present: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
            .into_iter()
            .filter(|f| m.contains_key(*f))
            .collect();
        if present.len() != 1 {
            self.err(
                path,
                "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
            );
            return None;
        }
        let v = &m[present[0]];
        let spec = match (present[0], v) {
            ("Seconds", v) => match v.as_f64() {
                Some(s) if s >= 0.0 => WaitSpec::Seconds(s),
                _ => {
                    self.err(path, "Seconds must be a non-negative number");
                    return None;
                }
            },
            ("Timestamp", Value::String(s)) => {
                if crate::choice::parse_ts(s).is_none() {
                    self.err(
                        path,
                        format!("Timestamp '{s}' is not an RFC 3339 timestamp"),
                    );
                    return None;
                }
                WaitSpec::Timestamp(s.clone())
            }
            ("SecondsPath", Value::String(s)) | ("TimestampPath", Value::String(s)) => {
                match Path::parse(s) {
                    Ok(p) if present[0] == "SecondsPath" => WaitSpec::SecondsPath(p),
                    Ok(p) => WaitSpec::TimestampPath(p),
                    Err(e) => {
                        self.err(path, format!("{}: {e}", present[0]));
                        return None;
                    }
                }
            }
            (f, _) => {
                self.err(path, format!("{f} must be a string"));
                return None;
            }
        };
        Some(spec)
    }

    fn text(
        &mut self,
        m: &Map<String, Value>,
        field: &str,
        path_field: &str,
        path: &str,
    ) -> Option<Text> {
        match (m.get(field), m.get(path_field)) {
            (Some(_), Some(_)) => {
                self.err(path, format!("{field} and {path_field} cannot both be set"));
                None
            }
            (Some(Value::String(s)), None) => Some(Text::Fixed(s.clone())),
            (Some(_), None) => {
                self.err(path, format!("{field} must be a string"));
                None
            }
            (None, Some(Value::String(s))) => {
                let parsed = if s.starts_with("States.") {
                    intrinsics::parse(s).map(|c| Text::Intrinsic(Box::new(c)))
                } else {
                    Path::parse(s).map(Text::Path)
                };
                match parsed {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.err(path, format!("{path_field}: {e}"));
                        None
                    }
                }
            }
            (None, Some(_)) => {
                self.err(path, format!("{path_field} must be a string"));
                None
            }
            (None, None) => None,
        }
    }

    fn object_ref(&mut self, v: &Value, path: &str, field: &str) -> Option<ObjectRef> {
        let Value::Object(m) = v else {
            self.err(path, format!("{field} must be an object"));
            return None;
        };
        let resource = m
            .get("Resource")
            .and_then(Value::as_str)
            .unwrap_or("arn:aws:states:::s3:getObject")
            .to_string();
        let parameters = match m.get("Parameters").or_else(|| m.get("Arguments")) {
            Some(p) => match Template::compile(p) {
                Ok(t) => t,
                Err(e) => {
                    self.err(path, format!("{field}.Parameters: {e}"));
                    return None;
                }
            },
            None => {
                self.err(
                    path,
                    format!("{field}.Parameters (Bucket, Key/Prefix) is required"),
                );
                return None;
            }
        };
        Some(ObjectRef {
            resource,
            parameters,
        })
    }

    fn map(&mut self, m: &Map<String, Value>, path: &str) -> Option<MapSpec> {
        let (key, proc_v) = match (m.get("ItemProcessor"), m.get("Iterator")) {
            (Some(p), None) => ("ItemProcessor", p),
            (None, Some(p)) => ("Iterator", p),
            (Some(_), Some(_)) => {
                self.err(path, "ItemProcessor and Iterator cannot both be set");
                return None;
            }
            (None, None) => {
                self.err(path, "ItemProcessor (or Iterator) is required");
                return None;
            }
        };
        let Value::Object(pm) = proc_v else {
            self.err(path, format!("{key} must be an object"));
            return None;
        };
        let ppath = format!("{path}.{key}");
        let distributed = match pm.get("ProcessorConfig") {
            Some(Value::Object(pc)) => {
                if pc.get("ExecutionType").and_then(Value::as_str) == Some("EXPRESS") {
                    // Accepted: runs like STANDARD locally.
                }
                pc.get("Mode").and_then(Value::as_str) == Some("DISTRIBUTED")
            }
            _ => false,
        };
        let processor = Arc::new(self.machine(pm, &ppath, false));
        if m.contains_key("Parameters") && m.contains_key("ItemSelector") {
            self.err(path, "Parameters and ItemSelector cannot both be set");
        }
        let item_selector = self
            .template(m, "ItemSelector", path)
            .or_else(|| self.template(m, "Parameters", path));
        let items_path = match m.get("ItemsPath") {
            None => None,
            Some(Value::String(s)) => match Path::parse(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err(path, format!("ItemsPath: {e}"));
                    None
                }
            },
            Some(_) => {
                self.err(path, "ItemsPath must be a string");
                None
            }
        };
        let item_reader = match m.get("ItemReader") {
            None => None,
            Some(v) => {
                let object = self.object_ref(v, path, "ItemReader")?;
                let cfg = v.get("ReaderConfig");
                let input_type = cfg
                    .and_then(|c| c.get("InputType"))
                    .and_then(Value::as_str)
                    .unwrap_or("JSON")
                    .to_string();
                let max_items = match cfg {
                    Some(Value::Object(c)) => self.num(c, "MaxItems", path),
                    _ => None,
                };
                Some(ItemReader {
                    object,
                    input_type,
                    max_items,
                })
            }
        };
        let result_writer = match m.get("ResultWriter") {
            None => None,
            Some(v) => Some(self.object_ref(v, path, "ResultWriter")?),
        };
        if !distributed {
            for f in [
                "ItemReader",
                "ResultWriter",
                "ToleratedFailurePercentage",
                "ToleratedFailureCount",
            ] {
                if m.contains_key(f) {
                    self.err(path, format!("{f} is only valid in a DISTRIBUTED Map"));
                }
            }
        }
        let pct = self.num(m, "ToleratedFailurePercentage", path);
        if let Some(Num::Fixed(p)) = pct {
            if p > 100.0 {
                self.err(path, "ToleratedFailurePercentage must be between 0 and 100");
            }
        }
        if m.contains_key("ResultSelector") && distributed && m.contains_key("ResultWriter") {
            // Allowed by AWS; applied to the ResultWriter output.
        }
        let batcher = match m.get("ItemBatcher") {
            None => None,
            Some(Value::Object(b)) => {
                if b.contains_key("MaxInputBytesPerBatch")
                    || b.contains_key("MaxInputBytesPerBatchPath")
                {
                    self.err(
                        path,
                        "ItemBatcher.MaxInputBytesPerBatch is not supported yet",
                    );
                }
                let max_items = self.num(b, "MaxItemsPerBatch", path);
                if max_items.is_none() {
                    self.err(
                        path,
                        "ItemBatcher needs MaxItemsPerBatch (or MaxItemsPerBatchPath)",
                    );
                }
                let batch_input = self.template(b, "BatchInput", path);
                Some(Batcher {
                    max_items,
                    batch_input,
                })
            }
            Some(_) => {
                self.err(path, "ItemBatcher must be an object");
                None
            }
        };
        if batcher.is_some() && !distributed {
            self.err(path, "ItemBatcher is only valid in a DISTRIBUTED Map");
        }
        Some(MapSpec {
            processor,
            distributed,
            items_path,
            item_selector,
            max_concurrency: self.num(m, "MaxConcurrency", path),
            tolerated_percentage: pct,
            tolerated_count: self.num(m, "ToleratedFailureCount", path),
            item_reader,
            result_writer,
            batcher,
            label: m.get("Label").and_then(Value::as_str).map(str::to_string),
        })
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(v: Value) -> Vec<String> {
        match Definition::from_value(v) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_a_valid_definition() {
        let d = json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "C"}], "Default": "D"},
            "C": {"Type": "Succeed"},
            "D": {"Type": "Fail", "Error": "E"}
        }});
        assert!(errors(d).is_empty());
    }

    #[test]
    fn reports_missing_targets_unreachable_and_end_next() {
        let errs = errors(json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "Nope"},
            "B": {"Type": "Pass", "End": true},
            "C": {"Type": "Pass", "Next": "B", "End": true},
            "D": {"Type": "Wait", "Seconds": 1}
        }}));
        let all = errs.join("\n");
        assert!(
            all.contains("States.A: Next target 'Nope' does not exist"),
            "{all}"
        );
        assert!(all.contains("States.B: state 'B' is unreachable"), "{all}");
        assert!(
            all.contains("States.C: Next and End cannot both be set"),
            "{all}"
        );
        assert!(
            all.contains("States.D: the state needs either Next or \"End\": true"),
            "{all}"
        );
    }

    #[test]
    fn catch_cannot_leave_map_scope() {
        let errs = errors(json!({"StartAt": "M", "States": {
            "M": {"Type": "Map", "ItemProcessor": {"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "arn:x", "End": true,
                      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Outside"}]}
            }}, "Next": "Outside"},
            "Outside": {"Type": "Succeed"}
        }}));
        let all = errs.join("\n");
        assert!(
            all.contains("States.M.ItemProcessor.States.T: Catch[0].Next target 'Outside' is outside this scope"),
            "{all}"
        );
    }

    #[test]
    fn rejects_jsonata_naming_the_state() {
        let errs = errors(json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "QueryLanguage": "JSONata", "End": true}
        }}));
        assert!(
            errs[0].contains("States.A")
                && errs[0].contains("'A'")
                && errs[0].contains("not supported yet"),
            "{errs:?}"
        );
        let top = errors(
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}),
        );
        assert!(top[0].contains("not supported yet"));
    }

    #[test]
    fn rejects_bad_retry_and_paths() {
        let errs = errors(json!({"StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": "arn:x", "End": true, "ResultPath": "$.a[*]",
                  "Parameters": {"x.$": "States.Nope()"},
                  "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}
        }}));
        let all = errs.join("\n");
        assert!(
            all.contains("States.A.Retry[0]: a retrier with States.ALL must be the last one"),
            "{all}"
        );
        assert!(all.contains("ResultPath"), "{all}");
        assert!(
            all.contains("unknown intrinsic function 'States.Nope'"),
            "{all}"
        );
    }
}
