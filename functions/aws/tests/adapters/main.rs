//! Tests of the AWS adapters against aws-smithy-mocks clients (one test binary, one module per
//! adapter), the bad-input proof through `dispatch`, and the `events/` samples.
#![allow(dead_code, unused_macros, unused_imports)]

#[macro_use]
mod common;

mod bad_input;
mod dynamodb;
mod ecs;
mod events;
mod others;
mod rds;
mod sfn;
mod ssm;
mod step_ports;
