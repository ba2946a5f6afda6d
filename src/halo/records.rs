//! How the engine adapters see a Halo record: custom fields as name → value (Halo sends an
//! array of `{id, name, value}`), and values as comparable text (ids as whole numbers, text
//! trimmed and lower-cased), for matching and lookups.

use serde_json::Value;

use super::custom_fields::custom_field_values;
use crate::engine::Record;

/// A Halo record with its custom fields as name → value.
pub fn normalise(mut record: Value) -> Record {
    let values = custom_field_values(&record);
    let Some(object) = record.as_object_mut() else {
        return Record::new();
    };
    if object.contains_key("customfields") {
        object.insert("customfields".into(), Value::Object(values));
    }
    std::mem::take(object)
}

/// A Halo value as comparable text: `18.0` and `18` alike, `" Acme "` as `acme`.
pub fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_lowercase(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0)
            .map(|f| (f as i64).to_string())
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}
