//! minijinja templates for computed fields: the environment every template runs in (with the
//! filters of [`super::filters`] and the `lookup` function), and the check `etl validate`
//! makes before any data moves.
//!
//! `lookup(pipeline, id)` reads the answers a [`LookupCache`] in the render context holds
//! under [`LOOKUPS_VAR`]; an id it has no answer for is recorded as missing and yields none, so
//! the caller resolves the missing ids and renders again (templates have no side effects).

use std::collections::HashMap;
use std::sync::Mutex;

use minijinja::value::Object;
use minijinja::{Environment, ErrorKind, State, UndefinedBehavior, Value};

use super::filters;

/// The context variable holding the [`LookupCache`] of a render.
pub const LOOKUPS_VAR: &str = "__etl_lookups";

/// A template that cannot be used, with the line inside the template when known.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// 1-based line inside the template text.
    pub line: Option<usize>,
    pub message: String,
}

/// `lookup(pipeline, id)` answers for one render: `(pipeline, id) → target value or none`,
/// and the questions asked that had no answer yet.
#[derive(Debug, Default)]
pub struct LookupCache {
    answers: Mutex<HashMap<(String, String), Option<serde_json::Value>>>,
    missing: Mutex<Vec<(String, String)>>,
}

impl Object for LookupCache {}

impl LookupCache {
    /// Records the answer to `lookup(pipeline, id)`.
    pub fn answer(&self, pipeline: &str, id: &str, value: Option<serde_json::Value>) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert((pipeline.to_string(), id.to_string()), value);
        }
    }

    /// The questions asked without an answer since the last call, deduplicated.
    pub fn take_missing(&self) -> Vec<(String, String)> {
        let mut missing = match self.missing.lock() {
            Ok(mut missing) => std::mem::take(&mut *missing),
            Err(_) => Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        missing.retain(|key| seen.insert(key.clone()));
        missing
    }

    fn get(&self, pipeline: &str, id: &str) -> Option<Option<serde_json::Value>> {
        let answers = self.answers.lock().ok()?;
        answers
            .get(&(pipeline.to_string(), id.to_string()))
            .cloned()
    }

    fn ask(&self, pipeline: &str, id: &str) {
        if let Ok(mut missing) = self.missing.lock() {
            missing.push((pipeline.to_string(), id.to_string()));
        }
    }
}

/// The text of a scalar id as `Lookups` receives it: strings as they are, numbers and booleans
/// in their JSON form; none for null, undefined, empty text and containers.
pub fn id_text(value: &Value) -> Option<String> {
    if value.is_undefined() || value.is_none() {
        return None;
    }
    if let Some(text) = value.as_str() {
        let text = text.trim();
        return (!text.is_empty()).then(|| text.to_string());
    }
    match value.kind() {
        minijinja::value::ValueKind::Number | minijinja::value::ValueKind::Bool => {
            Some(value.to_string())
        }
        _ => None,
    }
}

/// `lookup('accounts', record.AccountId)` / `lookup('accounts.main_site_id', id)`.
fn lookup(state: &State, pipeline: String, id: Option<Value>) -> Result<Value, minijinja::Error> {
    if pipeline.trim().is_empty() {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "lookup: the pipeline name is empty",
        ));
    }
    let Some(id) = id.as_ref().and_then(id_text) else {
        return Ok(Value::UNDEFINED);
    };
    let Some(cache) = state.lookup(LOOKUPS_VAR) else {
        return Ok(Value::UNDEFINED);
    };
    let Some(cache) = cache.downcast_object_ref::<LookupCache>() else {
        return Ok(Value::from(()));
    };
    match cache.get(&pipeline, &id) {
        Some(Some(found)) => Ok(Value::from(minijinja::value::Serde(&found))),
        Some(None) => Ok(Value::from(())),
        None => {
            cache.ask(&pipeline, &id);
            Ok(Value::from(()))
        }
    }
}

/// The environment templates are compiled in. Undefined values (and attributes of them, as in
/// `record.Owner.Email` for a record without an owner) and none render as empty, since source
/// records often lack optional fields. `lookup()` gives undefined when nothing is linked.
/// Instructions one render may run.
pub const TEMPLATE_FUEL: u64 = 1_000_000;

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // A bound on the work of one render, so a template such as two nested `range(100000)` loops
    // fails with "engine ran out of fuel" instead of running for hours; real field templates
    // use a few hundred instructions.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        minijinja::escape_formatter(out, state, value)
    });
    filters::register(&mut env);
    env.add_function("lookup", lookup);
    env
}

