//! Bulk API 2.0, for the big reads and writes.
//!
//! Reads: `extract` asks `SELECT COUNT()` first and runs a query job when the answer reaches
//! `bulk_query_threshold`, else a REST query; when Salesforce refuses the job (an object or a
//! query Bulk does not support, Bulk not enabled) it falls back to REST. Results are read page
//! by page (`maxRecords`, `Sforce-Locator` until the literal `null`), each page's CSV parsed as
//! it arrives into flat records typed by the object's describe, handed out 2,000 at a time, so
//! memory holds one batch, never a page or the result.
//!
//! Writes: `bulk_write` uploads one ingest job's CSV, marks it `UploadComplete`, waits for it,
//! and joins the successful and failed result CSVs (whose order Salesforce does not promise,
//! and whose echoed values are in Salesforce's spelling, not the text sent) back to the input
//! rows by Id, external id or the row's own values, compared by value (`bulk_results.rs`), so
//! each input record gets its `Outcome`. Every step is safe to send again (nothing is processed
//! before `UploadComplete`, which is sent once per job), so all of it retries.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::bulk_results::{pair, ResultsCsv};
use super::catalog::ObjectInfo;
use super::client::Request;
use super::collections::{Operation, Outcome};
use super::query::{QueryPages, Record};
use super::{Error, SalesforceClient};

/// Where an extract's records come from.
pub enum Extract<'c> {
    Rest(QueryPages<'c>),
    Bulk(Box<BulkPages<'c>>),
}

impl Extract<'_> {
    pub fn is_bulk(&self) -> bool {
        matches!(self, Extract::Bulk(_))
    }
}

impl Iterator for Extract<'_> {
    type Item = Result<Vec<Record>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Extract::Rest(pages) => pages.next(),
            Extract::Bulk(pages) => pages.next(),
        }
    }
}

/// `SELECT COUNT() FROM …` with the query's own FROM and WHERE (no ORDER BY, LIMIT, OFFSET),
/// and the query's LIMIT, if any.
pub fn count_query(soql: &str) -> Result<(String, Option<u64>), Error> {
    let parsed = crate::soql::parse(soql).map_err(|e| {
        Error::Config(format!(
            "cannot count `{soql}`: {}",
            e.salesforce_message(soql)
        ))
    })?;
    let from = &soql[parsed.from.span.start..];
    let end = top_level_keyword(from, &["ORDER", "LIMIT", "OFFSET"]).unwrap_or(from.len());
    Ok((
        format!("SELECT COUNT() FROM {}", from[..end].trim_end()),
        parsed.limit,
    ))
}

