//! Validated names: namespace, generation timestamp, RDS identifiers, SSM paths.
//!
//! Each is a newtype whose `parse` rejects bad values with `Tenantflow.InvalidInput`, so a value
//! of one of these types is always safe to put into an AWS name or path.

use crate::error::StepError;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest RDS DB instance identifier.
pub const MAX_INSTANCE_ID: usize = 63;
/// Length of `-YYYYMMDDhhmmss`.
const TS_SUFFIX: usize = 15;
/// Longest namespace that still leaves room for the generation suffix.
pub const MAX_NAMESPACE: usize = MAX_INSTANCE_ID - TS_SUFFIX;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// `<customer>-<project>-<env>`: lowercase letters and digits in at least three hyphen-separated
/// parts, no `--`, starting with a letter, at most [`MAX_NAMESPACE`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace(String);
string_newtype!(Namespace);

impl Namespace {
    pub fn parse(s: &str) -> Result<Self, StepError> {
        let bad = |m: &str| Err(StepError::invalid("tenant", format!("namespace {s:?} {m}")));
        if s.is_empty() {
            return bad("is empty");
        }
        if s.len() > MAX_NAMESPACE {
            return bad(&format!(
                "is {} characters; at most {MAX_NAMESPACE} leave room for the generation timestamp",
                s.len()
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return bad("must start with a lowercase letter");
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad("may hold only lowercase letters, digits and hyphens");
        }
        if s.contains("--") {
            return bad("must not contain `--`");
        }
        if s.ends_with('-') {
            return bad("must not end with `-`");
        }
        if s.split('-').count() < 3 {
            return bad("must be <customer>-<project>-<env>");
        }
        Ok(Namespace(s.to_string()))
    }

    /// The SSM paths that belong to this tenant.
    pub fn paths(&self) -> SsmPaths {
        SsmPaths::new(self)
    }
}

/// A generation timestamp, `YYYYMMDDhhmmss` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenerationTs(NaiveDateTime);

impl GenerationTs {
    pub fn parse(s: &str) -> Result<Self, StepError> {
        if s.len() != 14 || !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(StepError::invalid(
                "timestamp",
                format!("{s:?} is not YYYYMMDDhhmmss"),
            ));
        }
        NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
            .map(GenerationTs)
            .map_err(|e| StepError::invalid("timestamp", format!("{s:?}: {e}")))
    }
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        // Whole seconds only: the name has no sub-second part.
        GenerationTs(
            NaiveDateTime::parse_from_str(&t.format("%Y%m%d%H%M%S").to_string(), "%Y%m%d%H%M%S")
                .unwrap_or_else(|_| t.naive_utc()),
        )
    }
    pub fn to_datetime(&self) -> DateTime<Utc> {
        self.0.and_utc()
    }
    pub fn as_string(&self) -> String {
        self.0.format("%Y%m%d%H%M%S").to_string()
    }
}

impl fmt::Display for GenerationTs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}
impl Serialize for GenerationTs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}
impl<'de> Deserialize<'de> for GenerationTs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GenerationTs::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks the RDS identifier rules shared by instances and snapshots.
fn check_rds_identifier(field: &str, s: &str, max: usize) -> Result<(), StepError> {
    let bad = |m: &str| Err(StepError::invalid(field, format!("{s:?} {m}")));
    if s.is_empty() || s.len() > max {
        return bad(&format!("must be 1 to {max} characters"));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("may hold only lowercase letters, digits and hyphens");
    }
    if s.contains("--") || s.ends_with('-') {
        return bad("must not contain `--` or end with `-`");
    }
    Ok(())
}

/// An RDS DB instance identifier (≤ 63 chars, starts with a letter, no `--`, no trailing `-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(String);
string_newtype!(InstanceId);

impl InstanceId {
    pub fn parse(s: &str) -> Result<Self, StepError> {
        check_rds_identifier("instanceId", s, MAX_INSTANCE_ID)?;
        Ok(InstanceId(s.to_string()))
    }
    /// The generation name `<namespace>-<timestamp>`.
    pub fn generation(ns: &Namespace, ts: GenerationTs) -> Self {
        // A valid namespace plus a 15-char suffix is always a valid identifier.
        InstanceId(format!("{ns}-{ts}"))
    }
    /// Splits a generation name back into namespace and timestamp, if it is one.
    pub fn split_generation(&self) -> Option<(Namespace, GenerationTs)> {
        let (ns, ts) = self.0.rsplit_once('-')?;
        Some((Namespace::parse(ns).ok()?, GenerationTs::parse(ts).ok()?))
    }
}

