//! Intrinsic functions (`States.Format(...)` and friends): a parser that compiles the
//! expression once when the definition is loaded, and an evaluator.

use base64::Engine as _;
use serde_json::{Map, Number, Value};
use sha2::Digest;

use crate::error::StatesError;
use crate::jsonpath::{Env, Path};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "States.Format" => Func::Format,
            "States.StringToJson" => Func::StringToJson,
            "States.JsonToString" => Func::JsonToString,
            "States.Array" => Func::Array,
            "States.ArrayPartition" => Func::ArrayPartition,
            "States.ArrayContains" => Func::ArrayContains,
            "States.ArrayRange" => Func::ArrayRange,
            "States.ArrayGetItem" => Func::ArrayGetItem,
            "States.ArrayLength" => Func::ArrayLength,
            "States.ArrayUnique" => Func::ArrayUnique,
            "States.Base64Encode" => Func::Base64Encode,
            "States.Base64Decode" => Func::Base64Decode,
            "States.Hash" => Func::Hash,
            "States.JsonMerge" => Func::JsonMerge,
            "States.MathRandom" => Func::MathRandom,
            "States.MathAdd" => Func::MathAdd,
            "States.StringSplit" => Func::StringSplit,
            "States.UUID" => Func::Uuid,
            _ => return None,
        })
    }

    /// Allowed argument counts (min, max).
    fn arity(self) -> (usize, usize) {
        match self {
            Func::Format => (1, usize::MAX),
            Func::Array => (0, usize::MAX),
            Func::StringToJson
            | Func::JsonToString
            | Func::ArrayLength
            | Func::ArrayUnique
            | Func::Base64Encode
            | Func::Base64Decode => (1, 1),
            Func::ArrayPartition
            | Func::ArrayContains
            | Func::ArrayGetItem
            | Func::Hash
            | Func::MathAdd
            | Func::StringSplit => (2, 2),
            Func::ArrayRange | Func::JsonMerge => (3, 3),
            Func::MathRandom => (2, 3),
            Func::Uuid => (0, 0),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// `value` is unescaped; `raw` keeps the escapes, which `States.Format` needs.
    Str {
        value: String,
        raw: String,
    },
    Lit(Value),
    Path(Path),
    Call(Box<Call>),
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    name: String,
    func: Func,
    args: Vec<Arg>,
}

/// Parses a whole intrinsic expression such as `States.Format('{}', $.a)`.
pub(crate) fn parse(text: &str) -> Result<Call, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    p.ws();
    let call = p.call()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected text after the intrinsic function at offset {} in '{text}'",
            p.i
        ));
    }
    Ok(call)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] as char).is_whitespace() {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at offset {} in '{}'", self.i, self.text)
    }

    fn call(&mut self) -> Result<Call, String> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'.')
        {
            self.i += 1;
        }
        let name = &self.text[start..self.i];
        let func = Func::from_name(name)
            .ok_or_else(|| format!("unknown intrinsic function '{name}' in '{}'", self.text))?;
        self.ws();
        if self.s.get(self.i) != Some(&b'(') {
            return Err(self.err("expected '('"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b')') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                args.push(self.arg()?);
                self.ws();
                match self.s.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.err("expected ',' or ')'")),
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(format!(
                "{name} takes {} argument(s), got {} in '{}'",
                if min == max {
                    min.to_string()
                } else if max == usize::MAX {
                    format!("at least {min}")
                } else {
                    format!("{min} to {max}")
                },
                args.len(),
                self.text
            ));
        }
        Ok(Call {
            name: name.to_string(),
            func,
            args,
        })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        match self.s.get(self.i) {
            Some(b'\'') => self.string(),
            Some(b'$') => self.path(),
            Some(b'S') => Ok(Arg::Call(Box::new(self.call()?))),
            Some(c) if c.is_ascii_digit() || *c == b'-' => self.number(),
            Some(_) => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.text[self.i..].starts_with(word) {
                        self.i += word.len();
                        return Ok(Arg::Lit(v));
                    }
                }
                Err(self.err("unexpected argument"))
            }
            None => Err(self.err("unexpected end of expression")),
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.i += 1;
        let start = self.i;
        let mut value = String::new();
        let rest = &self.text[start..];
        let mut chars = rest.char_indices();
        while let Some((off, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => value.push(e),
                    None => break,
                },
                '\'' => {
                    self.i = start + off + 1;
                    return Ok(Arg::Str {
                        value,
                        raw: rest[..off].to_string(),
                    });
                }
                c => value.push(c),
            }
        }
        Err(format!("unterminated string literal in '{}'", self.text))
    }

    fn number(&mut self) -> Result<Arg, String> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_digit() || b"-+.eE".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        let n: Number = serde_json::from_str(&self.text[start..self.i])
            .map_err(|_| self.err("invalid number"))?;
        Ok(Arg::Lit(Value::Number(n)))
    }

    fn path(&mut self) -> Result<Arg, String> {
        let start = self.i;
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if let Some(q) = quote {
                if c == b'\\' {
                    self.i += 1;
                } else if c == q {
                    quote = None;
                }
            } else {
                match c {
                    b'\'' | b'"' => quote = Some(c),
                    b'[' | b'(' => depth += 1,
                    b']' => depth -= 1,
                    b')' if depth > 0 => depth -= 1,
                    b',' | b')' if depth == 0 => break,
                    _ => {}
                }
            }
            self.i += 1;
        }
        let raw = self.text[start..self.i].trim();
        Ok(Arg::Path(Path::parse(raw)?))
    }
}

