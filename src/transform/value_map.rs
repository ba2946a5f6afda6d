//! Value maps (`values: { "Closed Won": Won }`): source values to target values, and back for
//! sync back. A map's keys are text; a source value is matched by its text (`true`, `5`,
//! `Closed Won`), exactly first and then ignoring case.

use serde_json::{Map, Value};

/// A compiled value map.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMap {
    entries: Vec<(String, Value)>,
}

/// The text a map key is compared with: strings as they are, other scalars in JSON form.
pub fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Whether two JSON values are equal, numbers compared by value (`18` == `18.0`) at every level.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::String(x), Value::String(y)) => x == y || same_moment(x, y),
        _ => a == b,
    }
}

/// Whether two texts are the same date or date-time written two ways: Salesforce's
/// `2026-12-31` and Halo's `2026-12-31T00:00:00`, or `…T10:00:00.000+0000` and `…T10:00:00Z`.
fn same_moment(a: &str, b: &str) -> bool {
    match (moment(a), moment(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A date or UTC date-time in one spelling: the date, then the time when it is not midnight.
fn moment(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let is_date = bytes.len() >= 10
        && bytes[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !is_date {
        return None;
    }
    let (date, rest) = text.split_at(10);
    if rest.is_empty() {
        return Some(date.to_string());
    }
    let time = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let time = ["Z", "+0000", "+00:00"]
        .iter()
        .find_map(|zone| time.strip_suffix(zone))
        .unwrap_or(time);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit())
        || !clock.bytes().all(|b| b.is_ascii_digit() || b == b':')
    {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    let clock = if clock.len() == 5 {
        format!("{clock}:00")
    } else {
        clock.to_string()
    };
    match (clock.as_str(), fraction) {
        ("00:00:00", "") => Some(date.to_string()),
        (clock, "") => Some(format!("{date}T{clock}")),
        (clock, fraction) => Some(format!("{date}T{clock}.{fraction}")),
    }
}

impl ValueMap {
    pub fn new(map: &Map<String, Value>) -> ValueMap {
        ValueMap {
            entries: map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// The target value for a source value: the entry whose key equals its text, else the
    /// first whose key equals it ignoring case.
    pub fn forward(&self, value: &Value) -> Option<&Value> {
        let text = key_text(value)?;
        self.entries
            .iter()
            .find(|(key, _)| *key == text)
            .or_else(|| {
                let lower = text.to_lowercase();
                self.entries
                    .iter()
                    .find(|(key, _)| key.to_lowercase() == lower)
            })
            .map(|(_, target)| target)
    }

    /// The source value for a target value (sync back): the key of the first entry whose value
    /// equals it (numbers by value; text also ignoring case). Keys `true` and `false` come
    /// back as booleans, every other key as text.
    pub fn backward(&self, value: &Value) -> Option<Value> {
        let key = self
            .entries
            .iter()
            .find(|(_, target)| same_value(target, value))
            .or_else(|| {
                let text = key_text(value)?.to_lowercase();
                self.entries
                    .iter()
                    .find(|(_, target)| key_text(target).is_some_and(|t| t.to_lowercase() == text))
            })
            .map(|(key, _)| key)?;
        Some(match key.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(key.clone()),
        })
    }

    /// The keys, for messages.
    pub fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|(key, _)| key.as_str()).collect()
    }

    /// The values, for messages.
    pub fn targets(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(_, target)| target.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_midnights_are_one_moment() {
        let same = |a: &str, b: &str| same_value(&Value::from(a), &Value::from(b));
        assert!(same("2026-12-31", "2026-12-31T00:00:00"));
        assert!(same("2026-12-31T00:00:00.000+0000", "2026-12-31"));
        assert!(same("2026-12-31T10:30:00Z", "2026-12-31T10:30:00.000+0000"));
        assert!(!same("2026-12-31", "2026-12-30T00:00:00"));
        assert!(!same("2026-12-31T10:30:00Z", "2026-12-31"));
        assert!(!same("2026-12-31 and more", "2026-12-31"));
    }
    use serde_json::json;

    fn map(value: Value) -> ValueMap {
        ValueMap::new(value.as_object().unwrap())
    }

    #[test]
    fn forward_exact_then_any_case() {
        let m = map(
            json!({"Closed Won": 5, "closed won": 6, "Closed Lost": 7, "true": false, "3": "three"}),
        );
        assert_eq!(m.forward(&json!("Closed Won")), Some(&json!(5)));
        assert_eq!(m.forward(&json!("closed won")), Some(&json!(6)));
        assert_eq!(m.forward(&json!("CLOSED LOST")), Some(&json!(7)));
        assert_eq!(m.forward(&json!(true)), Some(&json!(false)));
        assert_eq!(m.forward(&json!(3)), Some(&json!("three")));
        assert_eq!(m.forward(&json!("Prospecting")), None);
        assert_eq!(m.forward(&Value::Null), None);
    }

    #[test]
    fn backward() {
        let m =
            map(json!({"Closed Won": 5, "Won": 5, "true": false, "false": true, "Open": "open"}));
        assert_eq!(m.backward(&json!(5.0)), Some(json!("Closed Won")));
        assert_eq!(m.backward(&json!(false)), Some(json!(true)));
        assert_eq!(m.backward(&json!("OPEN")), Some(json!("Open")));
        assert_eq!(m.backward(&json!(9)), None);
    }

    #[test]
    fn numbers_by_value() {
        assert!(same_value(&json!(18), &json!(18.0)));
        assert!(same_value(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!same_value(&json!(18), &json!("18")));
        assert!(!same_value(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }
}
