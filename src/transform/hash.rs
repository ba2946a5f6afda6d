//! Change detection over target records: a stable hash of a record, and the leaf fields that
//! differ between two versions of one.
//!
//! Both treat numbers by value (`18` and `18.0` are the same) and ignore key order; the hash
//! is the SHA-256 of the record's canonical JSON (keys sorted at every level, whole numbers
//! written without a fraction).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::value_map::same_value;

/// SHA-256 (lower-case hex) of the record's canonical JSON.
pub fn record_hash(record: &Map<String, Value>) -> String {
    let mut text = String::new();
    canonical_object(record, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical JSON text of a record (sorted keys, numbers by value), as hashed.
pub fn canonical_json(record: &Map<String, Value>) -> String {
    let mut text = String::new();
    canonical_object(record, &mut text);
    text
}

fn canonical_object(map: &Map<String, Value>, out: &mut String) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        canonical(&map[key], out);
    }
    out.push('}');
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => canonical_object(map, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Number(number) => {
            let whole = number
                .as_f64()
                .filter(|f| number.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15);
            match whole {
                Some(f) => out.push_str(&(f as i64).to_string()),
                None => out.push_str(&number.to_string()),
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The leaf fields (dotted paths) whose values differ, as `(path, before, after)`, in the order
/// of `before` then fields only in `after`. Objects are compared key by key; arrays and scalars
/// as whole values. A field that is absent on one side and null on the other is unchanged.
pub fn changed_fields(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Vec<(String, Option<Value>, Option<Value>)> {
    let mut out = Vec::new();
    diff_objects("", before, after, &mut out);
    out
}

fn diff_objects(
    prefix: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    out: &mut Vec<(String, Option<Value>, Option<Value>)>,
) {
    let path = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    for (key, old) in before {
        diff_values(&path(key), Some(old), after.get(key), out);
    }
    for (key, new) in after {
        if !before.contains_key(key) {
            diff_values(&path(key), None, Some(new), out);
        }
    }
}

fn diff_values(
    path: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut Vec<(String, Option<Value>, Option<Value>)>,
) {
    let empty = Map::new();
    match (before, after) {
        (Some(Value::Object(old)), Some(Value::Object(new))) => diff_objects(path, old, new, out),
        (Some(Value::Object(old)), None | Some(Value::Null)) => {
            diff_objects(path, old, &empty, out)
        }
        (None | Some(Value::Null), Some(Value::Object(new))) => {
            diff_objects(path, &empty, new, out)
        }
        (None | Some(Value::Null), None | Some(Value::Null)) => {}
        (old, new) => {
            let same = match (old, new) {
                (Some(old), Some(new)) => same_value(old, new),
                _ => false,
            };
            if !same {
                out.push((path.to_string(), old.cloned(), new.cloned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn hash_ignores_key_order_and_number_form() {
        let a = obj(
            json!({"name": "Acme", "main_site": {"line1": "1 St", "line3": "Leeds"}, "oppvalue": 18}),
        );
        let b = obj(
            json!({"oppvalue": 18.0, "main_site": {"line3": "Leeds", "line1": "1 St"}, "name": "Acme"}),
        );
        assert_eq!(record_hash(&a), record_hash(&b));
        assert_eq!(record_hash(&a).len(), 64);
        let c = obj(
            json!({"name": "Acme", "main_site": {"line1": "1 St", "line3": "York"}, "oppvalue": 18}),
        );
        assert_ne!(record_hash(&a), record_hash(&c));
        assert_ne!(
            record_hash(&obj(json!({"a": 1}))),
            record_hash(&obj(json!({"a": "1"})))
        );
        assert_eq!(
            canonical_json(&obj(json!({"b": [1.5, 2.0], "a": null}))),
            r#"{"a":null,"b":[1.5,2]}"#
        );
    }

    #[test]
    fn hash_is_stable() {
        // A fixed record always hashes to the same value, across runs and builds.
        let record = obj(json!({"name": "Acme", "id": 1}));
        assert_eq!(record_hash(&record), record_hash(&record.clone()));
        assert_eq!(canonical_json(&record), r#"{"id":1,"name":"Acme"}"#);
    }

    #[test]
    fn leaf_changes() {
        let before = obj(
            json!({"name": "Acme", "oppvalue": 18, "main_site": {"delivery_address": {"line1": "1 St", "line3": "Leeds"}}, "gone": 1, "nothing": null}),
        );
        let after = obj(
            json!({"name": "Acme Ltd", "oppvalue": 18.0, "main_site": {"delivery_address": {"line1": "1 St", "line3": "York"}}, "new": [1], "customfields": {"CF": "x"}}),
        );
        assert_eq!(
            changed_fields(&before, &after),
            vec![
                (
                    "name".to_string(),
                    Some(json!("Acme")),
                    Some(json!("Acme Ltd"))
                ),
                (
                    "main_site.delivery_address.line3".to_string(),
                    Some(json!("Leeds")),
                    Some(json!("York"))
                ),
                ("gone".to_string(), Some(json!(1)), None),
                ("new".to_string(), None, Some(json!([1]))),
                ("customfields.CF".to_string(), None, Some(json!("x"))),
            ]
        );
        assert!(changed_fields(&before, &before).is_empty());
    }
}
