//! `adopt`: brings existing tenant databases under tenantflow without renaming them (renaming a
//! serving instance changes its endpoint and reboots it).
//!
//! An instance keeps whatever name it has. The `tenantflow:namespace` tag adopt writes is what
//! makes it the tenant's: the template authorises the steps on it by that tag as well as by name,
//! the snapshot step refuses an active instance under another name without it, and teardown
//! deletes it only with it. The tenant's first deploy snapshots it, restores `<ns>-<timestamp>`,
//! flips to that generation and, after the rollout, tears the adopted instance down like any old
//! generation.
//!
//! [`plan`] finds candidate instances by a name pattern with a namespace capture or by a tag that
//! holds the namespace, and says per instance what it would write (the active pointer with the
//! instance's own endpoint and port, and the ECS service the rollout rolls) or what blocks it.
//! The blockers are the core's rules: [`Namespace::parse`], [`Settings::owns`] and the pointer rule
//! list-tenants applies ([`pointer_problem`]), so an adopted tenant is exactly one the next run
//! deploys. [`apply`] tags each adoptable instance, then creates its pointer only if absent
//! (SSM PutParameter without overwrite): re-running it, or running it after an interruption,
//! finishes the job and never overwrites a pointer a run or a person wrote.

use super::{Ops, OpsError, OpsResult};
use crate::errors::classify;
use crate::rds::to_instance;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tenantflow_core::model::{ActivePointer, ServiceRef};
use tenantflow_core::names::{tags, GenerationTs, Namespace};
use tenantflow_core::ports::Parameters;
use tenantflow_core::steps::list_tenants::pointer_problem;

/// How candidate instances are found and their namespace read.
#[derive(Debug, Clone)]
pub enum Selector {
    /// The instance identifier matches; the capture group `ns` (else the first group) is the
    /// tenant's namespace.
    Pattern(Regex),
    /// The instance carries tag `key`; its value is the tenant's namespace.
    Tag(String),
}

impl Selector {
    /// A pattern selector; the pattern must have a capture group for the namespace.
    pub fn pattern(p: &str) -> OpsResult<Self> {
        let re = Regex::new(p)
            .map_err(|e| OpsError::Invalid(format!("--pattern {p:?} is not a regex: {e}")))?;
        if re.captures_len() < 2 {
            return Err(OpsError::Invalid(format!(
                "--pattern {p:?} has no capture group: capture the namespace, e.g. \
                 '^(?P<ns>.+)-db$'"
            )));
        }
        Ok(Selector::Pattern(re))
    }

    /// The namespace this selector reads from an instance, or `None` when it does not select it.
    fn namespace_of(&self, id: &str, instance_tags: &BTreeMap<String, String>) -> Option<String> {
        match self {
            Selector::Pattern(re) => {
                let c = re.captures(id)?;
                c.name("ns")
                    .or_else(|| c.get(1))
                    .map(|m| m.as_str().to_string())
            }
            Selector::Tag(key) => instance_tags.get(key).cloned(),
        }
    }
}

/// What adopt does with one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Tag it and write its pointer.
    Adopt,
    /// Its pointer already names it; only missing tags are added.
    Adopted,
    /// Something blocks it (see `blockers`); nothing is written.
    Blocked,
}

/// One selected instance in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptItem {
    pub instance: String,
    /// What the selector read (even when it is not a valid namespace).
    pub namespace: String,
    pub action: Action,
    /// `/tenantflow/<ns>/db`, when the namespace is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer_path: Option<String>,
    /// The pointer value adopt writes (or found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<ActivePointer>,
    /// The ECS service the tenant's rollout rolls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Why it cannot be adopted, each with what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<String>,
    /// Tags [`apply`] adds (absent or different now).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags_to_add: BTreeMap<String, String>,
    /// Set by [`apply`]: what was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    #[serde(skip)]
    arn: String,
}

/// The plan (and, after [`apply`], the result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptPlan {
    pub items: Vec<AdoptItem>,
    /// Instances the selector did not select.
    pub ignored: usize,
}

impl AdoptPlan {
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }
}

/// Settings of a plan.
#[derive(Debug, Clone)]
pub struct AdoptOptions {
    pub selector: Selector,
    /// The release id recorded in each pointer (what the fleet runs today).
    pub release: String,
    /// The tenants' ECS cluster; `None`: the stack's default cluster.
    pub cluster: Option<String>,
}

