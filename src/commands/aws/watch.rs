//! What `status --watch` and `release push --wait` show while they follow a run: one bar per
//! Distributed Map run (a wave, or a phase of an all-or-nothing run) from its DescribeMapRun item
//! counts, and a line with the tenants the records table shows the run holding, redrawn at each
//! poll. Off a terminal, one line per poll that changed something, on stderr.

use crate::progress::{parse_map_run_arn, style};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use std::collections::BTreeMap;
use std::time::Duration;
use tenantflow_aws::ops::runs::{MapProgress, RunStatus};
use tenantflow_aws::ops::watch::{Polling, RealTime};

/// `--interval` and `--start-timeout` as the ops module takes them.
pub fn polling(interval_secs: u64, start_timeout_secs: u64) -> Polling {
    Polling {
        interval: Duration::from_secs(interval_secs.max(1)),
        start_timeout: Duration::from_secs(start_timeout_secs),
    }
}

/// The CLI's sleeper: real time.
pub const SLEEPER: RealTime = RealTime;

pub struct Progress {
    /// `None` off a terminal.
    multi: Option<MultiProgress>,
    /// Map run ARN → its bar.
    bars: BTreeMap<String, ProgressBar>,
    held: Option<ProgressBar>,
    waves: usize,
    last_line: String,
}

impl Progress {
    /// Bars on stderr when it is a terminal, else one line per changed poll.
    pub fn on_stderr() -> Self {
        use std::io::IsTerminal;
        Progress {
            multi: std::io::stderr()
                .is_terminal()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: BTreeMap::new(),
            held: None,
            waves: 0,
            last_line: String::new(),
        }
    }

    /// Redraws from one poll.
    pub fn update(&mut self, st: &RunStatus) {
        let Some(multi) = self.multi.clone() else {
            let line = summary(st);
            if line != self.last_line {
                eprintln!("{line}");
                self.last_line = line;
            }
            return;
        };
        for m in &st.maps {
            if !self.bars.contains_key(&m.map_run_arn) {
                let label = match parse_map_run_arn(&m.map_run_arn) {
                    Some((l, _)) if l == "Wave" => {
                        self.waves += 1;
                        format!("wave {}", self.waves)
                    }
                    Some((l, _)) => l.to_lowercase(),
                    None => "map".to_string(),
                };
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(style());
                bar.set_prefix(label);
                self.bars.insert(m.map_run_arn.clone(), bar);
            }
            let bar = &self.bars[&m.map_run_arn];
            bar.set_length(m.total.max(0) as u64);
            bar.set_position(done(m).max(0) as u64);
            let msg = format!("{} running, {} failed", m.running, failures(m));
            if m.status == "RUNNING" {
                bar.set_message(msg);
            } else if !bar.is_finished() {
                bar.finish_with_message(format!("{} ({msg})", m.status.to_lowercase()));
            }
        }
        let held = self.held.get_or_insert_with(|| {
            let b = multi.add(ProgressBar::new_spinner());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        held.set_message(held_line(st));
    }

    /// Removes the bars before the final table is printed.
    pub fn finish(&self) {
        if let Some(m) = &self.multi {
            if let Some(h) = &self.held {
                h.finish_and_clear();
            }
            let _ = m.clear();
        }
    }
}

fn failures(m: &MapProgress) -> i64 {
    m.failed + m.timed_out + m.aborted
}

fn done(m: &MapProgress) -> i64 {
    m.succeeded + failures(m)
}

fn held_line(st: &RunStatus) -> String {
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &st.held {
        *phases.entry(h.phase.as_str()).or_default() += 1;
    }
    let by_phase: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!(
        "run {} {}: {} tenant(s) locked{}",
        st.run.name,
        st.run.status,
        st.held.len(),
        if by_phase.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_phase.join(", "))
        }
    )
}

/// One line per poll off a terminal.
fn summary(st: &RunStatus) -> String {
    let maps: Vec<String> = st
        .maps
        .iter()
        .map(|m| {
            format!(
                "{}/{} done, {} running, {} failed",
                done(m),
                m.total,
                m.running,
                failures(m)
            )
        })
        .collect();
    let mut line = held_line(st);
    if !maps.is_empty() {
        line.push_str("; maps: ");
        line.push_str(&maps.join(" | "));
    }
    line
}
