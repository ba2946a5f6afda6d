//! Bulk API 2.0: ingest jobs (create, CSV upload, `UploadComplete`, results as CSV with
//! `sf__Id` / `sf__Created` / `sf__Error`, successful rows echoing the values as Salesforce read
//! them, numbers as `9.12260031E8`) and query jobs (results paged with `Sforce-Locator` and
//! `Sforce-NumberOfRecords`). Jobs run as soon as their data is complete.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::dml::{self, RecordError, Upserted};
use super::http::{error, json_body, json_response, not_found, versioned_call, Shared};
use super::org::Org;
use super::query;
use super::state::State;
use crate::civil;
use crate::salesforce::catalog::FieldInfo;

/// One Bulk job, ingest or query.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub operation: String,
    pub object: String,
    pub external_id: Option<String>,
    pub state: String,
    pub created: String,
    pub api_version: String,
    pub created_by: String,
    /// Uploaded CSV (ingest).
    pub data: Vec<u8>,
    pub processed: usize,
    pub failed: usize,
    pub error_message: Option<String>,
    /// Result rows: (sf__Id, created, error, original values).
    pub successes: Vec<(String, bool, Vec<String>)>,
    pub failures: Vec<(String, String, Vec<String>)>,
    pub unprocessed: Vec<Vec<String>>,
    pub header: Vec<String>,
    /// Query results as CSV rows (query jobs), header first.
    pub rows: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Ingest,
    Query,
}

impl Job {
    fn info(&self) -> Value {
        let mut info = json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version.parse::<f64>().unwrap_or(62.0),
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        let map = info.as_object_mut().expect("object");
        if self.kind == JobKind::Ingest {
            map.insert(
                "contentUrl".into(),
                json!(format!(
                    "services/data/v{}/jobs/ingest/{}/batches",
                    self.api_version, self.id
                )),
            );
            if let Some(field) = &self.external_id {
                map.insert("externalIdFieldName".into(), json!(field));
            }
        }
        if matches!(self.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
            map.insert(
                "jobType".into(),
                json!(if self.kind == JobKind::Ingest {
                    "V2Ingest"
                } else {
                    "V2Query"
                }),
            );
            map.insert("numberRecordsProcessed".into(), json!(self.processed));
            if self.kind == JobKind::Ingest {
                map.insert("numberRecordsFailed".into(), json!(self.failed));
            }
            map.insert("retries".into(), json!(0));
            map.insert("totalProcessingTime".into(), json!(1));
            if let Some(message) = &self.error_message {
                map.insert("errorMessage".into(), json!(message));
            }
        }
        info
    }
}

fn new_job(
    state: &mut State,
    kind: JobKind,
    operation: &str,
    object: &str,
    user: &str,
    version: &str,
) -> Job {
    Job {
        id: state.next_job_id(),
        kind,
        operation: operation.to_string(),
        object: object.to_string(),
        external_id: None,
        state: "Open".into(),
        created: civil::salesforce_datetime(civil::now_millis()),
        api_version: version.to_string(),
        created_by: user.to_string(),
        data: Vec::new(),
        processed: 0,
        failed: 0,
        error_message: None,
        successes: Vec::new(),
        failures: Vec::new(),
        unprocessed: Vec::new(),
        header: Vec::new(),
        rows: Vec::new(),
    }
}

/// `POST /jobs/ingest`
pub async fn create_ingest(
    Extract(shared): Extract<Shared>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, user, v| {
        let request = match json_body(&body) {
            Ok(request) => request,
            Err(response) => return response,
        };
        let operation = request["operation"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !matches!(
            operation.as_str(),
            "insert" | "update" | "upsert" | "delete" | "hardDelete"
        ) {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                &format!("InvalidJob : Invalid operation: {operation}"),
            );
        }
        let requested = request["object"].as_str().unwrap_or_default();
        let Some(object) = state.org.object_name(requested).map(str::to_string) else {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALIDENTITY",
                &format!("Entity '{requested}' is not supported by the Bulk API."),
            );
        };
        let external_id = request["externalIdFieldName"].as_str().map(str::to_string);
        if operation == "upsert" && external_id.is_none() {
            return error(StatusCode::BAD_REQUEST, "INVALIDJOB", "InvalidJob : External ID was blank for Account. An External ID must be specified for upsert.");
        }
        let mut job = new_job(state, JobKind::Ingest, &operation, &object, user, v);
        job.external_id = external_id;
        let info = job.info();
        state.jobs.insert(job.id.clone(), job);
        json_response(StatusCode::OK, &info)
    })
}

