//! `DynamoRecords`: the lock's conditional writes (taken, held, released only by its holder), the
//! record's item layout, wait tokens and their conditional delete, TTL, the by-run index, and
//! error classification through the typed SDK errors.

use crate::common;
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, TransactionConflictException,
};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::mock;
use std::collections::HashMap;
use tenantflow_aws::DynamoRecords;
use tenantflow_core::model::{Journal, Phase, ResourceKind, ServiceRef, WaitRecord};
use tenantflow_core::names::Namespace;
use tenantflow_core::ports::{LockTake, Records};
use tenantflow_core::StepError;

const TABLE: &str = common::TABLE;
const NS: &str = "xy-0146-prod";
const A: &str = "arn:aws:states:eu-west-1:123456789012:execution:tenantflow-release:r1";
const B: &str = "arn:aws:states:eu-west-1:123456789012:execution:tenantflow-release:r2";

type Item = HashMap<String, AttributeValue>;

fn ns() -> Namespace {
    Namespace::parse(NS).expect("ns")
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A tenant record item as the table stores it.
fn record_item(holder: Option<&str>, run: &str, phase: &str, version: i64) -> Item {
    let mut item: Item = [
        ("pk", s(&format!("tenant#{NS}"))),
        ("tenant", s(NS)),
        ("run", s(run)),
        ("phase", s(phase)),
        ("version", n(version)),
        ("updatedAt", s("2026-11-21T12:00:00+00:00")),
        ("journal", s("{}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(h) = holder {
        item.insert("holder".into(), s(h));
    }
    item
}

fn records(rules: &[&aws_smithy_mocks::Rule]) -> DynamoRecords {
    DynamoRecords::new(client!(aws_sdk_dynamodb, rules), TABLE)
}

fn value<'a>(m: Option<&'a HashMap<String, AttributeValue>>, k: &str) -> Option<&'a str> {
    m.and_then(|m| m.get(k))
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

#[tokio::test]
async fn acquire_is_one_conditional_update_that_creates_or_takes_a_free_lock() {
    let r = mock!(Client::update_item)
        .match_requests(|r| {
            let names = r.expression_attribute_names();
            let values = r.expression_attribute_values();
            r.table_name() == Some(TABLE)
                && value(r.key(), "pk") == Some("tenant#xy-0146-prod")
                && r.condition_expression() == Some("attribute_not_exists(#holder)")
                && names.and_then(|m| m.get("#holder")).map(String::as_str) == Some("holder")
                && value(values, ":holder") == Some(A)
                && value(values, ":run") == Some(A)
                && value(values, ":locked") == Some("locked")
                && value(values, ":empty") == Some("{}")
                && r.update_expression().is_some_and(|u| {
                    u.contains("#version = if_not_exists(#version, :zero) + :one")
                        && u.contains("#journal = :empty")
                })
                && r.return_values() == Some(&ReturnValue::AllNew)
                && r.return_values_on_condition_check_failure()
                    == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
        })
        .then_output(|| {
            UpdateItemOutput::builder()
                .set_attributes(Some(record_item(Some(A), A, "locked", 4)))
                .build()
        });
    let got = records(&[&r]).acquire(&ns(), A, A).await.expect("ok");
    let LockTake::Taken(rec) = got else {
        panic!("taken: {got:?}")
    };
    assert_eq!(
        (
            rec.holder.as_deref(),
            rec.run.as_deref(),
            rec.phase,
            rec.version
        ),
        (Some(A), Some(A), Phase::Locked, 4)
    );
    assert!(rec.journal.is_empty());
    assert_eq!(r.num_calls(), 1);
}

#[tokio::test]
async fn acquire_of_a_held_lock_returns_the_holder_from_the_failed_condition() {
    let r = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .set_item(Some(record_item(Some(B), B, "locked", 7)))
                .build(),
        )
    });
    let got = records(&[&r]).acquire(&ns(), A, A).await.expect("ok");
    let LockTake::Held(rec) = got else {
        panic!("held: {got:?}")
    };
    assert_eq!((rec.holder.as_deref(), rec.version), (Some(B), 7));
    assert_eq!(r.num_calls(), 1, "no second read");
}