impl Call {
    pub fn eval(&self, env: &dyn Env) -> Result<Value, StatesError> {
        let name = self.name.as_str();
        if self.func == Func::Format {
            return self.format(env);
        }
        let args = self
            .args
            .iter()
            .map(|a| a.eval(env))
            .collect::<Result<Vec<_>, _>>()?;
        let fail = |why: String| Err(StatesError::intrinsic(format!("{name}: {why}")));
        match self.func {
            Func::Format => unreachable_format(),
            Func::StringToJson => {
                let s = want_str(name, &args[0])?;
                if s.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(s)
                    .or_else(|e| fail(format!("the string is not valid JSON: {e}")))
            }
            Func::JsonToString => Ok(Value::String(args[0].to_string())),
            Func::Array => Ok(Value::Array(args)),
            Func::ArrayPartition => {
                let arr = want_array(name, &args[0])?;
                let size = want_int(name, &args[1])?;
                if size <= 0 {
                    return fail("the chunk size must be a positive integer".into());
                }
                Ok(Value::Array(
                    arr.chunks(size as usize)
                        .map(|c| Value::Array(c.to_vec()))
                        .collect(),
                ))
            }
            Func::ArrayContains => {
                let arr = want_array(name, &args[0])?;
                Ok(Value::Bool(arr.iter().any(|v| json_eq(v, &args[1]))))
            }
            Func::ArrayRange => {
                let (start, end, step) = (
                    want_int(name, &args[0])?,
                    want_int(name, &args[1])?,
                    want_int(name, &args[2])?,
                );
                if step == 0 {
                    return fail("the step must not be 0".into());
                }
                let mut out = Vec::new();
                let mut x = start;
                while (step > 0 && x <= end) || (step < 0 && x >= end) {
                    out.push(Value::from(x));
                    if out.len() > 1000 {
                        return fail("the range has more than 1000 elements".into());
                    }
                    x += step;
                }
                Ok(Value::Array(out))
            }
            Func::ArrayGetItem => {
                let arr = want_array(name, &args[0])?;
                let idx = want_int(name, &args[1])?;
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| arr.get(i).cloned())
                    .map_or_else(|| fail(format!("index {idx} is out of bounds")), Ok)
            }
            Func::ArrayLength => Ok(Value::from(want_array(name, &args[0])?.len())),
            Func::ArrayUnique => {
                let arr = want_array(name, &args[0])?;
                let mut out: Vec<Value> = Vec::new();
                for v in arr {
                    if !out.iter().any(|o| json_eq(o, v)) {
                        out.push(v.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            Func::Base64Encode => {
                let s = want_str(name, &args[0])?;
                if s.len() > 10_000 {
                    return fail("the input is longer than 10000 characters".into());
                }
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
                ))
            }
            Func::Base64Decode => {
                let s = want_str(name, &args[0])?;
                if s.len() > 10_000 {
                    return fail("the input is longer than 10000 characters".into());
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|e| StatesError::intrinsic(format!("{name}: invalid base64: {e}")))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .or_else(|_| fail("the decoded data is not UTF-8".into()))
            }
            Func::Hash => {
                let data = match &args[0] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if data.len() > 10_000 {
                    return fail("the input is longer than 10000 characters".into());
                }
                let algo = want_str(name, &args[1])?;
                let bytes = data.as_bytes();
                let hex = match algo {
                    "MD5" => to_hex(&md5::Md5::digest(bytes)),
                    "SHA-1" => sha1_smol::Sha1::from(bytes).digest().to_string(),
                    "SHA-256" => to_hex(&sha2::Sha256::digest(bytes)),
                    "SHA-384" => to_hex(&sha2::Sha384::digest(bytes)),
                    "SHA-512" => to_hex(&sha2::Sha512::digest(bytes)),
                    other => {
                        return fail(format!(
                        "unsupported algorithm '{other}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                    ))
                    }
                };
                Ok(Value::String(hex))
            }
            Func::JsonMerge => {
                let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                    return fail("both arguments must be JSON objects".into());
                };
                if args[2] != Value::Bool(false) {
                    return fail(
                        "only shallow merging is supported: the third argument must be false"
                            .into(),
                    );
                }
                let mut out: Map<String, Value> = a.clone();
                for (k, v) in b {
                    out.insert(k.clone(), v.clone());
                }
                Ok(Value::Object(out))
            }
            Func::MathRandom => {
                let start = want_int(name, &args[0])?;
                let end = want_int(name, &args[1])?;
                if end <= start {
                    return fail("the end must be greater than the start".into());
                }
                let r = match args.get(2) {
                    Some(seed) => {
                        use rand::{Rng, SeedableRng};
                        let seed = want_int(name, seed)?;
                        rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64).gen::<u64>()
                    }
                    None => env.random_u64(),
                };
                let span = (end - start) as u64;
                Ok(Value::from(start + (r % span) as i64))
            }
            Func::MathAdd => {
                let a = want_int(name, &args[0])?;
                let b = want_int(name, &args[1])?;
                a.checked_add(b)
                    .map(Value::from)
                    .map_or_else(|| fail("integer overflow".into()), Ok)
            }
            Func::StringSplit => {
                let s = want_str(name, &args[0])?;
                let delims = want_str(name, &args[1])?;
                Ok(Value::Array(
                    s.split(|c| delims.contains(c))
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                ))
            }
            Func::Uuid => {
                let hi = env.random_u64();
                let lo = env.random_u64();
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&hi.to_be_bytes());
                bytes[8..].copy_from_slice(&lo.to_be_bytes());
                Ok(Value::String(
                    uuid::Builder::from_random_bytes(bytes)
                        .into_uuid()
                        .to_string(),
                ))
            }
        }
    }

