//! Shared test helpers: mock SDK clients (aws-smithy-mocks) with retries off, a request counter
//! that fails any request, and canned HTTP error responses.

use aws_smithy_mocks::Rule;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::ErrorMetadata;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tenantflow_aws::{AwsSettings, Clients};
use tenantflow_core::steps::{Ports, Settings};

/// A mock client of `$krate` answering from `$rules` (any order), with SDK retries disabled so a
/// throttling or 5xx answer reaches the adapter at once (no backoff sleeps).
macro_rules! client {
    ($krate:ident, $rules:expr) => {
        aws_smithy_mocks::mock_client!($krate, aws_smithy_mocks::RuleMode::MatchAny, $rules, |c| c
            .retry_config($krate::config::retry::RetryConfig::disabled()))
    };
}

/// Counts requests and fails every one of them before it is serialized.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicUsize>);

impl RequestCounter {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }
    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err("test: this request must not be made".into())
    }
}

const NO_RULES: [&Rule; 0] = [];

/// A client of `$krate` that fails (and counts) every request.
macro_rules! forbidden {
    ($krate:ident, $counter:expr) => {{
        let counter = $counter.clone();
        aws_smithy_mocks::mock_client!(
            $krate,
            aws_smithy_mocks::RuleMode::MatchAny,
            &NO_RULES,
            move |c| c
                .retry_config($krate::config::retry::RetryConfig::disabled())
                .interceptor(counter.clone())
        )
    }};
}

/// Every client failing any request, all counted by the returned counter.
pub fn forbidden_clients() -> (Clients, RequestCounter) {
    let n = RequestCounter::default();
    let clients = Clients {
        rds: forbidden!(aws_sdk_rds, n),
        ssm: forbidden!(aws_sdk_ssm, n),
        dynamodb: forbidden!(aws_sdk_dynamodb, n),
        ecs: forbidden!(aws_sdk_ecs, n),
        sfn: forbidden!(aws_sdk_sfn, n),
        s3: forbidden!(aws_sdk_s3, n),
        eventbridge: forbidden!(aws_sdk_eventbridge, n),
    };
    (clients, n)
}

pub const TABLE: &str = "tenantflow-records";

pub const STATE_MACHINE_ARN: &str =
    "arn:aws:states:eu-west-1:123456789012:stateMachine:tenantflow-release";

pub fn settings() -> AwsSettings {
    AwsSettings {
        state_machine_arn: Some(STATE_MACHINE_ARN.to_string()),
        migration_project: "tenantflow-migrate".to_string(),
        event_bus: "default".to_string(),
        table: TABLE.to_string(),
        steps: Settings::default(),
    }
}

/// The real AWS `Ports` bundle over `clients`.
pub fn ports(clients: Clients) -> Ports {
    tenantflow_aws::ports(clients, settings())
}

/// Ports whose every request fails and is counted.
pub fn forbidden_ports() -> (Ports, RequestCounter) {
    let (clients, n) = forbidden_clients();
    (ports(clients), n)
}

/// An HTTP response with `status` and `body`.
pub fn http(status: u16, body: &'static str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).expect("valid status"),
        SdkBody::from(body),
    )
}

/// An AWS Query (RDS) error document.
pub const QUERY_500: &str = "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>We encountered an internal error.</Message></Error><RequestId>r-1</RequestId></ErrorResponse>";

/// Error metadata with only a code: how unmodeled errors (throttling) arrive.
pub fn code(c: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(c)
        .message("rate exceeded")
        .build()
}
