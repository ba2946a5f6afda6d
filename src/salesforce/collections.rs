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
use std::sync::{Mutex, MutexGuard};

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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Per-record codes worth sending the record again for.
fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "UNABLE_TO_LOCK_ROW" | "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE"
    )
}

/// What a write did: one outcome per input record, in input order, and the error that
/// stopped it early (the API budget, a dead sign-in), if one did. Records the stop kept from
/// being sent are `NOT_SENT`; everything written before it is reported as usual, so the
/// caller can stage it all before ending the run.
#[derive(Debug)]
pub struct Written {
    pub outcomes: Vec<Outcome>,
    pub stopped: Option<Error>,
}

impl Written {
    /// The outcomes, or the error that stopped the write.
    pub fn into_result(self) -> Result<Vec<Outcome>, Error> {
        match self.stopped {
            Some(error) => Err(error),
            None => Ok(self.outcomes),
        }
    }
}

/// Errors after which no more calls should be made in this run.
fn stops_the_run(error: &Error) -> bool {
    matches!(
        error,
        Error::LoginExpired { .. }
            | Error::NotLoggedIn
            | Error::QuotaReached { .. }
            | Error::OAuth { .. }
    )
}

impl SalesforceClient {
    /// Writes `records` to `object`; see `Written`.
    ///
    /// At `bulk_write_threshold` records or more the write goes through a Bulk API 2.0 ingest
    /// job instead, unless Salesforce refuses to open one (then Collections it is).
    pub fn write(&self, object: &str, operation: &Operation, records: &[Record]) -> Written {
        if !records.is_empty() && records.len() >= self.options().bulk_write_threshold {
            let ran = self
                .open_ingest_job(object, operation)
                .map_err(|error| (super::bulk::bulk_refused(&error), error))
                .and_then(|job| {
                    self.run_ingest_job(&job, operation, records)
                        .map_err(|error| (false, error))
                });
            match ran {
                Ok(outcomes) => {
                    return Written {
                        outcomes,
                        stopped: None,
                    }
                }
                Err((true, _refused)) => {}
                Err((false, error)) => {
                    // An ingest job that was opened may have run: its records are unknown.
                    let outcome = Outcome::failed(
                        "OUTCOME_UNKNOWN",
                        format!("the Bulk ingest job did not report back: {error}"),
                    );
                    return Written {
                        outcomes: vec![outcome; records.len()],
                        stopped: Some(error),
                    };
                }
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
    ) -> Written {
        let chunks: Vec<&[Record]> = records.chunks(CHUNK).collect();
        let results: Mutex<Vec<Vec<Option<Outcome>>>> =
            Mutex::new(chunks.iter().map(|c| vec![None; c.len()]).collect());
        let stopped: Mutex<Option<Error>> = Mutex::new(None);
        let next = AtomicUsize::new(0);
        let workers = self
            .options()
            .writes_in_flight
            .clamp(1, 16)
            .min(chunks.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    if lock(&stopped).is_some() {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(index) else {
                        return;
                    };
                    let mut outcomes = vec![None; chunk.len()];
                    let ended = self.write_chunk(object, operation, chunk, &mut outcomes);
                    lock(&results)[index] = outcomes;
                    if let Err(error) = ended {
                        lock(&stopped).get_or_insert(error);
                        return;
                    }
                });
            }
        });
        let stopped = stopped.into_inner().unwrap_or_else(|p| p.into_inner());
        let reason = stopped
            .as_ref()
            .map_or_else(|| "no result".to_string(), |e| format!("not sent: {e}"));
        let outcomes = results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
            .map(|o| o.unwrap_or_else(|| Outcome::failed("NOT_SENT", reason.clone())))
            .collect();
        Written { outcomes, stopped }
    }

    /// One Collections call's worth (≤ 200), with per-record retries, settling `outcomes`.
    /// `Err` when the run must stop; records left unsettled then were not sent (or, for an
    /// unreadable answer, are marked `OUTCOME_UNKNOWN`).
    fn write_chunk(
        &self,
        object: &str,
        operation: &Operation,
        records: &[Record],
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), Error> {
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut attempt = 0;
        let unknown = |outcomes: &mut [Option<Outcome>], pending: &[usize], why: &str| {
            for &index in pending {
                outcomes[index] = Some(Outcome::failed("OUTCOME_UNKNOWN", why.to_string()));
            }
        };
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
                    let items = match response.json() {
                        Ok(Value::Array(items)) if items.len() == pending.len() => items,
                        _ => {
                            unknown(
                                outcomes,
                                &pending,
                                "Salesforce's answer to this write could not be read",
                            );
                            return Ok(());
                        }
                    };
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
                Err(error) if stops_the_run(&error) => return Err(error),
                Err(error)
                    if lost_create(operation, &error) && attempt < self.options().max_attempts =>
                {
                    let Operation::Create {
                        match_field: Some(field),
                    } = operation
                    else {
                        unknown(outcomes, &pending, &format!("the answer to this create was lost ({error}); not sent again to avoid a duplicate, and no external id to look it up by"));
                        return Ok(());
                    };
                    let found = match self.find_by(
                        object,
                        field,
                        pending.iter().map(|&i| &records[i]),
                    ) {
                        Ok(found) => found,
                        Err(lookup) => {
                            unknown(outcomes, &pending, &format!("the answer to this create was lost ({error}) and the look-up by {field} failed ({lookup})"));
                            return if stops_the_run(&lookup) {
                                Err(lookup)
                            } else {
                                Ok(())
                            };
                        }
                    };
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
        Ok(())
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
