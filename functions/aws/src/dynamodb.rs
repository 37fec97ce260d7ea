//! [`Records`] on one DynamoDB table (`TENANTFLOW_TABLE`): the tenant records (lock + run
//! journal) and the wait tokens. DynamoDB's condition expressions make every racing write a true
//! compare-and-swap, which SSM cannot do.
//!
//! Layout (partition key `pk`, no sort key; the README's state-layout section is the contract):
//!
//! | item | `pk` | other attributes |
//! |---|---|---|
//! | tenant record | `tenant#<ns>` | `tenant` S, `holder` S (absent = free), `run` S, `phase` S (`locked`/`released`), `version` N, `updatedAt` S (RFC 3339), `journal` S (JSON object) |
//! | wait token | `wait#<kind>#<resource-id>` | `kind` S, `resource` S, `token` S, `tenant` S, `service` S (JSON, ECS only), `expiresAt` N (Unix seconds: the table's TTL attribute) |
//!
//! The global secondary index `byRun` (partition key `run`, sort key `pk`, all attributes) lists
//! a run's tenant records; tokens have no `run`, so they stay out of it.
//!
//! - `acquire`: `UpdateItem` with `ConditionExpression: attribute_not_exists(#holder)` (creates the
//!   item if absent, bumps `version`, resets the journal), `ReturnValues: ALL_NEW`, and
//!   `ReturnValuesOnConditionCheckFailure: ALL_OLD` so a held lock's record comes back with the
//!   `ConditionalCheckFailedException` instead of costing a second read.
//! - `release`: `UpdateItem … REMOVE #holder` with `ConditionExpression: #holder = :holder`.
//! - `write_journal`: `UpdateItem SET #journal = :journal, #version = #version + :one` with
//!   `ConditionExpression: #version = :expected`, `ReturnValues: ALL_NEW`.
//! - `delete_token`: `DeleteItem` with `ConditionExpression: #token = :token`.
//! - Reads of one item are strongly consistent. A token past `expiresAt` reads as absent (TTL
//!   deletes lazily).
//!
//! `ConditionalCheckFailedException` is matched as the typed variant of each operation's error;
//! throttling and 5xx go through [`crate::errors::classify`] (→ `Transient`), and so does
//! `TransactionConflictException`, which DynamoDB documents as retryable.

use crate::errors::{classify, describe, service, Sdk};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tenantflow_core::model::{
    Journal, Phase, ResourceKind, ServiceRef, TenantRecord, WaitRecord, WAIT_TOKEN_TTL_SECONDS,
};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::{LockTake, Records};
use tenantflow_core::StepError;

/// The table's partition key.
pub const PK: &str = "pk";
/// The by-run global secondary index.
pub const BY_RUN_INDEX: &str = "byRun";
/// The TTL attribute of wait tokens.
pub const TTL_ATTRIBUTE: &str = "expiresAt";

type Item = HashMap<String, AttributeValue>;

/// `tenant#<ns>`: the key of a tenant record.
pub fn tenant_key(tenant: &Namespace) -> String {
    format!("tenant#{tenant}")
}

/// `wait#<kind>#<resource-id>`: the key of a wait token.
pub fn token_key(kind: ResourceKind, resource: &str) -> String {
    format!("wait#{}#{resource}", kind.as_str())
}

/// DynamoDB adapter.
#[derive(Clone, Debug)]
pub struct DynamoRecords {
    client: Client,
    table: String,
}

/// `#<name>` → `<name>` for each attribute: every expression names attributes through
/// placeholders, so none can collide with DynamoDB's reserved words (`TOKEN`, `RESOURCE`, …).
fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), a.to_string()))
        .collect()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn bad(what: &str, item: &Item, why: impl std::fmt::Display) -> StepError {
    StepError::Internal(format!(
        "{what} {:?} in the records table is not valid: {why}",
        text(item, PK).unwrap_or("?")
    ))
}

/// A tenant record item to the core type.
fn to_record(item: &Item) -> Result<TenantRecord, StepError> {
    let fail = |why: String| bad("tenant record", item, why);
    let tenant = text(item, "tenant").ok_or_else(|| fail("no tenant".into()))?;
    let phase = text(item, "phase").ok_or_else(|| fail("no phase".into()))?;
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| fail("no numeric version".into()))?;
    let updated_at = match text(item, "updatedAt") {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|e| fail(format!("updatedAt: {e}")))?
                .with_timezone(&Utc),
        ),
    };
    let journal = match text(item, "journal") {
        None => Journal::default(),
        Some(j) => serde_json::from_str(j).map_err(|e| fail(format!("journal: {e}")))?,
    };
    Ok(TenantRecord {
        tenant: Namespace::parse(tenant).map_err(|e| fail(e.to_string()))?,
        holder: text(item, "holder").map(str::to_string),
        run: text(item, "run").map(str::to_string),
        phase: Phase::parse(phase).ok_or_else(|| fail(format!("phase {phase:?}")))?,
        version,
        updated_at,
        journal,
    })
}

