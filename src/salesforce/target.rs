//! Salesforce as the engine's [`Target`], for sync back: creates and updates go through
//! sObject Collections (200 per call, several in flight; Bulk API 2.0 above the client's
//! threshold), each record's outcome coming back with Salesforce's own status code and message.
//! Values are shaped by the object's describe before they are sent (a Halo date-time written
//! to a `date` field keeps its date; `"true"` becomes a boolean, `"12.5"` a number), and
//! matches and lookups are SOQL queries. Deletes go through Collections too (`delete.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::catalog::{self, ObjectInfo};
use super::collections::{Operation, Outcome};
use super::query::Record as SalesforceRecord;
use super::SalesforceClient;
use crate::engine::{EngineError, Record, Target, WriteAction, WriteRequest, WriteResult};

pub struct SalesforceTarget<'a> {
    client: &'a SalesforceClient,
    /// Each object's describe, read once (the offline catalog when the org has none).
    describes: Mutex<HashMap<String, Option<ObjectInfo>>>,
}

impl<'a> SalesforceTarget<'a> {
    pub fn new(client: &'a SalesforceClient) -> SalesforceTarget<'a> {
        SalesforceTarget {
            client,
            describes: Mutex::new(HashMap::new()),
        }
    }

    fn describe(&self, object: &str) -> Option<ObjectInfo> {
        let mut describes = self
            .describes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        describes
            .entry(object.to_string())
            .or_insert_with(|| match self.client.describe(object) {
                Ok(Some(info)) => Some(info),
                _ => catalog::standard_object(object).cloned(),
            })
            .clone()
    }

    fn first(&self, soql: &str) -> Result<Option<SalesforceRecord>, EngineError> {
        for page in self.client.query_pages(soql, false) {
            let page = page.map_err(|error| engine_error(error, soql))?;
            if let Some(record) = page.into_iter().next() {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }
}

fn engine_error(error: super::Error, soql: &str) -> EngineError {
    if error.exit_code() == 2 {
        EngineError::Config(format!("Salesforce refused the query `{soql}`: {error}"))
    } else {
        EngineError::Connection(format!("Salesforce: {error}"))
    }
}

/// A SOQL literal for a JSON value.
fn literal(value: &Value) -> String {
    match value {
        Value::String(text) => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// A value shaped for a field of Salesforce type `field_type`.
pub fn coerce(value: Value, field_type: &str) -> Value {
    match (field_type, value) {
        ("date", Value::String(text)) if text.len() > 10 && text.as_bytes()[10] == b'T' => {
            Value::String(text[..10].to_string())
        }
        ("boolean", Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" | "" => Value::Bool(false),
            _ => Value::String(text),
        },
        ("double" | "currency" | "percent" | "int", Value::String(text)) => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Value::Null;
            }
            match trimmed.parse::<f64>() {
                Ok(number) => serde_json::Number::from_f64(number)
                    .map(Value::Number)
                    .unwrap_or(Value::String(text)),
                Err(_) => Value::String(text),
            }
        }
        (
            "string" | "textarea" | "picklist" | "multipicklist" | "phone" | "email" | "url",
            Value::Number(number),
        ) => Value::String(number.to_string()),
        (_, value) => value,
    }
}

fn shaped(record: &Record, info: Option<&ObjectInfo>) -> SalesforceRecord {
    record
        .iter()
        .map(|(field, value)| {
            let field_type = info
                .and_then(|info| info.field(field))
                .map(|f| f.field_type.as_str())
                .unwrap_or("");
            (field.clone(), coerce(value.clone(), field_type))
        })
        .collect()
}

fn message(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed {
            code,
            message,
            fields,
        } if fields.is_empty() => format!("{code}: {message}"),
        Outcome::Failed {
            code,
            message,
            fields,
        } => format!("{code}: {message} (fields: {})", fields.join(", ")),
        _ => String::new(),
    }
}

impl Target for SalesforceTarget<'_> {
    fn create_only_fields(&self, entity: &str) -> Vec<String> {
        self.describe(entity)
            .map(|info| {
                info.fields
                    .into_iter()
                    .filter(|f| f.createable && !f.updateable)
                    .map(|f| f.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn write(&self, entity: &str, batch: &[WriteRequest]) -> Vec<WriteResult> {
        let info = self.describe(entity);
        let mut results: Vec<Option<WriteResult>> = vec![None; batch.len()];
        let mut creates: (Vec<usize>, Vec<SalesforceRecord>) = (Vec::new(), Vec::new());
        let mut updates: (Vec<usize>, Vec<SalesforceRecord>) = (Vec::new(), Vec::new());
        for (index, request) in batch.iter().enumerate() {
            let mut record = shaped(&request.record, info.as_ref());
            match &request.action {
                WriteAction::Create => {
                    creates.0.push(index);
                    creates.1.push(record);
                }
                WriteAction::Update { target_id } => {
                    record.insert("Id".into(), Value::String(target_id.clone()));
                    updates.0.push(index);
                    updates.1.push(record);
                }
            }
        }
        for ((indexes, records), operation) in [
            (creates, Operation::Create { match_field: None }),
            (updates, Operation::Update),
        ] {
            if records.is_empty() {
                continue;
            }
            let written = self.client.write(entity, &operation, &records);
            for ((index, mut record), outcome) in
                indexes.into_iter().zip(records).zip(written.outcomes)
            {
                let outcome = match outcome.id() {
                    Some(id) => {
                        record.insert("Id".into(), Value::String(id.to_string()));
                        Ok((id.to_string(), record))
                    }
                    None => Err(message(&outcome)),
                };
                results[index] = Some(WriteResult { outcome });
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or(WriteResult {
                    outcome: Err("Salesforce gave no result for this record".into()),
                })
            })
            .collect()
    }

    /// The first record whose fields equal `key`. Long text fields cannot be filtered in SOQL,
    /// so those are compared here over the records the other fields select.
    fn find(
        &self,
        entity: &str,
        key: &[(String, Value)],
    ) -> Result<Option<(String, Record)>, EngineError> {
        if key.is_empty() {
            return Ok(None);
        }
        let info = self.describe(entity);
        let field_type = |field: &str| {
            info.as_ref()
                .and_then(|info| info.field(field))
                .map(|f| f.field_type.clone())
                .unwrap_or_default()
        };
        let long_text = |field: &str| field_type(field) == "textarea";
        let fields: Vec<&str> = key.iter().map(|(f, _)| f.as_str()).collect();
        let conditions: Vec<String> = key
            .iter()
            .filter(|(field, _)| !long_text(field))
            .map(|(field, value)| {
                let value = coerce(value.clone(), &field_type(field));
                format!("{field} = {}", literal(&value))
            })
            .collect();
        let mut soql = format!("SELECT Id, {} FROM {entity}", fields.join(", "));
        if !conditions.is_empty() {
            soql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        for page in self.client.query_pages(&soql, false) {
            let page = page.map_err(|error| engine_error(error, &soql))?;
            for record in page {
                let equal = key.iter().all(|(field, value)| {
                    record.get(field).is_some_and(|found| {
                        crate::transform::same_value(found, value)
                            || found.as_str().map(str::trim) == value.as_str().map(str::trim)
                    })
                });
                if let (true, Some(id)) = (equal, record.get("Id").and_then(Value::as_str)) {
                    return Ok(Some((id.to_string(), record.clone())));
                }
            }
        }
        Ok(None)
    }

    fn search(&self, entity: &str, by: &str, value: &Value) -> Result<Option<Value>, EngineError> {
        let soql = format!(
            "SELECT Id FROM {entity} WHERE {by} = {} LIMIT 1",
            literal(value)
        );
        Ok(self
            .first(&soql)?
            .and_then(|record| record.get("Id").cloned()))
    }

    fn api_calls(&self) -> u64 {
        self.client.calls()
    }

    fn delete(&self, entity: &str, target_id: &str) -> Result<(), String> {
        self.delete_many(entity, &[target_id.to_string()])
            .pop()
            .unwrap_or_else(|| Err("Salesforce gave no result for this record".into()))
    }

    /// Through sObject Collections, 200 per call; a record already deleted counts as done.
    fn delete_many(&self, _entity: &str, target_ids: &[String]) -> Vec<Result<(), String>> {
        self.client
            .delete_records(target_ids)
            .into_iter()
            .map(|outcome| match outcome {
                Err(refused) if !refused.already_gone() => Err(refused.to_string()),
                _ => Ok(()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_take_the_field_type() {
        assert_eq!(
            coerce(json!("2026-12-31T00:00:00"), "date"),
            json!("2026-12-31")
        );
        assert_eq!(coerce(json!("2026-12-31"), "date"), json!("2026-12-31"));
        assert_eq!(coerce(json!("true"), "boolean"), json!(true));
        assert_eq!(coerce(json!("12.5"), "currency"), json!(12.5));
        assert_eq!(coerce(json!(""), "double"), json!(null));
        assert_eq!(coerce(json!(42), "string"), json!("42"));
        assert_eq!(coerce(json!("x"), "unknown"), json!("x"));
    }
}
