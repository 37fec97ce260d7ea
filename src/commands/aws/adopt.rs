//! `tenantflow aws adopt (--pattern RE | --tag KEY) [--apply]`.

use super::json::print_json;
use crate::commands::exit::{EXIT_FAILED, EXIT_OK};
use anyhow::Result;
use clap::Args;
use tenantflow_aws::ops::adopt::{apply, plan, Action, AdoptOptions, AdoptPlan, Selector};
use tenantflow_aws::ops::Ops;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("select").required(true).args(["pattern", "tag"])))]
pub struct AdoptArgs {
    /// Select instances whose identifier matches; the group `ns` (else the first group) is the
    /// tenant's namespace, e.g. '^(?P<ns>xy-0146-prod-[a-z0-9]+)-db$'.
    #[arg(long, value_name = "REGEX")]
    pub pattern: Option<String>,
    /// Select instances carrying this tag; its value is the tenant's namespace.
    #[arg(long, value_name = "KEY")]
    pub tag: Option<String>,
    /// The release the fleet runs today, recorded in each pointer.
    #[arg(long, default_value = "adopted")]
    pub release: String,
    /// The tenants' ECS cluster (default: the stack's DefaultEcsCluster).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Tag the instances and write the pointers (default: show the plan only).
    #[arg(long)]
    pub apply: bool,
}

pub async fn run(ops: &Ops, args: &AdoptArgs, json: bool) -> Result<u8> {
    let selector = match (&args.pattern, &args.tag) {
        (Some(p), _) => Selector::pattern(p)?,
        (None, Some(t)) => Selector::Tag(t.clone()),
        (None, None) => anyhow::bail!("give --pattern or --tag"),
    };
    let opts = AdoptOptions {
        selector,
        release: args.release.clone(),
        cluster: args.cluster.clone(),
    };
    let mut p = plan(ops, &opts).await?;
    if args.apply {
        apply(ops, &mut p).await?;
    }
    if json {
        print_json(&p)?;
    } else {
        print(&p, args.apply);
    }
    // A plan is a success; an apply that left instances blocked says so with exit 1.
    Ok(if args.apply && p.count(Action::Blocked) > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

fn print(p: &AdoptPlan, applied: bool) {
    let rows: Vec<Vec<String>> = p
        .items
        .iter()
        .map(|i| {
            let ptr = i
                .pointer
                .as_ref()
                .map(|p| format!("{}:{} gen {}", p.endpoint, p.port, p.generation))
                .unwrap_or_default();
            let svc = i
                .service
                .as_ref()
                .map(|s| format!("{}/{}", s.cluster, s.service))
                .unwrap_or_default();
            let action = match i.action {
                Action::Adopt => "adopt",
                Action::Adopted => "adopted",
                Action::Blocked => "blocked",
            };
            vec![
                i.namespace.clone(),
                i.instance.clone(),
                action.to_string(),
                ptr,
                svc,
                i.applied.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        crate::table::render(
            &[
                "namespace",
                "instance",
                "action",
                "pointer",
                "ecs service",
                "done"
            ],
            &rows
        )
    );
    for i in p.items.iter().filter(|i| i.action == Action::Blocked) {
        for b in &i.blockers {
            crate::outln!("blocked {}: {b}", i.instance);
        }
    }
    crate::outln!(
        "{} to adopt, {} already adopted, {} blocked, {} instances not selected{}",
        p.count(Action::Adopt),
        p.count(Action::Adopted),
        p.count(Action::Blocked),
        p.ignored,
        if applied {
            ""
        } else {
            " (plan only: --apply tags the instances and writes the pointers)"
        }
    );
}
