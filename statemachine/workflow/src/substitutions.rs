//! The `DefinitionSubstitutions` table: the value of every `${…}` placeholder the definition uses.

use std::collections::BTreeMap;
use tenantflow_core::steps::StepName;

/// Every `${<Step>FunctionArn}` (`<function_arn_prefix><step>`, e.g.
/// `arn:aws:lambda:local:000000000000:function:create-db`), `${MigrationProjectName}` and
/// `${ReleaseBucket}`.
pub fn substitutions(
    function_arn_prefix: &str,
    migration_project: &str,
    release_bucket: &str,
) -> BTreeMap<String, String> {
    let mut table: BTreeMap<String, String> = StepName::ALL
        .iter()
        .map(|s| {
            (
                s.substitution_key(),
                format!("{function_arn_prefix}{}", s.as_str()),
            )
        })
        .collect();
    table.insert("MigrationProjectName".into(), migration_project.into());
    table.insert("ReleaseBucket".into(), release_bucket.into());
    table
}
