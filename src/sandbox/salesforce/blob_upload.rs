//! Blob uploads in a `multipart/form-data` body, as Salesforce's "Insert or Update Blob Data"
//! takes them on `POST /sobjects/{Type}`: one non-binary part (no filename, JSON) holding the
//! record's fields — named `entity_content` for a ContentVersion, `entity_document` for a
//! Document; Salesforce does not go by the name — and at most one binary part (one with a
//! filename) named after the object's blob field (`VersionData`, `Body`). Salesforce's errors for
//! a malformed request are `INVALID_MULTIPART_REQUEST` with the messages real orgs answer.

use axum::http::StatusCode;
use axum::response::Response;

use super::http::error;
use super::multipart;

/// What a multipart create carries: the JSON of the record's fields and the binary part.
#[derive(Debug)]
pub struct Upload {
    pub entity: Vec<u8>,
    /// The binary part's name and bytes.
    pub blob: Option<(String, Vec<u8>)>,
}

fn invalid(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "INVALID_MULTIPART_REQUEST",
        message,
    )
}

/// Reads a multipart body sent with `content_type`.
pub fn read(content_type: &str, body: &[u8]) -> Result<Upload, Response> {
    // Salesforce's wording for an unreadable multipart body is not recorded; these say what
    // is wrong in its error format.
    let boundary = multipart::boundary(content_type)
        .ok_or_else(|| invalid("Multipart request is missing its boundary parameter"))?;
    let parts = multipart::parse(body, &boundary)
        .map_err(|problem| invalid(&format!("Unable to read the multipart request: {problem}")))?;
    let (binary, non_binary): (Vec<_>, Vec<_>) =
        parts.into_iter().partition(|p| p.filename.is_some());
    if binary.len() > 1 {
        return Err(invalid("Cannot include more than one binary part"));
    }
    if non_binary.len() > 1 {
        return Err(invalid("Cannot include more than one non-binary part"));
    }
    let Some(entity) = non_binary.into_iter().next() else {
        return Err(invalid("Multipart message must include a non-binary part"));
    };
    // Salesforce is Java: a part without a Content-Type shows as 'null' (inferred).
    let kind = entity.content_type.as_deref().unwrap_or("null");
    let media = kind
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" {
        let message = if media == "application/xml" || media == "text/xml" {
            // Real orgs take XML too; the sandbox reads JSON only, and says so.
            "The sandbox reads JSON non-binary parts only, was: XML".to_string()
        } else {
            format!("Non-binary part must be JSON or XML, was: '{kind}'")
        };
        return Err(invalid(&message));
    }
    let blob = binary
        .into_iter()
        .next()
        .map(|part| (part.name.unwrap_or_default(), part.body));
    Ok(Upload {
        entity: entity.body,
        blob,
    })
}
