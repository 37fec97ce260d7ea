//! [`Objects`] on S3: release manifests and scripts, wave files and run reports.

use crate::errors::{classify, service};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use tenantflow_core::ports::Objects;
use tenantflow_core::StepError;

/// S3 adapter.
#[derive(Clone, Debug)]
pub struct S3Objects {
    client: Client,
}

impl S3Objects {
    pub fn new(client: Client) -> Self {
        S3Objects { client }
    }
}

#[async_trait]
impl Objects for S3Objects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| {
                    StepError::Transient(format!("GetObject s3://{bucket}/{key}: body: {e}"))
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if service(&e).is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(classify("GetObject", e)),
        }
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), StepError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutObject", e))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StepError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = match self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if service(&e).is_some_and(|s| s.is_no_such_bucket()) => {
                    return Err(StepError::NotFound(format!("bucket {bucket}")))
                }
                Err(e) => return Err(classify("ListObjectsV2", e)),
            };
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(keys),
            }
        }
    }
}
