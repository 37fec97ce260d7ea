//! One test's world: its own moto region, the call recorder, the fault layer, the local Step
//! Functions API, and the ports each step runs with (the step's own role, the step's own
//! environment variables as the template sets them).

use super::layers::{Contents, Fault, Faults, HarnessEcs, HarnessRds, HarnessSsm};
use super::record::{Call, Recorder, TagReader};
use super::sfn_api::SfnApi;
use super::template::{template, Template};
use aws_config::SdkConfig;
use aws_sdk_rds::config::{Credentials, Region};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tenantflow_aws::{AwsSettings, Clients};
use tenantflow_core::steps::{Ports, StepName};

/// Clients that are not recorded: the harness's own view of the emulator (seeding, inspecting).
#[derive(Clone)]
pub struct Admin {
    pub rds: aws_sdk_rds::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub s3: aws_sdk_s3::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

pub struct Env {
    pub test: String,
    pub region: String,
    pub conf: SdkConfig,
    pub rec: Recorder,
    pub faults: Arc<Faults>,
    pub contents: Arc<Contents>,
    pub sfn: SfnApi,
    pub admin: Admin,
    ports: Mutex<HashMap<StepName, Ports>>,
}

pub async fn sdk_config(region: &str, endpoint: &str) -> SdkConfig {
    tenantflow_aws::config_loader()
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "emulator", "emulator", None, None, "emulator",
        ))
        .load()
        .await
}

impl Env {
    /// A fresh world for `test` (call from a multi-thread tokio test).
    pub async fn new(test: &str, faults: Vec<Fault>) -> Arc<Env> {
        let (moto, region) = super::moto::slot();
        let _ = template();
        let conf = sdk_config(&region, &moto.endpoint).await;
        let rec = Recorder::with_tag_reader(TagReader::start(&region, &moto.endpoint));
        let c = Clients::from_conf(&conf);
        let admin = Admin {
            rds: c.rds,
            ssm: c.ssm,
            s3: c.s3,
            ecs: c.ecs,
            codebuild: aws_sdk_codebuild::Client::new(&conf),
            dynamodb: aws_sdk_dynamodb::Client::new(&conf),
        };
        Arc::new(Env {
            test: test.to_string(),
            region,
            conf,
            rec,
            faults: Faults::new(faults),
            contents: Arc::new(Contents::default()),
            sfn: SfnApi::start().await,
            admin,
            ports: Mutex::new(HashMap::new()),
        })
    }

    pub fn template(&self) -> &'static Template {
        template()
    }

    /// A CodeBuild client recording as `principal`, called by `caller` (no step calls CodeBuild:
    /// the state machine's `startBuild.sync` does).
    pub fn codebuild(&self, principal: &str, caller: &str) -> aws_sdk_codebuild::Client {
        aws_sdk_codebuild::Client::from_conf(
            aws_sdk_codebuild::config::Builder::from(&self.conf)
                .interceptor(self.rec.interceptor(principal, caller, "emulator"))
                .build(),
        )
    }

    /// Clients recording as `principal`, called by `caller`; Step Functions goes to the engine.
    pub fn clients(&self, principal: &str, caller: &str) -> Clients {
        let i = SharedInterceptor::new(self.rec.interceptor(principal, caller, "emulator"));
        let mut clients = Clients::with_interceptors(&self.conf, &[i]);
        clients.sfn = aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::config::Builder::from(&self.conf)
                .endpoint_url(&self.sfn.endpoint)
                .interceptor(self.rec.interceptor(principal, caller, "engine"))
                .build(),
        );
        clients
    }

    /// The adapters alone, recording as `step`'s role, with `step`'s environment.
    pub fn raw_ports(&self, step: StepName) -> Ports {
        let t = self.template();
        let env: HashMap<String, String> = t.environment(step).into_iter().collect();
        let settings = AwsSettings::from_lookup(|k| env.get(k).cloned())
            .expect("the template's environment is valid settings");
        tenantflow_aws::ports(self.clients(&t.role_of(step), step.as_str()), settings)
    }

    /// The ports `step` runs with: its role, its environment, the harness layers.
    pub fn ports(&self, step: StepName) -> Ports {
        if let Some(p) = self.ports.lock().unwrap().get(&step) {
            return p.clone();
        }
        let t = self.template();
        let role = t.role_of(step);
        let env: HashMap<String, String> = t.environment(step).into_iter().collect();
        let settings = AwsSettings::from_lookup(|k| env.get(k).cloned())
            .expect("the template's environment is valid settings");
        let mut ports = tenantflow_aws::ports(self.clients(&role, step.as_str()), settings);
        ports.databases = Arc::new(HarnessRds {
            inner: ports.databases.clone(),
            admin_rds: self.admin.rds.clone(),
            faults: self.faults.clone(),
            contents: self.contents.clone(),
            rec: self.rec.clone(),
            principal: role.clone(),
            caller: step.as_str().to_string(),
        });
        ports.services = Arc::new(HarnessEcs {
            inner: ports.services.clone(),
            faults: self.faults.clone(),
            caller: step.as_str().to_string(),
        });
        ports.parameters = Arc::new(HarnessSsm {
            inner: ports.parameters.clone(),
            faults: self.faults.clone(),
            caller: step.as_str().to_string(),
            other_writer: self.admin.ssm.clone(),
        });
        self.ports.lock().unwrap().insert(step, ports.clone());
        ports
    }

    /// Runs a step as its Lambda does: the binaries' own `lambda::handle` on the step's ports.
    pub async fn step(
        &self,
        step: StepName,
        input: Value,
    ) -> Result<Value, tenantflow_core::StepError> {
        let ports = self.ports(step);
        tenantflow_aws::lambda::handle(step, &ports, input).await
    }

    /// Delivers an event as EventBridge would: through the template's rules to their target
    /// functions (each delivery recorded for IAM), running each target step.
    pub async fn deliver(
        &self,
        event: &Value,
    ) -> Vec<(StepName, Result<Value, tenantflow_core::StepError>)> {
        let mut out = Vec::new();
        for step in super::eventbridge::route(self, event) {
            out.push((step, self.step(step, event.clone()).await));
        }
        out
    }

    /// Records a call an AWS service makes for the stack (the state machine, the migration build,
    /// the scheduler), which the harness performed in its place.
    pub fn service_call(
        &self,
        principal: &str,
        caller: &str,
        service: &str,
        operation: &str,
        params: Value,
    ) {
        self.rec.push(Call {
            principal: principal.to_string(),
            caller: caller.to_string(),
            service: service.to_string(),
            operation: operation.to_string(),
            params,
            status: None,
            via: "service".into(),
            resource_tags: None,
        });
    }

    /// Evaluates every call recorded so far and fails on any not allowed.
    pub fn check_iam(&self) {
        super::authz::check(&self.test, &self.rec.calls());
    }
}
