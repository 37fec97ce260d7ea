//! [`Secrets`] on Secrets Manager. The value is wrapped in `SecretString` at once and never
//! logged, formatted into an error, or returned by a step.

use crate::errors::{classify, describe, service};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use tenantflow_core::ports::{SecretString, Secrets};
use tenantflow_core::StepError;

/// Secrets Manager adapter.
#[derive(Clone, Debug)]
pub struct SecretsManagerSecrets {
    client: Client,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client) -> Self {
        SecretsManagerSecrets { client }
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn get_secret(&self, id: &str) -> Result<SecretString, StepError> {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError as E;
        let op = "GetSecretValue";
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => match out.secret_string() {
                Some(s) => Ok(SecretString::new(s)),
                None => Err(StepError::Internal(format!(
                    "{op}: secret {id} has no string value"
                ))),
            },
            Err(err) => match service(&err) {
                Some(e @ E::ResourceNotFoundException(_)) => {
                    Err(StepError::NotFound(describe(op, e)))
                }
                _ => Err(classify(op, err)),
            },
        }
    }
}
