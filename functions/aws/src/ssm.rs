//! [`Parameters`] on SSM Parameter Store (tenantflow keeps one parameter per tenant: the active
//! pointer). `create` is `PutParameter(Overwrite=false)`, SSM's one atomic create-if-absent; it
//! is no compare-and-swap, which is why locks live in DynamoDB (`crate::dynamodb`).

use crate::errors::{classify, describe, service, Sdk};
use async_trait::async_trait;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;
use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;
use tenantflow_core::ports::{DatedParameter, Parameter, Parameters};
use tenantflow_core::StepError;

/// SSM adapter.
#[derive(Clone, Debug)]
pub struct SsmParameters {
    client: Client,
}

impl SsmParameters {
    pub fn new(client: Client) -> Self {
        SsmParameters { client }
    }

    /// `PutParameter` of a plain `String` parameter; `create` and `put` differ only in `overwrite`.
    async fn put_parameter(
        &self,
        name: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<i64, Sdk<PutParameterError>> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(overwrite)
            .send()
            .await?;
        Ok(out.version())
    }
}

fn to_parameter(p: &aws_sdk_ssm::types::Parameter) -> Parameter {
    Parameter {
        name: p.name().unwrap_or_default().to_string(),
        value: p.value().unwrap_or_default().to_string(),
        version: p.version(),
    }
}

fn to_dated(p: &aws_sdk_ssm::types::Parameter) -> DatedParameter {
    DatedParameter {
        parameter: to_parameter(p),
        modified_at: p.last_modified_date().and_then(crate::time::to_utc),
    }
}

#[async_trait]
impl Parameters for SsmParameters {
    async fn get(&self, name: &str) -> Result<Option<Parameter>, StepError> {
        Ok(self.get_dated(name).await?.map(|d| d.parameter))
    }

    async fn get_dated(&self, name: &str) -> Result<Option<DatedParameter>, StepError> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter().map(to_dated)),
            Err(e) if service(&e).is_some_and(|s| s.is_parameter_not_found()) => Ok(None),
            Err(e) => Err(classify("GetParameter", e)),
        }
    }

    async fn create(&self, name: &str, value: &str) -> Result<Option<i64>, StepError> {
        use PutParameterError as E;
        match self.put_parameter(name, value, false).await {
            Ok(version) => Ok(Some(version)),
            Err(err) => match service(&err) {
                // The step decides whether it is Locked or already held by this run.
                Some(E::ParameterAlreadyExists(_)) => Ok(None),
                Some(e @ E::TooManyUpdates(_)) => {
                    Err(StepError::Transient(describe("PutParameter", e)))
                }
                _ => Err(classify("PutParameter", err)),
            },
        }
    }

    async fn put(&self, name: &str, value: &str) -> Result<i64, StepError> {
        use PutParameterError as E;
        match self.put_parameter(name, value, true).await {
            Ok(version) => Ok(version),
            Err(err) => match service(&err) {
                Some(e @ E::TooManyUpdates(_)) => {
                    Err(StepError::Transient(describe("PutParameter", e)))
                }
                Some(e @ E::ParameterMaxVersionLimitExceeded(_)) => {
                    Err(StepError::QuotaExceeded(describe("PutParameter", e)))
                }
                _ => Err(classify("PutParameter", err)),
            },
        }
    }

    async fn delete(&self, name: &str) -> Result<(), StepError> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if service(&e).is_some_and(|s| s.is_parameter_not_found()) => Ok(()),
            Err(e) => Err(classify("DeleteParameter", e)),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<Parameter>, StepError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // Pages may come back short with a NextToken: follow it until there is none.
            let out = self
                .client
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .max_results(10)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify("GetParametersByPath", e))?;
            found.extend(out.parameters().iter().map(to_parameter));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }
}
