//! `${VAR}` and `${VAR:-default}` in configuration strings, read from the environment.
//!
//! Runs on the located YAML tree, so a missing variable is reported at the file and line that
//! uses it. Values are substituted into the tree and never printed: diagnostics quote the file's
//! own text, which holds the `${…}` reference, not the secret.

use super::diagnostic::{Diagnostic, SourceFile};
use super::yaml::{Node, NodeValue};

/// Where to read variables from; tests pass a closure instead of touching the process
/// environment.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Replaces `${…}` references in every string value of `node`, reporting each problem.
pub fn interpolate(node: &mut Node, file: &SourceFile, env: Lookup, out: &mut Vec<Diagnostic>) {
    match &mut node.value {
        NodeValue::Str(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(problem) => out.push(problem.into_diagnostic(file, node.loc)),
        },
        NodeValue::Seq(items) => items
            .iter_mut()
            .for_each(|item| interpolate(item, file, env, out)),
        NodeValue::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, value)| interpolate(value, file, env, out)),
        _ => {}
    }
}

#[derive(Debug, PartialEq)]
enum Problem {
    Missing(String),
    Unclosed,
    BadName(String),
}

impl Problem {
    fn into_diagnostic(self, file: &SourceFile, loc: super::yaml::Loc) -> Diagnostic {
        match self {
            Problem::Missing(name) => file
                .error(
                    "missing-env",
                    loc,
                    format!("environment variable `{name}` is not set"),
                )
                .label(format!("uses ${{{name}}}"))
                .hint(format!(
                    "set it (`export {name}=…`) or give a default: ${{{name}:-value}}"
                )),
            Problem::Unclosed => file
                .error("bad-env-reference", loc, "`${` without a closing `}`")
                .hint("write ${NAME} or ${NAME:-default}; write $${ for a literal ${"),
            Problem::BadName(name) => file
                .error(
                    "bad-env-reference",
                    loc,
                    format!("`{name}` is not a valid environment variable name"),
                )
                .hint("names are letters, digits and _, not starting with a digit"),
        }
    }
}

fn expand(text: &str, env: Lookup) -> Result<String, Problem> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(close) = body_start.find('}') else {
            return Err(Problem::Unclosed);
        };
        let body = &body_start[..close];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Problem::BadName(name.to_string()));
        }
        match env(name).filter(|v| !v.is_empty() || default.is_none()) {
            Some(value) => out.push_str(&value),
            None => match default {
                Some(default) => out.push_str(default),
                None => return Err(Problem::Missing(name.to_string())),
            },
        }
        rest = &body_start[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOST").then(|| "example.org".to_string())
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(
            expand("https://${HOST}/x", &env).unwrap(),
            "https://example.org/x"
        );
        assert_eq!(expand("${PORT:-8080}", &env).unwrap(), "8080");
        assert_eq!(
            expand("$${HOST} costs $5", &env).unwrap(),
            "${HOST} costs $5"
        );
    }

    #[test]
    fn reports_missing_and_malformed() {
        assert_eq!(
            expand("${NOPE}", &env),
            Err(Problem::Missing("NOPE".into()))
        );
        assert_eq!(expand("${HOST", &env), Err(Problem::Unclosed));
        assert_eq!(expand("${1X}", &env), Err(Problem::BadName("1X".into())));
    }
}
