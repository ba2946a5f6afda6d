//! Writes to the emulated org with the server-side rules of a real one: unknown and read-only
//! fields, required fields, field types and lengths, restricted picklists, Id shapes and
//! references, unique external ids, deleted records. Errors carry Salesforce's status codes and
//! wording.

use serde_json::{json, Map, Value};

use super::ids;
use super::org::{Org, Record};
use crate::civil;
use crate::salesforce::catalog::FieldInfo;

/// One error of one record, as Salesforce reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> Self {
        RecordError {
            status_code: code.to_string(),
            message: message.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// `{"statusCode", "message", "fields"}` as in Collections results.
    pub fn to_collection_json(&self) -> Value {
        json!({"statusCode": self.status_code, "message": self.message, "fields": self.fields})
    }

    /// `{"message", "errorCode", "fields"}` as in a single-record error body.
    pub fn to_rest_json(&self) -> Value {
        json!({"message": self.message, "errorCode": self.status_code, "fields": self.fields})
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

fn label(object: &str, field: &FieldInfo) -> String {
    match field.name.strip_suffix("Id") {
        Some(base) if field.field_type == "reference" && !base.is_empty() => format!("{base} ID"),
        _ if field.name == "Id" => format!("{object} ID"),
        _ => field.name.clone(),
    }
}

/// Checks one value against its field's type; returns the value as stored.
fn check_value(
    org: &Org,
    object: &str,
    field: &FieldInfo,
    value: &Value,
) -> Result<Value, RecordError> {
    if value.is_null() {
        return if field.nillable || field.field_type == "boolean" {
            Ok(Value::Null)
        } else {
            Err(RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", field.name),
                &[&field.name],
            ))
        };
    }
    let name = field.name.as_str();
    let wrong = |expected: &str| {
        RecordError::new(
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize instance of {expected} from {} value {value} or request may be missing a required field", kind(value)),
            &[name],
        )
    };
    match field.field_type.as_str() {
        "boolean" => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| wrong("boolean")),
        "int" => value.as_i64().map(Value::from).ok_or_else(|| wrong("int")),
        "double" | "currency" | "percent" => {
            let number = value
                .as_f64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| wrong("double"))?;
            Ok(json!(number))
        }
        "date" => {
            let text = value.as_str().ok_or_else(|| wrong("date"))?;
            civil::parse_date(text)
                .map(|d| Value::String(civil::format_date(d)))
                .ok_or_else(|| {
                    RecordError::new(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{name}: value not of required type: {text}"),
                        &[name],
                    )
                })
        }
        "datetime" => {
            let text = value.as_str().ok_or_else(|| wrong("datetime"))?;
            civil::parse_datetime(text)
                .map(|ms| Value::String(civil::salesforce_datetime(ms)))
                .ok_or_else(|| {
                    RecordError::new(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{name}: value not of required type: {text}"),
                        &[name],
                    )
                })
        }
        "reference" | "id" => {
            let text = value.as_str().ok_or_else(|| wrong("id"))?;
            let normalized = ids::normalize(text).ok_or_else(|| {
                RecordError::new(
                    "MALFORMED_ID",
                    format!(
                        "{}: id value of incorrect type: {text}",
                        label(object, field)
                    ),
                    &[name],
                )
            })?;
            let target_ok = org
                .object_of_id(&normalized)
                .is_some_and(|o| field.reference_to.iter().any(|t| t == o));
            if field.field_type == "reference" && (!target_ok || org.get(&normalized).is_none()) {
                if !target_ok {
                    return Err(RecordError::new(
                        "MALFORMED_ID",
                        format!(
                            "{}: id value of incorrect type: {text}",
                            label(object, field)
                        ),
                        &[name],
                    ));
                }
                return Err(RecordError::new(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                    &[name],
                ));
            }
            Ok(Value::String(normalized))
        }
        "base64" => value
            .as_str()
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| wrong("base64")),
        _ => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(wrong("String")),
            };
            if field.length > 0 && text.chars().count() > field.length as usize {
                return Err(RecordError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{name}: data value too large: {} (max length={})",
                        truncate(&text, 40),
                        field.length
                    ),
                    &[name],
                ));
            }
            if let Some(bad) = outside_restricted_picklist(field, &text) {
                return Err(RecordError::new(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!("bad value for restricted picklist field: {bad}"),
                    &[name],
                ));
            }
            Ok(Value::String(text))
        }
    }
}

