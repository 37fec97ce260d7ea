//! SAM `DefinitionSubstitutions`: `${Name}` placeholders in the definition text.

use std::collections::BTreeMap;

use crate::error::SubstitutionError;

/// Replaces every `${Name}` in `text` with `subs[Name]`. Names without a value are an error
/// listing all of them. `$${` is not special; text without placeholders is returned unchanged.
pub fn substitute(
    text: &str,
    subs: &BTreeMap<String, String>,
) -> Result<String, SubstitutionError> {
    let mut out = String::with_capacity(text.len());
    let mut unknown: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if is_name(&after[..end]) => {
                let name = &after[..end];
                match subs.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        if !unknown.iter().any(|u| u == name) {
                            unknown.push(name.to_string());
                        }
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(SubstitutionError { unknown })
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_known_and_lists_unknown() {
        let mut subs = BTreeMap::new();
        subs.insert("Fn".to_string(), "arn:fn".to_string());
        assert_eq!(
            substitute(r#"{"R":"${Fn}","S":"${Fn}x"}"#, &subs).unwrap(),
            r#"{"R":"arn:fn","S":"arn:fnx"}"#
        );
        let err = substitute("${A} ${Fn} ${B} ${A}", &subs).unwrap_err();
        assert_eq!(err.unknown, vec!["A".to_string(), "B".to_string()]);
    }

    #[test]
    fn leaves_non_placeholders_alone() {
        let subs = BTreeMap::new();
        assert_eq!(substitute("$.a ${ x", &subs).unwrap(), "$.a ${ x");
    }
}
