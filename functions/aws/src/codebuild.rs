//! [`Migrations`] on CodeBuild: one Flyway build per candidate. On AWS the state machine itself
//! uses `codebuild:startBuild.sync`; this adapter serves steps and tools that start or inspect a
//! build directly.

use crate::errors::{classify, describe, service};
use async_trait::async_trait;
use aws_sdk_codebuild::types::{Build, EnvironmentVariable, EnvironmentVariableType, SourceType};
use aws_sdk_codebuild::Client;
use tenantflow_core::ports::{MigrationRequest, MigrationStatus, Migrations};
use tenantflow_core::StepError;

/// CodeBuild adapter running the project `project`.
#[derive(Clone, Debug)]
pub struct CodeBuildMigrations {
    client: Client,
    project: String,
}

impl CodeBuildMigrations {
    pub fn new(client: Client, project: impl Into<String>) -> Self {
        CodeBuildMigrations {
            client,
            project: project.into(),
        }
    }
}

fn env(name: &str, value: &str) -> Result<EnvironmentVariable, StepError> {
    EnvironmentVariable::builder()
        .name(name)
        .value(value)
        .r#type(EnvironmentVariableType::Plaintext)
        .build()
        .map_err(|e| StepError::Internal(format!("build env var {name}: {e}")))
}

fn to_status(b: &Build) -> MigrationStatus {
    // The first failed phase's context says why (e.g. Flyway's exit message).
    let message = b
        .phases()
        .iter()
        .filter(|p| p.phase_status().is_some_and(|s| s.as_str() != "SUCCEEDED"))
        .flat_map(|p| p.contexts())
        .find_map(|c| c.message().filter(|m| !m.is_empty()).map(str::to_string));
    MigrationStatus {
        build_id: b.id().unwrap_or_default().to_string(),
        status: b
            .build_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "IN_PROGRESS".to_string()),
        message,
    }
}

#[async_trait]
impl Migrations for CodeBuildMigrations {
    async fn start(&self, req: &MigrationRequest) -> Result<MigrationStatus, StepError> {
        use aws_sdk_codebuild::operation::start_build::StartBuildError as E;
        let op = "StartBuild";
        let mut vars = vec![
            env("TENANTFLOW_INSTANCE", req.instance_id.as_str())?,
            env("TENANTFLOW_RELEASE_BUCKET", &req.bucket)?,
            env("TENANTFLOW_RELEASE_PREFIX", &req.prefix)?,
            env("TENANTFLOW_RELEASE", &req.release)?,
        ];
        if let Some(digest) = &req.sha256sums {
            vars.push(env("TENANTFLOW_SHA256SUMS_SHA256", digest)?);
        }
        // The build's source is the release folder itself (infra/buildspec.yml reads it with a
        // `filesystem:` location; Flyway cannot read `s3:` without the AWS SDK, flyway/flyway#3668).
        // An S3 folder source is "<bucket-name>/<path>/<folder>/" (API_ProjectSource, location).
        let folder = format!("{}/{}", req.bucket, req.prefix.trim_end_matches('/'));
        let res = self
            .client
            .start_build()
            .project_name(&self.project)
            .source_type_override(SourceType::S3)
            .source_location_override(format!("{folder}/"))
            .set_environment_variables_override(Some(vars))
            .send()
            .await;
        match res {
            Ok(out) => out
                .build_value()
                .map(to_status)
                .ok_or_else(|| StepError::Internal(format!("{op}: no build in response"))),
            Err(err) => match service(&err) {
                Some(e @ E::AccountLimitExceededException(_)) => {
                    Err(StepError::QuotaExceeded(describe(op, e)))
                }
                Some(e @ E::ResourceNotFoundException(_)) => {
                    Err(StepError::NotFound(describe(op, e)))
                }
                _ => Err(classify(op, err)),
            },
        }
    }

    async fn status(&self, build_id: &str) -> Result<MigrationStatus, StepError> {
        let out = self
            .client
            .batch_get_builds()
            .ids(build_id)
            .send()
            .await
            .map_err(|e| classify("BatchGetBuilds", e))?;
        out.builds()
            .iter()
            .find(|b| b.id() == Some(build_id))
            .map(to_status)
            .ok_or_else(|| StepError::NotFound(format!("build {build_id}")))
    }
}
