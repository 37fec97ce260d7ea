//! Bad input gets `Tenantflow.InvalidInput`, naming the field, before any AWS call.
//!
//! Every handler runs through `tenantflow_aws::lambda::handle` (what the Lambda runtime calls) with
//! the real AWS adapters built on mock clients whose every request fails and is counted; each case
//! asserts the error, the field, and that the counter stayed at zero. The one exception is the
//! manifest checksum: the manifest and scripts live in S3, so that case allows S3 *reads* only.

use crate::common::{self, RequestCounter};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_sdk_s3::types::Object;
use aws_smithy_mocks::mock;
use serde_json::{json, Value};
use tenantflow_aws::lambda::{handle, handle_bytes};
use tenantflow_core::steps::StepName;
use tenantflow_core::StepError;

fn sample(step: StepName) -> Value {
    let text = match step {
        StepName::Trigger => include_str!("../../../../events/trigger.json"),
        StepName::ListTenants => include_str!("../../../../events/list-tenants.json"),
        StepName::Snapshot => include_str!("../../../../events/snapshot.json"),
        StepName::CreateDb => include_str!("../../../../events/create-db.json"),
        StepName::FlipSsm => include_str!("../../../../events/flip-ssm.json"),
        StepName::RollEcs => include_str!("../../../../events/roll-ecs.json"),
        StepName::CheckEcs => include_str!("../../../../events/check-ecs.json"),
        StepName::AwaitResource => include_str!("../../../../events/await-resource.json"),
        StepName::Resume => include_str!("../../../../events/resume.json"),
        StepName::Teardown => include_str!("../../../../events/teardown.json"),
        StepName::Rollback => include_str!("../../../../events/rollback.json"),
        StepName::Janitor => include_str!("../../../../events/janitor.json"),
        StepName::Report => include_str!("../../../../events/report.json"),
        StepName::Recover => include_str!("../../../../events/recover.json"),
    };
    serde_json::from_str(text).expect("sample is JSON")
}

/// The JSON pointer of the tenant namespace in a step's input, for steps that take one.
fn tenant_pointer(step: StepName) -> Option<&'static str> {
    match step {
        StepName::Snapshot
        | StepName::CreateDb
        | StepName::FlipSsm
        | StepName::RollEcs
        | StepName::CheckEcs
        | StepName::Teardown
        | StepName::Rollback => Some("/tenant"),
        StepName::AwaitResource => Some("/state/tenant"),
        _ => None,
    }
}