/// `PUT /jobs/ingest/{id}/batches`: the job's CSV.
pub async fn upload(
    Extract(shared): Extract<Shared>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, _, _| {
        let Some(job) = state
            .jobs
            .get_mut(&id)
            .filter(|j| j.kind == JobKind::Ingest)
        else {
            return not_found();
        };
        if job.state != "Open" {
            return error(
                StatusCode::CONFLICT,
                "INVALIDJOBSTATE",
                &format!("Job {} is not in Open state", job.id),
            );
        }
        job.data.extend_from_slice(&body);
        StatusCode::CREATED.into_response()
    })
}

/// `GET|PATCH|DELETE /jobs/ingest/{id}`
pub async fn ingest_job(
    Extract(shared): Extract<Shared>,
    method: Method,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, user, _| {
        let Some(job) = state
            .jobs
            .get(&id)
            .filter(|j| j.kind == JobKind::Ingest)
            .cloned()
        else {
            return not_found();
        };
        match method {
            Method::GET => json_response(StatusCode::OK, &job.info()),
            Method::DELETE => {
                if !matches!(job.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "INVALIDJOBSTATE",
                        "Job must be in a terminal state to be deleted",
                    );
                }
                state.jobs.remove(&id);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => {
                let wanted = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["state"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let mut job = job;
                match (wanted.as_str(), job.state.as_str()) {
                    ("UploadComplete", "Open") => {
                        job.state = "UploadComplete".into();
                        let info = job.info();
                        run_ingest(&mut state.org, &mut job, user);
                        state.dirty = true;
                        state.jobs.insert(id, job);
                        json_response(StatusCode::OK, &info)
                    }
                    ("Aborted", "Open" | "UploadComplete") => {
                        job.state = "Aborted".into();
                        job.unprocessed = parse_csv(&job.data)
                            .map(|(_, rows)| rows)
                            .unwrap_or_default();
                        let info = job.info();
                        state.jobs.insert(id, job);
                        json_response(StatusCode::OK, &info)
                    }
                    _ => error(
                        StatusCode::BAD_REQUEST,
                        "INVALIDJOBSTATE",
                        &format!("Unable to change job state from {} to {wanted}", job.state),
                    ),
                }
            }
        }
    })
}

type Csv = (Vec<String>, Vec<Vec<String>>);

fn parse_csv(data: &[u8]) -> Result<Csv, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

/// A CSV cell as the JSON value a field of this type takes; `#N/A` is null, empty is absent.
fn cell_value(field: Option<&FieldInfo>, text: &str) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    if text == "#N/A" {
        return Some(Value::Null);
    }
    let kind = field.map_or("string", |f| f.field_type.as_str());
    Some(match kind {
        "boolean" => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => json!(true),
            "false" | "0" | "no" => json!(false),
            _ => json!(text),
        },
        "int" => text
            .parse::<i64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        "double" | "currency" | "percent" => text
            .parse::<f64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        _ => json!(text),
    })
}

/// A cell of a successful row as Salesforce echoes it in `successfulResults`: the value it
/// read, not the text sent. Numbers come back in Java's `Double.toString` form (`912260031` →
/// `9.12260031E8`, `1000` → `1000.0`, the reference's recorded row), checkboxes as
/// `true`/`false`; anything else, and text a field could not read, as sent.
fn echoed(field: Option<&FieldInfo>, text: &str) -> String {
    match cell_value(field, text) {
        Some(Value::Bool(flag)) => flag.to_string(),
        Some(Value::Number(number)) => match field.map(|f| f.field_type.as_str()) {
            Some("double" | "currency" | "percent") => number
                .as_f64()
                .map_or_else(|| text.to_string(), java_double),
            _ => number.to_string(),
        },
        _ => text.to_string(),
    }
}

/// `x` as Java's `Double.toString` writes it: plain decimals from 10^-3 up to 10^7, always
/// with a fraction (`1000.0`); scientific notation outside that (`9.12260031E8`, `1.0E-4`).
/// Both Rust and Java write the shortest digits that read back as the same double.
fn java_double(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    if (1e-3..1e7).contains(&x.abs()) {
        let plain = x.to_string();
        return if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        };
    }
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

fn error_text(e: &RecordError) -> String {
    format!("{}:{}:{} --", e.status_code, e.message, e.fields.join(","))
}

