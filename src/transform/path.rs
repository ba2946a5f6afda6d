//! Field paths: reading a value out of a source record and writing one into a target record.
//!
//! A source path is tried as an exact key first (Salesforce's flat `Owner.Email`), then walked
//! through nested objects by dots (`Owner.Email` as `{"Owner": {"Email": …}}`, Halo's
//! `customfields.CFStage`). A path starting with `$` is a small JSONPath: dotted keys, `[n]`
//! indices and `[*]`, which gathers the rest of the path over every element into an array
//! (`$.Attachments.records[*].Id`). Target paths are dotted keys and build nested objects.

use serde_json::{Map, Value};

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// A compiled source path.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePath {
    text: String,
    steps: Vec<Step>,
    json_path: bool,
}

/// Why a path cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad path `{path}`: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

impl SourcePath {
    /// Parses a field path (`Name`, `Owner.Email`) or a JSONPath (`$.Attachments.totalSize`,
    /// `$.Contacts.records[0].Email`, `$.Lines[*].Amount`).
    pub fn parse(text: &str) -> Result<SourcePath, PathError> {
        let error = |reason: &str| PathError {
            path: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error("the path is empty"));
        }
        let (json_path, body) = match trimmed.strip_prefix('$') {
            Some(rest) => (true, rest.strip_prefix('.').unwrap_or(rest)),
            None => (false, trimmed),
        };
        let mut steps = Vec::new();
        if json_path {
            let mut key = String::new();
            let mut chars = body.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '.' => {
                        if !key.is_empty() {
                            steps.push(Step::Key(std::mem::take(&mut key)));
                        }
                    }
                    '[' => {
                        if !key.is_empty() {
                            steps.push(Step::Key(std::mem::take(&mut key)));
                        }
                        let mut inner = String::new();
                        let mut closed = false;
                        for c in chars.by_ref() {
                            if c == ']' {
                                closed = true;
                                break;
                            }
                            inner.push(c);
                        }
                        if !closed {
                            return Err(error("a `[` is not closed"));
                        }
                        let inner = inner.trim();
                        if inner == "*" {
                            steps.push(Step::All);
                        } else if let Ok(n) = inner.parse::<usize>() {
                            steps.push(Step::Index(n));
                        } else {
                            let quoted = inner
                                .strip_prefix('\'')
                                .and_then(|s| s.strip_suffix('\''))
                                .or_else(|| {
                                    inner.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
                                });
                            match quoted {
                                Some(name) => steps.push(Step::Key(name.to_string())),
                                None => {
                                    return Err(error(
                                        "inside `[ ]` use an index, `*` or a quoted key",
                                    ))
                                }
                            }
                        }
                    }
                    _ => key.push(c),
                }
            }
            if !key.is_empty() {
                steps.push(Step::Key(key));
            }
        } else {
            for part in body.split('.') {
                if part.is_empty() {
                    return Err(error("a path part is empty (two dots, or a dot at an end)"));
                }
                steps.push(Step::Key(part.to_string()));
            }
        }
        Ok(SourcePath {
            text: trimmed.to_string(),
            steps,
            json_path,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path was written as JSONPath (`$…`).
    pub fn is_json_path(&self) -> bool {
        self.json_path
    }

    /// The value at this path, or `None` when some step is missing.
    pub fn read(&self, record: &Map<String, Value>) -> Option<Value> {
        if !self.json_path {
            if let Some(value) = record.get(&self.text) {
                return Some(value.clone());
            }
        }
        read_steps(record, &self.steps)
    }
}

/// Walks `steps` from an object, also trying the flat dotted key of the remaining steps at
/// each level (`{"Owner": {"Manager.Email": …}}`).
fn read_steps(record: &Map<String, Value>, steps: &[Step]) -> Option<Value> {
    let (first, rest) = steps.split_first()?;
    match first {
        Step::Key(key) => {
            if rest.is_empty() {
                return record.get(key).cloned();
            }
            if let Some(next) = record.get(key) {
                if let Some(found) = read_value(next, rest) {
                    return Some(found);
                }
            }
            // A flat key spanning several steps: `Owner.Email` inside a nested object.
            let mut joined = key.clone();
            for (i, step) in rest.iter().enumerate() {
                let Step::Key(part) = step else { break };
                joined.push('.');
                joined.push_str(part);
                if let Some(next) = record.get(&joined) {
                    return read_value(next, &rest[i + 1..]);
                }
            }
            None
        }
        Step::Index(_) | Step::All => None,
    }
}

fn read_value(value: &Value, steps: &[Step]) -> Option<Value> {
    let Some((first, rest)) = steps.split_first() else {
        return Some(value.clone());
    };
    match (value, first) {
        (Value::Object(map), Step::Key(_)) => read_steps(map, steps),
        // Halo's raw custom fields: `[{"name": "CFStage", "value": …}]`.
        (Value::Array(items), Step::Key(key)) => items
            .iter()
            .filter_map(Value::as_object)
            .find(|item| item.get("name").and_then(Value::as_str) == Some(key))
            .and_then(|item| read_value(item.get("value").unwrap_or(&Value::Null), rest)),
        (Value::Array(items), Step::Index(n)) => read_value(items.get(*n)?, rest),
        (Value::Array(items), Step::All) => Some(Value::Array(
            items
                .iter()
                .filter_map(|item| read_value(item, rest))
                .collect(),
        )),
        (Value::Object(map), Step::All) => Some(Value::Array(
            map.values()
                .filter_map(|item| read_value(item, rest))
                .collect(),
        )),
        _ => None,
    }
}

/// Splits a target path (`main_site.delivery_address.line1`) into its keys.
pub fn target_keys(path: &str) -> Result<Vec<String>, PathError> {
    let keys: Vec<String> = path.split('.').map(str::to_string).collect();
    if keys.iter().any(|k| k.trim().is_empty()) {
        return Err(PathError {
            path: path.to_string(),
            reason: "a path part is empty (two dots, or a dot at an end)".into(),
        });
    }
    Ok(keys)
}

/// Writes `value` at `keys` inside `record`, creating objects on the way. Fails (leaving the
/// record as it was) when a step is already a value that is not an object.
pub fn write(record: &mut Map<String, Value>, keys: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else {
        return Err("the target path is empty".into());
    };
    let mut map = record;
    for (i, key) in parents.iter().enumerate() {
        let entry = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        map = match entry {
            Value::Object(inner) => inner,
            _ => {
                return Err(format!(
                    "`{}` already holds a value that is not an object",
                    keys[..=i].join(".")
                ))
            }
        };
    }
    map.insert(last.clone(), value);
    Ok(())
}

/// A copy of `record` in which flat dotted keys (`"Owner.Email"`) are also reachable as nested
/// objects (`record.Owner.Email`), for templates. Nested values already present win.
pub fn nested_view(record: &Map<String, Value>) -> Map<String, Value> {
    let mut view = record.clone();
    for (key, value) in record {
        if !key.contains('.') {
            continue;
        }
        let keys: Vec<String> = key.split('.').map(str::to_string).collect();
        if keys.iter().any(String::is_empty) {
            continue;
        }
        if lookup_keys(&view, &keys).is_some_and(|v| !v.is_null()) {
            continue;
        }
        // A conflict (a step holding a scalar) only means the nested form is not offered.
        let _ = write(&mut view, &keys, value.clone());
    }
    view
}

fn lookup_keys<'a>(map: &'a Map<String, Value>, keys: &[String]) -> Option<&'a Value> {
    let (first, rest) = keys.split_first()?;
    let value = map.get(first)?;
    if rest.is_empty() {
        return Some(value);
    }
    lookup_keys(value.as_object()?, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn read(path: &str, record: Value) -> Option<Value> {
        SourcePath::parse(path).unwrap().read(&obj(record))
    }

    #[test]
    fn flat_key_first_then_nested() {
        let record = json!({"Owner.Email": "flat@x", "Owner": {"Email": "nested@x"}});
        assert_eq!(read("Owner.Email", record), Some(json!("flat@x")));
        let record = json!({"Owner": {"Email": "nested@x"}});
        assert_eq!(read("Owner.Email", record), Some(json!("nested@x")));
        assert_eq!(read("Owner.Phone", json!({"Owner": {}})), None);
        assert_eq!(read("Owner.Email", json!({"Owner": null})), None);
        assert_eq!(read("Name", json!({"Name": null})), Some(Value::Null));
    }

    #[test]
    fn flat_keys_inside_nested_objects() {
        let record = json!({"Account": {"Owner.Email": "a@x"}});
        assert_eq!(read("Account.Owner.Email", record), Some(json!("a@x")));
    }

    #[test]
    fn json_paths() {
        let record =
            json!({"Attachments": {"totalSize": 2, "records": [{"Id": "a"}, {"Id": "b"}]}});
        assert_eq!(
            read("$.Attachments.totalSize", record.clone()),
            Some(json!(2))
        );
        assert_eq!(
            read("$.Attachments.records[1].Id", record.clone()),
            Some(json!("b"))
        );
        assert_eq!(
            read("$.Attachments.records[*].Id", record.clone()),
            Some(json!(["a", "b"]))
        );
        assert_eq!(read("$.Attachments.records[5].Id", record.clone()), None);
        assert_eq!(read("$['Attachments'].totalSize", record), Some(json!(2)));
    }

    #[test]
    fn halo_custom_fields_in_either_form() {
        let object = json!({"customfields": {"CFStage": "Won"}});
        assert_eq!(read("customfields.CFStage", object), Some(json!("Won")));
        let array = json!({"customfields": [{"name": "CFStage", "value": "Won"}]});
        assert_eq!(read("customfields.CFStage", array), Some(json!("Won")));
    }

    #[test]
    fn bad_paths() {
        assert!(SourcePath::parse("").is_err());
        assert!(SourcePath::parse("a..b").is_err());
        assert!(SourcePath::parse("$.a[").is_err());
        assert!(SourcePath::parse("$.a[x]").is_err());
        assert!(target_keys("a..b").is_err());
    }

    #[test]
    fn writes_nested_targets() {
        let mut out = Map::new();
        write(
            &mut out,
            &target_keys("main_site.delivery_address.line1").unwrap(),
            json!("1 St"),
        )
        .unwrap();
        write(
            &mut out,
            &target_keys("main_site.delivery_address.line3").unwrap(),
            json!("Leeds"),
        )
        .unwrap();
        write(&mut out, &target_keys("name").unwrap(), json!("Acme")).unwrap();
        assert_eq!(
            Value::Object(out.clone()),
            json!({"main_site": {"delivery_address": {"line1": "1 St", "line3": "Leeds"}}, "name": "Acme"})
        );
        assert!(write(&mut out, &target_keys("name.first").unwrap(), json!(1)).is_err());
    }

    #[test]
    fn nested_view_of_flat_keys() {
        let view = nested_view(&obj(
            json!({"Owner.Email": "o@x", "Account.Id": "001", "Account": null, "Name": "n"}),
        ));
        assert_eq!(view["Owner"]["Email"], json!("o@x"));
        assert_eq!(view["Account"]["Id"], json!("001"));
        assert_eq!(view["Owner.Email"], json!("o@x"));
        let view = nested_view(&obj(
            json!({"Owner.Email": "flat", "Owner": {"Email": "nested"}}),
        ));
        assert_eq!(view["Owner"]["Email"], json!("nested"));
    }
}
