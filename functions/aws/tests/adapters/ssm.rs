//! `SsmParameters`: get/create/put/delete/list, create-if-absent, error classification.

use crate::common;
use aws_sdk_ssm::operation::delete_parameter::{DeleteParameterError, DeleteParameterOutput};
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_sdk_ssm::types::error::{ParameterAlreadyExists, ParameterNotFound, TooManyUpdates};
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_sdk_ssm::Client;
use aws_smithy_mocks::mock;
use tenantflow_aws::SsmParameters;
use tenantflow_core::ports::Parameters;
use tenantflow_core::StepError;

const LOCK: &str = "/tenantflow/xy-0146-prod/lock";

fn param(name: &str, value: &str, version: i64) -> Parameter {
    Parameter::builder()
        .name(name)
        .value(value)
        .version(version)
        .build()
}

#[tokio::test]
async fn get_returns_value_and_version() {
    let r = mock!(Client::get_parameter)
        .match_requests(|r| r.name() == Some("/tenantflow/xy-0146-prod/db"))
        .then_output(|| {
            GetParameterOutput::builder()
                .parameter(param("/tenantflow/xy-0146-prod/db", "{}", 7))
                .build()
        });
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    let got = p
        .get("/tenantflow/xy-0146-prod/db")
        .await
        .expect("ok")
        .expect("some");
    assert_eq!((got.value.as_str(), got.version), ("{}", 7));
}

#[tokio::test]
async fn get_dated_maps_last_modified_date() {
    let r = mock!(Client::get_parameter)
        .match_requests(|r| r.name() == Some("/tenantflow/xy-0146-prod/db"))
        .then_output(|| {
            let mut p = param("/tenantflow/xy-0146-prod/db", "{}", 7);
            // 2026-11-27T12:00:05.250Z
            p.last_modified_date = Some(aws_sdk_ssm::primitives::DateTime::from_secs_and_nanos(
                1_795_780_805,
                250_000_000,
            ));
            GetParameterOutput::builder().parameter(p).build()
        });
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    let got = p
        .get_dated("/tenantflow/xy-0146-prod/db")
        .await
        .expect("ok")
        .expect("some");
    assert_eq!(
        (got.parameter.value.as_str(), got.parameter.version),
        ("{}", 7)
    );
    assert_eq!(
        got.modified_at,
        Some(chrono::DateTime::from_timestamp(1_795_780_805, 250_000_000).expect("time"))
    );
    // `get` is the same call without the date.
    let plain = p
        .get("/tenantflow/xy-0146-prod/db")
        .await
        .expect("ok")
        .expect("some");
    assert_eq!(plain, got.parameter);
    assert_eq!(r.num_calls(), 2);
}

#[tokio::test]
async fn get_dated_without_last_modified_date_is_unknown() {
    let r = mock!(Client::get_parameter).then_output(|| {
        GetParameterOutput::builder()
            .parameter(param("/tenantflow/xy-0146-prod/db", "{}", 7))
            .build()
    });
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    let got = p
        .get_dated("/tenantflow/xy-0146-prod/db")
        .await
        .expect("ok")
        .expect("some");
    assert_eq!(got.modified_at, None);
    let r = mock!(Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()));
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    assert_eq!(p.get_dated(LOCK).await, Ok(None));
}

#[tokio::test]
async fn get_missing_is_none() {
    let r = mock!(Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()));
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    assert_eq!(p.get(LOCK).await, Ok(None));
}

#[tokio::test]
async fn create_is_put_without_overwrite() {
    let r = mock!(Client::put_parameter)
        .match_requests(|r| {
            r.name() == Some(LOCK)
                && r.value() == Some("arn:run")
                && r.overwrite() == Some(false)
                && r.r#type() == Some(&ParameterType::String)
        })
        .then_output(|| PutParameterOutput::builder().version(1).build());
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    assert_eq!(p.create(LOCK, "arn:run").await, Ok(Some(1)));
    assert_eq!(r.num_calls(), 1);
}

#[tokio::test]
async fn create_of_existing_parameter_is_none() {
    let r = mock!(Client::put_parameter).then_error(|| {
        PutParameterError::ParameterAlreadyExists(ParameterAlreadyExists::builder().build())
    });
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    assert_eq!(p.create(LOCK, "arn:run").await, Ok(None));
}

#[tokio::test]
async fn put_overwrites_and_returns_version() {
    let r = mock!(Client::put_parameter)
        .match_requests(|r| r.overwrite() == Some(true))
        .then_output(|| PutParameterOutput::builder().version(8).build());
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    assert_eq!(p.put("/tenantflow/xy-0146-prod/db", "{}").await, Ok(8));
}

#[tokio::test]
async fn too_many_updates_is_transient() {
    let r = mock!(Client::put_parameter)
        .then_error(|| PutParameterError::TooManyUpdates(TooManyUpdates::builder().build()));
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    let e = p.put(LOCK, "x").await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

#[tokio::test]
async fn delete_and_absent_is_success() {
    let ok = mock!(Client::delete_parameter)
        .match_requests(|r| r.name() == Some(LOCK))
        .then_output(|| DeleteParameterOutput::builder().build());
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&ok]));
    assert_eq!(p.delete(LOCK).await, Ok(()));
    assert_eq!(ok.num_calls(), 1);
    let gone = mock!(Client::delete_parameter).then_error(|| {
        DeleteParameterError::ParameterNotFound(ParameterNotFound::builder().build())
    });
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&gone]));
    assert_eq!(p.delete(LOCK).await, Ok(()));
}

#[tokio::test]
async fn list_follows_short_pages() {
    let p1 = mock!(Client::get_parameters_by_path)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.recursive() == Some(true)
                && r.path() == Some("/tenantflow/")
        })
        .then_output(|| {
            GetParametersByPathOutput::builder()
                .parameters(param("/tenantflow/aa-0001-prod/db", "{}", 1))
                .next_token("t2")
                .build()
        });
    // A short (empty) page with a token: keep going.
    let p2 = mock!(Client::get_parameters_by_path)
        .match_requests(|r| r.next_token() == Some("t2"))
        .then_output(|| {
            GetParametersByPathOutput::builder()
                .next_token("t3")
                .build()
        });
    let p3 = mock!(Client::get_parameters_by_path)
        .match_requests(|r| r.next_token() == Some("t3"))
        .then_output(|| {
            GetParametersByPathOutput::builder()
                .parameters(param("/tenantflow/bb-0002-prod/db", "{}", 4))
                .build()
        });
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&p1, &p2, &p3]));
    let got = p.list("/tenantflow/").await.expect("ok");
    let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["/tenantflow/aa-0001-prod/db", "/tenantflow/bb-0002-prod/db"]
    );
}

#[tokio::test]
async fn throttling_exception_is_transient() {
    let r = mock!(Client::get_parameter)
        .then_error(|| GetParameterError::generic(common::code("ThrottlingException")));
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    let e = p.get(LOCK).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

#[tokio::test]
async fn http_500_is_transient() {
    let r = mock!(Client::put_parameter).then_http_response(|| {
        common::http(500, r#"{"__type":"InternalServerError","message":"boom"}"#)
    });
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    let e = p.create(LOCK, "x").await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}

#[tokio::test]
async fn http_503_without_body_is_transient() {
    let r = mock!(Client::get_parameter).then_http_response(|| common::http(503, ""));
    let p = SsmParameters::new(client!(aws_sdk_ssm, &[&r]));
    let e = p.get(LOCK).await;
    assert!(matches!(e, Err(StepError::Transient(_))), "{e:?}");
}