/// Byte offset of the first of `words` in `text` outside quotes and parentheses.
fn top_level_keyword(text: &str, words: &[&str]) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut quoted, mut i) = (0i32, false, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            if b == b'\\' {
                i += 1;
            } else if b == b'\'' {
                quoted = false;
            }
        } else if b == b'\'' {
            quoted = true;
        } else if b == b'(' {
            depth += 1;
        } else if b == b')' {
            depth -= 1;
        } else if depth == 0 && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            for word in words {
                let end = i + word.len();
                if text
                    .get(i..end)
                    .is_some_and(|w| w.eq_ignore_ascii_case(word))
                    && bytes.get(end).is_none_or(|c| c.is_ascii_whitespace())
                {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// Errors that mean "Bulk will not do this", after which REST is the way.
pub fn bulk_refused(error: &Error) -> bool {
    matches!(error, Error::Api { status: 400 | 403 | 404 | 405, code, .. }
        if code != "REQUEST_LIMIT_EXCEEDED" && code != "INVALID_SESSION_ID")
}

impl SalesforceClient {
    /// The records of a query, through Bulk API 2.0 when `SELECT COUNT()` says it is big
    /// enough, else (or when Bulk refuses) through REST paging.
    pub fn extract(&self, soql: &str, all_rows: bool) -> Result<Extract<'_>, Error> {
        let (count_soql, limit) = count_query(soql)?;
        let count = self.count(&count_soql)?;
        let expected = limit.map_or(count, |l| l.min(count));
        if expected >= self.options().bulk_query_threshold {
            match self.bulk_query(soql, all_rows) {
                Ok(pages) => return Ok(Extract::Bulk(Box::new(pages))),
                Err(error) if bulk_refused(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Extract::Rest(self.query_pages(soql, all_rows)))
    }

    /// Waits for a Bulk job to end, looking less often as it runs longer.
    fn wait_for_job(&self, kind: &str, id: &str) -> Result<Value, Error> {
        let mut pause = Duration::from_millis(100);
        loop {
            let info = self.get_json(&format!("jobs/{kind}/{id}"))?;
            match info["state"].as_str().unwrap_or_default() {
                "JobComplete" => return Ok(info),
                "Failed" | "Aborted" if kind == "ingest" => return Ok(info),
                state @ ("Failed" | "Aborted") => {
                    return Err(Error::Api {
                        status: 200,
                        code: format!("BULK_JOB_{}", state.to_ascii_uppercase()),
                        message: info["errorMessage"]
                            .as_str()
                            .unwrap_or("the Bulk job ended without a message")
                            .to_string(),
                        fields: Vec::new(),
                    })
                }
                _ => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(self.options().bulk_poll_max);
                }
            }
        }
    }

    /// Runs a Bulk API 2.0 query job and returns its result pages.
    pub fn bulk_query(&self, soql: &str, all_rows: bool) -> Result<BulkPages<'_>, Error> {
        let body = json!({
            "operation": if all_rows { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let job = self
            .send(Request::json("POST", "jobs/query", &body))?
            .json()?;
        let id = job["id"]
            .as_str()
            .ok_or_else(|| Error::Protocol("a Bulk query job without an id".into()))?
            .to_string();
        self.wait_for_job("query", &id)?;
        let object = crate::soql::parse(soql).ok().map(|q| q.from.object);
        let describe = match object {
            Some(object) => self.describe(&object)?,
            None => None,
        };
        Ok(BulkPages {
            client: self,
            job: id,
            describe,
            page_locator: None,
            next_locator: None,
            current: None,
            yielded: 0,
            tries: 0,
            chunk: 2000,
            done: false,
        })
    }
}

/// The records of a Bulk query job, in batches of up to 2,000, parsed from each results page
/// as it arrives: neither a page nor the result is ever held whole. A page that breaks off is
/// asked for again (same locator) and the rows already handed out are skipped. Ends after the
/// first error.
pub struct BulkPages<'c> {
    client: &'c SalesforceClient,
    job: String,
    describe: Option<ObjectInfo>,
    /// The locator of the page being read (`None` for the first) and of the one after it.
    page_locator: Option<String>,
    next_locator: Option<String>,
    current: Option<PageReader>,
    /// Rows of the current page handed out so far.
    yielded: u64,
    tries: u32,
    chunk: usize,
    done: bool,
}

struct PageReader {
    rows: csv::Reader<ureq::BodyReader<'static>>,
    header: Vec<String>,
    types: Vec<Option<String>>,
}

impl BulkPages<'_> {
    pub fn job_id(&self) -> &str {
        &self.job
    }

    /// Opens the current page and skips the rows already handed out.
    fn open_page(&mut self) -> Result<(), Error> {
        let mut url = format!(
            "jobs/query/{}/results?maxRecords={}",
            self.job,
            self.client.options().bulk_page_size
        );
        if let Some(locator) = &self.page_locator {
            url.push_str(&format!("&locator={}", super::auth::flows::encode(locator)));
        }
        let streamed = self.client.open(Request::get(url))?;
        self.next_locator = match streamed.header("Sforce-Locator").map(str::trim) {
            Some(locator) if !locator.is_empty() && locator != "null" => Some(locator.to_string()),
            _ => None,
        };
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(streamed.body);
        let header: Vec<String> = rows
            .headers()
            .map_err(|e| csv_error("a Bulk results page", e))?
            .iter()
            .map(str::to_string)
            .collect();
        let types = header
            .iter()
            .map(|name| {
                self.describe
                    .as_ref()
                    .and_then(|d| d.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
                    .map(|f| f.field_type.clone())
            })
            .collect();
        let mut skip = csv::StringRecord::new();
        for _ in 0..self.yielded {
            if !rows
                .read_record(&mut skip)
                .map_err(|e| csv_error("a Bulk results page read again", e))?
            {
                return Err(Error::Protocol(
                    "a Bulk results page read again is shorter than before".into(),
                ));
            }
        }
        self.current = Some(PageReader {
            rows,
            header,
            types,
        });
        Ok(())
    }
}

fn csv_error(what: &str, error: csv::Error) -> Error {
    if error.is_io_error() {
        Error::Connection {
            url: what.to_string(),
            detail: error.to_string(),
        }
    } else {
        Error::Protocol(format!("{what} is not CSV: {error}"))
    }
}

impl Iterator for BulkPages<'_> {
    type Item = Result<Vec<Record>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                if let Err(e) = self.open_page() {
                    let again = matches!(e, Error::Connection { .. })
                        && self.tries + 1 < self.client.options().max_attempts;
                    if again {
                        self.tries += 1;
                        self.client.backoff(self.tries);
                        continue;
                    }
                    self.done = true;
                    return Some(Err(e));
                }
            }
            let page = self.current.as_mut()?;
            let mut batch = Vec::new();
            let mut row = csv::StringRecord::new();
            let mut broke = None;
            let mut ended = false;
            while batch.len() < self.chunk {
                match page.rows.read_record(&mut row) {
                    Ok(true) => {
                        let mut record = Map::new();
                        for ((name, cell), kind) in
                            page.header.iter().zip(row.iter()).zip(&page.types)
                        {
                            record.insert(name.clone(), typed(cell, kind.as_deref()));
                        }
                        batch.push(record);
                    }
                    Ok(false) => {
                        ended = true;
                        break;
                    }
                    Err(e) => {
                        broke = Some(csv_error("a Bulk results page", e));
                        break;
                    }
                }
            }
            if let Some(error) = broke {
                // Drop the partial batch: the page is read again from the last handed-out row.
                self.current = None;
                if matches!(error, Error::Connection { .. })
                    && self.tries + 1 < self.client.options().max_attempts
                {
                    self.tries += 1;
                    self.client.backoff(self.tries);
                    continue;
                }
                self.done = true;
                return Some(Err(error));
            }
            self.yielded += batch.len() as u64;
            if ended {
                self.current = None;
                self.yielded = 0;
                self.tries = 0;
                match self.next_locator.take() {
                    Some(next) => self.page_locator = Some(next),
                    None => self.done = true,
                }
            }
            if !batch.is_empty() {
                return Some(Ok(batch));
            }
        }
    }
}

