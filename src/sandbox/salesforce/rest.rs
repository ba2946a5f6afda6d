//! The REST data endpoints of the emulated org: versions, resources, limits, SOQL query and
//! queryAll with `nextRecordsUrl` paging (also of child subquery results longer than
//! `child_batch_size`, each with its own locator), describe, and single-record create (JSON, or a
//! multipart blob upload), read, update, upsert, delete and blob download.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::describe;
use super::dml::{self, RecordError, Upserted};
use super::http::{error, json_body, json_response, not_found, versioned_call, Shared};
use super::query::{self, ChildPaging, Execution};
use super::state::{random_token, Cursor, State, ALPHANUMERIC};
use super::{blob_upload, multipart};

const RELEASES: &[(&str, &str)] = &[
    ("58.0", "Summer '23"),
    ("59.0", "Winter '24"),
    ("60.0", "Spring '24"),
    ("61.0", "Summer '24"),
    ("62.0", "Winter '25"),
    ("63.0", "Spring '25"),
    ("64.0", "Summer '25"),
    ("65.0", "Winter '26"),
    ("66.0", "Spring '26"),
];

/// `GET /services/data`: the versions this org serves (no authentication, no usage header).
pub async fn versions() -> Response {
    let list: Vec<Value> = RELEASES
        .iter()
        .map(|(v, label)| json!({"version": v, "url": format!("/services/data/v{v}"), "label": label}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

/// `GET /services/data/vXX.X/`
pub async fn resources(
    Extract(shared): Extract<Shared>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    versioned_call(&shared, &headers, &segment, |_, _, v| {
        let base = format!("/services/data/v{v}");
        let names = [
            "sobjects",
            "query",
            "queryAll",
            "limits",
            "composite",
            "jobs/ingest",
            "jobs/query",
        ];
        let map: Map<String, Value> = names
            .iter()
            .map(|n| {
                (
                    n.split('/').collect::<Vec<_>>().join(""),
                    json!(format!("{base}/{n}")),
                )
            })
            .collect();
        json_response(StatusCode::OK, &Value::Object(map))
    })
}

/// `GET /services/data/vXX.X/limits`
pub async fn limits(
    Extract(shared): Extract<Shared>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, _, _| {
        let limit = state.config.daily_limit;
        let body = json!({
            "DailyApiRequests": {"Max": limit, "Remaining": limit.saturating_sub(state.api_used)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1000},
            "FileStorageMB": {"Max": 1024, "Remaining": 1000},
        });
        json_response(StatusCode::OK, &body)
    })
}

/// The batch size asked for with `Sforce-Query-Options: batchSize=N` (200–2,000; default 2,000).
fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("Sforce-Query-Options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(2000, |n| n.clamp(200, 2000))
}

/// One page of a query result, opening a cursor when more pages follow.
fn page(
    state: &mut State,
    execution: Arc<Execution>,
    version: &str,
    batch: usize,
    offset: usize,
    locator: Option<String>,
) -> Response {
    if let Some(rows) = &execution.aggregate_rows {
        let body = json!({"totalSize": execution.total_size, "done": true, "records": rows});
        return json_response(StatusCode::OK, &body);
    }
    let offset = offset.min(execution.ids.len());
    let end = (offset + batch).min(execution.ids.len());
    let mut records = Vec::with_capacity(end - offset);
    let mut children = ChildPaging {
        batch_size: state.config.child_batch_size,
        opened: Vec::new(),
    };
    for id in &execution.ids[offset..end] {
        if let Some(record) = state.org.get(id) {
            match query::project_paging_children(
                &state.org,
                &execution,
                record,
                version,
                &mut children,
            ) {
                Ok(row) => records.push(row),
                Err(e) => return error(StatusCode::BAD_REQUEST, e.code.as_str(), &e.text),
            }
        }
    }
    // Each child result cut short is read on through its own locator, like a query's.
    for (locator, rest) in children.opened {
        state.cursors.insert(
            locator,
            Cursor {
                execution: Arc::new(rest),
                version: version.to_string(),
                batch_size: children.batch_size,
                last_used: Instant::now(),
            },
        );
    }
    // `json!` would copy every record; the page is assembled by hand.
    let mut page = Map::new();
    page.insert("totalSize".into(), json!(execution.total_size));
    page.insert("done".into(), json!(end >= execution.ids.len()));
    page.insert("records".into(), Value::Array(records));
    let mut body = Value::Object(page);
    if end < execution.ids.len() {
        let locator = locator.unwrap_or_else(|| format!("01g5g{}", random_token(13, ALPHANUMERIC)));
        body.as_object_mut().expect("object").insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/v{version}/query/{locator}-{end}")),
        );
        state.cursors.insert(
            locator,
            Cursor {
                execution,
                version: version.to_string(),
                batch_size: batch,
                last_used: Instant::now(),
            },
        );
    }
    // A finished cursor is not dropped here: like Salesforce's query locators it stays valid
    // until it has been idle for `locator_lifetime`, so a client whose answer to the last page
    // was lost can ask for that page again.
    json_response(StatusCode::OK, &body)
}

fn run_query(
    shared: &Shared,
    segment: &str,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    all: bool,
) -> Response {
    versioned_call(shared, headers, segment, |state, _, v| {
        let Some(q) = params.get("q") else {
            return error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "A query string has to be specified",
            );
        };
        match query::execute(&state.org, q, all) {
            Ok(execution) => page(state, Arc::new(execution), v, batch_size(headers), 0, None),
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                e.code.as_str(),
                &e.salesforce_message(q),
            ),
        }
    })
}

