//! sObject Collections: create, update, upsert, delete and retrieve up to 200 records per call,
//! with per-record results in request order and `allOrNone` both ways.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::dml::{self, Operation, RecordError, Upserted};
use super::http::{error, json_body, json_response, not_found, versioned_call, Shared};
use super::org::Org;

const LIMIT: usize = 200;

fn too_many() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

fn failure(e: &RecordError) -> Value {
    json!({"success": false, "errors": [e.to_collection_json()]})
}

fn rolled_back() -> Value {
    json!({"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]})
}

/// The body's `allOrNone` and `records`.
fn parse(body: &Bytes) -> Result<(bool, Vec<Map<String, Value>>), Response> {
    let value = json_body(body)?;
    let all_or_none = value
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = value
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "No records to process",
            )
        })?;
    let records = records
        .iter()
        .filter_map(|r| r.as_object().cloned())
        .collect();
    Ok((all_or_none, records))
}

fn record_type(org: &Org, record: &Map<String, Value>) -> Result<String, RecordError> {
    let name = record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RecordError::new("INVALID_TYPE", "Must send a concrete entity type.", &[])
        })?;
    org.object_name(name).map(str::to_string).ok_or_else(|| {
        RecordError::new(
            "INVALID_TYPE",
            format!("sObject type '{name}' is not supported."),
            &[],
        )
    })
}

/// What one record of a request would do, checked without writing.
fn precheck(
    org: &Org,
    method: &Method,
    upsert: Option<(&str, &str)>,
    record: &Map<String, Value>,
) -> Result<(), RecordError> {
    let object = match upsert {
        Some((object, _)) => object.to_string(),
        None => record_type(org, record)?,
    };
    let fields: Map<String, Value> = record
        .iter()
        .filter(|(k, _)| *k != "attributes")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match (method, upsert) {
        (&Method::POST, _) => dml::validate(org, &object, &fields, Operation::Create).map(|_| ()),
        (_, Some(_)) => Ok(()),
        _ => {
            let id = fields.get("Id").and_then(Value::as_str).unwrap_or_default();
            dml::live_record(org, &object, id).map_err(|(_, e)| e)?;
            dml::validate(org, &object, &fields, Operation::Update).map(|_| ())
        }
    }
}

fn apply(
    org: &mut Org,
    method: &Method,
    upsert: Option<(&str, &str)>,
    record: &Map<String, Value>,
    user: &str,
) -> Value {
    let object = match upsert {
        Some((object, _)) => object.to_string(),
        None => match record_type(org, record) {
            Ok(object) => object,
            Err(e) => return failure(&e),
        },
    };
    let mut fields: Map<String, Value> = record
        .iter()
        .filter(|(k, _)| *k != "attributes")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match (method, upsert) {
        (&Method::POST, _) => match dml::create(org, &object, &fields, user) {
            Ok(id) => json!({"id": id, "success": true, "errors": []}),
            Err(e) => failure(&e),
        },
        (_, Some((_, key))) => {
            let Some(value) = fields.remove(key).or_else(|| {
                fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v.clone())
            }) else {
                return failure(&RecordError::new(
                    "MISSING_ARGUMENT",
                    format!("{key} not specified"),
                    &[],
                ));
            };
            fields.retain(|k, _| !k.eq_ignore_ascii_case(key));
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            match dml::upsert(org, &object, key, &value, &fields, user) {
                Ok(Upserted::Created(id)) => {
                    json!({"id": id, "success": true, "errors": [], "created": true})
                }
                Ok(Upserted::Updated(id)) => {
                    json!({"id": id, "success": true, "errors": [], "created": false})
                }
                Err((300, _)) => failure(&RecordError::new(
                    "DUPLICATE_EXTERNAL_ID",
                    format!("{key}: more than one record found for external id field: {value}"),
                    &[key],
                )),
                Err((_, e)) => failure(&e),
            }
        }
        _ => {
            let id = fields
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match dml::update(org, &object, &id, &fields, user) {
                Ok(()) => {
                    json!({"id": dml::live_record(org, &object, &id).map(|(id, _)| id).unwrap_or(id), "success": true, "errors": []})
                }
                Err((_, e)) => failure(&e),
            }
        }
    }
}

