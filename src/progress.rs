//! Progress bars for a local run, drawn from the engine's history events (only on a terminal).
//!
//! Every distributed Map run (a wave, or a phase of an all-or-nothing run: prepare, commit, …)
//! gets one bar whose length is the number of tenants in it. A child execution is named
//! `<parent>-<label>-<first 8 of the map run id>-<index>`, which is how a child's events are
//! matched to its bar.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use statemachine::{HistoryEvent, Observer};
use std::collections::HashMap;
use std::sync::Mutex;

/// Draws one bar per Map run.
pub struct RunProgress {
    multi: MultiProgress,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `MapStateStarted` length, per execution, until its `MapRunStarted` arrives.
    pending_len: HashMap<String, u64>,
    /// Child-name prefix → bar.
    bars: Vec<(String, Bar)>,
    waves: usize,
}

struct Bar {
    bar: ProgressBar,
    label: String,
    failed: u64,
}

impl RunProgress {
    /// A progress drawer on stderr, or `None` when stderr is not a terminal.
    pub fn on_terminal() -> Option<Self> {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return None;
        }
        Some(RunProgress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Prints a line above the bars.
    pub fn println(&self, text: &str) {
        if self.multi.println(text).is_err() {
            eprintln!("{text}");
        }
    }

    /// Removes the bars before the final report is printed.
    pub fn finish(&self) {
        let _ = self.multi.clear();
    }
}

pub(crate) fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>14} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `(label, run id)` from `arn:aws:states:<region>:<account>:mapRun:<machine>/<label>:<run id>`.
pub(crate) fn parse_map_run_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.split(":mapRun:").nth(1)?;
    let (path, run_id) = rest.rsplit_once(':')?;
    let label = path.rsplit_once('/').map_or(path, |(_, l)| l);
    Some((label.to_string(), run_id.to_string()))
}

fn detail<'a>(event: &'a HistoryEvent, key: &str, field: &str) -> Option<&'a Value> {
    event.details.get(key)?.get(field)
}

/// The tenant of a child execution, from its input (a `TenantState` or `{"tenant": …}`).
fn tenant_of(event: &HistoryEvent) -> Option<String> {
    let input = detail(event, "executionStartedEventDetails", "input")?;
    let parsed: Value = match input {
        Value::String(s) => serde_json::from_str(s).ok()?,
        v => v.clone(),
    };
    parsed
        .get("tenant")
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Observer for RunProgress {
    fn on_event(&self, execution: &str, event: &HistoryEvent) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        match event.event_type.as_str() {
            "MapStateStarted" => {
                let n = detail(event, "mapStateStartedEventDetails", "length")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                inner.pending_len.insert(execution.to_string(), n);
            }
            "MapRunStarted" => {
                let Some((label, run_id)) = detail(event, "mapRunStartedEventDetails", "mapRunArn")
                    .and_then(Value::as_str)
                    .and_then(parse_map_run_arn)
                else {
                    return;
                };
                let len = inner.pending_len.remove(execution).unwrap_or(0);
                let short: String = run_id.chars().take(8).collect();
                let prefix = format!("{execution}-{label}-{short}-");
                let name = if label == "Wave" {
                    inner.waves += 1;
                    format!("wave {}", inner.waves)
                } else {
                    label.to_lowercase()
                };
                let bar = self.multi.add(ProgressBar::new(len));
                bar.set_style(style());
                bar.set_prefix(name.clone());
                inner.bars.push((
                    prefix,
                    Bar {
                        bar,
                        label: name,
                        failed: 0,
                    },
                ));
            }
            "ExecutionStarted" => {
                if let Some((_, b)) = inner
                    .bars
                    .iter_mut()
                    .find(|(p, _)| execution.starts_with(p.as_str()))
                {
                    if let Some(t) = tenant_of(event) {
                        b.bar.set_message(t);
                    }
                }
            }
            "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted" => {
                if let Some((_, b)) = inner
                    .bars
                    .iter_mut()
                    .find(|(p, _)| execution.starts_with(p.as_str()))
                {
                    if event.event_type != "ExecutionSucceeded" {
                        b.failed += 1;
                    }
                    b.bar.inc(1);
                    if b.bar.position() >= b.bar.length().unwrap_or(0) {
                        let msg = if b.failed > 0 {
                            format!("done, {} failed", b.failed)
                        } else {
                            "done".to_string()
                        };
                        b.bar.finish_with_message(msg);
                    }
                }
            }
            "MapRunSucceeded" | "MapRunFailed" => {
                // The bar of this execution's most recent map run.
                if let Some((_, b)) = inner
                    .bars
                    .iter_mut()
                    .rev()
                    .find(|(p, _)| p.starts_with(execution) && !p[execution.len()..].is_empty())
                {
                    if !b.bar.is_finished() {
                        let msg = if event.event_type == "MapRunFailed" {
                            format!("{} stopped: too many failures", b.label)
                        } else {
                            "done".to_string()
                        };
                        b.bar.finish_with_message(msg);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_map_run_arns() {
        assert_eq!(
            parse_map_run_arn(
                "arn:aws:states:us-east-1:000000000000:mapRun:tenantflow-deploy/Wave:6f1c2a3b-aaaa"
            ),
            Some(("Wave".into(), "6f1c2a3b-aaaa".into()))
        );
        assert_eq!(parse_map_run_arn("arn:aws:states:::nope"), None);
    }
}