/// `GET /services/data/vXX.X/query?q=…`
pub async fn query(
    Extract(shared): Extract<Shared>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    run_query(&shared, &segment, &headers, &params, false)
}

/// `GET /services/data/vXX.X/queryAll?q=…`: deleted rows too.
pub async fn query_all(
    Extract(shared): Extract<Shared>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    run_query(&shared, &segment, &headers, &params, true)
}

/// `GET /services/data/vXX.X/query/{locator}-{offset}`: the next page (also for queryAll).
pub async fn query_more(
    Extract(shared): Extract<Shared>,
    Path((segment, next)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, _, _| {
        state.expire_cursors();
        let invalid = || {
            error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            )
        };
        let Some((locator, offset)) = next.rsplit_once('-') else {
            return invalid();
        };
        let Ok(offset) = offset.parse::<usize>() else {
            return invalid();
        };
        let Some(cursor) = state
            .cursors
            .get(locator)
            .filter(|c| offset <= c.execution.ids.len())
            .cloned()
        else {
            return invalid();
        };
        page(
            state,
            cursor.execution,
            &cursor.version,
            cursor.batch_size,
            offset,
            Some(locator.to_string()),
        )
    })
}

/// `GET /services/data/vXX.X/sobjects`
pub async fn global_describe(
    Extract(shared): Extract<Shared>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, _, v| {
        json_response(StatusCode::OK, &describe::global(&state.org, v))
    })
}

fn record_error(status: u16, e: &RecordError) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &json!([e.to_rest_json()]))
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match json_body(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a non-object value",
        )),
    }
}

/// A stored record as `GET /sobjects/{Type}/{id}` returns it.
fn full_record(
    state: &State,
    object: &str,
    id: &str,
    version: &str,
    fields: Option<&str>,
) -> Value {
    let info = state.org.describe(object).expect("known object");
    let record = state.org.get(id).cloned().unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        query::attributes(object, Some(id), version),
    );
    let wanted: Option<Vec<String>> = fields.map(|f| {
        f.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    });
    for field in &info.fields {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&field.name.to_ascii_lowercase()))
        {
            continue;
        }
        let value = if field.field_type == "base64" {
            json!(format!(
                "/services/data/v{version}/sobjects/{object}/{id}/{}",
                field.name
            ))
        } else {
            record.get(&field.name).cloned().unwrap_or(Value::Null)
        };
        out.insert(field.name.clone(), value);
    }
    Value::Object(out)
}