/// A CSV cell as REST would have given it.
fn typed(cell: &str, kind: Option<&str>) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    match kind {
        Some("boolean") => match cell {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_string()),
        },
        Some("int") => cell
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(cell.to_string())),
        Some("double" | "currency" | "percent") => cell
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(cell.to_string())),
        // Bulk writes `…Z`; REST writes `…+0000`.
        Some("datetime") => Value::String(match cell.strip_suffix('Z') {
            Some(stem) => format!("{stem}+0000"),
            None => cell.to_string(),
        }),
        _ => Value::String(cell.to_string()),
    }
}

/// A value as a Bulk ingest CSV cell (`#N/A` sets a field to null).
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "#N/A".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl SalesforceClient {
    /// Opens an ingest job for `operation` on `object`; returns its Id.
    pub fn open_ingest_job(&self, object: &str, operation: &Operation) -> Result<String, Error> {
        let mut body = json!({"object": object, "operation": match operation {
            Operation::Create { .. } => "insert",
            Operation::Update => "update",
            Operation::Upsert { .. } => "upsert",
        }, "contentType": "CSV", "lineEnding": "LF"});
        if let Operation::Upsert { external_id } = operation {
            body["externalIdFieldName"] = json!(external_id);
        }
        let job = self
            .send(Request::json("POST", "jobs/ingest", &body))?
            .json()?;
        job["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol("a Bulk ingest job without an id".into()))
    }

    /// Writes records through a Bulk API 2.0 ingest job; one `Outcome` per input record, in
    /// input order.
    pub fn bulk_write(
        &self,
        object: &str,
        operation: &Operation,
        records: &[Record],
    ) -> Result<Vec<Outcome>, Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let id = self.open_ingest_job(object, operation)?;
        self.run_ingest_job(&id, operation, records)
    }

    /// Uploads the records to an open ingest job, runs it and joins its results back.
    pub fn run_ingest_job(
        &self,
        id: &str,
        operation: &Operation,
        records: &[Record],
    ) -> Result<Vec<Outcome>, Error> {
        let mut columns: Vec<String> = Vec::new();
        for record in records {
            for key in record.keys() {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
        let mut writer = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|c| r.get(c).map(cell).unwrap_or_default())
                    .collect()
            })
            .collect();
        let written = writer
            .write_record(&columns)
            .and_then(|_| rows.iter().try_for_each(|row| writer.write_record(row)));
        written.map_err(|e| Error::Protocol(format!("cannot write the job's CSV: {e}")))?;
        let data = writer
            .into_inner()
            .map_err(|e| Error::Protocol(format!("cannot write the job's CSV: {e}")))?;
        let key_column = match operation {
            Operation::Create { match_field } => match_field.clone(),
            Operation::Update => Some("Id".to_string()),
            Operation::Upsert { external_id } => Some(external_id.clone()),
        };
        let upload = Request {
            method: "PUT",
            url: format!("jobs/ingest/{id}/batches"),
            body: Some(("text/csv", data)),
            headers: Vec::new(),
            retry: super::client::Retry::Always,
        };
        self.send(upload)?;
        self.send(Request::json(
            "PATCH",
            format!("jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        ))?;
        let info = self.wait_for_job("ingest", id)?;

        let successes = self.send(Request::get(format!("jobs/ingest/{id}/successfulResults/")))?;
        let successes = ResultsCsv::read(&successes.body, 2, &columns)?;
        let failures = self.send(Request::get(format!("jobs/ingest/{id}/failedResults/")))?;
        let failures = ResultsCsv::read(&failures.body, 2, &columns)?;
        let key_index = key_column
            .as_ref()
            .and_then(|k| columns.iter().position(|c| c == k));
        let paired = pair(&rows, columns.len(), key_index, &[&successes, &failures]);
        let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
        let mut unpaired_writes = 0;
        for (row, index) in successes.rows.iter().zip(&paired[0]) {
            let Some(index) = index else {
                unpaired_writes += 1;
                continue;
            };
            let record_id = row.meta[0].clone();
            outcomes[*index] = Some(if row.meta[1].eq_ignore_ascii_case("true") {
                Outcome::Created { id: record_id }
            } else {
                Outcome::Updated { id: record_id }
            });
        }
        for (row, index) in failures.rows.iter().zip(&paired[1]) {
            if let Some(index) = index {
                outcomes[*index] = Some(failure_of(&row.meta[1]));
            }
        }
        if unpaired_writes > 0 {
            tracing::warn!(
                job = %id,
                unpaired_writes,
                "Bulk ingest results name records written that no input row matches"
            );
        }
        let message = info["errorMessage"].as_str().unwrap_or("not processed");
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    if unpaired_writes > 0 {
                        // One of the written records may be this one: not a plain failure,
                        // which would be sent again and could duplicate it.
                        Outcome::Failed {
                            code: "OUTCOME_UNKNOWN".into(),
                            message: format!(
                                "Bulk job {id} reported {unpaired_writes} record(s) written \
                                 that match no input row; this record may be one of them"
                            ),
                            fields: Vec::new(),
                        }
                    } else {
                        Outcome::Failed {
                            code: "NOT_PROCESSED".into(),
                            message: format!("the Bulk job ended before this record: {message}"),
                            fields: Vec::new(),
                        }
                    }
                })
            })
            .collect())
    }
}

