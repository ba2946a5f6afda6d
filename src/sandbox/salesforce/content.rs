//! Salesforce Files in the org: a new ContentVersion gets what Salesforce makes with it — its
//! ContentDocument (title, size, extension, the latest version), the version's
//! `ContentDocumentId`, `FileExtension` and `IsLatest`, and, when `FirstPublishLocationId` names
//! a record, the ContentDocumentLink that shares the file with that record (viewer access, all
//! users), so that `SELECT … FROM ContentDocumentLink WHERE LinkedEntityId = …` finds it.

use serde_json::{json, Value};

use super::org::{Org, Record};

/// The extension of a client path (`report.PDF` → `pdf`), as `FileExtension` holds it.
fn extension(path: &str) -> Option<String> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let (stem, extension) = name.rsplit_once('.')?;
    (!stem.is_empty() && !extension.is_empty()).then(|| extension.to_ascii_lowercase())
}

/// `ContentDocument.FileType` for an extension; Salesforce's names for the common ones.
fn file_type(extension: Option<&str>) -> &'static str {
    match extension {
        Some("pdf") => "PDF",
        Some("txt") => "TEXT",
        Some("csv") => "CSV",
        Some("png") => "PNG",
        Some("jpg" | "jpeg") => "JPG",
        Some("gif") => "GIF",
        Some("doc") => "WORD",
        Some("docx") => "WORD_X",
        Some("xls") => "EXCEL",
        Some("xlsx") => "EXCEL_X",
        Some("zip") => "ZIP",
        _ => "UNKNOWN",
    }
}

/// Completes a ContentVersion just created with `id`: its document and, if asked, its link.
pub fn publish_version(org: &mut Org, id: &str, user: &str) {
    let Some(version) = org.get(id).cloned() else {
        return;
    };
    let text = |key: &str| version.get(key).and_then(Value::as_str).map(str::to_string);
    let extension = text("PathOnClient").and_then(|path| extension(&path));
    let owner = text("OwnerId").unwrap_or_else(|| user.to_string());
    let mut document = Record::new();
    document.insert("Title".into(), json!(text("Title")));
    document.insert("LatestPublishedVersionId".into(), json!(id));
    document.insert("FileExtension".into(), json!(extension));
    document.insert("FileType".into(), json!(file_type(extension.as_deref())));
    document.insert(
        "ContentSize".into(),
        version.get("ContentSize").cloned().unwrap_or(Value::Null),
    );
    document.insert("OwnerId".into(), json!(owner));
    let document_id = org.create("ContentDocument", document, user);
    if let Some(stored) = org.get_mut(id) {
        // Set with the version's creation, so its stamps do not move.
        stored.insert("ContentDocumentId".into(), json!(document_id));
        stored.insert("FileExtension".into(), json!(extension));
        stored.insert("IsLatest".into(), json!(true));
    }
    if let Some(record) = text("FirstPublishLocationId") {
        let mut link = Record::new();
        link.insert("ContentDocumentId".into(), json!(document_id));
        link.insert("LinkedEntityId".into(), json!(record));
        link.insert("ShareType".into(), json!("V"));
        link.insert("Visibility".into(), json!("AllUsers"));
        org.create("ContentDocumentLink", link, user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_file_types() {
        assert_eq!(extension("C:\\files\\Report.PDF").as_deref(), Some("pdf"));
        assert_eq!(extension("archive.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension("README"), None);
        assert_eq!(extension(".hidden"), None);
        assert_eq!(file_type(Some("pdf")), "PDF");
        assert_eq!(file_type(Some("bin")), "UNKNOWN");
        assert_eq!(file_type(None), "UNKNOWN");
    }
}