#[tokio::test]
async fn acquire_reads_the_record_when_the_failed_condition_carries_none() {
    let r = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let get = mock!(Client::get_item)
        .match_requests(|r| {
            r.consistent_read() == Some(true) && value(r.key(), "pk") == Some("tenant#xy-0146-prod")
        })
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(record_item(Some(B), B, "locked", 2)))
                .build()
        });
    let got = records(&[&r, &get]).acquire(&ns(), A, A).await.expect("ok");
    assert!(
        matches!(&got, LockTake::Held(rec) if rec.holder.as_deref() == Some(B)),
        "{got:?}"
    );
}

#[tokio::test]
async fn release_removes_the_holder_only_if_it_is_the_releaser() {
    let ok = mock!(Client::update_item)
        .match_requests(|r| {
            let values = r.expression_attribute_values();
            r.condition_expression() == Some("#holder = :holder")
                && value(values, ":holder") == Some(A)
                && value(values, ":released") == Some("released")
                && r.update_expression()
                    .is_some_and(|u| u.contains("REMOVE #holder"))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    assert!(records(&[&ok]).release(&ns(), A).await.expect("ok"));

    let other = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    assert!(!records(&[&other]).release(&ns(), A).await.expect("ok"));
}

#[tokio::test]
async fn write_journal_is_one_update_conditional_on_the_version() {
    let journal = Journal {
        step: Some("flip-ssm".into()),
        freeze: true,
        ..Journal::default()
    };
    let body = serde_json::to_string(&journal).expect("json");
    let expected = body.clone();
    let ok = mock!(Client::update_item)
        .match_requests(move |r| {
            let values = r.expression_attribute_values();
            value(r.key(), "pk") == Some("tenant#xy-0146-prod")
                && r.condition_expression() == Some("#version = :expected")
                && values
                    .and_then(|m| m.get(":expected"))
                    .and_then(|v| v.as_n().ok())
                    .map(String::as_str)
                    == Some("4")
                && value(values, ":journal") == Some(expected.as_str())
                && r.update_expression().is_some_and(|u| {
                    u.contains("#journal = :journal") && u.contains("#version = #version + :one")
                })
                && r.return_values() == Some(&ReturnValue::AllNew)
        })
        .then_output(move || {
            let mut item = record_item(Some(A), A, "locked", 5);
            item.insert("journal".into(), s(&body));
            UpdateItemOutput::builder()
                .set_attributes(Some(item))
                .build()
        });
    let rec = records(&[&ok])
        .write_journal(&ns(), 4, &journal)
        .await
        .expect("ok")
        .expect("written");
    assert_eq!((rec.version, &rec.journal), (5, &journal));

    let moved = mock!(Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let got = records(&[&moved]).write_journal(&ns(), 4, &journal).await;
    assert_eq!(got, Ok(None), "another version: nothing written");
}

#[tokio::test]
async fn throttling_and_transaction_conflicts_are_transient() {
    let throttled = mock!(Client::update_item).then_http_response(|| {
        common::http(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"rate exceeded"}"#,
        )
    });
    let e = records(&[&throttled]).acquire(&ns(), A, A).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");

    let conflict = mock!(Client::delete_item).then_error(|| {
        DeleteItemError::TransactionConflictException(
            TransactionConflictException::builder().build(),
        )
    });
    let e = records(&[&conflict])
        .delete_token(ResourceKind::DbSnapshot, "xy-0146-prod-20261121120000", "t")
        .await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");

    let missing_table = mock!(Client::get_item).then_http_response(|| {
        common::http(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
        )
    });
    let e = records(&[&missing_table]).get_tenant(&ns()).await;
    assert!(matches!(e, Err(StepError::Internal(_))), "{e:?}");
}

#[tokio::test]
async fn get_tenant_reads_the_record_consistently() {
    let mut item = record_item(None, A, "released", 3);
    item.insert(
        "journal".into(),
        s(r#"{"candidate":"xy-0146-prod-20261121120000","freeze":true}"#),
    );
    let get = mock!(Client::get_item)
        .match_requests(|r| r.consistent_read() == Some(true))
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(item.clone()))
                .build()
        });
    let rec = records(&[&get])
        .get_tenant(&ns())
        .await
        .expect("ok")
        .expect("some");
    assert_eq!(
        (rec.holder, rec.phase, rec.version),
        (None, Phase::Released, 3)
    );
    assert_eq!(
        rec.journal.candidate.map(|c| c.to_string()).as_deref(),
        Some("xy-0146-prod-20261121120000")
    );
    assert!(rec.journal.freeze);

    let none = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
    assert_eq!(records(&[&none]).get_tenant(&ns()).await.expect("ok"), None);

    let bad = mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(record_item(Some(A), A, "exploded", 1)))
            .build()
    });
    let e = records(&[&bad]).get_tenant(&ns()).await;
    assert!(matches!(e, Err(StepError::Internal(_))), "{e:?}");
}

