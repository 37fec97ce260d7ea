//! The stack a command works on: its outputs (from CloudFormation DescribeStacks, or given
//! directly) and the SDK clients and core ports built from the standard credential chain.

use super::{OpsError, OpsResult};
use crate::config::Clients;
use crate::errors::classify;
use crate::{DynamoRecords, RdsDatabases, S3Objects, SfnWorkflows, SsmParameters};
use aws_config::SdkConfig;
use serde::{Deserialize, Serialize};
use tenantflow_core::steps::Settings;

/// The stack outputs the commands need (see `infra/template.yaml`, `Outputs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackOutputs {
    /// `Namespace`: the stack's `<customer>-<project>-<env>`; it owns tenants named so or `<it>-…`.
    pub namespace: String,
    /// `ReleaseBucketName`.
    pub bucket: String,
    /// `ReleaseStateMachineArn`.
    pub state_machine_arn: String,
    /// `RecordsTableName`: the tenant records (locks and run journals).
    pub table: String,
    /// `DefaultEcsCluster`: the cluster of a tenant whose pointer names no service.
    pub default_cluster: String,
}

impl StackOutputs {
    /// Reads the outputs of stack `name`.
    pub async fn describe(cfn: &aws_sdk_cloudformation::Client, name: &str) -> OpsResult<Self> {
        let out = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeStacks", e))?;
        let stack = out
            .stacks()
            .first()
            .ok_or_else(|| OpsError::Invalid(format!("stack {name} not found")))?;
        let get = |key: &str| -> OpsResult<String> {
            stack
                .outputs()
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
                .map(str::to_string)
                .ok_or_else(|| {
                    OpsError::Invalid(format!(
                        "stack {name} has no output {key}: deploy infra/template.yaml of this \
                         version (sam deploy) or pass the value with its flag"
                    ))
                })
        };
        Ok(StackOutputs {
            namespace: get("Namespace")?,
            bucket: get("ReleaseBucketName")?,
            state_machine_arn: get("ReleaseStateMachineArn")?,
            table: get("RecordsTableName")?,
            default_cluster: get("DefaultEcsCluster")?,
        })
    }

    /// The steps' settings for this stack (only what the commands' core calls read).
    pub fn settings(&self) -> Settings {
        Settings {
            default_cluster: self.default_cluster.clone(),
            namespace: Some(self.namespace.clone()),
            ..Settings::default()
        }
    }
}

/// A stack and the clients to reach it: what every command takes.
#[derive(Clone, Debug)]
pub struct Ops {
    pub stack: StackOutputs,
    pub clients: Clients,
}

impl Ops {
    /// Clients from `conf` (the standard chain, `--endpoint-url` applied by the caller).
    pub fn new(conf: &SdkConfig, stack: StackOutputs) -> Self {
        Ops {
            stack,
            clients: Clients::from_conf(conf),
        }
    }

    /// From already built clients (the emulator suite passes recording ones).
    pub fn with_clients(clients: Clients, stack: StackOutputs) -> Self {
        Ops { stack, clients }
    }

    pub fn databases(&self) -> RdsDatabases {
        RdsDatabases::new(self.clients.rds.clone())
    }
    pub fn parameters(&self) -> SsmParameters {
        SsmParameters::new(self.clients.ssm.clone())
    }
    pub fn records(&self) -> DynamoRecords {
        DynamoRecords::new(self.clients.dynamodb.clone(), self.stack.table.clone())
    }
    pub fn objects(&self) -> S3Objects {
        S3Objects::new(self.clients.s3.clone())
    }
    pub fn workflows(&self) -> SfnWorkflows {
        SfnWorkflows::new(
            self.clients.sfn.clone(),
            Some(self.stack.state_machine_arn.clone()),
        )
    }
}
