//! Salesforce as the engine's [`Source`]: a pipeline's fields and filter become one SOQL query
//! whose pages stream through the REST query API (or a Bulk job), `Id` always included, the
//! next page fetched while the engine stages the one in hand (`crate::prefetch`). Salesforce's
//! own error for a bad query is a configuration error; anything else is a connection error.
//!
//! Attachments are listed per set of records with one query per kind: classic `Attachment`
//! rows by `ParentId`, and Files through `ContentDocumentLink` (by `LinkedEntityId`) to each
//! document's latest `ContentVersion`; the queries of a page's records run a few at a time
//! (the client's `writes_in_flight`, the project's `in_flight`). A listing Salesforce refuses (no permission on the
//! object) is reported with Salesforce's message for the records asked about, and the run goes
//! on. Bodies stream from `/sobjects/Attachment/{id}/Body` and
//! `/sobjects/ContentVersion/{id}/VersionData`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use super::client::{Request, SalesforceClient};
use super::incremental::{KeysetQuery, Watermark};
use super::Error;
use crate::engine::{
    AttachmentKind, AttachmentListing, AttachmentRef, EngineError, ExtractRequest, IncrementalRead,
    NewFiles, Record, Source,
};

/// Ids per `IN (…)` list, keeping each query's URL well under Salesforce's limit.
const IDS_PER_QUERY: usize = 200;

/// Records per keyset query of an incremental read: one REST page each.
const KEYSET_BATCH: u32 = 2000;

pub struct SalesforceSource<'a> {
    client: &'a SalesforceClient,
}

