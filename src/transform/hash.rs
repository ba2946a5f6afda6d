//! Change detection over target records: a stable hash of a record, and the leaf fields that
//! differ between two versions of one.
//!
//! Both treat numbers by value (`18` and `18.0` are the same) and ignore key order; the hash
//! is the SHA-256 of the record's canonical JSON (keys sorted at every level, whole numbers
//! written without a fraction).

use std::io::Write;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::value_map::same_value;

/// SHA-256 (lower-case hex) of the record's canonical JSON.
pub fn record_hash(record: &Map<String, Value>) -> String {
    let mut text = Vec::with_capacity(512);
    canonical_object(record, &mut text);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(&text) {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

/// The canonical JSON text of a record (sorted keys, numbers by value), as hashed.
pub fn canonical_json(record: &Map<String, Value>) -> String {
    let mut text = Vec::new();
    canonical_object(record, &mut text);
    // JSON written from `str`s is UTF-8.
    String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

// The text is written straight into one buffer: a string allocated for every key and value was
// most of the hash's cost. serde_json writes keys and scalars exactly as their `Display` did
// before, so hashes kept in staging still match (pinned by `hash_is_stable`).
fn canonical_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(key, out);
        out.push(b':');
        canonical(&map[key], out);
    }
    out.push(b'}');
}

fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => canonical_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        Value::Number(number) => {
            let whole = number
                .as_f64()
                .filter(|f| number.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15);
            // Writing into a Vec cannot fail.
            let _ = match whole {
                Some(f) => write!(out, "{}", f as i64),
                None => write!(out, "{number}"),
            };
        }
        other => write_json(other, out),
    }
}

/// Compact JSON of a key or scalar, as `serde_json` writes it.
fn write_json(value: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    // Serializing a string, bool or null into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
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
        // Escapes, big and whole numbers, nesting: the text and hash kept in staging files
        // written by earlier versions.
        let record = obj(json!({
            "w": 1000.0, "n": -3, "f": 2.5, "big": 12345678901234567890u64,
            "nested": {"z": [true, null, {"y": "x"}], "k": 0.1},
            "a\"b": "line\nbreak\t\u{1}é",
        }));
        assert_eq!(
            canonical_json(&record),
            r#"{"a\"b":"line\nbreak\t\u0001é","big":12345678901234567890,"f":2.5,"n":-3,"nested":{"k":0.1,"z":[true,null,{"y":"x"}]},"w":1000}"#
        );
        assert_eq!(
            record_hash(&record),
            "3c434d9c580b2bc2cf123d4accb7d431d249e3b1fa5724fe3f4db113ab3b2831"
        );
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
