//! The stack as `infra/template.yaml` defines it, expanded once per test binary by
//! `.ci/emulator/policies.py` (aws-sam-translator, samconfig.toml's `default` parameters, a fixed
//! account and region). Everything the suite knows about functions, roles, the state machine, the
//! migration project and the release bucket comes from here, never from a copy of the template.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use tenantflow_core::steps::StepName;

pub struct Template {
    pub doc: Value,
    /// The expanded policies file, as the evaluator reads it.
    pub path: PathBuf,
}

pub fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let tools = super::tools::tools();
        let path = std::env::temp_dir().join(format!(
            "tenantflow-emulator-{}-policies.json",
            std::process::id()
        ));
        let out = std::process::Command::new(&tools.python)
            .arg(&tools.policies_script)
            .arg("--template")
            .arg(template_path())
            .arg("--config")
            .arg(tools.root.join("samconfig.toml"))
            .arg("--out")
            .arg(&path)
            .output()
            .expect("run policies.py");
        assert!(
            out.status.success(),
            "policies.py failed to expand infra/template.yaml: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        Template { doc, path }
    })
}

/// `infra/template.yaml`, or `$TENANTFLOW_EMULATOR_TEMPLATE` (to try a variant of it).
pub fn template_path() -> std::path::PathBuf {
    std::env::var_os("TENANTFLOW_EMULATOR_TEMPLATE")
        .map(Into::into)
        .unwrap_or_else(|| super::tools::repo_root().join("infra/template.yaml"))
}

impl Template {
    pub fn account(&self) -> &str {
        self.doc["account"].as_str().unwrap()
    }
    pub fn region(&self) -> &str {
        self.doc["region"].as_str().unwrap()
    }

    /// The function whose code is `functions/<step>`.
    pub fn function(&self, step: StepName) -> &Value {
        let f = &self.doc["functions"][step.as_str()];
        assert!(
            f.is_object(),
            "infra/template.yaml has no function with CodeUri functions/{}",
            step.as_str()
        );
        f
    }

    /// The role (logical id) a step's function runs as.
    pub fn role_of(&self, step: StepName) -> String {
        self.function(step)["role"].as_str().unwrap().to_string()
    }

    /// The step a function ARN (or name) belongs to.
    pub fn step_of_function(&self, arn_or_name: &str) -> Option<StepName> {
        let bare = arn_or_name.split(':').nth(6).unwrap_or(arn_or_name);
        self.doc["functions"]
            .as_object()?
            .iter()
            .find(|(_, f)| f["arn"] == arn_or_name || f["name"] == bare)
            .and_then(|(step, _)| StepName::parse(step))
    }

    /// A step's environment variables, as the template sets them.
    pub fn environment(&self, step: StepName) -> Vec<(String, String)> {
        self.function(step)["environment"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The release state machine: the one defined by `statemachine/deploy.asl.json`.
    pub fn state_machine(&self) -> &Value {
        self.doc["stateMachines"]
            .as_object()
            .and_then(|m| {
                m.values().find(|v| {
                    v["definitionUri"]
                        .as_str()
                        .is_some_and(|u| u.ends_with("deploy.asl.json"))
                })
            })
            .expect("infra/template.yaml defines the state machine of statemachine/deploy.asl.json")
    }

    pub fn state_machine_role(&self) -> String {
        self.state_machine()["role"].as_str().unwrap().to_string()
    }

    /// The release bucket (the state machine's `ReleaseBucket` substitution).
    pub fn release_bucket(&self) -> String {
        self.state_machine()["definitionSubstitutions"]["ReleaseBucket"]
            .as_str()
            .expect("ReleaseBucket substitution")
            .to_string()
    }

    /// The migration project (the state machine's `MigrationProjectName` substitution).
    pub fn migration_project(&self) -> &Value {
        let name = self.state_machine()["definitionSubstitutions"]["MigrationProjectName"].clone();
        self.doc["projects"]
            .as_object()
            .and_then(|m| m.values().find(|p| p["name"] == name))
            .expect("the MigrationProjectName substitution names a CodeBuild project")
    }

    pub fn bucket_key(&self, bucket: &str) -> Option<String> {
        self.doc["buckets"][bucket]["kmsKeyArn"]
            .as_str()
            .map(str::to_string)
    }

    pub fn schedules(&self) -> Vec<Value> {
        self.doc["schedules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The stack's namespace (`TENANTFLOW_NAMESPACE` of the functions).
    pub fn namespace(&self) -> String {
        self.environment(StepName::Snapshot)
            .into_iter()
            .find(|(k, _)| k == "TENANTFLOW_NAMESPACE")
            .map(|(_, v)| v)
            .expect("TENANTFLOW_NAMESPACE in the functions' environment")
    }

    pub fn env_value(&self, step: StepName, key: &str) -> Option<String> {
        self.environment(step)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}