/// Finds the candidates and decides each one; writes nothing.
pub async fn plan(ops: &Ops, opts: &AdoptOptions) -> OpsResult<AdoptPlan> {
    let settings = ops.stack.settings();
    let cluster = opts
        .cluster
        .clone()
        .unwrap_or_else(|| ops.stack.default_cluster.clone());
    let params = ops.parameters();
    let mut items = Vec::new();
    let mut ignored = 0;
    let mut marker: Option<String> = None;
    loop {
        let out = ops
            .clients
            .rds
            .describe_db_instances()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| classify("DescribeDBInstances", e))?;
        for raw in out.db_instances() {
            let inst = to_instance(raw)?;
            let Some(ns) = opts.selector.namespace_of(inst.id.as_str(), &inst.tags) else {
                ignored += 1;
                continue;
            };
            let created = raw
                .instance_create_time()
                .and_then(crate::time::to_utc)
                .unwrap_or_default();
            items.push(
                decide(
                    &params,
                    &settings,
                    &cluster,
                    opts,
                    inst,
                    raw.db_instance_arn().unwrap_or_default(),
                    created,
                    ns,
                )
                .await?,
            );
        }
        match out.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    // Two instances for one namespace: the pointer can name only one of them.
    let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &items {
        by_ns
            .entry(i.namespace.clone())
            .or_default()
            .push(i.instance.clone());
    }
    for i in &mut items {
        let same = &by_ns[&i.namespace];
        if same.len() > 1 && i.action == Action::Adopt {
            i.blockers.push(format!(
                "{} instances map to namespace {}: {}; narrow the pattern or tag one of them",
                same.len(),
                i.namespace,
                same.join(", ")
            ));
            i.action = Action::Blocked;
        }
    }
    services(ops, &mut items).await?;
    items.sort_by(|a, b| (&a.namespace, &a.instance).cmp(&(&b.namespace, &b.instance)));
    Ok(AdoptPlan { items, ignored })
}

#[allow(clippy::too_many_arguments)]
async fn decide<P: Parameters + ?Sized>(
    params: &P,
    settings: &tenantflow_core::steps::Settings,
    cluster: &str,
    opts: &AdoptOptions,
    inst: tenantflow_core::ports::DbInstance,
    arn: &str,
    created: chrono::DateTime<chrono::Utc>,
    raw_ns: String,
) -> OpsResult<AdoptItem> {
    let mut item = AdoptItem {
        instance: inst.id.to_string(),
        namespace: raw_ns.clone(),
        action: Action::Adopt,
        pointer_path: None,
        pointer: None,
        service: None,
        blockers: Vec::new(),
        tags_to_add: BTreeMap::new(),
        applied: None,
        arn: arn.to_string(),
    };
    let ns = match Namespace::parse(&raw_ns) {
        Ok(ns) => ns,
        Err(e) => {
            item.blockers.push(format!("{e}"));
            item.action = Action::Blocked;
            return Ok(item);
        }
    };
    if !settings.owns(&ns) {
        let stack_ns = settings.namespace.clone().unwrap_or_default();
        item.blockers.push(format!(
            "namespace {ns} does not belong to this stack, which deploys to {stack_ns} and \
             {stack_ns}-* (IAM, discovery and the janitor are scoped so)"
        ));
    }
    if inst.status != "available" {
        item.blockers.push(format!(
            "instance status is {:?}: adopt it once it is available",
            inst.status
        ));
    }
    if inst.endpoint.is_empty() {
        item.blockers
            .push("the instance has no endpoint yet: adopt it once it is available".to_string());
    }
    if let Some(other) = inst
        .tags
        .get(tags::NAMESPACE)
        .filter(|v| **v != *ns.as_str())
    {
        item.blockers.push(format!(
            "tagged {}={other}, not {ns}: another tenant owns it",
            tags::NAMESPACE
        ));
    }
    let path = ns.paths().pointer;
    item.pointer_path = Some(path.clone());
    let generation = inst
        .id
        .split_generation()
        .filter(|(n, _)| *n == ns)
        .map(|(_, ts)| ts)
        .unwrap_or_else(|| GenerationTs::from_datetime(created));
    let service = ServiceRef {
        cluster: cluster.to_string(),
        service: ns.to_string(),
    };
    let wanted = ActivePointer {
        generation,
        instance_id: inst.id.clone(),
        endpoint: inst.endpoint.clone(),
        port: inst.port,
        release: opts.release.clone(),
        service: (cluster != settings.default_cluster).then(|| service.clone()),
        freeze: None,
        // Adopted: no record of the scripts it has, so its first run deploys it.
        scripts: None,
    };
    item.service = Some(service);
    match params.get(&path).await? {
        Some(existing) => match serde_json::from_str::<ActivePointer>(&existing.value) {
            Ok(p) if p.instance_id == inst.id => {
                item.action = Action::Adopted;
                item.pointer = Some(p);
            }
            Ok(p) => item.blockers.push(format!(
                "{path} already names instance {}: the tenant is served by another instance",
                p.instance_id
            )),
            Err(e) => item.blockers.push(format!(
                "{path} exists but is not a pointer ({e}): fix or delete it by hand first"
            )),
        },
        None => {
            let value = serde_json::to_string(&wanted)
                .map_err(|e| OpsError::Invalid(format!("serialize pointer: {e}")))?;
            if let Err(problem) = pointer_problem(&ns, &path, &value) {
                item.blockers
                    .push(format!("list-tenants would skip it: {problem}"));
            }
            item.pointer = Some(wanted);
        }
    }
    for (k, v) in [
        (tags::NAMESPACE, ns.as_str()),
        (tags::ROLE, tags::ROLE_ACTIVE),
    ] {
        if inst.tags.get(k).map(String::as_str) != Some(v) {
            item.tags_to_add.insert(k.to_string(), v.to_string());
        }
    }
    if item.action == Action::Adopt && !inst.tags.contains_key(tags::RELEASE) {
        item.tags_to_add
            .insert(tags::RELEASE.to_string(), opts.release.clone());
    }
    if !item.blockers.is_empty() {
        item.action = Action::Blocked;
        item.tags_to_add.clear();
    }
    Ok(item)
}

