//! Writes through sObject Collections: create, update by Id, or upsert by an external id, 200
//! records per call with `allOrNone=false`, several calls in flight. Every input record comes
//! back as one `Outcome`, in input order: created or updated with its Id, or failed with
//! Salesforce's status code, message and fields.
//!
//! Retries never duplicate a record. Updates and upserts are safe to send again. A create is
//! sent again only when Salesforce surely refused it (503, `REQUEST_LIMIT_EXCEEDED`,
//! `UNABLE_TO_LOCK_ROW`); when its answer was lost (a broken connection, a 500) the records
//! are first looked up by their external id, those found are reported as created, and only
//! the rest are sent again. Without an external id to look by, a lost create is reported as
//! `OUTCOME_UNKNOWN` rather than risk a duplicate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Map, Value};

use super::auth::flows::encode;
use super::client::{Request, Retry};
use super::query::Record;
use super::{Error, SalesforceClient};

/// Records per Collections call (Salesforce's limit).
pub const CHUNK: usize = 200;

/// What a write does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// New records. `match_field`, an external id field the records carry, lets a create whose
    /// answer was lost be checked before it is sent again.
    Create { match_field: Option<String> },
    /// Existing records by `Id`.
    Update,
    /// By an external id field: created when no record has the value, else updated.
    Upsert { external_id: String },
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        id: String,
    },
    Updated {
        id: String,
    },
    Failed {
        code: String,
        message: String,
        fields: Vec<String>,
    },
}

impl Outcome {
    pub fn id(&self) -> Option<&str> {
        match self {
            Outcome::Created { id } | Outcome::Updated { id } => Some(id),
            Outcome::Failed { .. } => None,
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    fn failed(code: &str, message: impl Into<String>) -> Outcome {
        Outcome::Failed {
            code: code.to_string(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    fn from_error(error: &Error) -> Outcome {
        match error {
            Error::Api {
                code,
                message,
                fields,
                ..
            } => Outcome::Failed {
                code: code.clone(),
                message: message.clone(),
                fields: fields.clone(),
            },
            other => Outcome::failed("CONNECTION_ERROR", other.to_string()),
        }
    }
}

/// Per-record codes worth sending the record again for.
fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "UNABLE_TO_LOCK_ROW" | "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE"
    )
}

impl SalesforceClient {
    /// Writes `records` to `object`. Errors that end the whole run (sign-in, the API budget)
    /// come back as `Err`, with the outcomes of the chunks already written lost to the caller
    /// only in the sense that they were not yet reported: re-running finds them (upsert / the
    /// match field). Everything else is a per-record `Outcome`.
    ///
    /// At `bulk_write_threshold` records or more the write goes through a Bulk API 2.0 ingest
    /// job instead, unless Salesforce refuses to open one (then Collections it is).
    pub fn write(
        &self,
        object: &str,
        operation: &Operation,
        records: &[Record],
    ) -> Result<Vec<Outcome>, Error> {
        if !records.is_empty() && records.len() >= self.options().bulk_write_threshold {
            match self.open_ingest_job(object, operation) {
                Ok(job) => return self.run_ingest_job(&job, operation, records),
                Err(error) if super::bulk::bulk_refused(&error) => {}
                Err(error) => return Err(error),
            }
        }
        self.write_collections(object, operation, records)
    }

    /// `write` through sObject Collections only.
    pub fn write_collections(
        &self,
        object: &str,
        operation: &Operation,
        records: &[Record],
    ) -> Result<Vec<Outcome>, Error> {
        let chunks: Vec<&[Record]> = records.chunks(CHUNK).collect();
        let results: Mutex<Vec<Option<Vec<Outcome>>>> = Mutex::new(vec![None; chunks.len()]);
        let fatal: Mutex<Option<Error>> = Mutex::new(None);
        let next = AtomicUsize::new(0);
        let workers = self
            .options()
            .writes_in_flight
            .clamp(1, 16)
            .min(chunks.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    if fatal.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(index) else {
                        return;
                    };
                    match self.write_chunk(object, operation, chunk) {
                        Ok(outcomes) => {
                            if let Ok(mut results) = results.lock() {
                                results[index] = Some(outcomes);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut fatal) = fatal.lock() {
                                fatal.get_or_insert(e);
                            }
                            return;
                        }
                    }
                });
            }
        });
        if let Some(error) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(error);
        }
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(results.into_iter().flatten().flatten().collect())
    }

    /// One Collections call's worth (≤ 200), with per-record retries.
    fn write_chunk(
        &self,
        object: &str,
        operation: &Operation,
        records: &[Record],
    ) -> Result<Vec<Outcome>, Error> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let batch: Vec<&Record> = pending.iter().map(|&i| &records[i]).collect();
            let answer = self.send(collection_request(
                self.api_path(),
                object,
                operation,
                &batch,
            ));
            let mut again = Vec::new();
            match answer {
                Ok(response) => {
                    let items = match response.json()? {
                        Value::Array(items) => items,
                        _ => {
                            return Err(Error::Protocol(
                                "a Collections answer that is not an array".into(),
                            ))
                        }
                    };
                    if items.len() != pending.len() {
                        return Err(Error::Protocol(format!(
                            "Collections answered {} results for {} records",
                            items.len(),
                            pending.len()
                        )));
                    }
                    for (&index, item) in pending.iter().zip(&items) {
                        let outcome = outcome_of(operation, item);
                        match &outcome {
                            Outcome::Failed { code, .. }
                                if retryable_code(code)
                                    && attempt < self.options().max_attempts =>
                            {
                                again.push(index)
                            }
                            _ => outcomes[index] = Some(outcome),
                        }
                    }
                }
                Err(
                    error @ (Error::LoginExpired { .. }
                    | Error::NotLoggedIn
                    | Error::QuotaReached { .. }),
                ) => {
                    return Err(error);
                }
                Err(error)
                    if lost_create(operation, &error) && attempt < self.options().max_attempts =>
                {
                    let Operation::Create {
                        match_field: Some(field),
                    } = operation
                    else {
                        for &index in &pending {
                            outcomes[index] = Some(Outcome::failed(
                                "OUTCOME_UNKNOWN",
                                format!("the answer to this create was lost ({error}); not sent again to avoid a duplicate, and no external id to look it up by"),
                            ));
                        }
                        pending.clear();
                        continue;
                    };
                    let found =
                        self.find_by(object, field, pending.iter().map(|&i| &records[i]))?;
                    for &index in &pending {
                        let key = records[index].get(field).and_then(value_key);
                        match key.and_then(|k| found.get(&k)) {
                            Some(id) => outcomes[index] = Some(Outcome::Created { id: id.clone() }),
                            None => again.push(index),
                        }
                    }
                }
                Err(error) => {
                    let outcome = if lost_create(operation, &error) {
                        Outcome::failed("OUTCOME_UNKNOWN", format!("the answer to this create was lost ({error}) on the last try; look for the record before creating it again"))
                    } else {
                        Outcome::from_error(&error)
                    };
                    for &index in &pending {
                        outcomes[index] = Some(outcome.clone());
                    }
                }
            }
            pending = again;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::failed("OUTCOME_UNKNOWN", "no result")))
            .collect())
    }

    /// Records of `object` whose `field` has one of the records' values: value → Id.
    fn find_by<'r>(
        &self,
        object: &str,
        field: &str,
        records: impl Iterator<Item = &'r Record>,
    ) -> Result<std::collections::HashMap<String, String>, Error> {
        let values: Vec<String> = records
            .filter_map(|r| r.get(field).and_then(value_key))
            .map(|v| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
            .collect();
        let mut found = std::collections::HashMap::new();
        if values.is_empty() {
            return Ok(found);
        }
        let soql = format!(
            "SELECT Id, {field} FROM {object} WHERE {field} IN ({})",
            values.join(", ")
        );
        for page in self.query_pages(&soql, false) {
            for record in page? {
                if let (Some(value), Some(Value::String(id))) = (
                    record
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(field))
                        .and_then(|(_, v)| value_key(v)),
                    record.get("Id"),
                ) {
                    found.insert(value, id.clone());
                }
            }
        }
        Ok(found)
    }
}