/// The value (of a multi-select one, the first part) a restricted picklist does not list.
/// Salesforce compares API values exactly; an empty value is a null, which nillable allows.
fn outside_restricted_picklist<'t>(field: &FieldInfo, text: &'t str) -> Option<&'t str> {
    if !field.restricted_picklist || text.is_empty() {
        return None;
    }
    let listed = |value: &str| field.picklist_values.iter().any(|v| v == value);
    match field.field_type.as_str() {
        "picklist" => (!listed(text)).then_some(text),
        "multipicklist" => text.split(';').find(|part| !listed(part)),
        _ => None,
    }
}

fn truncate(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_TRUE",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Null => "VALUE_NULL",
    }
}

/// Fields a create must give: createable, not nillable, and not defaulted by the server.
fn required_on_create(field: &FieldInfo) -> bool {
    field.createable
        && !field.nillable
        && field.field_type != "boolean"
        && !matches!(
            field.name.as_str(),
            "OwnerId" | "Probability" | "Status" | "Priority" | "Alias" | "Username"
        )
}

/// Validates `fields` for a create or an update of `object`, returning the values to store.
pub fn validate(
    org: &Org,
    object: &str,
    fields: &Map<String, Value>,
    operation: Operation,
) -> Result<Record, RecordError> {
    let info = org.describe(object).ok_or_else(|| {
        RecordError::new("NOT_FOUND", "The requested resource does not exist", &[])
    })?;
    let mut out = Record::new();
    let mut not_writable = Vec::new();
    for (key, value) in fields {
        if key == "attributes" || (key == "Id" && operation == Operation::Update) {
            continue;
        }
        let field = info
            .fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(key))
            .ok_or_else(|| {
                RecordError::new(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type {object}"),
                    &[],
                )
            })?;
        let writable = match operation {
            Operation::Create => field.createable,
            Operation::Update => field.updateable,
        };
        if !writable {
            not_writable.push(field.name.clone());
            continue;
        }
        out.insert(field.name.clone(), check_value(org, object, field, value)?);
    }
    if !not_writable.is_empty() {
        let verb = if operation == Operation::Create {
            "create"
        } else {
            "update"
        };
        let names: Vec<&str> = not_writable.iter().map(String::as_str).collect();
        return Err(RecordError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!("Unable to {verb} fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", names.join(", ")),
            &names,
        ));
    }
    if operation == Operation::Create {
        let missing: Vec<&str> = info
            .fields
            .iter()
            .filter(|f| required_on_create(f) && out.get(&f.name).is_none_or(Value::is_null))
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
        apply_defaults(object, &mut out);
    }
    Ok(out)
}