/// Compiles `source` and renders it once against an empty record, so that syntax errors and
/// unknown filters, tests or functions are found offline. Errors that depend on the data (a
/// value of the wrong type, say) cannot be judged without data and are not reported.
pub fn check(source: &str) -> Result<(), TemplateError> {
    let env = environment();
    let template = env.template_from_str(source).map_err(to_error)?;
    let context = minijinja::context! { value => Value::from(()), record => Value::from(std::collections::BTreeMap::<String, Value>::new()) };
    match template.render(context) {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownTest
                    | ErrorKind::SyntaxError
                    | ErrorKind::OutOfFuel
            ) =>
        {
            Err(to_error(error))
        }
        Err(_) => Ok(()),
    }
}

/// A minijinja error as a [`TemplateError`].
pub fn to_error(error: minijinja::Error) -> TemplateError {
    let message = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    TemplateError {
        line: error.line(),
        message,
    }
}

/// The record fields a template reads as `record.X.Y`, `record['X']` or `record["X.Y"]`, in
/// order of first appearance (best effort: a field chosen at run time is not found).
pub fn record_fields(source: &str) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let bytes = source.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut at = 0;
    while let Some(found) = source[at..].find("record") {
        let start = at + found;
        let end = start + "record".len();
        at = end;
        if start > 0 && (ident(bytes[start - 1]) || bytes[start - 1] == b'.') {
            continue;
        }
        let mut field = String::new();
        let mut i = end;
        loop {
            if bytes.get(i) == Some(&b'.') {
                let from = i + 1;
                let mut to = from;
                while to < bytes.len() && ident(bytes[to]) {
                    to += 1;
                }
                if to == from {
                    break;
                }
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&source[from..to]);
                i = to;
            } else if bytes.get(i) == Some(&b'[') {
                let quote = match bytes.get(i + 1) {
                    Some(&q) if q == b'\'' || q == b'"' => q,
                    _ => break,
                };
                let from = i + 2;
                let Some(len) = source[from..].find(quote as char) else {
                    break;
                };
                if bytes.get(from + len + 1) != Some(&b']') {
                    break;
                }
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&source[from..from + len]);
                i = from + len + 2;
            } else {
                break;
            }
        }
        if !field.is_empty() && !fields.contains(&field) {
            fields.push(field);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_syntax_errors_with_their_line() {
        let err = check("first line\n{{ value | upper }\n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn reports_unknown_filters() {
        let err = check("{{ value | shout }}").unwrap_err();
        assert!(err.message.contains("unknown filter"), "{}", err.message);
    }

    #[test]
    fn accepts_good_templates() {
        check("{{ record.Name | default('none') | trim }}").unwrap();
        check("{{ record.Owner.Email | lower }}").unwrap();
        check("{{ lookup('contacts', record.ContactId) }}").unwrap();
        check("{{ value | date('%d/%m/%Y') }} {{ value | halo_date }} {{ value | truncate(10) }}")
            .unwrap();
        check(
            "{{ value | html_escape }}{{ value | strip_html }}{{ value | format_number(2, ',') }}",
        )
        .unwrap();
        check("{{ value | round(1) }}{{ value | split(',') | join(';') }}{{ value | replace('a', 'b') }}").unwrap();
    }

    #[test]
    fn lookup_asks_then_answers() {
        let env = environment();
        let cache = Value::from_object(LookupCache::default());
        let template = env
            .template_from_str("[{{ lookup('contacts', id) }}]")
            .unwrap();
        let ctx = || minijinja::context! { id => "003A", __etl_lookups => cache.clone() };
        assert_eq!(template.render(ctx()).unwrap(), "[]");
        let inner = cache.downcast_object_ref::<LookupCache>().unwrap();
        assert_eq!(
            inner.take_missing(),
            vec![("contacts".to_string(), "003A".to_string())]
        );
        inner.answer("contacts", "003A", Some(serde_json::json!(42)));
        assert_eq!(template.render(ctx()).unwrap(), "[42]");
        assert!(inner.take_missing().is_empty());
        // Without a cache (as in `etl validate`) or an id, lookup is undefined.
        assert_eq!(
            env.render_str("{{ lookup('a', 1) | default('-') }}", ())
                .unwrap(),
            "-"
        );
        assert_eq!(
            env.render_str("{{ lookup('a', x) }}|{{ none }}", ())
                .unwrap(),
            "|"
        );
    }

    #[test]
    fn finds_record_fields() {
        assert_eq!(
            record_fields("{{ record.FirstName }} {{ record.LastName }} {{ record.Owner.Email | lower }} {{ record['Account.Id'] }} {{ myrecord.X }} {{ record.FirstName }}"),
            vec!["FirstName", "LastName", "Owner.Email", "Account.Id"]
        );
        assert!(record_fields("{{ record }} {{ record.}}").is_empty());
    }
}
