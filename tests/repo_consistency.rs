//! Repository consistency: the state machine definitions, the SAM template, the Lambda crates and
//! the event samples must agree with each other and with `tenantflow-core`.
//!
//! Reads files only (no tools, no network):
//! - every `${…}` in a deployed definition has a `DefinitionSubstitutions` entry, and every
//!   `*FunctionArn` entry names the SAM function built from that step's crate;
//! - every `ErrorEquals` name is a `StepError` ASL name, a `States.` built-in or an error of the
//!   Lambda or CodeBuild integrations (`Lambda.`/`CodeBuild.` and an exception name);
//! - every function crate has a SAM function (Rust on arm64, built by cargo-lambda) and an
//!   `events/<fn>.json` sample;
//! - the state machine role invokes exactly the functions the definitions call;
//! - the CodeBuild project embeds `infra/buildspec.yml` verbatim;
//! - every `TENANTFLOW_*` variable the template sets is read somewhere under `functions/`.

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use tenantflow_core::error::StepError;
use tenantflow_core::steps::StepName;

/// Crates under `functions/` that are libraries, not Lambda functions.
const LIBRARY_CRATES: [&str; 3] = ["core", "aws", "local"];

/// Step Functions' predefined error names.
const STATES_ERRORS: [&str; 15] = [
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.TaskFailed",
    "States.Timeout",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ------------------------------------------------------------------ template model

/// The parts of `infra/template.yaml` the checks need.
struct Template {
    doc: Yaml,
    /// Logical id → function crate name (from `CodeUri: ../functions/<fn>`).
    functions: BTreeMap<String, String>,
    /// Logical id → state machine.
    state_machines: BTreeMap<String, StateMachine>,
}

struct StateMachine {
    /// Repository-relative path of the definition.
    definition: PathBuf,
    substitutions: BTreeMap<String, Yaml>,
}

fn template() -> Template {
    let text = read(&root().join("infra/template.yaml"));
    let doc: Yaml = serde_yaml::from_str(&text).expect("infra/template.yaml is YAML");
    let resources = doc
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .expect("template has Resources");
    let mut functions = BTreeMap::new();
    let mut state_machines = BTreeMap::new();
    for (id, res) in resources {
        let id = id.as_str().expect("logical ids are strings").to_string();
        let kind = res.get("Type").and_then(Yaml::as_str).unwrap_or_default();
        let props = res.get("Properties");
        match kind {
            "AWS::Serverless::Function" => {
                let code_uri = props
                    .and_then(|p| p.get("CodeUri"))
                    .and_then(Yaml::as_str)
                    .unwrap_or_else(|| panic!("{id}: CodeUri must be a path string"));
                let name = code_uri
                    .strip_prefix("../functions/")
                    .unwrap_or_else(|| panic!("{id}: CodeUri {code_uri} is not ../functions/<fn>"));
                functions.insert(id, name.to_string());
            }
            "AWS::Serverless::StateMachine" => {
                let uri = props
                    .and_then(|p| p.get("DefinitionUri"))
                    .and_then(Yaml::as_str)
                    .unwrap_or_else(|| panic!("{id}: DefinitionUri must be a path string"));
                let definition = uri.strip_prefix("../").unwrap_or_else(|| {
                    panic!("{id}: DefinitionUri {uri} is not relative to infra/")
                });
                let substitutions = props
                    .and_then(|p| p.get("DefinitionSubstitutions"))
                    .and_then(Yaml::as_mapping)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                state_machines.insert(
                    id,
                    StateMachine {
                        definition: PathBuf::from(definition),
                        substitutions,
                    },
                );
            }
            _ => {}
        }
    }
    Template {
        doc,
        functions,
        state_machines,
    }
}

impl Template {
    fn resource(&self, id: &str) -> &Yaml {
        self.doc
            .get("Resources")
            .and_then(|r| r.get(id))
            .unwrap_or_else(|| panic!("template has no resource {id}"))
    }

    /// A function property, falling back to `Globals.Function`.
    fn function_property(&self, id: &str, key: &str) -> Option<&Yaml> {
        self.resource(id)
            .get("Properties")
            .and_then(|p| p.get(key))
            .or_else(|| {
                self.doc
                    .get("Globals")
                    .and_then(|g| g.get("Function"))
                    .and_then(|f| f.get(key))
            })
    }
}

/// `!GetAtt X.Arn` (short or long form) → `X`.
fn get_att_arn(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Tagged(t) if t.tag == "GetAtt" => {
            t.value.as_str()?.strip_suffix(".Arn").map(str::to_string)
        }
        Yaml::Mapping(m) => {
            let parts = m.get("Fn::GetAtt")?.as_sequence()?;
            match (parts.first()?.as_str()?, parts.get(1)?.as_str()?) {
                (id, "Arn") => Some(id.to_string()),
                _ => None,
            }
        }
        _ => None,
    }
}

// ------------------------------------------------------------------ definitions

/// Every `${Name}` placeholder in a definition's text.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                found.insert(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    found
}

