//! JSONPath as ASL uses it: `$…` paths over the state input and `$$…` paths over the context
//! object (RFC 9535 via serde_json_path, with a fast path for plain `$.a.b[0]` paths), and
//! reference paths for `ResultPath`.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::error::{names, StatesError};

/// What a path or payload template is evaluated against.
pub(crate) trait Env {
    fn input(&self) -> &Value;
    fn context(&self) -> &Value;
    /// The context object without `Execution.Input`, which can be large and is rarely read.
    fn context_light(&self) -> &Value {
        self.context()
    }
    /// `$$.Execution.Input`, when the environment can give it without building the context.
    fn execution_input(&self) -> Option<&Value> {
        None
    }
    /// Next deterministic random number for this execution.
    fn random_u64(&self) -> u64;
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone)]
enum Compiled {
    /// Only keys and indices: walked directly, always definite.
    Simple(Vec<Seg>),
    Query {
        query: JsonPath,
        definite: bool,
    },
}

/// A compiled `$…` or `$$…` path.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    raw: String,
    context: bool,
    compiled: Compiled,
}

impl Path {
    pub fn parse(raw: &str) -> Result<Path, String> {
        let (context, body) = if let Some(rest) = raw.strip_prefix("$$") {
            (true, format!("${rest}"))
        } else if raw.starts_with('$') {
            (false, raw.to_string())
        } else {
            return Err(format!(
                "'{raw}' is not a JSONPath (it must start with '$')"
            ));
        };
        let compiled = match simple_segments(&body) {
            Some(segs) => Compiled::Simple(segs),
            None => {
                let query =
                    JsonPath::parse(&body).map_err(|e| format!("invalid JSONPath '{raw}': {e}"))?;
                Compiled::Query {
                    query,
                    definite: is_definite(&body),
                }
            }
        };
        Ok(Path {
            raw: raw.to_string(),
            context,
            compiled,
        })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn is_context(&self) -> bool {
        self.context
    }

    /// The selected value, or `None` when a definite path matches nothing.
    pub fn select(&self, env: &dyn Env) -> Option<Value> {
        if !self.context {
            return self.select_in(env.input());
        }
        if let Compiled::Simple(segs) = &self.compiled {
            match segs.as_slice() {
                [Seg::Key(e), Seg::Key(i), rest @ ..] if e == "Execution" && i == "Input" => {
                    if let Some(input) = env.execution_input() {
                        return walk(input, rest).cloned();
                    }
                }
                [Seg::Key(e), ..] if e != "Execution" => {
                    return walk(env.context_light(), segs).cloned();
                }
                _ => {}
            }
        }
        self.select_in(env.context())
    }

    pub fn select_in(&self, root: &Value) -> Option<Value> {
        match &self.compiled {
            Compiled::Simple(segs) => walk(root, segs).cloned(),
            Compiled::Query { query, definite } => {
                let nodes = query.query(root);
                if *definite {
                    nodes.first().map(|v| (*v).clone())
                } else {
                    Some(Value::Array(nodes.all().into_iter().cloned().collect()))
                }
            }
        }
    }

    /// Selects or fails with `States.Runtime`, naming the field being evaluated.
    pub fn require(&self, env: &dyn Env, field: &str) -> Result<Value, StatesError> {
        self.select(env).ok_or_else(|| {
            let what = if self.context {
                "the context object".to_string()
            } else {
                format!("the input '{}'", truncate(&env.input().to_string()))
            };
            StatesError::runtime(format!(
                "The JSONPath '{}' specified for the field '{}' could not be found in {}",
                self.raw, field, what
            ))
        })
    }
}

pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 256;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

fn walk<'a>(mut v: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    for s in segs {
        v = match (s, v) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// A path is indefinite when it can select several nodes.
fn is_definite(body: &str) -> bool {
    let mut in_quote: Option<char> = None;
    let mut depth = 0;
    let mut prev = '\0';
    for c in body.chars() {
        if let Some(q) = in_quote {
            if c == q && prev != '\\' {
                in_quote = None;
            }
        } else {
            match c {
                '\'' | '"' => in_quote = Some(c),
                '[' => depth += 1,
                ']' => depth -= 1,
                '*' | '?' => return false,
                ':' | ',' if depth > 0 => return false,
                '.' if prev == '.' => return false,
                _ => {}
            }
        }
        prev = c;
    }
    true
}

/// Parses `$`, `$.a.b`, `$['a'][0]`, `$.a[2].b` into segments; `None` for anything else.
pub(crate) fn simple_segments(body: &str) -> Option<Vec<Seg>> {
    let rest = body.strip_prefix('$')?;
    let mut segs = Vec::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                segs.push(Seg::Key(chars[start..i].iter().collect()));
            }
            '[' => {
                i += 1;
                if i < chars.len() && (chars[i] == '\'' || chars[i] == '"') {
                    let q = chars[i];
                    i += 1;
                    let mut key = String::new();
                    while i < chars.len() && chars[i] != q {
                        if chars[i] == '\\' {
                            return None;
                        }
                        key.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                    if i >= chars.len() || chars[i] != ']' {
                        return None;
                    }
                    i += 1;
                    segs.push(Seg::Key(key));
                } else {
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i == start || i >= chars.len() || chars[i] != ']' {
                        return None;
                    }
                    let n: String = chars[start..i].iter().collect();
                    segs.push(Seg::Index(n.parse().ok()?));
                    i += 1;
                }
            }
            _ => return None,
        }
    }
    Some(segs)
}