#[tokio::test]
async fn list_held_scans_every_page_for_held_tenant_records() {
    let first = mock!(Client::scan)
        .match_requests(|r| {
            r.exclusive_start_key().is_none()
                && r.filter_expression()
                    == Some("begins_with(#pk, :tenant) AND attribute_exists(#holder)")
                && value(r.expression_attribute_values(), ":tenant") == Some("tenant#")
        })
        .then_output(|| {
            let mut other = record_item(Some(B), B, "locked", 1);
            other.insert("pk".into(), s("tenant#ab-0001-dev"));
            other.insert("tenant".into(), s("ab-0001-dev"));
            ScanOutput::builder()
                .items(record_item(Some(A), A, "locked", 1))
                .last_evaluated_key("pk", s("tenant#xy-0146-prod"))
                .items(other)
                .build()
        });
    let second = mock!(Client::scan)
        .match_requests(|r| r.exclusive_start_key().is_some())
        .then_output(|| ScanOutput::builder().build());
    let held = records(&[&first, &second]).list_held().await.expect("ok");
    let tenants: Vec<_> = held.iter().map(|r| r.tenant.to_string()).collect();
    assert_eq!(tenants, ["ab-0001-dev", "xy-0146-prod"]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn list_run_queries_the_by_run_index() {
    let q = mock!(Client::query)
        .match_requests(|r| {
            r.index_name() == Some("byRun")
                && r.key_condition_expression() == Some("#run = :run")
                && value(r.expression_attribute_values(), ":run") == Some(A)
        })
        .then_output(|| {
            QueryOutput::builder()
                .items(record_item(None, A, "released", 2))
                .build()
        });
    let got = records(&[&q]).list_run(A).await.expect("ok");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run.as_deref(), Some(A));
}

fn wait(token: &str) -> WaitRecord {
    WaitRecord {
        token: token.into(),
        tenant: ns(),
        service: Some(ServiceRef {
            cluster: "tenantflow".into(),
            service: NS.into(),
        }),
    }
}

#[tokio::test]
async fn put_token_stores_the_record_by_resource_with_a_ttl() {
    let before = chrono::Utc::now().timestamp();
    let put = mock!(Client::put_item)
        .match_requests(move |r| {
            let item = r.item();
            let ttl = item
                .and_then(|i| i.get("expiresAt"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0);
            r.table_name() == Some(TABLE)
                && value(item, "pk") == Some("wait#ecs-deployment#ecs-svc/123")
                && value(item, "kind") == Some("ecs-deployment")
                && value(item, "resource") == Some("ecs-svc/123")
                && value(item, "token") == Some("tok-1")
                && value(item, "tenant") == Some(NS)
                && value(item, "service")
                    == Some(r#"{"cluster":"tenantflow","service":"xy-0146-prod"}"#)
                && (before + 86_400..before + 86_400 + 60).contains(&ttl)
                && r.condition_expression().is_none()
        })
        .then_output(|| PutItemOutput::builder().build());
    records(&[&put])
        .put_token(ResourceKind::EcsDeployment, "ecs-svc/123", &wait("tok-1"))
        .await
        .expect("ok");
    assert_eq!(put.num_calls(), 1);
}

fn token_item(token: &str, expires: i64) -> Item {
    [
        ("pk", s("wait#ecs-deployment#ecs-svc/123")),
        ("kind", s("ecs-deployment")),
        ("resource", s("ecs-svc/123")),
        ("token", s(token)),
        ("tenant", s(NS)),
        (
            "service",
            s(r#"{"cluster":"tenantflow","service":"xy-0146-prod"}"#),
        ),
        ("expiresAt", n(expires)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test]
async fn get_token_reads_consistently_and_ignores_an_expired_token() {
    let later = chrono::Utc::now().timestamp() + 3600;
    let live = mock!(Client::get_item)
        .match_requests(|r| {
            r.consistent_read() == Some(true)
                && value(r.key(), "pk") == Some("wait#ecs-deployment#ecs-svc/123")
        })
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(token_item("tok-1", later)))
                .build()
        });
    let got = records(&[&live])
        .get_token(ResourceKind::EcsDeployment, "ecs-svc/123")
        .await
        .expect("ok");
    assert_eq!(got, Some(wait("tok-1")));

    let expired = mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(token_item("tok-0", 1_700_000_000)))
            .build()
    });
    let got = records(&[&expired])
        .get_token(ResourceKind::EcsDeployment, "ecs-svc/123")
        .await
        .expect("ok");
    assert_eq!(got, None, "TTL deletes lazily; an expired token is gone");
}

