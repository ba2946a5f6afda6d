//! Incremental extracts by keyset on (`SystemModstamp`, `Id`). Each batch is its own query,
//! `WHERE cursor > t OR (cursor = t AND Id > last Id) ORDER BY cursor, Id LIMIT n`, so records
//! sharing one timestamp (a mass update stamps thousands alike) are split across batches
//! without one being skipped or read twice, and a run can stop after any batch and resume
//! exactly there.
//!
//! The lookback window re-reads the last stretch before the stored watermark on the first
//! batch of a run: Salesforce stamps a record when its transaction starts, so a long
//! transaction can commit a record with a timestamp older than one already read. Re-read
//! records are duplicates by Id, which staging absorbs.
//!
//! The iterator never stores a watermark: each batch carries the one it reaches, and the caller
//! advances the stored watermark only after it has staged that batch.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::query::Record;
use super::{Error, SalesforceClient};
use crate::civil;

/// How far an incremental extract got: the last record's cursor value and Id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The cursor field's value as Salesforce wrote it, e.g. `2024-05-01T10:00:00.000+0000`.
    pub modstamp: String,
    pub id: String,
}

/// What to read incrementally.
#[derive(Debug, Clone)]
pub struct KeysetQuery {
    pub object: String,
    /// Fields to select; the cursor field and `Id` are added when missing.
    pub fields: Vec<String>,
    /// The pipeline's own condition (what follows WHERE), if any.
    pub condition: Option<String>,
    /// Usually `SystemModstamp`.
    pub cursor_field: String,
    pub lookback: Duration,
    /// Records per batch (the LIMIT of each keyset query).
    pub batch_size: u32,
    /// Use `queryAll` (deleted records too).
    pub all_rows: bool,
}

impl KeysetQuery {
    pub fn new(object: &str, fields: &[&str]) -> KeysetQuery {
        KeysetQuery {
            object: object.to_string(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            condition: None,
            cursor_field: "SystemModstamp".into(),
            lookback: Duration::ZERO,
            batch_size: 2000,
            all_rows: false,
        }
    }

    /// The SOQL of the batch after `position`.
    pub fn soql(&self, position: &Position) -> Result<String, Error> {
        let mut fields = self.fields.clone();
        for needed in [self.cursor_field.as_str(), "Id"] {
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(needed)) {
                fields.push(needed.to_string());
            }
        }
        let cursor = &self.cursor_field;
        let keyset = match position {
            Position::Start => None,
            Position::From(millis) => Some(format!("{cursor} >= {}", soql_datetime(*millis))),
            Position::After(mark) => {
                let millis = civil::parse_datetime(&mark.modstamp).ok_or_else(|| {
                    Error::Config(format!("watermark {} is not a datetime", mark.modstamp))
                })?;
                let at = soql_datetime(millis);
                let id = quote(&mark.id);
                Some(format!(
                    "({cursor} > {at} OR ({cursor} = {at} AND Id > {id}))"
                ))
            }
        };
        let condition = match (&self.condition, keyset) {
            (Some(own), Some(keyset)) => format!(" WHERE ({own}) AND {keyset}"),
            (Some(own), None) => format!(" WHERE {own}"),
            (None, Some(keyset)) => format!(" WHERE {keyset}"),
            (None, None) => String::new(),
        };
        Ok(format!(
            "SELECT {} FROM {}{condition} ORDER BY {cursor} ASC, Id ASC LIMIT {}",
            fields.join(", "),
            self.object,
            self.batch_size
        ))
    }
}

/// Where the next batch starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// From the beginning.
    Start,
    /// From this instant, inclusive (a watermark moved back by the lookback).
    From(i64),
    /// Strictly after this record.
    After(Watermark),
}

/// A SOQL datetime literal: `2024-05-01T10:00:00.000Z`.
pub fn soql_datetime(millis: i64) -> String {
    civil::salesforce_datetime(millis).replace("+0000", "Z")
}

/// A SOQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// One batch and the watermark it reaches.
#[derive(Debug, Clone)]
pub struct Batch {
    pub records: Vec<Record>,
    pub watermark: Watermark,
}

/// The batches of an incremental extract. Ends after the first error.
pub struct IncrementalBatches<'c> {
    client: &'c SalesforceClient,
    query: KeysetQuery,
    position: Position,
    finished: bool,
}

impl SalesforceClient {
    /// Reads what changed since `since` (everything when `None`), batch by batch.
    pub fn incremental(
        &self,
        query: KeysetQuery,
        since: Option<&Watermark>,
    ) -> IncrementalBatches<'_> {
        let position = match since {
            None => Position::Start,
            Some(mark) if query.lookback.is_zero() => Position::After(mark.clone()),
            Some(mark) => match civil::parse_datetime(&mark.modstamp) {
                Some(millis) => Position::From(millis - query.lookback.as_millis() as i64),
                // Unparseable: let `soql` report it on the first batch.
                None => Position::After(mark.clone()),
            },
        };
        IncrementalBatches {
            client: self,
            query,
            position,
            finished: false,
        }
    }
}

fn text_field(record: &Record, name: &str) -> Option<String> {
    record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string)
}

impl Iterator for IncrementalBatches<'_> {
    type Item = Result<Batch, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let soql = match self.query.soql(&self.position) {
            Ok(soql) => soql,
            Err(e) => {
                self.finished = true;
                return Some(Err(e));
            }
        };
        let mut records = Vec::new();
        for page in self.client.query_pages(&soql, self.query.all_rows) {
            match page {
                Ok(page) => records.extend(page),
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
        if (records.len() as u64) < u64::from(self.query.batch_size) {
            self.finished = true;
        }
        let last = records.last()?;
        let (Some(modstamp), Some(id)) = (
            text_field(last, &self.query.cursor_field),
            text_field(last, "Id"),
        ) else {
            self.finished = true;
            return Some(Err(Error::Protocol(format!(
                "a record without {} or Id; the cursor field must be a datetime",
                self.query.cursor_field
            ))));
        };
        let watermark = Watermark { modstamp, id };
        self.position = Position::After(watermark.clone());
        Some(Ok(Batch { records, watermark }))
    }
}

/// The watermark of a record, for callers that stage records one by one.
pub fn watermark_of(record: &Record, cursor_field: &str) -> Option<Watermark> {
    Some(Watermark {
        modstamp: text_field(record, cursor_field)?,
        id: text_field(record, "Id")?,
    })
}
