//! Payload templates (`Parameters`, `ItemSelector`, `ResultSelector`, `Result`-free): objects whose
//! keys ending in `.$` take their value from a path or an intrinsic function.

use serde_json::{Map, Value};

use crate::error::StatesError;
use crate::intrinsics::{self, Call};
use crate::jsonpath::{Env, Path};

#[derive(Debug, Clone)]
pub(crate) enum Template {
    /// No dynamic part anywhere below: cloned as is.
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path {
        field: String,
        path: Path,
    },
    Intrinsic(Box<Call>),
}

impl Template {
    /// Compiles a template; errors name the offending field.
    pub fn compile(v: &Value) -> Result<Template, String> {
        if !has_dynamic(v) {
            return Ok(Template::Literal(v.clone()));
        }
        match v {
            Value::Object(m) => {
                let mut fields = Vec::with_capacity(m.len());
                for (k, v) in m {
                    if let Some(name) = k.strip_suffix(".$") {
                        let Value::String(expr) = v else {
                            return Err(format!(
                                "the value of field '{k}' must be a path or an intrinsic function string"
                            ));
                        };
                        fields.push((name.to_string(), compile_expr(k, expr)?));
                    } else {
                        fields.push((k.clone(), Template::compile(v)?));
                    }
                }
                Ok(Template::Object(fields))
            }
            Value::Array(a) => Ok(Template::Array(
                a.iter().map(Template::compile).collect::<Result<_, _>>()?,
            )),
            other => Ok(Template::Literal(other.clone())),
        }
    }

    pub fn eval(&self, env: &dyn Env) -> Result<Value, StatesError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.eval(env)?);
                }
                Ok(Value::Object(m))
            }
            Template::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(env))
                    .collect::<Result<_, _>>()?,
            )),
            Template::Path { field, path } => path.require(env, field),
            Template::Intrinsic(call) => call.eval(env),
        }
    }
}

/// A `.$` value: a path or an intrinsic function.
pub(crate) fn compile_expr(field: &str, expr: &str) -> Result<Template, String> {
    if expr.starts_with("States.") {
        intrinsics::parse(expr)
            .map(|c| Template::Intrinsic(Box::new(c)))
            .map_err(|e| format!("field '{field}': {e}"))
    } else if expr.starts_with('$') {
        Path::parse(expr)
            .map(|path| Template::Path {
                field: field.to_string(),
                path,
            })
            .map_err(|e| format!("field '{field}': {e}"))
    } else {
        Err(format!(
            "field '{field}' ends in '.$' but its value '{expr}' is neither a path nor an intrinsic function"
        ))
    }
}

fn has_dynamic(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k.ends_with(".$") || has_dynamic(v)),
        Value::Array(a) => a.iter().any(has_dynamic),
        _ => false,
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
            7
        }
    }

    #[test]
    fn evaluates_nested_paths_context_and_intrinsics() {
        let t = Template::compile(&json!({
            "static": {"x": 1},
            "name.$": "$.who",
            "nested": {"ctx.$": "$$.State.Name", "list": [{"v.$": "$.n"}]},
            "msg.$": "States.Format('hello {}', $.who)"
        }))
        .unwrap();
        let env = E(
            json!({"who": "w", "n": 5}),
            json!({"State": {"Name": "S1"}}),
        );
        assert_eq!(
            t.eval(&env).unwrap(),
            json!({"static": {"x": 1}, "name": "w", "nested": {"ctx": "S1", "list": [{"v": 5}]}, "msg": "hello w"})
        );
    }

    #[test]
    fn missing_path_is_runtime_error_and_bad_values_fail_compile() {
        let t = Template::compile(&json!({"a.$": "$.missing"})).unwrap();
        let err = t.eval(&E(json!({}), json!({}))).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert!(err.cause.contains("'a.$'") || err.cause.contains("'a'"));
        assert!(Template::compile(&json!({"a.$": 3})).is_err());
        assert!(Template::compile(&json!({"a.$": "plain"})).is_err());
    }
}