/// An RDS DB snapshot identifier (≤ 255 chars, same character rules).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(String);
string_newtype!(SnapshotId);

impl SnapshotId {
    pub fn parse(s: &str) -> Result<Self, StepError> {
        check_rds_identifier("snapshotId", s, 255)?;
        Ok(SnapshotId(s.to_string()))
    }
    /// The deterministic snapshot a run takes of a tenant: named like the generation it becomes,
    /// so a retry finds the same snapshot.
    pub fn for_generation(ns: &Namespace, ts: GenerationTs) -> Self {
        SnapshotId(format!("{ns}-{ts}"))
    }
    /// Splits `<namespace>-<timestamp>` back, if it is one.
    pub fn split_generation(&self) -> Option<(Namespace, GenerationTs)> {
        let (ns, ts) = self.0.rsplit_once('-')?;
        Some((Namespace::parse(ns).ok()?, GenerationTs::parse(ts).ok()?))
    }
}

/// Root of every tenantflow SSM parameter.
pub const SSM_ROOT: &str = "/tenantflow";

/// The SSM parameter paths of one tenant: only the active pointer. Locks and wait tokens live in
/// the `Records` store; the write freeze and the ECS service live inside the pointer's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsmPaths {
    /// `/tenantflow/<ns>/db`: the active pointer.
    pub pointer: String,
}

impl SsmPaths {
    pub fn new(ns: &Namespace) -> Self {
        SsmPaths {
            pointer: format!("{SSM_ROOT}/{ns}/db"),
        }
    }

    /// The tenant a pointer path belongs to, if `path` is one.
    pub fn tenant_of_pointer(path: &str) -> Option<Namespace> {
        let rest = path.strip_prefix(SSM_ROOT)?.strip_prefix('/')?;
        let ns = rest.strip_suffix("/db")?;
        Namespace::parse(ns).ok()
    }
}

/// Tag keys tenantflow puts on everything it creates.
pub mod tags {
    pub const NAMESPACE: &str = "tenantflow:namespace";
    pub const RELEASE: &str = "tenantflow:release";
    pub const RUN: &str = "tenantflow:run";
    pub const ROLE: &str = "tenantflow:role";
    pub const ROLE_CANDIDATE: &str = "candidate";
    pub const ROLE_ACTIVE: &str = "active";
    pub const ROLE_SNAPSHOT: &str = "snapshot";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_rules() {
        assert!(Namespace::parse("xy-0146-prod").is_ok());
        for bad in [
            "Xy--0146-prod",
            "xy--0146-prod",
            "xy-0146-prod-",
            "xy-0146",
            "0xy-0146-prod",
            "",
            &"a".repeat(70),
        ] {
            let e = Namespace::parse(bad).unwrap_err();
            assert_eq!(e.asl_name(), "Tenantflow.InvalidInput", "{bad}");
        }
    }

    #[test]
    fn generation_round_trip() {
        let ns = Namespace::parse("xy-0146-prod").unwrap();
        let ts = GenerationTs::parse("20261121120000").unwrap();
        let id = InstanceId::generation(&ns, ts);
        assert_eq!(id.as_str(), "xy-0146-prod-20261121120000");
        assert!(InstanceId::parse(id.as_str()).is_ok());
        assert_eq!(id.split_generation(), Some((ns, ts)));
    }

    #[test]
    fn longest_namespace_fits_instance_id() {
        let ns = Namespace::parse(&format!("a-b-{}", "c".repeat(MAX_NAMESPACE - 4))).unwrap();
        let id = InstanceId::generation(&ns, GenerationTs::parse("20261121120000").unwrap());
        assert_eq!(id.as_str().len(), MAX_INSTANCE_ID);
        assert!(InstanceId::parse(id.as_str()).is_ok());
    }
}