    fn format(&self, env: &dyn Env) -> Result<Value, StatesError> {
        let fail = |why: String| StatesError::intrinsic(format!("States.Format: {why}"));
        let template = match &self.args[0] {
            Arg::Str { raw, .. } => raw.clone(),
            other => match other.eval(env)? {
                Value::String(s) => s,
                _ => return Err(fail("the template must be a string".into())),
            },
        };
        let values = self.args[1..]
            .iter()
            .map(|a| a.eval(env))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = String::new();
        let mut next = 0;
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(e) = chars.next() {
                        out.push(e);
                    }
                }
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    let v = values.get(next).ok_or_else(|| {
                        fail(format!(
                            "the template has more placeholders than the {} argument(s) given",
                            values.len()
                        ))
                    })?;
                    match v {
                        Value::String(s) => out.push_str(s),
                        Value::Array(_) | Value::Object(_) => {
                            return Err(fail(
                                "arguments must be strings, numbers, booleans or null".into(),
                            ))
                        }
                        other => out.push_str(&other.to_string()),
                    }
                    next += 1;
                }
                c => out.push(c),
            }
        }
        if next != values.len() {
            return Err(fail(format!(
                "the template has {next} placeholder(s) but {} argument(s) were given",
                values.len()
            )));
        }
        Ok(Value::String(out))
    }
}

impl Arg {
    fn eval(&self, env: &dyn Env) -> Result<Value, StatesError> {
        match self {
            Arg::Str { value, .. } => Ok(Value::String(value.clone())),
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Path(p) => p.select(env).ok_or_else(|| {
                StatesError::runtime(format!(
                    "The JSONPath '{}' used as an intrinsic function argument could not be found",
                    p.raw()
                ))
            }),
            Arg::Call(c) => c.eval(env),
        }
    }
}

fn unreachable_format() -> Result<Value, StatesError> {
    Err(StatesError::intrinsic(
        "States.Format evaluated out of order",
    ))
}

fn want_str<'a>(name: &str, v: &'a Value) -> Result<&'a str, StatesError> {
    v.as_str().ok_or_else(|| {
        StatesError::intrinsic(format!("{name}: expected a string argument, got {v}"))
    })
}