/// Values a real org fills in on create.
fn apply_defaults(object: &str, record: &mut Record) {
    let mut default = |key: &str, value: Value| {
        if record.get(key).is_none_or(Value::is_null) {
            record.insert(key.to_string(), value);
        }
    };
    match object {
        "Case" => {
            default("Status", json!("New"));
            default("Priority", json!("Medium"));
            default("IsEscalated", json!(false));
            default("IsClosed", json!(false));
        }
        "CaseComment" => default("IsPublished", json!(false)),
        "Opportunity" => {
            default("IsPrivate", json!(false));
        }
        _ => {}
    }
    if object == "Opportunity" {
        let stage = record
            .get("StageName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (probability, closed, won) = stage_facts(&stage);
        if record.get("Probability").is_none_or(Value::is_null) {
            record.insert("Probability".into(), json!(probability));
        }
        record.insert("IsClosed".into(), json!(closed));
        record.insert("IsWon".into(), json!(won));
    }
}

/// Default probability, closed and won for an Opportunity stage.
pub fn stage_facts(stage: &str) -> (f64, bool, bool) {
    match stage {
        "Prospecting" | "Qualification" => (10.0, false, false),
        "Needs Analysis" => (20.0, false, false),
        "Value Proposition" => (50.0, false, false),
        "Id. Decision Makers" => (60.0, false, false),
        "Perception Analysis" => (70.0, false, false),
        "Proposal/Price Quote" => (75.0, false, false),
        "Negotiation/Review" => (90.0, false, false),
        "Closed Won" => (100.0, true, true),
        "Closed Lost" => (0.0, true, false),
        _ => (0.0, false, false),
    }
}

/// Creates a record; returns its Id.
pub fn create(
    org: &mut Org,
    object: &str,
    fields: &Map<String, Value>,
    user: &str,
) -> Result<String, RecordError> {
    create_with_blob(org, object, fields, None, user)
}

/// Creates a record whose blob may come as raw bytes — the binary part of a multipart upload,
/// named after its field — rather than base64 in `fields`. A new ContentVersion gets its
/// ContentDocument (and link) as in Salesforce.
pub fn create_with_blob(
    org: &mut Org,
    object: &str,
    fields: &Map<String, Value>,
    blob: Option<(&str, Vec<u8>)>,
    user: &str,
) -> Result<String, RecordError> {
    let blob_name = blob_field(object);
    let mut values = match (&blob, blob_name) {
        (Some((part, _)), Some(name)) if part.eq_ignore_ascii_case(name) => {
            // The bytes stand for the field in the checks (it is required on create).
            let mut with_blob = fields.clone();
            with_blob.retain(|key, _| !key.eq_ignore_ascii_case(name));
            with_blob.insert(name.to_string(), Value::String(String::new()));
            validate(org, object, &with_blob, Operation::Create)?
        }
        (Some((part, _)), _) => return Err(not_a_blob_field(org, object, part)),
        (None, _) => validate(org, object, fields, Operation::Create)?,
    };
    let encoded = blob_name.and_then(|name| values.remove(name));
    let bytes = match (blob, encoded, blob_name) {
        (Some((_, bytes)), _, _) => bytes,
        (None, Some(text), Some(name)) => decode_base64(name, text.as_str().unwrap_or_default())?,
        _ => return Ok(org.create(object, values, user)),
    };
    values.insert(length_field(object).into(), json!(bytes.len()));
    let id = org.create(object, values, user);
    org.put_blob(&id, bytes);
    if object == "ContentVersion" {
        super::content::publish_version(org, &id, user);
    }
    Ok(id)
}

/// The error for a binary part named after no blob field of `object` (Salesforce's wording for
/// this is not recorded: these are its errors for such a field sent in JSON).
fn not_a_blob_field(org: &Org, object: &str, part: &str) -> RecordError {
    match org.describe(object).and_then(|info| {
        info.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(part))
    }) {
        Some(field) => RecordError::new(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            format!("{}: value not of required type", field.name),
            &[&field.name],
        ),
        None => RecordError::new(
            "INVALID_FIELD",
            format!("No such column '{part}' on sobject of type {object}"),
            &[],
        ),
    }
}

/// Finds a live record of `object` by Id, with Salesforce's errors for a bad or deleted one.
pub fn live_record<'o>(
    org: &'o Org,
    object: &str,
    id: &str,
) -> Result<(String, &'o Record), (u16, RecordError)> {
    let normalized = ids::normalize(id)
        .filter(|n| org.object_of_id(n) == Some(object))
        .ok_or_else(|| {
            (
                400,
                RecordError::new(
                    "MALFORMED_ID",
                    format!("{object} ID: id value of incorrect type: {id}"),
                    &["Id"],
                ),
            )
        })?;
    let record = org.get(&normalized).ok_or_else(|| {
        (
            404,
            RecordError::new("NOT_FOUND", "The requested resource does not exist", &[]),
        )
    })?;
    if record.get("IsDeleted") == Some(&Value::Bool(true)) {
        return Err((
            404,
            RecordError::new("ENTITY_IS_DELETED", "entity is deleted", &[]),
        ));
    }
    Ok((normalized, record))
}