fn run_ingest(org: &mut Org, job: &mut Job, user: &str) {
    let (header, rows) = match parse_csv(&job.data) {
        Ok(parsed) => parsed,
        Err(message) => {
            job.state = "Failed".into();
            job.error_message = Some(format!("InvalidBatch : Failed to parse CSV: {message}"));
            return;
        }
    };
    let info = org.describe(&job.object).cloned();
    let field_of = |name: &str| {
        info.as_ref().and_then(|o| {
            o.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .cloned()
        })
    };
    for row in rows {
        let mut fields = Map::new();
        for (name, text) in header.iter().zip(&row) {
            if let Some(value) = cell_value(field_of(name).as_ref(), text) {
                fields.insert(name.clone(), value);
            }
        }
        let id_of = |fields: &Map<String, Value>| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Id"))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let outcome: Result<(String, bool), RecordError> = match job.operation.as_str() {
            "insert" => dml::create(org, &job.object, &fields, user).map(|id| (id, true)),
            "update" => {
                let id = id_of(&fields);
                dml::update(org, &job.object, &id, &fields, user)
                    .map(|()| {
                        (
                            dml::live_record(org, &job.object, &id)
                                .map(|(i, _)| i)
                                .unwrap_or(id),
                            false,
                        )
                    })
                    .map_err(|(_, e)| e)
            }
            "delete" | "hardDelete" => {
                let id = id_of(&fields);
                dml::delete(org, &job.object, &id, user)
                    .map(|()| (super::ids::normalize(&id).unwrap_or(id), false))
                    .map_err(|(_, e)| e)
            }
            _ => {
                let key = job.external_id.clone().unwrap_or_default();
                let value = fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                fields.retain(|k, _| !k.eq_ignore_ascii_case(&key));
                match dml::upsert(org, &job.object, &key, &value, &fields, user) {
                    Ok(Upserted::Created(id)) => Ok((id, true)),
                    Ok(Upserted::Updated(id)) => Ok((id, false)),
                    Err((_, e)) => Err(e),
                }
            }
        };
        job.processed += 1;
        match outcome {
            Ok((id, created)) => {
                let echo = header
                    .iter()
                    .zip(&row)
                    .map(|(name, text)| echoed(field_of(name).as_ref(), text))
                    .collect();
                job.successes.push((id, created, echo))
            }
            Err(e) => {
                job.failed += 1;
                let id = if job.operation == "insert" {
                    String::new()
                } else {
                    id_of(&fields)
                };
                job.failures.push((id, error_text(&e), row));
            }
        }
    }
    job.header = header;
    job.state = "JobComplete".into();
}

fn csv_response(rows: &[Vec<String>]) -> Response {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    for row in rows {
        let _ = writer.write_record(row);
    }
    let body = writer.into_inner().unwrap_or_default();
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    response
}

/// `GET /jobs/ingest/{id}/successfulResults/`, `/failedResults/`, `/unprocessedrecords/`
pub async fn ingest_results(
    Extract(shared): Extract<Shared>,
    Path((segment, id, which)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, _, _| {
        let Some(job) = state.jobs.get(&id).filter(|j| j.kind == JobKind::Ingest) else {
            return not_found();
        };
        if !matches!(job.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOBSTATE",
                "Job is not complete",
            );
        }
        let header = job.header.clone();
        match which.as_str() {
            "successfulResults" => {
                let mut rows = vec![[
                    vec!["sf__Id".to_string(), "sf__Created".to_string()],
                    header,
                ]
                .concat()];
                rows.extend(job.successes.iter().map(|(id, created, row)| {
                    [vec![id.clone(), created.to_string()], row.clone()].concat()
                }));
                csv_response(&rows)
            }
            "failedResults" => {
                let mut rows =
                    vec![[vec!["sf__Id".to_string(), "sf__Error".to_string()], header].concat()];
                rows.extend(job.failures.iter().map(|(id, message, row)| {
                    [vec![id.clone(), message.clone()], row.clone()].concat()
                }));
                csv_response(&rows)
            }
            "unprocessedrecords" => {
                let (header, _) = parse_csv(&job.data).unwrap_or_default();
                let mut rows = vec![header];
                rows.extend(job.unprocessed.iter().cloned());
                csv_response(&rows)
            }
            _ => not_found(),
        }
    })
}

/// `POST /jobs/query`: runs the query now; results are read page by page.
pub async fn create_query(
    Extract(shared): Extract<Shared>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, user, v| {
        let request = match json_body(&body) {
            Ok(request) => request,
            Err(response) => return response,
        };
        let operation = request["operation"].as_str().unwrap_or("query").to_string();
        let text = request["query"].as_str().unwrap_or_default().to_string();
        let execution = match query::execute(&state.org, &text, operation == "queryAll") {
            Ok(execution) => execution,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    e.code.as_str(),
                    &e.salesforce_message(&text),
                )
            }
        };
        let has_subquery = execution
            .query
            .select
            .iter()
            .any(|i| matches!(i, crate::soql::SelectItem::SubQuery { .. }));
        if execution.aggregate_rows.is_some() || has_subquery {
            return error(
                StatusCode::BAD_REQUEST,
                "API_ERROR",
                "Aggregate queries and subqueries are not supported by the Bulk API",
            );
        }
        let object = execution.object.clone();
        let mut job = new_job(state, JobKind::Query, &operation, &object, user, v);
        job.state = "UploadComplete".into();
        let info = job.info();
        job.rows = query_rows(&state.org, &execution, v);
        job.processed = job.rows.len().saturating_sub(1);
        job.state = "JobComplete".into();
        state.jobs.insert(job.id.clone(), job);
        json_response(StatusCode::OK, &info)
    })
}