/// `ResultPath`: where the result goes in the state's raw input.
#[derive(Debug, Clone)]
pub(crate) enum ResultPath {
    /// `$`, also the default: the result replaces the input.
    Replace,
    /// `null`: the result is discarded, the input passes through.
    Discard,
    At(String, Vec<Seg>),
}

impl ResultPath {
    pub fn parse(raw: &str) -> Result<ResultPath, String> {
        if raw.starts_with("$$") {
            return Err(format!(
                "ResultPath '{raw}' cannot refer to the context object"
            ));
        }
        match simple_segments(raw) {
            Some(segs) if segs.is_empty() => Ok(ResultPath::Replace),
            Some(segs) => Ok(ResultPath::At(raw.to_string(), segs)),
            None => Err(format!(
                "ResultPath '{raw}' must be a reference path (only keys and indices, like $.a.b[0])"
            )),
        }
    }

    pub fn apply(&self, input: Value, result: Value) -> Result<Value, StatesError> {
        match self {
            ResultPath::Replace => Ok(result),
            ResultPath::Discard => Ok(input),
            ResultPath::At(raw, segs) => {
                let mut root = input;
                set_at(&mut root, segs, result).map_err(|why| {
                    StatesError::new(
                        names::RESULT_PATH_MATCH_FAILURE,
                        format!("Unable to apply ResultPath '{raw}' to the input: {why}"),
                    )
                })?;
                Ok(root)
            }
        }
    }
}

fn set_at(root: &mut Value, segs: &[Seg], value: Value) -> Result<(), String> {
    let Some((first, rest)) = segs.split_first() else {
        *root = value;
        return Ok(());
    };
    match first {
        Seg::Key(k) => {
            let Value::Object(m) = root else {
                return Err(format!("cannot set field '{k}' on a non-object value"));
            };
            if rest.is_empty() {
                m.insert(k.clone(), value);
                return Ok(());
            }
            let child = m
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() && !child.is_array() {
                *child = Value::Object(Map::new());
            }
            set_at(child, rest, value)
        }
        Seg::Index(i) => {
            let Value::Array(a) = root else {
                return Err(format!("cannot set index [{i}] on a non-array value"));
            };
            match a.get_mut(*i) {
                Some(child) => set_at(child, rest, value),
                None => Err(format!("index [{i}] is out of bounds")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct E(Value, Value);
    impl Env for E {
        fn input(&self) -> &Value {
            &self.0
        }
        fn context(&self) -> &Value {
            &self.1
        }
        fn random_u64(&self) -> u64 {
            4
        }
    }

    #[test]
    fn definite_and_indefinite_paths() {
        let env = E(
            json!({"a": {"b": [1, 2, {"c": 3}]}, "items": [{"id": 1}, {"id": 2}]}),
            json!({"State": {"Name": "S"}}),
        );
        let p = |s: &str| Path::parse(s).unwrap().select(&env);
        assert_eq!(p("$.a.b[2].c"), Some(json!(3)));
        assert_eq!(p("$['a']['b'][0]"), Some(json!(1)));
        assert_eq!(p("$.items[*].id"), Some(json!([1, 2])));
        assert_eq!(p("$.items[?(@.id > 1)]"), Some(json!([{"id": 2}])));
        assert_eq!(p("$..id"), Some(json!([1, 2])));
        assert_eq!(p("$.nope"), None);
        assert_eq!(p("$$.State.Name"), Some(json!("S")));
        assert!(Path::parse("a.b").is_err());
    }

    #[test]
    fn result_path_sets_and_creates() {
        let rp = ResultPath::parse("$.x.y").unwrap();
        assert_eq!(
            rp.apply(json!({"a": 1}), json!(2)).unwrap(),
            json!({"a": 1, "x": {"y": 2}})
        );
        let err = rp.apply(json!("str"), json!(2)).unwrap_err();
        assert_eq!(err.error, names::RESULT_PATH_MATCH_FAILURE);
        assert!(ResultPath::parse("$.a[*]").is_err());
        assert_eq!(
            ResultPath::Discard.apply(json!(1), json!(2)).unwrap(),
            json!(1)
        );
    }
}