/// A wait-token item to the core type; `None` once past its time to live.
fn to_wait(item: &Item, now: i64) -> Result<Option<WaitRecord>, StepError> {
    let fail = |why: String| bad("wait token", item, why);
    let expires = item
        .get(TTL_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok());
    if expires.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    let token = text(item, "token").ok_or_else(|| fail("no token".into()))?;
    let tenant = text(item, "tenant").ok_or_else(|| fail("no tenant".into()))?;
    let service = match text(item, "service") {
        None => None,
        Some(j) => {
            Some(serde_json::from_str::<ServiceRef>(j).map_err(|e| fail(format!("service: {e}")))?)
        }
    };
    Ok(Some(WaitRecord {
        token: token.to_string(),
        tenant: Namespace::parse(tenant).map_err(|e| fail(e.to_string()))?,
        service,
    }))
}

impl DynamoRecords {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRecords {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get_item(&self, key: String) -> Result<Option<Item>, StepError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item)
    }

    /// Every record page of a `Scan`/`Query` built by `page`, following `LastEvaluatedKey`.
    async fn all_pages<F, Fut, E>(&self, op: &str, page: F) -> Result<Vec<Item>, StepError>
    where
        F: Fn(Option<Item>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), Sdk<E>>>,
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + aws_smithy_types::retry::ProvideErrorKind
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (mut got, next) = page(start.take()).await.map_err(|e| classify(op, e))?;
            items.append(&mut got);
            match next {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A retryable conflict DynamoDB reports as its own exception.
fn transaction_conflict<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    op: &str,
    e: &E,
) -> StepError {
    StepError::Transient(describe(op, e))
}