/// A create whose answer may have been lost after Salesforce did the work.
fn lost_create(operation: &Operation, error: &Error) -> bool {
    matches!(operation, Operation::Create { .. })
        && match error {
            Error::Connection { .. } => true,
            Error::Api { status, .. } => matches!(status, 500 | 502 | 504),
            _ => false,
        }
}

fn value_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn collection_request(
    api: String,
    object: &str,
    operation: &Operation,
    records: &[&Record],
) -> Request {
    let records: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut body: Map<String, Value> = Map::new();
            body.insert("attributes".into(), json!({"type": object}));
            for (key, value) in record.iter() {
                body.insert(key.clone(), value.clone());
            }
            Value::Object(body)
        })
        .collect();
    let body = json!({"allOrNone": false, "records": records});
    match operation {
        Operation::Create { .. } => {
            Request::json("POST", format!("{api}/composite/sobjects"), &body).retry(Retry::Refusals)
        }
        Operation::Update => Request::json("PATCH", format!("{api}/composite/sobjects"), &body),
        Operation::Upsert { external_id } => Request::json(
            "PATCH",
            format!(
                "{api}/composite/sobjects/{}/{}",
                encode(object),
                encode(external_id)
            ),
            &body,
        ),
    }
}

/// One item of a Collections answer as an `Outcome`.
fn outcome_of(operation: &Operation, item: &Value) -> Outcome {
    if item["success"].as_bool() == Some(true) {
        let id = item["id"].as_str().unwrap_or_default().to_string();
        return match operation {
            Operation::Create { .. } => Outcome::Created { id },
            Operation::Update => Outcome::Updated { id },
            Operation::Upsert { .. } if item["created"].as_bool() == Some(true) => {
                Outcome::Created { id }
            }
            Operation::Upsert { .. } => Outcome::Updated { id },
        };
    }
    let error = item["errors"].get(0).cloned().unwrap_or(Value::Null);
    Outcome::Failed {
        code: error["statusCode"]
            .as_str()
            .or_else(|| error["errorCode"].as_str())
            .unwrap_or("UNKNOWN_ERROR")
            .to_string(),
        message: error["message"].as_str().unwrap_or_default().to_string(),
        fields: error["fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}
