//! Choice rules: compiled from the definition, evaluated against the Choice state's input.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use crate::error::StatesError;
use crate::jsonpath::{Env, Path};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum Test {
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Compare {
        var: Path,
        kind: Kind,
        cmp: Cmp,
        operand: Operand,
    },
    Matches {
        var: Path,
        pattern: Vec<PatTok>,
    },
    Test {
        var: Path,
        test: Test,
        expected: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PatTok {
    Lit(char),
    Star,
}

const COMPARATORS: &[(&str, Kind, Cmp)] = &[
    ("StringEquals", Kind::String, Cmp::Eq),
    ("StringLessThan", Kind::String, Cmp::Lt),
    ("StringGreaterThan", Kind::String, Cmp::Gt),
    ("StringLessThanEquals", Kind::String, Cmp::Le),
    ("StringGreaterThanEquals", Kind::String, Cmp::Ge),
    ("NumericEquals", Kind::Numeric, Cmp::Eq),
    ("NumericLessThan", Kind::Numeric, Cmp::Lt),
    ("NumericGreaterThan", Kind::Numeric, Cmp::Gt),
    ("NumericLessThanEquals", Kind::Numeric, Cmp::Le),
    ("NumericGreaterThanEquals", Kind::Numeric, Cmp::Ge),
    ("BooleanEquals", Kind::Boolean, Cmp::Eq),
    ("TimestampEquals", Kind::Timestamp, Cmp::Eq),
    ("TimestampLessThan", Kind::Timestamp, Cmp::Lt),
    ("TimestampGreaterThan", Kind::Timestamp, Cmp::Gt),
    ("TimestampLessThanEquals", Kind::Timestamp, Cmp::Le),
    ("TimestampGreaterThanEquals", Kind::Timestamp, Cmp::Ge),
];

const TESTS: &[(&str, Test)] = &[
    ("IsNull", Test::IsNull),
    ("IsPresent", Test::IsPresent),
    ("IsNumeric", Test::IsNumeric),
    ("IsString", Test::IsString),
    ("IsBoolean", Test::IsBoolean),
    ("IsTimestamp", Test::IsTimestamp),
];

/// Keys a choice rule may carry besides its operator.
const STRUCTURAL: &[&str] = &["Variable", "Next", "Comment", "Assign", "Output"];

impl Rule {
    pub fn parse(v: &Value) -> Result<Rule, String> {
        let Value::Object(m) = v else {
            return Err("a choice rule must be an object".into());
        };
        if let Some(list) = m.get("And").or_else(|| m.get("Or")) {
            let Value::Array(items) = list else {
                return Err("And/Or must hold an array of rules".into());
            };
            if items.is_empty() {
                return Err("And/Or must hold at least one rule".into());
            }
            let rules = items
                .iter()
                .map(Rule::parse)
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if m.contains_key("And") {
                Rule::And(rules)
            } else {
                Rule::Or(rules)
            });
        }
        if let Some(inner) = m.get("Not") {
            return Ok(Rule::Not(Box::new(Rule::parse(inner)?)));
        }
        let var = match m.get("Variable") {
            Some(Value::String(s)) => Path::parse(s)?,
            Some(_) => return Err("Variable must be a string path".into()),
            None => return Err("a choice rule needs a Variable, And, Or or Not".into()),
        };
        let ops: Vec<(&String, &Value)> = m
            .iter()
            .filter(|(k, _)| !STRUCTURAL.contains(&k.as_str()))
            .collect();
        if ops.len() != 1 {
            return Err(format!(
                "a choice rule must have exactly one comparison operator, found {}",
                if ops.is_empty() {
                    "none".to_string()
                } else {
                    ops.iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        let (op, operand) = ops[0];
        if op == "StringMatches" {
            let Value::String(p) = operand else {
                return Err("StringMatches needs a string pattern".into());
            };
            return Ok(Rule::Matches {
                var,
                pattern: compile_pattern(p),
            });
        }
        if let Some((_, test)) = TESTS.iter().find(|(n, _)| n == op) {
            let Value::Bool(expected) = operand else {
                return Err(format!("{op} needs a boolean value"));
            };
            return Ok(Rule::Test {
                var,
                test: *test,
                expected: *expected,
            });
        }
        let (base, is_path) = match op.strip_suffix("Path") {
            Some(b) => (b, true),
            None => (op.as_str(), false),
        };
        let Some((_, kind, cmp)) = COMPARATORS.iter().find(|(n, _, _)| *n == base) else {
            return Err(format!("unknown comparison operator '{op}'"));
        };
        let operand = if is_path {
            match operand {
                Value::String(s) => Operand::Path(Path::parse(s)?),
                _ => return Err(format!("{op} needs a path string")),
            }
        } else {
            let ok = match kind {
                Kind::String => operand.is_string(),
                Kind::Numeric => operand.is_number(),
                Kind::Boolean => operand.is_boolean(),
                Kind::Timestamp => operand.as_str().and_then(parse_ts).is_some(),
            };
            if !ok {
                return Err(format!("{op} has a value of the wrong type: {operand}"));
            }
            Operand::Literal(operand.clone())
        };
        Ok(Rule::Compare {
            var,
            kind: *kind,
            cmp: *cmp,
            operand,
        })
    }

    pub fn eval(&self, env: &dyn Env) -> Result<bool, StatesError> {
        match self {
            Rule::And(rules) => {
                for r in rules {
                    if !r.eval(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for r in rules {
                    if r.eval(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(r) => Ok(!r.eval(env)?),
            Rule::Test {
                var,
                test,
                expected,
            } => {
                let v = var.select(env);
                let actual = match (test, &v) {
                    (Test::IsPresent, v) => v.is_some(),
                    (_, None) => return Err(invalid_path(var)),
                    (Test::IsNull, Some(v)) => v.is_null(),
                    (Test::IsNumeric, Some(v)) => v.is_number(),
                    (Test::IsString, Some(v)) => v.is_string(),
                    (Test::IsBoolean, Some(v)) => v.is_boolean(),
                    (Test::IsTimestamp, Some(v)) => v.as_str().and_then(parse_ts).is_some(),
                };
                Ok(actual == *expected)
            }
            Rule::Matches { var, pattern } => {
                let v = var.select(env).ok_or_else(|| invalid_path(var))?;
                Ok(v.as_str().is_some_and(|s| matches(pattern, s)))
            }
            Rule::Compare {
                var,
                kind,
                cmp,
                operand,
            } => {
                let v = var.select(env).ok_or_else(|| invalid_path(var))?;
                let rhs = match operand {
                    Operand::Literal(l) => l.clone(),
                    Operand::Path(p) => p.select(env).ok_or_else(|| invalid_path(p))?,
                };
                let ord = match kind {
                    Kind::String => match (v.as_str(), rhs.as_str()) {
                        (Some(a), Some(b)) => Some(a.cmp(b)),
                        _ => None,
                    },
                    Kind::Numeric => match (v.as_f64(), rhs.as_f64()) {
                        (Some(a), Some(b)) => a.partial_cmp(&b),
                        _ => None,
                    },
                    Kind::Boolean => match (v.as_bool(), rhs.as_bool()) {
                        (Some(a), Some(b)) => Some(a.cmp(&b)),
                        _ => None,
                    },
                    Kind::Timestamp => {
                        match (
                            v.as_str().and_then(parse_ts),
                            rhs.as_str().and_then(parse_ts),
                        ) {
                            (Some(a), Some(b)) => Some(a.cmp(&b)),
                            _ => None,
                        }
                    }
                };
                Ok(ord.is_some_and(|o| match cmp {
                    Cmp::Eq => o == Ordering::Equal,
                    Cmp::Lt => o == Ordering::Less,
                    Cmp::Gt => o == Ordering::Greater,
                    Cmp::Le => o != Ordering::Greater,
                    Cmp::Ge => o != Ordering::Less,
                }))
            }
        }
    }
}

fn invalid_path(p: &Path) -> StatesError {
    StatesError::runtime(format!(
        "Invalid path '{}': The choice state's condition path references an invalid value.",
        p.raw()
    ))
}

pub(crate) fn parse_ts(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// `*` matches any run of characters; `\*` is a literal star and `\\` a literal backslash.
fn compile_pattern(p: &str) -> Vec<PatTok> {
    let mut out = Vec::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => out.push(PatTok::Lit(e)),
                None => out.push(PatTok::Lit('\\')),
            },
            '*' => out.push(PatTok::Star),
            c => out.push(PatTok::Lit(c)),
        }
    }
    out
}

fn matches(pat: &[PatTok], s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    // Classic wildcard matching with backtracking to the last star.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < chars.len() {
        match pat.get(p) {
            Some(PatTok::Lit(c)) if *c == chars[i] => {
                p += 1;
                i += 1;
            }
            Some(PatTok::Star) => {
                star = Some((p, i));
                p += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|t| *t == PatTok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct E(Value);
    impl Env for E {
        fn input(&self) -> &Value {
            &self.0
        }
        fn context(&self) -> &Value {
            &self.0
        }
        fn random_u64(&self) -> u64 {
            0
        }
    }

    fn check(rule: Value, input: Value) -> Result<bool, StatesError> {
        Rule::parse(&rule).unwrap().eval(&E(input))
    }

    #[test]
    fn string_matches_with_escapes() {
        let m = |p: &str, s: &str| matches(&compile_pattern(p), s);
        assert!(m("log-*.txt", "log-2024.txt"));
        assert!(m("*", ""));
        assert!(!m("log-*.txt", "log-2024.csv"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\\*", r"a\anything"));
        assert!(m("*a*b*", "xxaybz"));
    }

    #[test]
    fn comparisons_and_paths() {
        let i = json!({"n": 5, "m": 5.0, "s": "b", "t": "2024-01-01T00:00:00Z", "u": "2024-01-01T01:00:00+01:00", "b": true});
        assert!(check(
            json!({"Variable": "$.n", "NumericEqualsPath": "$.m"}),
            i.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.n", "NumericLessThanEquals": 5}),
            i.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.s", "StringGreaterThan": "a"}),
            i.clone()
        )
        .unwrap());
        assert!(check(
            json!({"Variable": "$.t", "TimestampEqualsPath": "$.u"}),
            i.clone()
        )
        .unwrap());
        assert!(check(json!({"Variable": "$.b", "BooleanEquals": true}), i.clone()).unwrap());
        // Type mismatch is false, not an error.
        assert!(!check(json!({"Variable": "$.s", "NumericEquals": 1}), i.clone()).unwrap());
        assert!(check(
            json!({"Not": {"Variable": "$.x", "IsPresent": true}}),
            i.clone()
        )
        .unwrap());
        assert!(check(json!({"And": [{"Variable": "$.t", "IsTimestamp": true}, {"Variable": "$.n", "IsNumeric": true}]}), i.clone()).unwrap());
        assert!(check(json!({"Or": [{"Variable": "$.s", "IsNull": true}, {"Variable": "$.s", "IsString": true}]}), i.clone()).unwrap());
        let err = check(json!({"Variable": "$.x", "StringEquals": "a"}), i).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
    }

    #[test]
    fn parse_rejects_bad_rules() {
        assert!(Rule::parse(&json!({"Variable": "$.a", "StringEquals": 1})).is_err());
        assert!(Rule::parse(&json!({"Variable": "$.a"})).is_err());
        assert!(Rule::parse(&json!({"Variable": "$.a", "Bogus": 1})).is_err());
        assert!(
            Rule::parse(&json!({"Variable": "$.a", "IsNull": true, "IsString": true})).is_err()
        );
    }
}
