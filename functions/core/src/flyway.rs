//! Flyway script names and versions, parsed and ordered the way Flyway does it.
//!
//! - Versioned: `V<version>__<description>.sql`. The version's parts are separated by `.` or `_`
//!   (Flyway turns `_` into `.`: `V1_1__x.sql` is version `1.1`). Each part is a decimal number of
//!   any size. `V1.sql` (no separator) is versioned with an empty description, as in Flyway.
//! - Repeatable: `R__<description>.sql`. It has no version; it is re-applied when its checksum changes.
//! - The description is the text after the first `__`, with `_` turned into spaces, as Flyway
//!   records it in `flyway_schema_history.description`.
//!
//! [`Version`] compares numerically part by part, a missing part counting as zero, so `1.1` <
//! `1.10`, `1.0` == `1` and `001` == `1` (Flyway's `MigrationVersion.compareTo`). Two scripts with
//! equal versions are duplicates.
//!
//! A script's text must be UTF-8 without NUL bytes ([`check_script_text`]): Flyway reads scripts
//! as UTF-8 by default and refuses malformed input, and a NUL byte is not SQL text. The manifest
//! rules and the local runner both apply it, so a release Flyway would refuse never reaches a
//! database.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Flyway's default separator between version and description.
pub const SEPARATOR: &str = "__";
/// Flyway's default SQL suffix.
pub const SUFFIX: &str = ".sql";

/// Why a script name is not a Flyway migration name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} must end with `.sql`")]
    Suffix(String),
    #[error("{0:?} must start with `V` (versioned) or `R__` (repeatable)")]
    Prefix(String),
    #[error("{0:?} must be a file name, not a path")]
    Path(String),
    #[error("{name:?} has an invalid version {version:?}: only digits separated by `.` or `_` are allowed")]
    Version { name: String, version: String },
    #[error(
        "{0:?}: a repeatable migration has no version and must look like `R__<description>.sql`"
    )]
    Repeatable(String),
}

/// Why a script's bytes are not a text Flyway runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptTextError {
    #[error("is not valid UTF-8 (line {line}, byte {offset}): Flyway reads scripts as UTF-8; save the file as UTF-8")]
    NotUtf8 { line: usize, offset: usize },
    #[error("contains a NUL byte (line {line}, byte {offset}), which is not SQL text: remove it")]
    Nul { line: usize, offset: usize },
}

/// Checks that a script is text Flyway runs: UTF-8 (a leading BOM is fine) without NUL bytes.
pub fn check_script_text(bytes: &[u8]) -> Result<(), ScriptTextError> {
    let line_of = |offset: usize| bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
    if let Err(e) = std::str::from_utf8(bytes) {
        let offset = e.valid_up_to();
        return Err(ScriptTextError::NotUtf8 {
            line: line_of(offset),
            offset,
        });
    }
    if let Some(offset) = bytes.iter().position(|b| *b == 0) {
        return Err(ScriptTextError::Nul {
            line: line_of(offset),
            offset,
        });
    }
    Ok(())
}

/// A Flyway migration version, e.g. `2.0.10`.
#[derive(Debug, Clone)]
pub struct Version {
    /// Normalized parts: no leading zeros, trailing zero parts removed (at least one part kept).
    parts: Vec<String>,
    /// The version as Flyway records it: the file's text with `_` turned into `.`.
    text: String,
}

impl Version {
    /// Parses a version the way Flyway does (`1`, `1.1`, `2.0.10`, `1_1`, `001`).
    pub fn parse(s: &str) -> Option<Version> {
        let text = s.replace('_', ".");
        if text.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for part in text.split('.') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let trimmed = part.trim_start_matches('0');
            parts.push(if trimmed.is_empty() { "0" } else { trimmed }.to_string());
        }
        while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
            parts.pop();
        }
        Some(Version { parts, text })
    }

    /// The version as Flyway writes it to `flyway_schema_history.version`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn cmp_number(a: &str, b: &str) -> Ordering {
    // Both are normalized (no leading zeros), so a longer number is larger.
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            let a = self.parts.get(i).map_or("0", String::as_str);
            let b = other.parts.get(i).map_or("0", String::as_str);
            match cmp_number(a, b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}
impl Eq for Version {}
impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What kind of migration a script is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    Versioned(Version),
    Repeatable,
}

/// A parsed Flyway script name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptName {
    /// The file name as given, e.g. `V2_1__add_points.sql`.
    pub file: String,
    pub kind: Kind,
    /// As Flyway records it: `add points`.
    pub description: String,
}

impl ScriptName {
    /// Parses `V<version>__<desc>.sql` or `R__<desc>.sql`.
    pub fn parse(file: &str) -> Result<ScriptName, NameError> {
        if file.contains('/') || file.contains('\\') {
            return Err(NameError::Path(file.to_string()));
        }
        let stem = file
            .strip_suffix(SUFFIX)
            .ok_or_else(|| NameError::Suffix(file.to_string()))?;
        if let Some(rest) = stem.strip_prefix('R') {
            let desc = rest
                .strip_prefix(SEPARATOR)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| NameError::Repeatable(file.to_string()))?;
            return Ok(ScriptName {
                file: file.to_string(),
                kind: Kind::Repeatable,
                description: desc.replace('_', " "),
            });
        }
        let rest = stem
            .strip_prefix('V')
            .ok_or_else(|| NameError::Prefix(file.to_string()))?;
        let (version, desc) = rest.split_once(SEPARATOR).unwrap_or((rest, ""));
        let v = Version::parse(version).ok_or_else(|| NameError::Version {
            name: file.to_string(),
            version: version.to_string(),
        })?;
        Ok(ScriptName {
            file: file.to_string(),
            kind: Kind::Versioned(v),
            description: desc.replace('_', " "),
        })
    }

    pub fn version(&self) -> Option<&Version> {
        match &self.kind {
            Kind::Versioned(v) => Some(v),
            Kind::Repeatable => None,
        }
    }

    pub fn is_repeatable(&self) -> bool {
        self.kind == Kind::Repeatable
    }
}