/// Asserts `res` is InvalidInput whose field contains `field`, with nothing sent.
fn assert_invalid(
    case: &str,
    step: StepName,
    res: Result<Value, StepError>,
    field: &str,
    n: &RequestCounter,
) -> Result<(), String> {
    let sent = n.count();
    match res {
        Err(StepError::InvalidInput { field: f, message }) if f.contains(field) && sent == 0 => {
            assert!(!message.is_empty());
            Ok(())
        }
        other => Err(format!(
            "{}: {case}: expected InvalidInput naming `{field}` with 0 requests; got {other:?} after {sent} request(s)",
            step.as_str()
        )),
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn malformed_json_is_invalid_input_for_every_handler() {
    let mut failures = Vec::new();
    for step in StepName::ALL {
        for (case, bytes) in [
            (
                "truncated JSON",
                &br#"{"tenant": "xy-0146-prod", "run": "#[..],
            ),
            ("not JSON", &b"tenant=xy-0146-prod"[..]),
            ("an array", &b"[1, 2, 3]"[..]),
            ("a string", &br#""snapshot""#[..]),
        ] {
            let (ports, n) = common::forbidden_ports();
            let res = handle_bytes(step, &ports, bytes).await;
            // Whole-document errors name the input itself ("input", or serde's "." path).
            let field = if case.starts_with("a") { "" } else { "input" };
            if let Err(e) = assert_invalid(case, step, res, field, &n) {
                failures.push(e);
            }
        }
    }
    report(failures);
}

#[tokio::test]
async fn bad_namespace_is_invalid_input_naming_the_tenant() {
    let long = format!("xy-0146-{}", "p".repeat(62));
    assert_eq!(long.len(), 70);
    let mut failures = Vec::new();
    for step in StepName::ALL {
        let Some(ptr) = tenant_pointer(step) else {
            continue;
        };
        for bad in ["Xy--0146-prod", long.as_str(), "xy-0146-prod-"] {
            let mut input = sample(step);
            match input.pointer_mut(ptr) {
                Some(v) => *v = json!(bad),
                None => {
                    failures.push(format!("{}: sample has no {ptr}", step.as_str()));
                    continue;
                }
            }
            let (ports, n) = common::forbidden_ports();
            let res = handle(step, &ports, input).await;
            if let Err(e) = assert_invalid(&format!("namespace {bad:?}"), step, res, "tenant", &n) {
                failures.push(e);
            }
        }
    }
    report(failures);
}

const BAD_KEYS: [&str; 5] = [
    "releases/2026-11-03-points/other.json",
    "uploads/manifest.json",
    "releases/../manifest.json",
    "releases/a/b/manifest.json",
    "releases//manifest.json",
];

#[tokio::test]
async fn trigger_rejects_keys_outside_releases_manifest() {
    let mut failures = Vec::new();
    for key in BAD_KEYS {
        let mut input = sample(StepName::Trigger);
        if let Some(v) = input.pointer_mut("/detail/object/key") {
            *v = json!(key);
        }
        let (ports, n) = common::forbidden_ports();
        let res = handle(StepName::Trigger, &ports, input).await;
        if let Err(e) = assert_invalid(&format!("key {key:?}"), StepName::Trigger, res, "key", &n) {
            failures.push(e);
        }
    }
    report(failures);
}

#[tokio::test]
async fn list_tenants_rejects_keys_outside_releases_manifest() {
    let mut failures = Vec::new();
    for key in BAD_KEYS {
        let mut input = sample(StepName::ListTenants);
        if let Some(v) = input.pointer_mut("/input/key") {
            *v = json!(key);
        }
        let (ports, n) = common::forbidden_ports();
        let res = handle(StepName::ListTenants, &ports, input).await;
        if let Err(e) = assert_invalid(
            &format!("key {key:?}"),
            StepName::ListTenants,
            res,
            "key",
            &n,
        ) {
            failures.push(e);
        }
    }
    report(failures);
}

const SCRIPT: &[u8] = b"ALTER TABLE points ADD COLUMN source text;\n";

/// Ports where S3 serves a release whose manifest declares `sha` for its one script; every other
/// request (including any S3 write) fails and is counted.
fn release_with_checksum(sha: &'static str) -> (tenantflow_core::steps::Ports, RequestCounter) {
    let (mut clients, n) = common::forbidden_clients();
    let manifest = json!({
        "release": "2026-11-03-points",
        "scripts": [{"name": "V2__points_source.sql", "sha256": sha}],
        "strategy": "blue-green",
        "fleet": "independent"
    })
    .to_string();
    let get_manifest = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some("releases/2026-11-03-points/manifest.json"))
        .then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(manifest.clone().into_bytes()))
                .build()
        });
    let get_script = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some("releases/2026-11-03-points/V2__points_source.sql"))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(SCRIPT))
                .build()
        });
    let other = mock!(aws_sdk_s3::Client::get_object)
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| {
        ListObjectsV2Output::builder()
            .contents(
                Object::builder()
                    .key("releases/2026-11-03-points/manifest.json")
                    .build(),
            )
            .contents(
                Object::builder()
                    .key("releases/2026-11-03-points/V2__points_source.sql")
                    .build(),
            )
            .build()
    });
    let counter = n.clone();
    clients.s3 = aws_smithy_mocks::mock_client!(
        aws_sdk_s3,
        aws_smithy_mocks::RuleMode::MatchAny,
        &[&get_manifest, &get_script, &other, &list],
        move |c| c
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .interceptor(WritesForbidden(counter.clone()))
    );
    (common::ports(clients), n)
}

/// Lets S3 reads through to the mock rules; fails and counts anything else.
#[derive(Debug, Clone)]
struct WritesForbidden(RequestCounter);

impl aws_smithy_runtime_api::client::interceptors::Intercept for WritesForbidden {
    fn name(&self) -> &'static str {
        "WritesForbidden"
    }
    fn read_before_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let input = context.input();
        let read = input
            .downcast_ref::<aws_sdk_s3::operation::get_object::GetObjectInput>()
            .is_some()
            || input
                .downcast_ref::<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Input>()
                .is_some();
        if read {
            Ok(())
        } else {
            aws_smithy_runtime_api::client::interceptors::Intercept::read_before_execution(
                &self.0, context, cfg,
            )
        }
    }
}

#[tokio::test]
async fn list_tenants_rejects_a_wrong_script_checksum_before_any_write() {
    let mut failures = Vec::new();
    for (case, sha) in [
        (
            "sha256 of other bytes",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("not hex", "not-a-sha256"),
    ] {
        let (ports, n) = release_with_checksum(sha);
        let res = handle(StepName::ListTenants, &ports, sample(StepName::ListTenants)).await;
        if let Err(e) = assert_invalid(case, StepName::ListTenants, res, "sha256", &n) {
            failures.push(e);
        }
    }
    report(failures);
}

#[tokio::test]
async fn lambda_error_type_is_the_asl_name() {
    let (ports, n) = common::forbidden_ports();
    let e = handle_bytes(StepName::Snapshot, &ports, b"{oops")
        .await
        .expect_err("invalid");
    let d = lambda_runtime::Diagnostic::from(tenantflow_aws::lambda::StepDiagnostic(e));
    assert_eq!(d.error_type, "Tenantflow.InvalidInput");
    assert!(d.error_message.contains("input"), "{}", d.error_message);
    assert_eq!(n.count(), 0);
}
