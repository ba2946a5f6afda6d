//! Salesforce as the engine's [`Source`]: a pipeline's fields and filter become one SOQL query
//! whose pages stream through the REST query API, `Id` always included. Salesforce's own error
//! for a bad query is a configuration error; anything else is a connection error.
//!
//! Attachments are listed per set of records with one query per kind: classic `Attachment`
//! rows by `ParentId`, and Files through `ContentDocumentLink` (by `LinkedEntityId`) to each
//! document's latest `ContentVersion`. A listing Salesforce refuses (no permission on the
//! object) is reported with Salesforce's message for the records asked about, and the run goes
//! on. Bodies stream from `/sobjects/Attachment/{id}/Body` and
//! `/sobjects/ContentVersion/{id}/VersionData`.

use std::collections::HashMap;
use std::io::Write;

use serde_json::Value;

use super::client::{Request, SalesforceClient};
use super::Error;
use crate::engine::{
    AttachmentKind, AttachmentListing, AttachmentRef, EngineError, ExtractRequest, Record, Source,
};

/// Ids per `IN (…)` list, keeping each query's URL well under Salesforce's limit.
const IDS_PER_QUERY: usize = 200;

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

/// The SOQL for a request: its own query, or `SELECT Id, <fields> FROM <object> [WHERE …]`,
/// the conditions being the pipeline's filter, `equals` and (for a re-read) the ids.
pub fn soql(request: &ExtractRequest) -> String {
    if let (Some(query), true) = (&request.query, request.ids.is_empty()) {
        return query.clone();
    }
    let mut fields: Vec<&str> = vec!["Id"];
    if request.include_deleted {
        fields.push("IsDeleted");
    }
    for field in &request.fields {
        // JSONPath reads come from the record as a whole, not from a selected field.
        let field = field.as_str();
        if field.starts_with('$') || fields.iter().any(|f| f.eq_ignore_ascii_case(field)) {
            continue;
        }
        fields.push(field);
    }
    let mut soql = format!("SELECT {} FROM {}", fields.join(", "), request.object);
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
    if !conditions.is_empty() {
        soql.push_str(" WHERE ");
        soql.push_str(&conditions.join(" AND "));
    }
    soql
}

fn engine_error(error: Error, soql: &str) -> EngineError {
    if error.exit_code() == 2 {
        EngineError::Config(format!("Salesforce refused the query `{soql}`: {error}"))
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
        let soql = soql(request);
        for records in self.client.query_pages(&soql, request.include_deleted) {
            page(records.map_err(|e| engine_error(e, &soql))?)?;
        }
        Ok(())
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

    fn attachments(&self, parent_ids: &[String]) -> Result<AttachmentListing, EngineError> {
        let mut listing = AttachmentListing::default();
        for chunk in parent_ids.chunks(IDS_PER_QUERY) {
            self.classic(chunk, &mut listing)?;
            self.files(chunk, &mut listing)?;
        }
        listing.problems.dedup();
        Ok(listing)
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
