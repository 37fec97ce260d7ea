//! The cost estimate of a plan: the simulated run's usage × the repository's price table
//! (`infra/prices.json`, each price with its source and date), with the Lambda memory sizes and
//! the CodeBuild compute type read from `infra/template.yaml`. Both files are compiled in; a
//! price table of the same shape can be given instead (`--prices`).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tenantflow_local::plan::Simulation;

/// The price table compiled in.
pub const PRICES_JSON: &str = include_str!("../infra/prices.json");
/// The SAM template compiled in (Lambda memory sizes, the migration project's compute type).
const TEMPLATE: &str = include_str!("../infra/template.yaml");

/// One price with where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub usd: f64,
    pub unit: String,
    pub source: String,
    pub date: String,
    /// No primary source was read for this figure.
    #[serde(default)]
    pub assumed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceList {
    pub step_functions_transition: Price,
    pub lambda_gb_second_arm64: Price,
    pub lambda_request: Price,
    /// By CodeBuild compute type.
    pub code_build_minute: BTreeMap<String, Price>,
    /// By RDS instance class.
    pub rds_instance_hour: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub prices: PriceList,
}

impl PriceTable {
    pub fn parse(text: &str) -> Result<PriceTable> {
        serde_json::from_str(text)
            .context("the price table does not have the shape of infra/prices.json")
    }

    /// The table compiled in.
    pub fn builtin() -> PriceTable {
        PriceTable::parse(PRICES_JSON).expect("infra/prices.json parses (tested)")
    }
}

/// `MemorySize` of the function whose `CodeUri` is `../functions/<function>`, else the template's
/// global one.
pub fn lambda_memory_mb(function: &str) -> u32 {
    let lines: Vec<&str> = TEMPLATE.lines().collect();
    let global = lines
        .iter()
        .skip_while(|l| !l.starts_with("Globals:"))
        .find_map(|l| memory_of(l))
        .unwrap_or(128);
    let uri = format!("CodeUri: ../functions/{function}");
    let Some(at) = lines.iter().position(|l| l.trim() == uri) else {
        return global;
    };
    let indent = lines[at].len() - lines[at].trim_start().len();
    lines[at + 1..]
        .iter()
        .take_while(|l| {
            let i = l.len() - l.trim_start().len();
            l.trim().is_empty() || l.trim_start().starts_with('#') || i >= indent
        })
        .filter(|l| l.len() - l.trim_start().len() == indent)
        .find_map(|l| memory_of(l))
        .unwrap_or(global)
}

fn memory_of(line: &str) -> Option<u32> {
    line.trim().strip_prefix("MemorySize:")?.trim().parse().ok()
}

/// The migration project's `ComputeType`.
pub fn build_compute_type() -> String {
    TEMPLATE
        .lines()
        .find_map(|l| l.trim().strip_prefix("ComputeType:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "BUILD_GENERAL1_SMALL".into())
}

/// What the estimate assumes besides the prices.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assumptions {
    /// Billed duration of one Lambda invocation, seconds (assumed).
    pub lambda_seconds: f64,
    /// The tenants' RDS instance class (the candidate is restored with the old one's class).
    pub instance_class: String,
    pub build_compute_type: String,
}

/// One line of the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub item: String,
    pub quantity: f64,
    pub unit: String,
    pub unit_usd: f64,
    pub usd: f64,
    pub source: String,
    pub assumed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub wall_seconds: f64,
    pub state_transitions: u64,
    pub lambda_invocations: u64,
    pub lambda_gb_seconds: f64,
    pub builds: u64,
    pub build_minutes: u64,
    pub candidate_instance_hours: f64,
    pub lines: Vec<Line>,
    pub total_usd: f64,
}

fn line(item: &str, quantity: f64, price: &Price) -> Line {
    Line {
        item: item.to_string(),
        quantity,
        unit: price.unit.clone(),
        unit_usd: price.usd,
        usd: quantity * price.usd,
        source: format!("{} ({})", price.source, price.date),
        assumed: price.assumed,
    }
}

/// Prices the simulated run.
pub fn estimate(sim: &Simulation, prices: &PriceTable, a: &Assumptions) -> Result<Estimate> {
    let p = &prices.prices;
    let usage = &sim.usage;
    let invocations: u64 = usage.lambda_invocations.values().sum();
    let gb_seconds: f64 = usage
        .lambda_invocations
        .iter()
        .map(|(f, n)| *n as f64 * f64::from(lambda_memory_mb(f)) / 1024.0 * a.lambda_seconds)
        .sum();
    // A build is billed by the started minute.
    let build_minutes = usage.builds * sim.durations.build_seconds.div_ceil(60).max(1);
    let hours = usage.candidate_seconds / 3600.0;
    let build_price = p
        .code_build_minute
        .get(&a.build_compute_type)
        .with_context(|| {
            format!(
                "the price table has no CodeBuild price for compute type {}",
                a.build_compute_type
            )
        })?;
    let rds_price = p
        .rds_instance_hour
        .get(&a.instance_class)
        .with_context(|| {
            format!(
                "the price table has no RDS price for instance class {} (it has {})",
                a.instance_class,
                p.rds_instance_hour
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let lines = vec![
        line(
            "Step Functions state transitions",
            sim.report.state_transitions as f64,
            &p.step_functions_transition,
        ),
        line("Lambda requests", invocations as f64, &p.lambda_request),
        line(
            "Lambda GB-seconds (arm64)",
            gb_seconds,
            &p.lambda_gb_second_arm64,
        ),
        line(
            &format!("CodeBuild minutes ({})", a.build_compute_type),
            build_minutes as f64,
            build_price,
        ),
        line(
            &format!("RDS candidate instance-hours ({})", a.instance_class),
            hours,
            rds_price,
        ),
    ];
    Ok(Estimate {
        wall_seconds: sim.virtual_seconds,
        state_transitions: sim.report.state_transitions,
        lambda_invocations: invocations,
        lambda_gb_seconds: gb_seconds,
        builds: usage.builds,
        build_minutes,
        candidate_instance_hours: hours,
        total_usd: lines.iter().map(|l| l.usd).sum(),
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_price_table_parses_and_names_a_source_for_every_price() {
        let t = PriceTable::builtin();
        let p = &t.prices;
        assert_eq!(p.step_functions_transition.usd * 1000.0, 0.025);
        let all = [
            &p.step_functions_transition,
            &p.lambda_gb_second_arm64,
            &p.lambda_request,
        ]
        .into_iter()
        .chain(p.code_build_minute.values())
        .chain(p.rds_instance_hour.values());
        for price in all {
            assert!(price.source.starts_with("https://"), "{price:?}");
            assert!(!price.date.is_empty());
        }
        assert!(p.code_build_minute.contains_key(&build_compute_type()));
    }

    #[test]
    fn memory_sizes_come_from_the_template() {
        assert_eq!(lambda_memory_mb("list-tenants"), 512);
        assert_eq!(lambda_memory_mb("report"), 1024);
        assert_eq!(lambda_memory_mb("snapshot"), 256);
        assert_eq!(lambda_memory_mb("no-such-function"), 256);
        assert_eq!(build_compute_type(), "BUILD_GENERAL1_SMALL");
    }
}