fn write(
    shared: &Shared,
    segment: &str,
    headers: &HeaderMap,
    method: Method,
    upsert: Option<(String, String)>,
    body: &Bytes,
) -> Response {
    versioned_call(shared, headers, segment, |state, user, _| {
        let (all_or_none, records) = match parse(body) {
            Ok(parsed) => parsed,
            Err(response) => return response,
        };
        if records.len() > LIMIT {
            return too_many();
        }
        let upsert = match &upsert {
            Some((object, key)) => match state.org.object_name(object) {
                Some(name) => Some((name.to_string(), key.clone())),
                None => return not_found(),
            },
            None => None,
        };
        let upsert_ref = upsert.as_ref().map(|(o, k)| (o.as_str(), k.as_str()));
        if all_or_none {
            let checks: Vec<Result<(), RecordError>> = records
                .iter()
                .map(|r| precheck(&state.org, &method, upsert_ref, r))
                .collect();
            if checks.iter().any(Result::is_err) {
                return json_response(StatusCode::OK, &all_or_none_results(&checks));
            }
        }
        let results: Vec<Value> = records
            .iter()
            .map(|r| apply(&mut state.org, &method, upsert_ref, r, user))
            .collect();
        state.dirty = true;
        json_response(StatusCode::OK, &Value::Array(results))
    })
}

/// Results of an `allOrNone` request that failed: each failing record's error, and
/// `ALL_OR_NONE_OPERATION_ROLLED_BACK` for the others.
fn all_or_none_results<T>(checks: &[Result<T, RecordError>]) -> Value {
    Value::Array(
        checks
            .iter()
            .map(|c| c.as_ref().err().map_or_else(rolled_back, failure))
            .collect(),
    )
}

/// `POST|PATCH|DELETE /composite/sobjects`
pub async fn collection(
    Extract(shared): Extract<Shared>,
    method: Method,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if method != Method::DELETE {
        return write(&shared, &segment, &headers, method, None, &body);
    }
    versioned_call(&shared, &headers, &segment, |state, user, _| {
        let ids: Vec<String> = params
            .get("ids")
            .map(|s| {
                s.split(',')
                    .map(|i| i.trim().to_string())
                    .filter(|i| !i.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let all_or_none = params.get("allOrNone").is_some_and(|v| v == "true");
        if ids.len() > LIMIT {
            return too_many();
        }
        let check = |org: &Org, id: &str| -> Result<String, RecordError> {
            let object = org.object_of_id(id).map(str::to_string).ok_or_else(|| {
                RecordError::new("MALFORMED_ID", format!("malformed id {id}"), &[])
            })?;
            dml::live_record(org, &object, id)
                .map(|_| object)
                .map_err(|(_, e)| e)
        };
        let checks: Vec<Result<String, RecordError>> =
            ids.iter().map(|id| check(&state.org, id)).collect();
        if all_or_none && checks.iter().any(Result::is_err) {
            return json_response(StatusCode::OK, &all_or_none_results(&checks));
        }
        let results: Vec<Value> = ids
            .iter()
            .zip(checks)
            .map(|(id, check)| {
                match check.and_then(|object| {
                    dml::delete(&mut state.org, &object, id, user).map_err(|(_, e)| e)
                }) {
                    Ok(()) => {
                        json!({"id": super::ids::normalize(id), "success": true, "errors": []})
                    }
                    Err(e) => {
                        json!({"id": null, "success": false, "errors": [e.to_collection_json()]})
                    }
                }
            })
            .collect();
        state.dirty = true;
        json_response(StatusCode::OK, &Value::Array(results))
    })
}

/// `PATCH /composite/sobjects/{Type}/{ExternalIdField}`: upsert by an external id.
pub async fn typed_collection(
    Extract(shared): Extract<Shared>,
    method: Method,
    Path((segment, object, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write(
        &shared,
        &segment,
        &headers,
        method,
        Some((object, key)),
        &body,
    )
}