/// `POST /sobjects/{Type}` (create) and `GET /sobjects/{Type}` (basic info).
pub async fn sobject_root(
    Extract(shared): Extract<Shared>,
    method: Method,
    Path((segment, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, user, v| {
        let Some(object) = state.org.object_name(&object).map(str::to_string) else {
            return not_found();
        };
        if method == Method::GET {
            let info = state.org.describe(&object).expect("known");
            return json_response(
                StatusCode::OK,
                &json!({"objectDescribe": describe::object_summary(info, v), "recentItems": []}),
            );
        }
        // A blob upload ("Insert or Update Blob Data") comes as multipart: the fields in JSON
        // and the bytes as they are.
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (entity, blob) = if multipart::is_multipart(content_type) {
            match blob_upload::read(content_type, &body) {
                Ok(upload) => (Bytes::from(upload.entity), upload.blob),
                Err(response) => return response,
            }
        } else {
            (body.clone(), None)
        };
        let fields = match parse_body(&entity) {
            Ok(fields) => fields,
            Err(response) => return response,
        };
        let (blob_name, blob_bytes) = blob.unzip();
        let blob = blob_name.as_deref().zip(blob_bytes);
        match dml::create_with_blob(&mut state.org, &object, &fields, blob, user) {
            Ok(id) => {
                state.dirty = true;
                let mut response = json_response(
                    StatusCode::CREATED,
                    &json!({"id": id, "success": true, "errors": []}),
                );
                if let Ok(location) =
                    HeaderValue::from_str(&format!("/services/data/v{v}/sobjects/{object}/{id}"))
                {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            Err(e) => record_error(400, &e),
        }
    })
}

/// `GET|PATCH|DELETE /sobjects/{Type}/{id}` and `GET /sobjects/{Type}/describe`.
pub async fn sobject_record(
    Extract(shared): Extract<Shared>,
    method: Method,
    Path((segment, object, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, user, v| {
        let Some(object) = state.org.object_name(&object).map(str::to_string) else {
            return not_found();
        };
        if id == "describe" && method == Method::GET {
            let info = state.org.describe(&object).expect("known");
            return json_response(StatusCode::OK, &describe::object(&state.org, info, v));
        }
        match method {
            Method::GET => match dml::live_record(&state.org, &object, &id) {
                Ok((id, _)) => json_response(
                    StatusCode::OK,
                    &full_record(
                        state,
                        &object,
                        &id,
                        v,
                        params.get("fields").map(String::as_str),
                    ),
                ),
                Err((status, e)) => record_error(status, &e),
            },
            Method::PATCH => {
                let fields = match parse_body(&body) {
                    Ok(fields) => fields,
                    Err(response) => return response,
                };
                match dml::update(&mut state.org, &object, &id, &fields, user) {
                    Ok(()) => {
                        state.dirty = true;
                        StatusCode::NO_CONTENT.into_response()
                    }
                    Err((status, e)) => record_error(status, &e),
                }
            }
            Method::DELETE => match dml::delete(&mut state.org, &object, &id, user) {
                Ok(()) => {
                    state.dirty = true;
                    StatusCode::NO_CONTENT.into_response()
                }
                Err((status, e)) => record_error(status, &e),
            },
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                &format!("HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE"),
            ),
        }
    })
}

/// `GET /sobjects/{Type}/{id}/{BlobField}` (raw bytes) and `PATCH /sobjects/{Type}/{Field}/{value}`
/// (upsert by external id).
pub async fn sobject_field(
    Extract(shared): Extract<Shared>,
    method: Method,
    Path((segment, object, first, second)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, user, v| {
        let Some(object) = state.org.object_name(&object).map(str::to_string) else {
            return not_found();
        };
        match method {
            Method::GET => {
                let (id, record) = match dml::live_record(&state.org, &object, &first) {
                    Ok(found) => found,
                    Err((status, e)) => return record_error(status, &e),
                };
                if dml::blob_field(&object) != Some(second.as_str()) {
                    return not_found();
                }
                let content_type = record
                    .get("ContentType")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let bytes = state.org.blob(&id).unwrap_or_default().to_vec();
                let mut response = (StatusCode::OK, bytes).into_response();
                if let Ok(value) = HeaderValue::from_str(&content_type) {
                    response.headers_mut().insert(header::CONTENT_TYPE, value);
                }
                response
            }
            Method::PATCH | Method::POST => {
                let fields = match parse_body(&body) {
                    Ok(fields) => fields,
                    Err(response) => return response,
                };
                match dml::upsert(&mut state.org, &object, &first, &second, &fields, user) {
                    Ok(Upserted::Created(id)) => {
                        state.dirty = true;
                        json_response(
                            StatusCode::CREATED,
                            &json!({"id": id, "success": true, "errors": [], "created": true}),
                        )
                    }
                    Ok(Upserted::Updated(id)) => {
                        state.dirty = true;
                        json_response(
                            StatusCode::OK,
                            &json!({"id": id, "success": true, "errors": [], "created": false}),
                        )
                    }
                    Err((300, e)) => {
                        let urls: Vec<String> = e
                            .message
                            .split(',')
                            .map(|id| format!("/services/data/v{v}/sobjects/{object}/{id}"))
                            .collect();
                        json_response(StatusCode::MULTIPLE_CHOICES, &json!(urls))
                    }
                    Err((status, e)) => record_error(status, &e),
                }
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                &format!("HTTP Method '{method}' not allowed. Allowed are GET,PATCH"),
            ),
        }
    })
}