/// Checks each tenant's ECS service exists and is ACTIVE (one DescribeServices per cluster and
/// 10 services, the API's limit).
async fn services(ops: &Ops, items: &mut [AdoptItem]) -> OpsResult<()> {
    let mut by_cluster: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if let (Action::Adopt | Action::Adopted, Some(s)) = (item.action, &item.service) {
            by_cluster.entry(s.cluster.clone()).or_default().push(i);
        }
    }
    for (cluster, idx) in by_cluster {
        for chunk in idx.chunks(10) {
            let names: Vec<String> = chunk
                .iter()
                .filter_map(|&i| items[i].service.as_ref().map(|s| s.service.clone()))
                .collect();
            let out = ops
                .clients
                .ecs
                .describe_services()
                .cluster(&cluster)
                .set_services(Some(names))
                .send()
                .await;
            let active: Vec<String> = match out {
                Ok(o) => o
                    .services()
                    .iter()
                    .filter(|s| s.status() == Some("ACTIVE"))
                    .filter_map(|s| s.service_name().map(str::to_string))
                    .collect(),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_cluster_not_found_exception()) =>
                {
                    Vec::new()
                }
                Err(e) => return Err(classify("DescribeServices", e).into()),
            };
            for &i in chunk {
                let item = &mut items[i];
                let Some(s) = &item.service else { continue };
                if !active.contains(&s.service) {
                    item.blockers.push(format!(
                        "no ACTIVE ECS service {} in cluster {}: the rollout restarts the tenant's \
                         service to pick up the new pointer; create it or pass --cluster",
                        s.service, s.cluster
                    ));
                    item.action = Action::Blocked;
                    item.tags_to_add.clear();
                }
            }
        }
    }
    Ok(())
}

/// Carries out `plan`: per adoptable instance, adds the missing tags, then creates the pointer if
/// absent. A pointer found written meanwhile is left as it is and reported.
pub async fn apply(ops: &Ops, plan: &mut AdoptPlan) -> OpsResult<()> {
    let params = ops.parameters();
    for item in &mut plan.items {
        if item.action == Action::Blocked {
            continue;
        }
        let mut done = Vec::new();
        if !item.tags_to_add.is_empty() {
            let mut req = ops
                .clients
                .rds
                .add_tags_to_resource()
                .resource_name(&item.arn);
            for (k, v) in &item.tags_to_add {
                req = req.tags(aws_sdk_rds::types::Tag::builder().key(k).value(v).build());
            }
            req.send()
                .await
                .map_err(|e| classify("AddTagsToResource", e))?;
            done.push(format!("tagged {}", item.tags_to_add.len()));
        }
        if item.action == Action::Adopt {
            let (Some(path), Some(pointer)) = (&item.pointer_path, &item.pointer) else {
                continue;
            };
            let value = serde_json::to_string(pointer)
                .map_err(|e| OpsError::Invalid(format!("serialize pointer: {e}")))?;
            match params.create(path, &value).await? {
                Some(_) => done.push(format!("wrote {path}")),
                None => {
                    let now = params.get(path).await?.map(|p| p.value);
                    let ours = now
                        .as_deref()
                        .and_then(|v| serde_json::from_str::<ActivePointer>(v).ok())
                        .is_some_and(|p| p.instance_id.as_str() == item.instance);
                    if ours {
                        done.push(format!("{path} already names it"));
                    } else {
                        done.push(format!(
                            "{path} was written meanwhile by someone else: left as is"
                        ));
                    }
                }
            }
        }
        if done.is_empty() {
            done.push("nothing to do".to_string());
        }
        item.applied = Some(done.join("; "));
    }
    Ok(())
}