#[async_trait]
impl Records for DynamoRecords {
    async fn acquire(
        &self,
        tenant: &Namespace,
        holder: &str,
        run: &str,
    ) -> Result<LockTake, StepError> {
        use UpdateItemError as E;
        let key = tenant_key(tenant);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(key.clone()))
            .update_expression(
                "SET #tenant = :tenant, #holder = :holder, #run = :run, #phase = :locked, \
                 #version = if_not_exists(#version, :zero) + :one, #updatedAt = :now, \
                 #journal = :empty",
            )
            .condition_expression("attribute_not_exists(#holder)")
            .set_expression_attribute_names(Some(names(&[
                "tenant",
                "holder",
                "run",
                "phase",
                "version",
                "updatedAt",
                "journal",
            ])))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":run", s(run))
            .expression_attribute_values(":locked", s(Phase::Locked.as_str()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", s(now().to_rfc3339()))
            .expression_attribute_values(":empty", s("{}"))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes.ok_or_else(|| {
                    StepError::Internal(format!("UpdateItem {key}: no attributes returned"))
                })?;
                Ok(LockTake::Taken(to_record(&item)?))
            }
            Err(err) => match service(&err) {
                Some(E::ConditionalCheckFailedException(c)) => {
                    let item = match c.item() {
                        Some(i) => i.clone(),
                        // ALL_OLD was asked for; read it if a service omits it.
                        None => self.get_item(key.clone()).await?.ok_or_else(|| {
                            StepError::Transient(format!("lock {key} released while being taken"))
                        })?,
                    };
                    Ok(LockTake::Held(to_record(&item)?))
                }
                Some(e @ E::TransactionConflictException(_)) => {
                    Err(transaction_conflict("UpdateItem", e))
                }
                _ => Err(classify("UpdateItem", err)),
            },
        }
    }

    async fn release(&self, tenant: &Namespace, holder: &str) -> Result<bool, StepError> {
        use UpdateItemError as E;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(tenant_key(tenant)))
            .update_expression(
                "SET #phase = :released, #version = #version + :one, #updatedAt = :now \
                 REMOVE #holder",
            )
            .condition_expression("#holder = :holder")
            .set_expression_attribute_names(Some(names(&[
                "holder",
                "phase",
                "version",
                "updatedAt",
            ])))
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":released", s(Phase::Released.as_str()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", s(now().to_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(err) => match service(&err) {
                Some(E::ConditionalCheckFailedException(_)) => Ok(false),
                Some(e @ E::TransactionConflictException(_)) => {
                    Err(transaction_conflict("UpdateItem", e))
                }
                _ => Err(classify("UpdateItem", err)),
            },
        }
    }

    async fn write_journal(
        &self,
        tenant: &Namespace,
        expected_version: i64,
        journal: &Journal,
    ) -> Result<Option<TenantRecord>, StepError> {
        use UpdateItemError as E;
        let body = serde_json::to_string(journal)
            .map_err(|e| StepError::Internal(format!("serialize journal: {e}")))?;
        let key = tenant_key(tenant);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(key.clone()))
            .update_expression(
                "SET #journal = :journal, #version = #version + :one, #updatedAt = :now",
            )
            .condition_expression("#version = :expected")
            .set_expression_attribute_names(Some(names(&["journal", "version", "updatedAt"])))
            .expression_attribute_values(":journal", s(body))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .expression_attribute_values(":now", s(now().to_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes.ok_or_else(|| {
                    StepError::Internal(format!("UpdateItem {key}: no attributes returned"))
                })?;
                Ok(Some(to_record(&item)?))
            }
            Err(err) => match service(&err) {
                // Another version, or no record at all (the condition fails on an absent item).
                Some(E::ConditionalCheckFailedException(_)) => Ok(None),
                Some(e @ E::TransactionConflictException(_)) => {
                    Err(transaction_conflict("UpdateItem", e))
                }
                _ => Err(classify("UpdateItem", err)),
            },
        }
    }

    async fn get_tenant(&self, tenant: &Namespace) -> Result<Option<TenantRecord>, StepError> {
        self.get_item(tenant_key(tenant))
            .await?
            .map(|i| to_record(&i))
            .transpose()
    }

    async fn list_held(&self) -> Result<Vec<TenantRecord>, StepError> {
        let items = self
            .all_pages("Scan", |start| async move {
                let out = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("begins_with(#pk, :tenant) AND attribute_exists(#holder)")
                    .set_expression_attribute_names(Some(names(&[PK, "holder"])))
                    .expression_attribute_values(":tenant", s("tenant#"))
                    .set_exclusive_start_key(start)
                    .send()
                    .await?;
                Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
            })
            .await?;
        let mut records = items.iter().map(to_record).collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(records)
    }

    async fn list_run(&self, run: &str) -> Result<Vec<TenantRecord>, StepError> {
        let items = self
            .all_pages("Query", |start| async move {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(BY_RUN_INDEX)
                    .key_condition_expression("#run = :run")
                    .expression_attribute_names("#run", "run")
                    .expression_attribute_values(":run", s(run))
                    .set_exclusive_start_key(start)
                    .send()
                    .await?;
                Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
            })
            .await?;
        items.iter().map(to_record).collect()
    }

    async fn put_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        wait: &WaitRecord,
    ) -> Result<(), StepError> {
        let expires = now().timestamp() + WAIT_TOKEN_TTL_SECONDS;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(token_key(kind, resource)))
            .item("kind", s(kind.as_str()))
            .item("resource", s(resource))
            .item("token", s(wait.token.clone()))
            .item("tenant", s(wait.tenant.as_str()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(expires.to_string()));
        if let Some(service) = &wait.service {
            let json = serde_json::to_string(service)
                .map_err(|e| StepError::Internal(format!("serialize service: {e}")))?;
            put = put.item("service", s(json));
        }
        put.send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutItem", e))
    }

    async fn get_token(
        &self,
        kind: ResourceKind,
        resource: &str,
    ) -> Result<Option<WaitRecord>, StepError> {
        match self.get_item(token_key(kind, resource)).await? {
            None => Ok(None),
            Some(item) => to_wait(&item, now().timestamp()),
        }
    }

    async fn delete_token(
        &self,
        kind: ResourceKind,
        resource: &str,
        token: &str,
    ) -> Result<bool, StepError> {
        use DeleteItemError as E;
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(token_key(kind, resource)))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(err) => match service(&err) {
                // Another token (a newer registration) or none at all: nothing of ours to delete.
                Some(E::ConditionalCheckFailedException(_)) => Ok(false),
                Some(e @ E::TransactionConflictException(_)) => {
                    Err(transaction_conflict("DeleteItem", e))
                }
                _ => Err(classify("DeleteItem", err)),
            },
        }
    }
}