/// Every name in every `ErrorEquals` list, anywhere in the definition.
fn error_names(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(map) => {
            for (k, child) in map {
                if k == "ErrorEquals" {
                    let list = child.as_array().expect("ErrorEquals is an array");
                    for name in list {
                        out.push(
                            name.as_str()
                                .expect("ErrorEquals holds strings")
                                .to_string(),
                        );
                    }
                } else {
                    error_names(child, out);
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|i| error_names(i, out)),
        _ => {}
    }
}

fn definition_files() -> Vec<PathBuf> {
    let dir = root().join("statemachine");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("statemachine/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    files.sort();
    files
}

fn function_crates() -> BTreeSet<String> {
    fs::read_dir(root().join("functions"))
        .expect("functions/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !LIBRARY_CRATES.contains(&n.as_str()))
        .collect()
}

// ------------------------------------------------------------------ tests

#[test]
fn every_definition_is_deployed_by_a_state_machine() {
    let t = template();
    let deployed: BTreeSet<PathBuf> = t
        .state_machines
        .values()
        .map(|sm| root().join(&sm.definition))
        .collect();
    let files = definition_files();
    assert!(!files.is_empty(), "no statemachine/*.asl.json");
    for f in &files {
        assert!(
            deployed.contains(f),
            "{} is not the DefinitionUri of any AWS::Serverless::StateMachine",
            f.display()
        );
    }
    for d in &deployed {
        assert!(d.is_file(), "DefinitionUri {} does not exist", d.display());
    }
}

#[test]
fn every_placeholder_has_a_substitution_and_every_function_arn_a_function() {
    let t = template();
    assert!(
        !t.state_machines.is_empty(),
        "template has no state machine"
    );
    for (sm_id, sm) in &t.state_machines {
        let text = read(&root().join(&sm.definition));
        let used = placeholders(&text);
        assert!(
            !used.is_empty(),
            "{}: no ${{…}} placeholders",
            sm.definition.display()
        );
        for name in &used {
            assert!(
                sm.substitutions.contains_key(name),
                "{sm_id}: ${{{name}}} in {} has no DefinitionSubstitutions entry",
                sm.definition.display()
            );
        }
        for (key, value) in &sm.substitutions {
            assert!(
                used.contains(key),
                "{sm_id}: substitution {key} is not used by {}",
                sm.definition.display()
            );
            if !key.ends_with("FunctionArn") {
                continue;
            }
            let step = StepName::ALL
                .into_iter()
                .find(|s| s.substitution_key() == *key)
                .unwrap_or_else(|| {
                    panic!("{sm_id}: {key} is not the substitution key of any step")
                });
            let target = get_att_arn(value)
                .unwrap_or_else(|| panic!("{sm_id}: {key} must be !GetAtt <Function>.Arn"));
            let crate_name = t.functions.get(&target).unwrap_or_else(|| {
                panic!("{sm_id}: {key} points at {target}, which is not a SAM function")
            });
            assert_eq!(
                crate_name,
                step.as_str(),
                "{sm_id}: {key} points at {target}, built from functions/{crate_name}"
            );
        }
    }
}

#[test]
fn every_error_name_is_a_step_error_or_a_builtin() {
    let mut total = 0;
    for f in definition_files() {
        let def: Json = serde_json::from_str(&read(&f))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", f.display()));
        let mut names = Vec::new();
        error_names(&def, &mut names);
        total += names.len();
        for name in names {
            let known = StepError::ASL_NAMES.contains(&name.as_str())
                || STATES_ERRORS.contains(&name.as_str())
                || ["Lambda.", "CodeBuild."].iter().any(|service| {
                    name.strip_prefix(service).is_some_and(|rest| {
                        rest.starts_with(|c: char| c.is_ascii_uppercase())
                            && rest.ends_with("Exception")
                    })
                });
            assert!(
                known,
                "{}: ErrorEquals {name:?} is neither a StepError ASL name, a States. built-in nor a Lambda./CodeBuild. integration exception",
                f.display()
            );
        }
    }
    assert!(total > 0, "the definitions have no ErrorEquals at all");
}

#[test]
fn every_function_crate_has_a_sam_function_and_an_event_sample() {
    let t = template();
    let crates = function_crates();
    let steps: BTreeSet<String> = StepName::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(crates, steps, "function crates and StepName::ALL differ");
    let deployed: BTreeSet<String> = t.functions.values().cloned().collect();
    assert_eq!(crates, deployed, "function crates and SAM functions differ");
    for name in &crates {
        let sample = root().join("events").join(format!("{name}.json"));
        let text = fs::read_to_string(&sample)
            .unwrap_or_else(|e| panic!("functions/{name} has no sample {}: {e}", sample.display()));
        serde_json::from_str::<Json>(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", sample.display()));
    }
}

#[test]
fn functions_are_rust_on_arm64_built_by_cargo_lambda() {
    let t = template();
    for (id, name) in &t.functions {
        let res = t.resource(id);
        assert_eq!(
            res.get("Metadata")
                .and_then(|m| m.get("BuildMethod"))
                .and_then(Yaml::as_str),
            Some("rust-cargolambda"),
            "{id}: Metadata.BuildMethod"
        );
        // `Binary` breaks `sam build` in this layout (the root is also a package).
        assert!(
            res.get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .is_none(),
            "{id}: no BuildProperties (Binary) with CodeUri ../functions/{name}"
        );
        let prop = |k: &str| t.function_property(id, k);
        assert_eq!(
            prop("Runtime").and_then(Yaml::as_str),
            Some("provided.al2023"),
            "{id}"
        );
        assert_eq!(
            prop("Handler").and_then(Yaml::as_str),
            Some("bootstrap"),
            "{id}"
        );
        assert_eq!(
            prop("Architectures")
                .and_then(Yaml::as_sequence)
                .map(|a| a.to_vec()),
            Some(vec![Yaml::from("arm64")]),
            "{id}: Architectures"
        );
        assert_eq!(
            prop("Tracing").and_then(Yaml::as_str),
            Some("Active"),
            "{id}: Tracing"
        );
        assert_eq!(
            prop("LoggingConfig")
                .and_then(|l| l.get("LogFormat"))
                .and_then(Yaml::as_str),
            Some("JSON"),
            "{id}: LoggingConfig.LogFormat"
        );
    }
}

#[test]
fn state_machine_role_invokes_exactly_the_functions_the_definitions_call() {
    let t = template();
    let called: BTreeSet<String> = t
        .state_machines
        .values()
        .flat_map(|sm| sm.substitutions.iter())
        .filter(|(k, _)| k.ends_with("FunctionArn"))
        .filter_map(|(_, v)| get_att_arn(v))
        .collect();
    let role_id = t
        .state_machines
        .keys()
        .filter_map(|id| get_att_arn(t.resource(id).get("Properties")?.get("Role")?))
        .next()
        .expect("the state machine names its Role with !GetAtt <Role>.Arn");
    let statements: Vec<&Yaml> = t
        .resource(&role_id)
        .get("Properties")
        .and_then(|p| p.get("Policies"))
        .and_then(Yaml::as_sequence)
        .expect("role has inline Policies")
        .iter()
        .filter_map(|p| p.get("PolicyDocument")?.get("Statement")?.as_sequence())
        .flatten()
        .collect();
    let invoked: BTreeSet<String> = statements
        .iter()
        .filter(|s| s.get("Action").and_then(Yaml::as_str) == Some("lambda:InvokeFunction"))
        .filter_map(|s| s.get("Resource")?.as_sequence())
        .flatten()
        .filter_map(get_att_arn)
        .collect();
    assert!(!called.is_empty(), "no *FunctionArn substitutions");
    assert_eq!(
        invoked, called,
        "{role_id}: lambda:InvokeFunction resources"
    );
}

#[test]
fn migration_project_embeds_the_buildspec_verbatim() {
    let t = template();
    let file = read(&root().join("infra/buildspec.yml"));
    let projects: Vec<&Yaml> = t
        .doc
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .expect("Resources")
        .values()
        .filter(|r| r.get("Type").and_then(Yaml::as_str) == Some("AWS::CodeBuild::Project"))
        .collect();
    assert_eq!(projects.len(), 1, "one CodeBuild project");
    let embedded = projects[0]
        .get("Properties")
        .and_then(|p| p.get("Source"))
        .and_then(|s| s.get("BuildSpec"))
        .and_then(Yaml::as_str)
        .expect("Source.BuildSpec is a literal string");
    assert_eq!(
        embedded, file,
        "template BuildSpec differs from infra/buildspec.yml"
    );
    assert!(
        file.contains("-outputType=json"),
        "buildspec checks Flyway's JSON output"
    );
}

#[test]
fn every_tenantflow_variable_the_template_sets_is_read_by_the_code() {
    let t = template();
    let mut set = BTreeSet::new();
    let mut collect = |env: Option<&Yaml>| {
        if let Some(vars) = env
            .and_then(|e| e.get("Variables"))
            .and_then(Yaml::as_mapping)
        {
            set.extend(
                vars.keys()
                    .filter_map(Yaml::as_str)
                    .filter(|k| k.starts_with("TENANTFLOW_"))
                    .map(str::to_string),
            );
        }
    };
    collect(
        t.doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment")),
    );
    for id in t.functions.keys() {
        collect(
            t.resource(id)
                .get("Properties")
                .and_then(|p| p.get("Environment")),
        );
    }
    assert!(
        !set.is_empty(),
        "the template sets no TENANTFLOW_* variable"
    );
    let mut sources = String::new();
    let mut stack = vec![root().join("functions")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&read(&path));
            }
        }
    }
    for var in &set {
        assert!(
            sources.contains(&format!("\"{var}\"")),
            "the template sets {var}, but no code under functions/ reads it"
        );
    }
}