fn want_array<'a>(name: &str, v: &'a Value) -> Result<&'a Vec<Value>, StatesError> {
    v.as_array().ok_or_else(|| {
        StatesError::intrinsic(format!("{name}: expected an array argument, got {v}"))
    })
}

fn want_int(name: &str, v: &Value) -> Result<i64, StatesError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| {
                StatesError::intrinsic(format!("{name}: expected an integer argument, got {v}"))
            }),
        _ => Err(StatesError::intrinsic(format!(
            "{name}: expected an integer argument, got {v}"
        ))),
    }
}

/// JSON equality where 1 and 1.0 are equal.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
            0x0123_4567_89ab_cdef
        }
    }

    fn ev(expr: &str, input: Value) -> Result<Value, StatesError> {
        parse(expr).map_err(StatesError::intrinsic)?.eval(&E(input))
    }

    #[test]
    fn format_with_escapes_and_nesting() {
        let input = json!({"name": "Ada", "n": 3});
        assert_eq!(
            ev(
                r"States.Format('Hi {}, \{literal\} it\'s {}', $.name, States.MathAdd($.n, 1))",
                input.clone()
            )
            .unwrap(),
            json!("Hi Ada, {literal} it's 4")
        );
        assert_eq!(
            ev("States.Format('{} {}', $.name)", input)
                .unwrap_err()
                .error,
            "States.IntrinsicFailure"
        );
    }

    #[test]
    fn array_functions() {
        let i = json!({"a": [1, 2, 2, 3, "x", "x"]});
        assert_eq!(
            ev("States.ArrayUnique($.a)", i.clone()).unwrap(),
            json!([1, 2, 3, "x"])
        );
        assert_eq!(
            ev("States.ArrayPartition($.a, 4)", i.clone()).unwrap(),
            json!([[1, 2, 2, 3], ["x", "x"]])
        );
        assert_eq!(
            ev("States.ArrayContains($.a, 3)", i.clone()).unwrap(),
            json!(true)
        );
        assert_eq!(
            ev("States.ArrayRange(1, 9, 2)", i.clone()).unwrap(),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            ev("States.ArrayGetItem($.a, 4)", i.clone()).unwrap(),
            json!("x")
        );
        assert_eq!(ev("States.ArrayLength($.a)", i.clone()).unwrap(), json!(6));
        assert_eq!(
            ev("States.Array(1, 'two', null, true)", i).unwrap(),
            json!([1, "two", null, true])
        );
    }

    #[test]
    fn string_and_json_functions() {
        let i = json!({"s": "{\"k\": [1]}", "o": {"a": 1, "b": 1}, "p": {"b": 2}});
        assert_eq!(
            ev("States.StringToJson($.s)", i.clone()).unwrap(),
            json!({"k": [1]})
        );
        assert_eq!(
            ev("States.JsonToString($.o)", i.clone()).unwrap(),
            json!("{\"a\":1,\"b\":1}")
        );
        assert_eq!(
            ev("States.JsonMerge($.o, $.p, false)", i.clone()).unwrap(),
            json!({"a": 1, "b": 2})
        );
        assert_eq!(
            ev("States.StringSplit('a.b+c,,d', '.+,')", i.clone()).unwrap(),
            json!(["a", "b", "c", "d"])
        );
        assert_eq!(
            ev("States.Base64Encode('Data to encode')", i.clone()).unwrap(),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            ev("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", i.clone()).unwrap(),
            json!("Data to encode")
        );
        assert_eq!(
            ev("States.Hash('input data', 'SHA-1')", i.clone()).unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            ev("States.Hash('abc', 'MD5')", i).unwrap(),
            json!("900150983cd24fb0d6963f7d28e17f72")
        );
    }

    #[test]
    fn random_and_uuid_are_seeded() {
        let a = ev("States.MathRandom(10, 20)", json!({})).unwrap();
        let n = a.as_i64().unwrap();
        assert!((10..20).contains(&n));
        let u = ev("States.UUID()", json!({})).unwrap();
        assert_eq!(u, ev("States.UUID()", json!({})).unwrap());
        assert_eq!(u.as_str().unwrap().len(), 36);
    }

    #[test]
    fn parse_errors() {
        assert!(parse("States.Nope(1)").is_err());
        assert!(parse("States.ArrayLength(1, 2)").is_err());
        assert!(parse("States.Format('x'").is_err());
        assert!(parse("States.UUID() trailing").is_err());
    }
}
