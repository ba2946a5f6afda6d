//! Halo's custom fields: their definitions (`GET /api/FieldInfo`: `id`, `name` with its `CF`
//! prefix, `label`, `type`, `typeid`), setting one on a record before it is written — by name
//! (`{"name": "CFSalesforceStage", "value": ...}`) or by id (`{"id": 12, "value": ...}`), both of
//! which Halo accepts — and reading a record's `customfields` back as name → value.

use serde_json::{Map, Value};

use super::client::HaloClient;
use super::error::HaloError;
use super::service::Call;

/// One custom field as Halo defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDefinition {
    pub id: u64,
    /// The API name, e.g. `CFSalesforceUserId`.
    pub name: String,
    pub label: Option<String>,
    /// Halo's field type (text, memo, single select, date, ...), as its number.
    pub field_type: Option<i64>,
    /// Which kind of record the field belongs to (Halo's `typeid`).
    pub type_id: Option<i64>,
}

impl FieldDefinition {
    fn from_json(value: &Value) -> Option<FieldDefinition> {
        Some(FieldDefinition {
            id: value.get("id").and_then(as_id)?,
            name: value.get("name").and_then(Value::as_str)?.to_string(),
            label: value
                .get("label")
                .and_then(Value::as_str)
                .map(str::to_string),
            field_type: value.get("type").and_then(Value::as_i64),
            type_id: value.get("typeid").and_then(Value::as_i64),
        })
    }
}

/// How a custom field is named in a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    Name(String),
    Id(u64),
}

impl FieldRef {
    /// Whether an element of a `customfields` array is this field.
    pub fn matches(&self, field: &Value) -> bool {
        match self {
            FieldRef::Name(name) => field
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|other| other.eq_ignore_ascii_case(name)),
            FieldRef::Id(id) => field.get("id").and_then(as_id) == Some(*id),
        }
    }
}

/// Which field an element of a `customfields` array is about (its id when it has one).
pub(crate) fn custom_field_key(field: &Value) -> Option<FieldRef> {
    if let Some(id) = field.get("id").and_then(as_id).filter(|&id| id > 0) {
        return Some(FieldRef::Id(id));
    }
    field
        .get("name")
        .and_then(Value::as_str)
        .map(|name| FieldRef::Name(name.to_string()))
}

fn as_id(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|id| *id >= 0.0).map(|id| id as u64))
}

/// Sets a custom field on a record about to be written, replacing an earlier value for the
/// same field. A record that is not an object is left alone.
pub fn set_custom_field(record: &mut Value, field: FieldRef, value: Value) {
    let Some(object) = record.as_object_mut() else {
        return;
    };
    let fields = object
        .entry("customfields")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !fields.is_array() {
        *fields = Value::Array(Vec::new());
    }
    let Some(fields) = fields.as_array_mut() else {
        return;
    };
    fields.retain(|existing| !field.matches(existing));
    let mut element = Map::new();
    match field {
        FieldRef::Name(name) => element.insert("name".into(), Value::String(name)),
        FieldRef::Id(id) => element.insert("id".into(), Value::from(id)),
    };
    element.insert("value".into(), value);
    fields.push(Value::Object(element));
}

/// A record's custom fields as name → value (fields Halo sent without a value read as null).
pub fn custom_field_values(record: &Value) -> Map<String, Value> {
    record
        .get("customfields")
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|field| {
                    let name = field.get("name").and_then(Value::as_str)?;
                    let value = field.get("value").cloned().unwrap_or(Value::Null);
                    Some((name.to_string(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One custom field's value by name (`None` when the record does not carry it).
pub fn custom_field_value<'a>(record: &'a Value, name: &str) -> Option<&'a Value> {
    record
        .get("customfields")?
        .as_array()?
        .iter()
        .find(|field| FieldRef::Name(name.to_string()).matches(field))
        .map(|field| field.get("value").unwrap_or(&Value::Null))
}

/// Looks up definitions by name, to ask a list for the fields a pipeline maps.
pub fn ids_for(definitions: &[FieldDefinition], names: &[&str]) -> Result<Vec<u64>, HaloError> {
    names
        .iter()
        .map(|name| {
            definitions
                .iter()
                .find(|definition| definition.name.eq_ignore_ascii_case(name))
                .map(|definition| definition.id)
                .ok_or_else(|| {
                    let known: Vec<&str> = definitions
                        .iter()
                        .map(|definition| definition.name.as_str())
                        .collect();
                    HaloError::Settings(format!(
                        "Halo has no custom field `{name}` (it has: {})",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

impl HaloClient {
    /// Every custom field Halo defines.
    pub fn custom_field_definitions(&self) -> Result<Vec<FieldDefinition>, HaloError> {
        let answer = self
            .service
            .json(&Call::get("FieldInfo", "FieldInfo".into(), Vec::new()))?;
        let page = super::list::read_page("FieldInfo", answer)?;
        Ok(page
            .records
            .iter()
            .filter_map(FieldDefinition::from_json)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_by_name_or_id_replaces_earlier_values() {
        let mut record = json!({ "name": "Acme" });
        set_custom_field(
            &mut record,
            FieldRef::Name("CFSalesforceStage".into()),
            json!("Won"),
        );
        set_custom_field(&mut record, FieldRef::Id(7), json!("005A"));
        set_custom_field(
            &mut record,
            FieldRef::Name("cfsalesforcestage".into()),
            json!("Lost"),
        );
        assert_eq!(
            record["customfields"],
            json!([{ "id": 7, "value": "005A" }, { "name": "cfsalesforcestage", "value": "Lost" }])
        );
        let mut not_object = json!(3);
        set_custom_field(&mut not_object, FieldRef::Id(1), json!(1));
        assert_eq!(not_object, json!(3));
    }

    #[test]
    fn reads_values_by_name() {
        let record = json!({ "customfields": [
            { "id": 5, "name": "CFSalesforceUserId", "label": "SF user", "type": 0, "value": "005A", "display": "005A" },
            { "id": 6, "name": "CFSalesforceStage", "type": 2 }
        ]});
        let values = custom_field_values(&record);
        assert_eq!(values["CFSalesforceUserId"], json!("005A"));
        assert_eq!(values["CFSalesforceStage"], Value::Null);
        assert_eq!(
            custom_field_value(&record, "cfsalesforceuserid"),
            Some(&json!("005A"))
        );
        assert_eq!(custom_field_value(&record, "CFOther"), None);
        assert!(custom_field_values(&json!({})).is_empty());
    }

    #[test]
    fn definitions_and_lookup() {
        let definitions: Vec<FieldDefinition> = [
            json!({ "id": 5, "name": "CFSalesforceUserId", "label": "SF user", "type": 0, "typeid": 1 }),
            json!({ "id": 6, "name": "CFSalesforceStage", "type": 2 }),
            json!({ "name": "no id" }),
        ]
        .iter()
        .filter_map(FieldDefinition::from_json)
        .collect();
        assert_eq!(definitions.len(), 2);
        assert_eq!(definitions[0].type_id, Some(1));
        assert_eq!(
            ids_for(&definitions, &["CFSalesforceStage", "cfsalesforceuserid"]).unwrap(),
            vec![6, 5]
        );
        let error = ids_for(&definitions, &["CFNope"]).unwrap_err();
        assert!(
            error.to_string().contains("no custom field `CFNope`"),
            "{error}"
        );
    }
}