#[tokio::test]
async fn delete_token_deletes_only_the_token_that_was_sent() {
    let sent = mock!(Client::delete_item)
        .match_requests(|r| {
            r.condition_expression() == Some("#token = :token")
                && r.expression_attribute_names()
                    .and_then(|m| m.get("#token"))
                    .map(String::as_str)
                    == Some("token")
                && value(r.expression_attribute_values(), ":token") == Some("tok-1")
                && value(r.key(), "pk") == Some("wait#db-snapshot#xy-0146-prod-20261121120000")
        })
        .then_output(|| DeleteItemOutput::builder().build());
    let newer = mock!(Client::delete_item).then_error(|| {
        DeleteItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let id = "xy-0146-prod-20261121120000";
    assert!(records(&[&sent])
        .delete_token(ResourceKind::DbSnapshot, id, "tok-1")
        .await
        .expect("ok"));
    assert!(!records(&[&newer])
        .delete_token(ResourceKind::DbSnapshot, id, "tok-1")
        .await
        .expect("a newer token is not an error"));
}

/// The whole `resume` step on the real adapters: the token is found in the table (not SSM), the
/// task is resumed, and the delete is conditional on the token that was sent.
#[tokio::test]
async fn resume_settles_through_the_table() {
    use aws_sdk_rds::operation::describe_db_snapshots::DescribeDbSnapshotsOutput;
    use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
    let snap = "xy-0146-prod-20261121120000";
    let later = chrono::Utc::now().timestamp() + 3600;
    let get = mock!(Client::get_item)
        .match_requests(move |r| value(r.key(), "pk") == Some(&format!("wait#db-snapshot#{snap}")))
        .then_output(move || {
            let mut item = token_item("tok-9", later);
            item.remove("service");
            GetItemOutput::builder().set_item(Some(item)).build()
        });
    let del = mock!(Client::delete_item)
        .match_requests(|r| value(r.expression_attribute_values(), ":token") == Some("tok-9"))
        .then_output(|| DeleteItemOutput::builder().build());
    let described = mock!(aws_sdk_rds::Client::describe_db_snapshots).then_output(move || {
        DescribeDbSnapshotsOutput::builder()
            .db_snapshots(
                aws_sdk_rds::types::DbSnapshot::builder()
                    .db_snapshot_identifier(snap)
                    .db_instance_identifier("xy-0146-prod-20261020083000")
                    .status("available")
                    .build(),
            )
            .build()
    });
    let success = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|r| r.task_token() == Some("tok-9"))
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let (mut clients, n) = common::forbidden_clients();
    clients.dynamodb = client!(aws_sdk_dynamodb, &[&get, &del]);
    clients.rds = client!(aws_sdk_rds, &[&described]);
    clients.sfn = client!(aws_sdk_sfn, &[&success]);
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../../events/resume-snapshot.json"))
            .expect("sample");
    let mut event = event;
    event["detail"]["SourceIdentifier"] = serde_json::json!(snap);
    event["detail"]["SourceArn"] = serde_json::json!(format!(
        "arn:aws:rds:eu-west-1:123456789012:snapshot:{snap}"
    ));
    let out = tenantflow_core::steps::dispatch(
        tenantflow_core::steps::StepName::Resume,
        &common::ports(clients),
        event,
    )
    .await
    .expect("resume");
    assert_eq!(out["resumed"], serde_json::json!(true));
    assert_eq!(
        (get.num_calls(), success.num_calls(), del.num_calls()),
        (1, 1, 1)
    );
    assert_eq!(n.count(), 0, "no SSM or other call");
}
