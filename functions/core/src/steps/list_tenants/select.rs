//! Tenant selection: an explicit list, or include/exclude globs over the discovered tenants.

use super::{Discovery, SkippedTenant};
use crate::error::StepError;
use crate::manifest::TenantSelection;
use crate::names::Namespace;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// The selected tenants, sorted. An explicit list must name only tenants that have a valid
/// active pointer (a skipped one is refused with what it lacks); globs select among the
/// discovered tenants (`include` empty means all).
pub fn select_tenants(
    discovered: &[Namespace],
    skipped: &[SkippedTenant],
    selection: &TenantSelection,
) -> Result<Vec<Namespace>, StepError> {
    if let Some(list) = &selection.tenants {
        let mut out = Vec::with_capacity(list.len());
        for (i, name) in list.iter().enumerate() {
            let field = format!("manifest.tenants.tenants[{i}]");
            let ns =
                Namespace::parse(name).map_err(|e| StepError::invalid(&field, e.to_string()))?;
            if let Some(s) = skipped.iter().find(|s| s.tenant == ns) {
                return Err(StepError::invalid(
                    field,
                    format!("tenant {ns} cannot be deployed to: {}", s.reason),
                ));
            }
            if !discovered.contains(&ns) {
                return Err(StepError::invalid(
                    field,
                    format!("tenant {ns} has no active pointer /tenantflow/{ns}/db"),
                ));
            }
            out.push(ns);
        }
        out.sort();
        out.dedup();
        return Ok(out);
    }
    let include = glob_set(&selection.include, "manifest.tenants.include")?;
    let exclude = glob_set(&selection.exclude, "manifest.tenants.exclude")?;
    Ok(discovered
        .iter()
        .filter(|t| selection.include.is_empty() || include.is_match(t.as_str()))
        .filter(|t| !exclude.is_match(t.as_str()))
        .cloned()
        .collect())
}

/// The skipped tenants the selection's globs would have selected (an explicit list refuses a
/// skipped tenant instead, in [`select_tenants`]).
pub fn skipped_in_selection(
    skipped: &[SkippedTenant],
    selection: &TenantSelection,
) -> Result<Vec<SkippedTenant>, StepError> {
    if selection.tenants.is_some() {
        return Ok(vec![]);
    }
    let include = glob_set(&selection.include, "manifest.tenants.include")?;
    let exclude = glob_set(&selection.exclude, "manifest.tenants.exclude")?;
    Ok(skipped
        .iter()
        .filter(|s| selection.include.is_empty() || include.is_match(s.tenant.as_str()))
        .filter(|s| !exclude.is_match(s.tenant.as_str()))
        .cloned()
        .collect())
}

/// A run limited to a tenant list (`tenantList`): the listed tenants, sorted, each of which must
/// be in the manifest's selection and have parameters; a listed tenant that cannot be deployed to
/// is skipped with what it lacks (second list), as the globs do.
pub fn select_listed(
    found: &Discovery,
    names: &[String],
    selection: &TenantSelection,
) -> Result<(Vec<Namespace>, Vec<SkippedTenant>), StepError> {
    let include = glob_set(&selection.include, "manifest.tenants.include")?;
    let exclude = glob_set(&selection.exclude, "manifest.tenants.exclude")?;
    let selects = |t: &Namespace| match &selection.tenants {
        Some(list) => list.iter().any(|n| n == t.as_str()),
        None => {
            (selection.include.is_empty() || include.is_match(t.as_str()))
                && !exclude.is_match(t.as_str())
        }
    };
    let (mut tenants, mut skipped) = (Vec::new(), Vec::new());
    for (i, name) in names.iter().enumerate() {
        let field = format!("tenantList[{i}]");
        let ns = Namespace::parse(name).map_err(|e| StepError::invalid(&field, e.to_string()))?;
        if !selects(&ns) {
            return Err(StepError::invalid(
                field,
                format!("tenant {ns} is not in the release's tenant selection"),
            ));
        }
        if let Some(s) = found.skipped.iter().find(|s| s.tenant == ns) {
            skipped.push(s.clone());
        } else if found.tenants.contains(&ns) {
            tenants.push(ns);
        } else {
            return Err(StepError::invalid(
                field,
                format!("tenant {ns} has no active pointer /tenantflow/{ns}/db"),
            ));
        }
    }
    tenants.sort();
    tenants.dedup();
    skipped.sort();
    skipped.dedup();
    Ok((tenants, skipped))
}

fn glob_set(patterns: &[String], field: &str) -> Result<GlobSet, StepError> {
    let mut b = GlobSetBuilder::new();
    for (i, p) in patterns.iter().enumerate() {
        let g =
            Glob::new(p).map_err(|e| StepError::invalid(format!("{field}[{i}]"), e.to_string()))?;
        b.add(g);
    }
    b.build()
        .map_err(|e| StepError::invalid(field, e.to_string()))
}