/// Flyway's apply order: versioned scripts by version, then repeatables by description.
pub fn apply_order(a: &ScriptName, b: &ScriptName) -> Ordering {
    match (&a.kind, &b.kind) {
        (Kind::Versioned(x), Kind::Versioned(y)) => x.cmp(y),
        (Kind::Versioned(_), Kind::Repeatable) => Ordering::Less,
        (Kind::Repeatable, Kind::Versioned(_)) => Ordering::Greater,
        (Kind::Repeatable, Kind::Repeatable) => a.description.cmp(&b.description),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn script_text_must_be_utf8_without_nul() {
        assert_eq!(check_script_text(b"select 1;\n"), Ok(()));
        assert_eq!(check_script_text("\u{feff}select 'é';".as_bytes()), Ok(()));
        assert_eq!(check_script_text(b""), Ok(()));
        assert_eq!(
            check_script_text(b"select 1;\nselect '\xff';"),
            Err(ScriptTextError::NotUtf8 {
                line: 2,
                offset: 18
            })
        );
        assert_eq!(
            check_script_text(b"select 1;\x00"),
            Err(ScriptTextError::Nul { line: 1, offset: 9 })
        );
    }

    #[test]
    fn versions_order_numerically() {
        assert!(v("1.1") < v("1.10"));
        assert!(v("1.2") < v("1.10"));
        assert!(v("2") > v("1.999"));
        assert!(v("2.0.10") > v("2.0.9"));
        assert!(v("20130115113556") > v("2013.1.15"));
        assert!(v("99999999999999999999999") > v("99999999999999999999998"));
    }

    #[test]
    fn trailing_and_leading_zeros_are_equal() {
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("001"), v("1"));
        assert_eq!(v("0"), v("0.0"));
        assert_eq!(v("1_1"), v("1.1"));
        assert_eq!(v("1.0").cmp(&v("1")), Ordering::Equal);
        assert_ne!(v("1.01"), v("1.1.0.1"));
    }

    #[test]
    fn bad_versions() {
        for bad in ["", "1..2", "1.", ".1", "1a", "v1", "1-2", " 1"] {
            assert!(Version::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn versioned_names() {
        let s = ScriptName::parse("V2_1__add_points_table.sql").unwrap();
        assert_eq!(s.version().unwrap().as_str(), "2.1");
        assert_eq!(s.description, "add points table");
        let s = ScriptName::parse("V1.2.3__init.sql").unwrap();
        assert_eq!(s.version(), Some(&v("1.2.3")));
        assert_eq!(s.description, "init");
        // Flyway splits at the first `__`; the rest is description.
        let s = ScriptName::parse("V3__a__b.sql").unwrap();
        assert_eq!(s.description, "a  b");
        let s = ScriptName::parse("V7.sql").unwrap();
        assert_eq!(s.version(), Some(&v("7")));
        assert_eq!(s.description, "");
    }

    #[test]
    fn repeatable_names() {
        let s = ScriptName::parse("R__refresh_views.sql").unwrap();
        assert!(s.is_repeatable());
        assert_eq!(s.description, "refresh views");
        for bad in ["R1__x.sql", "R__.sql", "R.sql", "R_x.sql"] {
            assert!(
                matches!(ScriptName::parse(bad), Err(NameError::Repeatable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_names() {
        assert!(matches!(
            ScriptName::parse("V1__x.txt"),
            Err(NameError::Suffix(_))
        ));
        assert!(matches!(
            ScriptName::parse("U1__x.sql"),
            Err(NameError::Prefix(_))
        ));
        assert!(matches!(
            ScriptName::parse("V1_x__y.sql"),
            Err(NameError::Version { .. })
        ));
        assert!(matches!(
            ScriptName::parse("Vx__y.sql"),
            Err(NameError::Version { .. })
        ));
        assert!(matches!(
            ScriptName::parse("../V1__x.sql"),
            Err(NameError::Path(_))
        ));
        assert!(matches!(
            ScriptName::parse("V__x.sql"),
            Err(NameError::Version { .. })
        ));
    }

    #[test]
    fn apply_order_puts_repeatables_last() {
        let mut names: Vec<ScriptName> = [
            "R__b.sql",
            "V1.10__c.sql",
            "R__a.sql",
            "V1.2__b.sql",
            "V1__a.sql",
        ]
        .iter()
        .map(|n| ScriptName::parse(n).unwrap())
        .collect();
        names.sort_by(apply_order);
        let files: Vec<&str> = names.iter().map(|n| n.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "V1__a.sql",
                "V1.2__b.sql",
                "V1.10__c.sql",
                "R__a.sql",
                "R__b.sql"
            ]
        );
    }
}