/// Updates fields of a record.
pub fn update(
    org: &mut Org,
    object: &str,
    id: &str,
    fields: &Map<String, Value>,
    user: &str,
) -> Result<(), (u16, RecordError)> {
    let (id, _) = live_record(org, object, id)?;
    let mut values = validate(org, object, fields, Operation::Update).map_err(|e| (400, e))?;
    // A new body in base64 replaces the stored bytes; the record keeps only their length.
    if let Some(name) = blob_field(object) {
        if let Some(text) = values.remove(name) {
            let bytes =
                decode_base64(name, text.as_str().unwrap_or_default()).map_err(|e| (400, e))?;
            values.insert(length_field(object).into(), json!(bytes.len()));
            org.put_blob(&id, bytes);
        }
    }
    if object == "Opportunity" {
        if let Some(stage) = values
            .get("StageName")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            let (_, closed, won) = stage_facts(&stage);
            values.insert("IsClosed".into(), json!(closed));
            values.insert("IsWon".into(), json!(won));
        }
    }
    org.touch(&id, values, user);
    Ok(())
}

/// Deletes a record (to the recycle bin: `IsDeleted = true`, still visible to `queryAll`).
pub fn delete(org: &mut Org, object: &str, id: &str, user: &str) -> Result<(), (u16, RecordError)> {
    let (id, _) = live_record(org, object, id)?;
    let mut change = Record::new();
    change.insert("IsDeleted".into(), json!(true));
    org.touch(&id, change, user);
    Ok(())
}

/// Outcome of an upsert.
pub enum Upserted {
    Created(String),
    Updated(String),
}

/// Upserts by an external id field (or `Id`): creates when no live record has the value,
/// updates when one has it, fails when several have it.
pub fn upsert(
    org: &mut Org,
    object: &str,
    field: &str,
    value: &str,
    fields: &Map<String, Value>,
    user: &str,
) -> Result<Upserted, (u16, RecordError)> {
    let info = org.describe(object).ok_or_else(|| {
        (
            404,
            RecordError::new("NOT_FOUND", "The requested resource does not exist", &[]),
        )
    })?;
    let field_info = info
        .fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(field) && (f.external_id || f.name == "Id"))
        .ok_or_else(|| {
            (
                404,
                RecordError::new(
                    "NOT_FOUND",
                    format!(
                        "Provided external ID field does not exist or is not accessible: {field}"
                    ),
                    &[],
                ),
            )
        })?
        .clone();
    if fields
        .keys()
        .any(|k| k.eq_ignore_ascii_case(&field_info.name))
    {
        return Err((
            400,
            RecordError::new(
                "INVALID_FIELD",
                format!(
                    "The external ID field {} should not be included in the request body",
                    field_info.name
                ),
                &[],
            ),
        ));
    }
    let matches: Vec<String> = org
        .records(object)
        .iter()
        .filter(|r| r.get("IsDeleted") != Some(&Value::Bool(true)))
        .filter(|r| {
            r.get(&field_info.name)
                .and_then(Value::as_str)
                .is_some_and(|v| v == value)
        })
        .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
        .collect();
    match matches.as_slice() {
        [] => {
            let mut with_key = fields.clone();
            if field_info.name != "Id" {
                with_key.insert(field_info.name.clone(), Value::String(value.to_string()));
            }
            create(org, object, &with_key, user)
                .map(Upserted::Created)
                .map_err(|e| (400, e))
        }
        [id] => {
            let id = id.clone();
            update(org, object, &id, fields, user)?;
            Ok(Upserted::Updated(id))
        }
        _ => Err((
            300,
            RecordError::new("MULTIPLE_CHOICES", matches.join(","), &[]),
        )),
    }
}

/// The blob field of an object (`Attachment.Body`), whose bytes are kept apart from the record.
pub fn blob_field(object: &str) -> Option<&'static str> {
    match object {
        "Attachment" => Some("Body"),
        "ContentVersion" => Some("VersionData"),
        _ => None,
    }
}

fn length_field(object: &str) -> &'static str {
    match object {
        "ContentVersion" => "ContentSize",
        _ => "BodyLength",
    }
}

fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, RecordError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| {
            RecordError::new(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                format!("{field}: value not of required type"),
                &[field],
            )
        })
}