/// `sf__Error` (`STATUS_CODE:message:fields --`) as an `Outcome`.
fn failure_of(text: &str) -> Outcome {
    let text = text.trim().trim_end_matches("--").trim_end();
    let (code, rest) = text.split_once(':').unwrap_or(("UNKNOWN_ERROR", text));
    let (message, fields) = match rest.rsplit_once(':') {
        Some((message, fields)) => (message, fields),
        None => (rest, ""),
    };
    Outcome::Failed {
        code: code.to_string(),
        message: message.to_string(),
        fields: fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::{count_query, failure_of};
    use crate::salesforce::Outcome;

    #[test]
    fn counts_with_the_query_condition() {
        let (soql, limit) = count_query(
            "SELECT Id, (SELECT Id FROM Contacts ORDER BY Name) FROM Account WHERE Name = 'ORDER x' ORDER BY Name LIMIT 10",
        )
        .unwrap();
        assert_eq!(soql, "SELECT COUNT() FROM Account WHERE Name = 'ORDER x'");
        assert_eq!(limit, Some(10));
    }

    #[test]
    fn reads_sf_error() {
        assert_eq!(
            failure_of("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"),
            Outcome::Failed {
                code: "REQUIRED_FIELD_MISSING".into(),
                message: "Required fields are missing: [Name]".into(),
                fields: vec!["Name".into()],
            }
        );
    }
}
