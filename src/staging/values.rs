//! DuckDB values as text (for tables and CSV) and as JSON (for `--format json`).

use duckdb::types::{TimeUnit, Value};

use crate::civil::format_date;

fn micros(unit: TimeUnit, value: i64) -> i64 {
    match unit {
        TimeUnit::Second => value.saturating_mul(1_000_000),
        TimeUnit::Millisecond => value.saturating_mul(1_000),
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value / 1_000,
    }
}

fn time_of_day(micros_in_day: i64) -> String {
    let (secs, frac) = (micros_in_day / 1_000_000, micros_in_day % 1_000_000);
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        base
    } else {
        format!("{base}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

fn timestamp(unit: TimeUnit, value: i64) -> String {
    let total = micros(unit, value);
    let days = total.div_euclid(86_400_000_000);
    format!(
        "{} {}",
        format_date(days),
        time_of_day(total.rem_euclid(86_400_000_000))
    )
}

/// The value as DuckDB's own CLI would print it; NULL is empty.
pub fn cell_to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Boolean(b) => b.to_string(),
        Value::TinyInt(v) => v.to_string(),
        Value::SmallInt(v) => v.to_string(),
        Value::Int(v) => v.to_string(),
        Value::BigInt(v) => v.to_string(),
        Value::HugeInt(v) => v.to_string(),
        Value::UHugeInt(v) => v.to_string(),
        Value::UTinyInt(v) => v.to_string(),
        Value::USmallInt(v) => v.to_string(),
        Value::UInt(v) => v.to_string(),
        Value::UBigInt(v) => v.to_string(),
        Value::Float(v) => v.to_string(),
        Value::Double(v) => v.to_string(),
        Value::Decimal(v) => v.to_string(),
        Value::Timestamp(unit, v) => timestamp(*unit, *v),
        Value::Text(s) | Value::Enum(s) => s.clone(),
        Value::Blob(b) | Value::Geometry(b) => format!("<{} bytes>", b.len()),
        Value::Date32(days) => format_date(i64::from(*days)),
        Value::Time64(unit, v) => time_of_day(micros(*unit, *v)),
        Value::Interval {
            months,
            days,
            nanos,
        } => {
            format!("{months} months {days} days {}", time_of_day(nanos / 1_000))
        }
        Value::List(items) | Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(cell_to_text).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("'{k}': {}", cell_to_text(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Map(entries) => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}={}", cell_to_text(k), cell_to_text(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Union(inner) => cell_to_text(inner),
        // The enum is non-exhaustive: a type added by a newer DuckDB prints as its debug form.
        other => format!("{other:?}"),
    }
}

/// The value as JSON: numbers stay numbers, nested values nest.
pub fn cell_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::TinyInt(v) => J::from(*v),
        Value::SmallInt(v) => J::from(*v),
        Value::Int(v) => J::from(*v),
        Value::BigInt(v) => J::from(*v),
        Value::UTinyInt(v) => J::from(*v),
        Value::USmallInt(v) => J::from(*v),
        Value::UInt(v) => J::from(*v),
        Value::UBigInt(v) => J::from(*v),
        Value::Float(v) => J::from(f64::from(*v)),
        Value::Double(v) => J::from(*v),
        Value::List(items) | Value::Array(items) => {
            J::Array(items.iter().map(cell_to_json).collect())
        }
        Value::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), cell_to_json(v)))
                .collect(),
        ),
        Value::Union(inner) => cell_to_json(inner),
        Value::Decimal(d) => d
            .to_string()
            .parse::<f64>()
            .map_or_else(|_| J::String(d.to_string()), J::from),
        other => J::String(cell_to_text(other)),
    }
}

/// A JSON value as a cell of a typed column: numbers, booleans, dates and datetimes
/// (`2024-05-01`, `2024-05-01T10:00:00.000+0000`) become the column's type; anything that does
/// not fit is NULL there (the whole record is kept as JSON beside it).
pub fn json_to_cell(value: &serde_json::Value, column_type: super::ColumnType) -> Value {
    use super::ColumnType;
    use serde_json::Value as Json;
    match (column_type, value) {
        (_, Json::Null) => Value::Null,
        (ColumnType::Text, Json::String(s)) => Value::Text(s.clone()),
        (ColumnType::Text | ColumnType::Json, other) => Value::Text(other.to_string()),
        (ColumnType::Integer, v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map_or(Value::Null, Value::BigInt),
        (ColumnType::Double, v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map_or(Value::Null, Value::Double),
        (ColumnType::Boolean, v) => v.as_bool().map_or(Value::Null, Value::Boolean),
        (ColumnType::Date, Json::String(s)) => crate::civil::parse_date(s)
            .and_then(|days| i32::try_from(days).ok())
            .map_or(Value::Null, Value::Date32),
        (ColumnType::Timestamp, Json::String(s)) => crate::civil::parse_datetime(s)
            .map_or(Value::Null, |ms| {
                Value::Timestamp(TimeUnit::Millisecond, ms)
            }),
        _ => Value::Null,
    }
}

/// A staged cell (DuckDB's value type), for code that builds rows.
pub type Cell = Value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(cell_to_text(&Value::Date32(0)), "1970-01-01");
        assert_eq!(cell_to_text(&Value::Date32(19_723)), "2024-01-01");
        assert_eq!(
            cell_to_text(&Value::Timestamp(
                TimeUnit::Microsecond,
                1_704_067_200_500_000
            )),
            "2024-01-01 00:00:00.5"
        );
        assert_eq!(cell_to_text(&Value::Date32(-1)), "1969-12-31");
    }
}
