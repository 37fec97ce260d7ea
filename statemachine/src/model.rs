//! The parsed form of a definition: what the executor walks.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::choice::Rule;
use crate::intrinsics::Call;
use crate::jsonpath::{Path, ResultPath};
use crate::template::Template;

/// A `States` block with its `StartAt`: the top level, a Parallel branch or a Map processor.
#[derive(Debug)]
pub(crate) struct Machine {
    pub start_at: String,
    pub states: HashMap<String, Arc<State>>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    pub io: Io,
    pub next: Next,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

/// InputPath / OutputPath.
#[derive(Debug, Clone)]
pub(crate) enum Select {
    Whole,
    /// `null`: an empty object.
    Null,
    Path(Path),
}

#[derive(Debug)]
pub(crate) struct Io {
    pub input_path: Select,
    pub output_path: Select,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
}

#[derive(Debug, Clone)]
pub(crate) enum Next {
    To(String),
    End,
    /// Choice, Succeed and Fail decide for themselves.
    None,
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter_full: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub errors: Vec<String>,
    pub result_path: ResultPath,
    pub next: String,
}

/// A number written inline or read from the input.
#[derive(Debug, Clone)]
pub(crate) enum Num {
    Fixed(f64),
    Path(Path),
}

/// Fail's Error/Cause: inline, or ErrorPath/CausePath (a path or an intrinsic).
#[derive(Debug, Clone)]
pub(crate) enum Text {
    Fixed(String),
    Path(Path),
    Intrinsic(Box<Call>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    RequestResponse,
    Sync,
    WaitForTaskToken,
}

#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub resource: String,
    pub pattern: Pattern,
    pub timeout: Option<Num>,
    pub heartbeat: Option<Num>,
}

#[derive(Debug)]
pub(crate) enum WaitSpec {
    Seconds(f64),
    SecondsPath(Path),
    Timestamp(String),
    TimestampPath(Path),
}

#[derive(Debug)]
pub(crate) struct ObjectRef {
    pub resource: String,
    pub parameters: Template,
}

#[derive(Debug)]
pub(crate) struct ItemReader {
    pub object: ObjectRef,
    pub input_type: String,
    pub max_items: Option<Num>,
}

#[derive(Debug)]
pub(crate) struct MapSpec {
    pub processor: Arc<Machine>,
    pub distributed: bool,
    pub items_path: Option<Path>,
    pub item_selector: Option<Template>,
    pub max_concurrency: Option<Num>,
    pub tolerated_percentage: Option<Num>,
    pub tolerated_count: Option<Num>,
    pub item_reader: Option<ItemReader>,
    pub result_writer: Option<ObjectRef>,
    pub batcher: Option<Batcher>,
    pub label: Option<String>,
}

/// `ItemBatcher`: children get `{"BatchInput": …, "Items": [...]}`.
#[derive(Debug)]
pub(crate) struct Batcher {
    pub max_items: Option<Num>,
    pub batch_input: Option<Template>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task(TaskSpec),
    Choice {
        choices: Vec<(Rule, String)>,
        default: Option<String>,
    },
    Wait(WaitSpec),
    Succeed,
    Fail {
        error: Option<Text>,
        cause: Option<Text>,
    },
    Parallel {
        branches: Vec<Arc<Machine>>,
    },
    Map(Box<MapSpec>),
}

impl Kind {
    /// The AWS type name used in history event names (`TaskStateEntered`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}