/// The query's rows as CSV cells: header of field paths, then one row per record.
fn query_rows(org: &Org, execution: &query::Execution, version: &str) -> Vec<Vec<String>> {
    let paths: Vec<Vec<String>> = execution
        .query
        .select
        .iter()
        .filter_map(|item| match item {
            crate::soql::SelectItem::Field { field, .. } => Some(field.path.clone()),
            _ => None,
        })
        .collect();
    let mut rows = vec![paths.iter().map(|p| p.join(".")).collect::<Vec<_>>()];
    for id in &execution.ids {
        let Some(record) = org.get(id) else { continue };
        let Ok(shaped) = query::project(org, execution, record, version) else {
            continue;
        };
        let row = paths
            .iter()
            .map(|path| {
                let mut value = &shaped;
                let mut segments: &[String] = path;
                if segments.len() > 1
                    && (segments[0].eq_ignore_ascii_case(&execution.object)
                        || execution
                            .query
                            .from
                            .alias
                            .as_deref()
                            .is_some_and(|a| a.eq_ignore_ascii_case(&segments[0])))
                {
                    segments = &segments[1..];
                }
                for segment in segments {
                    let key = value
                        .as_object()
                        .and_then(|m| m.keys().find(|k| k.eq_ignore_ascii_case(segment)).cloned());
                    value = match key.and_then(|k| value.get(&k)) {
                        Some(v) => v,
                        None => return String::new(),
                    };
                }
                match value {
                    Value::Null => String::new(),
                    Value::String(s) if s.len() == 28 && s.ends_with("+0000") => {
                        s.replace("+0000", "Z")
                    }
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            })
            .collect();
        rows.push(row);
    }
    rows
}

/// `GET /jobs/query/{id}`
pub async fn query_job(
    Extract(shared): Extract<Shared>,
    method: Method,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, _, _| {
        let Some(job) = state
            .jobs
            .get(&id)
            .filter(|j| j.kind == JobKind::Query)
            .cloned()
        else {
            return not_found();
        };
        if method == Method::DELETE {
            state.jobs.remove(&id);
            return StatusCode::NO_CONTENT.into_response();
        }
        json_response(StatusCode::OK, &job.info())
    })
}

/// `GET /jobs/query/{id}/results?maxRecords=&locator=`
pub async fn query_results(
    Extract(shared): Extract<Shared>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    versioned_call(&shared, &headers, &segment, |state, _, _| {
        let Some(job) = state.jobs.get(&id).filter(|j| j.kind == JobKind::Query) else {
            return not_found();
        };
        let total = job.rows.len().saturating_sub(1);
        let start = match params.get("locator").filter(|l| !l.is_empty()) {
            Some(locator) => match locator.parse::<usize>() {
                Ok(n) if n <= total => n,
                _ => return error(StatusCode::BAD_REQUEST, "INVALIDLOCATOR", "Invalid locator"),
            },
            None => 0,
        };
        let max = params
            .get("maxRecords")
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|m| *m > 0)
            .unwrap_or(50_000);
        let end = (start + max).min(total);
        let mut rows = vec![job.rows[0].clone()];
        rows.extend(job.rows[1 + start..1 + end].iter().cloned());
        let mut response = csv_response(&rows);
        let locator = if end < total {
            end.to_string()
        } else {
            "null".to_string()
        };
        let headers = response.headers_mut();
        headers.insert("Sforce-NumberOfRecords", HeaderValue::from(end - start));
        if let Ok(value) = HeaderValue::from_str(&locator) {
            headers.insert("Sforce-Locator", value);
        }
        response
    })
}

#[cfg(test)]
mod tests {
    use super::java_double;

    #[test]
    fn numbers_echo_as_java_writes_doubles() {
        assert_eq!(java_double(912_260_031.0), "9.12260031E8");
        assert_eq!(java_double(1000.0), "1000.0");
        assert_eq!(java_double(1234.5), "1234.5");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(-2.5e10), "-2.5E10");
        assert_eq!(java_double(0.0), "0.0");
    }
}