impl<'a> SalesforceSource<'a> {
    pub fn new(client: &'a SalesforceClient) -> SalesforceSource<'a> {
        SalesforceSource { client }
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

/// The fields a request selects: `Id` first (and `IsDeleted` when deleted records are read),
/// then the transform's paths, each once.
fn selected_fields(request: &ExtractRequest) -> Vec<String> {
    let mut fields: Vec<String> = vec!["Id".into()];
    if request.include_deleted {
        fields.push("IsDeleted".into());
    }
    for field in &request.fields {
        // JSONPath reads come from the record as a whole, not from a selected field.
        if field.starts_with('$') || fields.iter().any(|f| f.eq_ignore_ascii_case(field)) {
            continue;
        }
        fields.push(field.clone());
    }
    fields
}

/// What follows WHERE: the pipeline's filter, `equals` and (for a re-read) the ids.
fn condition(request: &ExtractRequest) -> Option<String> {
    let mut conditions: Vec<String> = Vec::new();
    for (field, value) in &request.equals {
        conditions.push(format!("{field} = {}", literal(value)));
    }
    if !request.ids.is_empty() {
        conditions.push(format!("Id IN ({})", in_list(&request.ids)));
    }
    match request.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(filter) if conditions.is_empty() => conditions.push(filter.to_string()),
        Some(filter) => conditions.insert(0, format!("({filter})")),
        None => {}
    }
    (!conditions.is_empty()).then(|| conditions.join(" AND "))
}

/// The document links made after `at` with the records `request` reads: a semi-join on
/// their Ids is the narrowing Salesforce asks of link queries. The pipeline's filter goes into
/// the semi-join, unless it has a subquery of its own (Salesforce does not nest semi-joins) or
/// the pipeline has a query of its own; then every record of the object is asked for.
fn shares_query(request: &ExtractRequest, at: &str) -> String {
    let object = &request.object;
    let filtered = condition(request).filter(|condition| {
        // A `SELECT` in a string literal only costs the narrowing.
        request.query.is_none() && !condition.to_ascii_uppercase().contains("SELECT")
    });
    let records = match filtered {
        Some(condition) => format!("SELECT Id FROM {object} WHERE {condition}"),
        None => format!("SELECT Id FROM {object}"),
    };
    format!(
        "SELECT LinkedEntityId, SystemModstamp FROM ContentDocumentLink WHERE LinkedEntityId IN ({records}) AND SystemModstamp > {at}"
    )
}

/// The SOQL for a request: its own query, or `SELECT Id, <fields> FROM <object> [WHERE …]`.
pub fn soql(request: &ExtractRequest) -> String {
    if let (Some(query), true) = (&request.query, request.ids.is_empty()) {
        return query.clone();
    }
    let mut soql = format!(
        "SELECT {} FROM {}",
        selected_fields(request).join(", "),
        request.object
    );
    if let Some(condition) = condition(request) {
        soql.push_str(" WHERE ");
        soql.push_str(&condition);
    }
    soql
}

/// The keyset query of an incremental request (see `incremental.rs`).
fn keyset_query(
    request: &ExtractRequest,
    read: &IncrementalRead,
) -> Result<KeysetQuery, EngineError> {
    if request.query.is_some() {
        return Err(EngineError::Config(format!(
            "{}: an incremental read needs `object` and `where`, not a whole `query`",
            request.object
        )));
    }
    Ok(KeysetQuery {
        object: request.object.clone(),
        fields: selected_fields(request),
        condition: condition(request),
        cursor_field: read.cursor_field.clone(),
        lookback: read.lookback,
        batch_size: KEYSET_BATCH,
        all_rows: request.include_deleted,
    })
}

/// What lightens a query Salesforce stopped for running too long, by the kind of read.
const NARROW: &str = "narrow the pipeline's `where`";
const NARROW_OR_BULK: &str = "narrow the pipeline's `where`, or lower \
    `connections.salesforce.bulk_query_threshold` so that a read this size runs as a Bulk job";
const NARROW_OR_INDEXED_CURSOR: &str = "narrow the pipeline's `where`, or read changes by a \
    cursor field Salesforce indexes, such as SystemModstamp (the read is ordered by it)";

fn engine_error(error: Error, soql: &str) -> EngineError {
    query_error(error, soql, NARROW)
}

/// A query's error for the engine, with `if_too_long` added to Salesforce's `QUERY_TIMEOUT`.
fn query_error(error: Error, soql: &str, if_too_long: &str) -> EngineError {
    if error.exit_code() == 2 {
        EngineError::Config(format!("Salesforce refused the query `{soql}`: {error}"))
    } else if error.code() == Some("QUERY_TIMEOUT") {
        EngineError::Connection(format!(
            "Salesforce: {error} (the query `{soql}` ran past Salesforce's time limit: \
             {if_too_long})"
        ))
    } else {
        EngineError::Connection(format!("Salesforce: {error}"))
    }
}

/// `'a', 'b'` for an `IN (…)` list; ids are quoted and escaped.
fn in_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("'{}'", id.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn text(record: &Record, field: &str) -> String {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn size(record: &Record, field: &str) -> Option<u64> {
    record.get(field).and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    })
}

/// A MIME type for a file extension (Files carry an extension, not a content type).
pub fn content_type_of(extension: &str) -> &'static str {
    match extension.to_ascii_lowercase().as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "htm" | "html" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

impl SalesforceSource<'_> {
    /// Every record of a query, or Salesforce's refusal as a problem; `Err` only when
    /// Salesforce cannot be reached.
    fn listing(&self, what: &str, soql: &str) -> Result<Result<Vec<Record>, String>, EngineError> {
        let mut out = Vec::new();
        for page in self.client.query_pages(soql, false) {
            match page {
                Ok(records) => out.extend(records),
                Err(error @ Error::Api { .. }) => {
                    return Ok(Err(format!("Salesforce refused to list {what}: {error}")))
                }
                Err(error) => return Err(EngineError::Connection(format!("Salesforce: {error}"))),
            }
        }
        Ok(Ok(out))
    }

    fn classic(&self, ids: &[String], listing: &mut AttachmentListing) -> Result<(), EngineError> {
        let soql = format!(
            "SELECT Id, ParentId, Name, ContentType, BodyLength FROM Attachment WHERE ParentId IN ({})",
            in_list(ids)
        );
        match self.listing("attachments", &soql)? {
            Ok(records) => listing
                .attachments
                .extend(records.iter().map(|record| AttachmentRef {
                    id: text(record, "Id"),
                    parent_id: text(record, "ParentId"),
                    kind: AttachmentKind::Attachment,
                    name: text(record, "Name"),
                    content_type: text(record, "ContentType"),
                    size: size(record, "BodyLength"),
                })),
            Err(problem) => listing.problems.push(problem),
        }
        Ok(())
    }

    fn files(&self, ids: &[String], listing: &mut AttachmentListing) -> Result<(), EngineError> {
        let soql = format!(
            "SELECT ContentDocumentId, LinkedEntityId FROM ContentDocumentLink WHERE LinkedEntityId IN ({})",
            in_list(ids)
        );
        let links = match self.listing("files", &soql)? {
            Ok(links) => links,
            Err(problem) => {
                listing.problems.push(problem);
                return Ok(());
            }
        };
        // Document → the records it is linked to (one document may be shared by several).
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for link in &links {
            let document = text(link, "ContentDocumentId");
            let parent = text(link, "LinkedEntityId");
            if !document.is_empty() && !parent.is_empty() {
                parents.entry(document).or_default().push(parent);
            }
        }
        if parents.is_empty() {
            return Ok(());
        }
        let mut documents: Vec<String> = parents.keys().cloned().collect();
        documents.sort();
        for chunk in documents.chunks(IDS_PER_QUERY) {
            let soql = format!(
                "SELECT Id, ContentDocumentId, Title, PathOnClient, FileExtension, ContentSize FROM ContentVersion WHERE IsLatest = true AND ContentDocumentId IN ({})",
                in_list(chunk)
            );
            let versions = match self.listing("files", &soql)? {
                Ok(versions) => versions,
                Err(problem) => {
                    listing.problems.push(problem);
                    return Ok(());
                }
            };
            for version in &versions {
                let extension = text(version, "FileExtension");
                let path = text(version, "PathOnClient");
                let file_name = path.rsplit(['/', '\\']).next().unwrap_or_default();
                let name = if !file_name.is_empty() {
                    file_name.to_string()
                } else if extension.is_empty() {
                    text(version, "Title")
                } else {
                    format!("{}.{extension}", text(version, "Title"))
                };
                let extension = if extension.is_empty() {
                    name.rsplit_once('.')
                        .map(|(_, e)| e.to_string())
                        .unwrap_or_default()
                } else {
                    extension
                };
                for parent in parents
                    .get(&text(version, "ContentDocumentId"))
                    .into_iter()
                    .flatten()
                {
                    listing.attachments.push(AttachmentRef {
                        id: text(version, "Id"),
                        parent_id: parent.clone(),
                        kind: AttachmentKind::File,
                        name: name.clone(),
                        content_type: content_type_of(&extension).to_string(),
                        size: size(version, "ContentSize"),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Source for SalesforceSource<'_> {
    fn id_field(&self) -> &str {
        "Id"
    }

    fn extract(
        &self,
        request: &ExtractRequest,
        page: &mut dyn FnMut(Vec<Record>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        if request.ids.len() > IDS_PER_QUERY {
            for chunk in request.ids.chunks(IDS_PER_QUERY) {
                let part = ExtractRequest {
                    ids: chunk.to_vec(),
                    ..request.clone()
                };
                self.extract(&part, page)?;
            }
            return Ok(());
        }
        if let Some(read) = &request.incremental {
            let query = keyset_query(request, read)?;
            let since = read.since.as_ref().map(|mark| Watermark {
                modstamp: mark.value.clone(),
                id: mark.id.clone(),
            });
            let shown = query
                .soql(&super::incremental::Position::Start)
                .unwrap_or_default();
            return crate::prefetch::each_ahead(
                self.client.incremental(query, since.as_ref()),
                |batch| {
                    let if_too_long = match read.cursor_field.eq_ignore_ascii_case("SystemModstamp")
                    {
                        true => NARROW,
                        false => NARROW_OR_INDEXED_CURSOR,
                    };
                    page(
                        batch
                            .map_err(|e| query_error(e, &shown, if_too_long))?
                            .records,
                    )
                },
            );
        }
        let soql = soql(request);
        if request.ids.is_empty() {
            // A whole object: `SELECT COUNT()` decides between a Bulk job and REST pages.
            let extract = self
                .client
                .extract(&soql, request.include_deleted)
                .map_err(|e| query_error(e, &soql, NARROW_OR_BULK))?;
            if extract.is_bulk() {
                tracing::info!(object = %request.object, "reading through a Bulk API 2.0 query job");
            }
            return crate::prefetch::each_ahead(extract, |records| {
                page(records.map_err(|e| query_error(e, &soql, NARROW_OR_BULK))?)
            });
        }
        crate::prefetch::each_ahead(
            self.client.query_pages(&soql, request.include_deleted),
            |records| page(records.map_err(|e| engine_error(e, &soql))?),
        )
    }

    fn api_calls(&self) -> u64 {
        self.client.calls()
    }

    fn deleted_field(&self) -> Option<&str> {
        Some("IsDeleted")
    }

    fn describe(&self, object: &str) -> Result<Option<Vec<(String, String)>>, EngineError> {
        match self.client.describe(object) {
            Ok(Some(info)) => Ok(Some(
                info.fields
                    .into_iter()
                    .map(|f| (f.name, f.field_type))
                    .collect(),
            )),
            Ok(None) => Err(EngineError::Config(format!(
                "Salesforce has no object {object} (describe answered 404)"
            ))),
            Err(error) => Err(engine_error(error, &format!("describe {object}"))),
        }
    }

    /// The listings of each chunk of ids (classic attachments, files) do not depend on each
    /// other, so they run `writes_in_flight` at a time (the project's `in_flight`); the
    /// answers are put together in the order one-by-one listings would have given.
    fn attachments(&self, parent_ids: &[String]) -> Result<AttachmentListing, EngineError> {
        let chunks: Vec<&[String]> = parent_ids.chunks(IDS_PER_QUERY).collect();
        // Listing `2 * c` is chunk c's classic attachments, `2 * c + 1` its files.
        let listings = chunks.len() * 2;
        let parts: Mutex<Vec<AttachmentListing>> =
            Mutex::new(vec![AttachmentListing::default(); listings]);
        let stopped: Mutex<Option<EngineError>> = Mutex::new(None);
        let next = AtomicUsize::new(0);
        let workers = self
            .client
            .options()
            .writes_in_flight
            .clamp(1, 16)
            .min(listings);
        // Workers log under the caller's span, as the caller would.
        let span = tracing::Span::current();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (parts, stopped, next, chunks, span) =
                    (&parts, &stopped, &next, &chunks, &span);
                scope.spawn(move || {
                    let _in_span = span.enter();
                    loop {
                        if lock(stopped).is_some() {
                            return;
                        }
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = chunks.get(index / 2) else {
                            return;
                        };
                        let mut part = AttachmentListing::default();
                        let listed = if index % 2 == 0 {
                            self.classic(chunk, &mut part)
                        } else {
                            self.files(chunk, &mut part)
                        };
                        match listed {
                            Ok(()) => lock(parts)[index] = part,
                            Err(error) => {
                                lock(stopped).get_or_insert(error);
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(error) = stopped.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(error);
        }
        let mut listing = AttachmentListing::default();
        for part in parts.into_inner().unwrap_or_else(|p| p.into_inner()) {
            listing.attachments.extend(part.attachments);
            listing.problems.extend(part.problems);
        }
        // The same refusal for every chunk is said once.
        let mut said = std::collections::HashSet::new();
        listing
            .problems
            .retain(|problem| said.insert(problem.clone()));
        Ok(listing)
    }

    fn deleted_since(&self, object: &str, since: &str) -> Result<Vec<String>, EngineError> {
        let Some(millis) = crate::civil::parse_datetime(since) else {
            return Err(EngineError::Config(format!(
                "the watermark {since} of {object} is not a datetime"
            )));
        };
        // queryAll sees the recycle bin; deleting a record moves its SystemModstamp.
        let soql = format!(
            "SELECT Id FROM {object} WHERE IsDeleted = true AND SystemModstamp >= {}",
            super::incremental::soql_datetime(millis)
        );
        let mut ids = Vec::new();
        for page in self.client.query_pages(&soql, true) {
            let page = page.map_err(|e| engine_error(e, &soql))?;
            ids.extend(page.iter().map(|record| text(record, "Id")));
        }
        Ok(ids)
    }

    fn records_with_new_files(
        &self,
        request: &ExtractRequest,
        after: i64,
    ) -> Result<NewFiles, EngineError> {
        let object = request.object.as_str();
        let at = super::incremental::soql_datetime(after);
        // Standard objects' key prefixes are known offline; others cost a describe.
        let prefix = match super::catalog::standard_object(object) {
            Some(info) => info.key_prefix.clone(),
            None => match self.client.describe(object) {
                Ok(Some(info)) => info.key_prefix,
                Ok(None) => return Ok(NewFiles::default()),
                Err(error) => return Err(engine_error(error, &format!("describe {object}"))),
            },
        };
        // Attachments, document versions and document links carry their own stamps; a
        // record's id starts with its object's key prefix, which tells this object's parents
        // from others'.
        let mut parents: std::collections::BTreeSet<String> = Default::default();
        let mut keep = |id: String| {
            if !prefix.is_empty() && id.starts_with(&prefix) {
                parents.insert(id);
            }
        };
        // Each listing's rows, the newest stamp among them kept; a listing Salesforce refuses
        // is logged and lists nothing.
        let mut newest: Option<i64> = None;
        let mut complete = true;
        let mut list = |what: &str, soql: &str| -> Result<Vec<Record>, EngineError> {
            match self.listing(what, soql)? {
                Ok(records) => {
                    for record in &records {
                        let stamp = crate::civil::parse_datetime(&text(record, "SystemModstamp"));
                        newest = newest.max(stamp);
                    }
                    Ok(records)
                }
                Err(problem) => {
                    complete = false;
                    tracing::warn!(%problem, "records with new files not listed");
                    Ok(Vec::new())
                }
            }
        };
        let classic =
            format!("SELECT ParentId, SystemModstamp FROM Attachment WHERE SystemModstamp > {at}");
        for attachment in list("attachments", &classic)? {
            keep(text(&attachment, "ParentId"));
        }
        let versions = format!(
            "SELECT ContentDocumentId, SystemModstamp FROM ContentVersion WHERE SystemModstamp > {at}"
        );
        let documents: Vec<String> = list("files", &versions)?
            .iter()
            .map(|version| text(version, "ContentDocumentId"))
            .filter(|id| !id.is_empty())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // Salesforce lists document links only by document or record id.
        for chunk in documents.chunks(IDS_PER_QUERY) {
            let links = format!(
                "SELECT LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId IN ({})",
                in_list(chunk)
            );
            for link in list("files", &links)? {
                keep(text(&link, "LinkedEntityId"));
            }
        }
        // Sharing a file that exists already with a record adds only a link: no version moves.
        for link in list("file shares", &shares_query(request, &at))? {
            keep(text(&link, "LinkedEntityId"));
        }
        Ok(NewFiles {
            records: parents.into_iter().collect(),
            newest,
            complete,
        })
    }

    fn attachment_body(
        &self,
        attachment: &AttachmentRef,
        out: &mut dyn Write,
    ) -> Result<u64, String> {
        let field = match attachment.kind {
            AttachmentKind::Attachment => "Attachment/{}/Body",
            AttachmentKind::File => "ContentVersion/{}/VersionData",
        };
        let url = format!(
            "{}/sobjects/{}",
            self.client.api_path(),
            field.replace("{}", &attachment.id)
        );
        let mut answer = self.client.open(Request::get(url)).map_err(|error| {
            format!("Salesforce refused the body of {}: {error}", attachment.id)
        })?;
        let written = std::io::copy(&mut answer.body, out)
            .map_err(|error| format!("the body of {} broke off: {error}", attachment.id))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_that_ran_too_long_says_how_to_read_less_at_once() {
        let timeout = || Error::Api {
            status: 400,
            code: "QUERY_TIMEOUT".into(),
            message: "Your query request was running for too long.".into(),
            fields: Vec::new(),
        };
        let whole = query_error(timeout(), "SELECT Id FROM Opportunity", NARROW_OR_BULK);
        let message = whole.to_string();
        assert!(
            message.contains("Your query request was running for too long."),
            "{message}"
        );
        assert!(message.contains("bulk_query_threshold"), "{message}");
        assert!(message.contains("SELECT Id FROM Opportunity"), "{message}");
        let by_id = engine_error(timeout(), "SELECT Id FROM Opportunity WHERE Id IN ('006')");
        assert!(by_id.to_string().contains("narrow the pipeline's `where`"));
        assert!(!by_id.to_string().contains("Bulk"), "{by_id}");
    }

    #[test]
    fn new_shares_are_asked_for_among_the_records_the_pipeline_reads() {
        let at = "2026-11-30T10:00:00.000Z";
        let request = |filter: Option<&str>, query: Option<&str>| ExtractRequest {
            filter: filter.map(String::from),
            query: query.map(String::from),
            ..ExtractRequest::new("Opportunity", vec!["Name".into()])
        };
        let links = "SELECT LinkedEntityId, SystemModstamp FROM ContentDocumentLink WHERE LinkedEntityId IN";
        let since = format!("AND SystemModstamp > {at}");
        assert_eq!(
            shares_query(&request(Some("IsWon = true"), None), at),
            format!("{links} (SELECT Id FROM Opportunity WHERE IsWon = true) {since}")
        );
        for (filter, query) in [
            (None, None),
            (
                Some("AccountId IN (SELECT Id FROM Account WHERE Type = 'Customer')"),
                None,
            ),
            (
                None,
                Some("SELECT Id, Name FROM Opportunity WHERE IsWon = true"),
            ),
        ] {
            assert_eq!(
                shares_query(&request(filter, query), at),
                format!("{links} (SELECT Id FROM Opportunity) {since}")
            );
        }
    }

    #[test]
    fn quotes_ids_and_types_files() {
        assert_eq!(in_list(&["001A".into(), "x'y".into()]), "'001A', 'x\\'y'");
        assert_eq!(content_type_of("PDF"), "application/pdf");
        assert_eq!(content_type_of(""), "application/octet-stream");
    }

    #[test]
    fn builds_one_query_with_the_id() {
        let request = ExtractRequest {
            filter: Some("IsDeleted = false".into()),
            ..ExtractRequest::new(
                "Contact",
                vec![
                    "FirstName".into(),
                    "Account.Id".into(),
                    "id".into(),
                    "$.x".into(),
                ],
            )
        };
        assert_eq!(
            soql(&request),
            "SELECT Id, FirstName, Account.Id FROM Contact WHERE IsDeleted = false"
        );
        let reread = ExtractRequest {
            ids: vec!["003A".into(), "003B".into()],
            equals: vec![("Type".into(), serde_json::json!("O'Neil"))],
            ..request
        };
        assert_eq!(
            soql(&reread),
            "SELECT Id, FirstName, Account.Id FROM Contact WHERE (IsDeleted = false) AND Type = 'O\\'Neil' AND Id IN ('003A', '003B')"
        );
    }
}
