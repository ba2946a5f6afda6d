//! What the engine needs from a system it reads from ([`Source`]) or writes to ([`Target`]).
//! Records are JSON objects: a source's are flat, keyed by field path (`Owner.Email`); a
//! target's are nested as the transform shaped them (`customfields.CFx` is `{"customfields":
//! {"CFx": …}}`). Ids are strings on both sides.

use std::io::Write;

use serde_json::{Map, Value};

use super::error::EngineError;

pub type Record = Map<String, Value>;

/// What to extract for one pipeline.
#[derive(Debug, Clone)]
pub struct ExtractRequest {
    /// The source object or entity, e.g. `Account`.
    pub object: String,
    /// Field paths the transform reads; the source adds its id field.
    pub fields: Vec<String>,
    /// The pipeline's filter in the source's own language (a SOQL condition).
    pub filter: Option<String>,
    /// A whole query replacing object, fields and filter.
    pub query: Option<String>,
    /// Only records whose field equals the value, or one of the values when it is a list (a
    /// target entity's constant values, such as the ticket types a pipeline's records have).
    pub equals: Vec<(String, Value)>,
    /// Only records whose `parent field` (see [`Source::parent_field`]) is one of these ids.
    pub parents: Option<Vec<String>>,
    /// Only these records (by id); empty means no such restriction.
    pub ids: Vec<String>,
    /// Also records deleted in the source (still in its recycle bin), each with the source's
    /// deleted flag (`IsDeleted`).
    pub include_deleted: bool,
    /// Only the records changed since a watermark, handed out in cursor order.
    pub incremental: Option<IncrementalRead>,
    /// Only the records changed at or after this time, in milliseconds on the system's own
    /// clock (as [`Source::changed_at`] reads it); for objects [`Source::lists_changes`] says
    /// can be listed so.
    pub changed_since: Option<i64>,
}

/// An incremental read: the records whose `cursor_field` (a timestamp the source moves on
/// every change) is past `since`, in ascending (cursor, id) order, each carrying the cursor
/// field, so the last record of any page is a watermark to resume after.
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalRead {
    pub cursor_field: String,
    /// Where the last completed read ended; `None` reads everything (in cursor order).
    pub since: Option<Watermark>,
    /// How far before `since` to read again, for records committed late with an older stamp.
    pub lookback: std::time::Duration,
}

/// The records that gained files since a time, and the stamp of the newest of those files
/// (milliseconds since the epoch), where the next look can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFiles {
    pub records: Vec<String>,
    pub newest: Option<i64>,
    /// Whether the source answered every listing of the look: when one was refused, files
    /// it would have found may be missing, so the next look starts where this one did.
    pub complete: bool,
}

impl Default for NewFiles {
    /// Nothing found by a look that missed nothing.
    fn default() -> Self {
        NewFiles {
            records: Vec::new(),
            newest: None,
            complete: true,
        }
    }
}

/// A position in a source's change order: the cursor value and the id of the last record read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub value: String,
    pub id: String,
}

impl ExtractRequest {
    /// Every record of `object`, with `fields`.
    pub fn new(object: &str, fields: Vec<String>) -> ExtractRequest {
        ExtractRequest {
            object: object.to_string(),
            fields,
            filter: None,
            query: None,
            equals: Vec::new(),
            parents: None,
            ids: Vec::new(),
            include_deleted: false,
            incremental: None,
            changed_since: None,
        }
    }
}

/// Which kind of file a record carries: a classic attachment or a file (a document version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum AttachmentKind {
    Attachment,
    File,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Attachment => "attachment",
            AttachmentKind::File => "file",
        }
    }
}

/// One file held by a source record, described without its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentRef {
    /// The source's id for the bytes (an Attachment or a ContentVersion id).
    pub id: String,
    /// The record it belongs to.
    pub parent_id: String,
    pub kind: AttachmentKind,
    pub name: String,
    /// MIME type; empty when the source does not know it.
    pub content_type: String,
    /// Size in bytes, when the source says.
    pub size: Option<u64>,
}

/// What a source found for a set of records: the files, and the listings it could not make
/// (e.g. no permission to read files), with the source's own message. Such a message applies to
/// every record asked about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttachmentListing {
    pub attachments: Vec<AttachmentRef>,
    pub problems: Vec<String>,
}

/// A file a target record already holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetAttachment {
    pub id: String,
    pub name: String,
    pub size: Option<u64>,
}

/// `Sync`: attachment copies run on several threads sharing one source and one target.
pub trait Source: Sync {
    /// The field that holds a record's id (`Id`).
    fn id_field(&self) -> &str;
    /// Hands every page of matching records to `page`, in order, never holding more than one
    /// page; stops at the first error on either side.
    fn extract(
        &self,
        request: &ExtractRequest,
        page: &mut dyn FnMut(Vec<Record>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError>;
    /// API calls made so far.
    fn api_calls(&self) -> u64;
    /// Why this record must not be synced although it was extracted (a per-record or per-type
    /// "don't sync" switch of the system), or `None`.
    fn skip_reason(&self, object: &str, record: &Record) -> Option<String> {
        let _ = (object, record);
        None
    }
    /// The fields of `object` with their types, as the system describes them now, or `None`
    /// when this source cannot describe its objects.
    fn describe(&self, object: &str) -> Result<Option<Vec<(String, String)>>, EngineError> {
        let _ = object;
        Ok(None)
    }
    /// The field that says a record is deleted, for extracts with `include_deleted`.
    fn deleted_field(&self) -> Option<&str> {
        None
    }
    /// Whether records of `object` can be listed by when they last changed
    /// ([`ExtractRequest::changed_since`]), so that a listing can leave out the unchanged ones.
    fn lists_changes(&self, object: &str) -> bool {
        let _ = object;
        false
    }
    /// When `record` of `object` last changed, as the record itself says (the system's own
    /// clock, never ours), in milliseconds; `None` when it does not say.
    fn changed_at(&self, object: &str, record: &Record) -> Option<i64> {
        let _ = (object, record);
        None
    }
    /// The field by which records of `object` can only be listed per parent (an action's
    /// ticket), or `None` when they can be listed on their own.
    fn parent_field(&self, object: &str) -> Option<&'static str> {
        let _ = object;
        None
    }
    /// The files held by these records. A listing the source refuses is a `problem`; an error
    /// here means the source cannot be reached at all.
    fn attachments(&self, parent_ids: &[String]) -> Result<AttachmentListing, EngineError> {
        let _ = parent_ids;
        Ok(AttachmentListing {
            attachments: Vec::new(),
            problems: vec!["this source does not list attachments".into()],
        })
    }
    /// The ids of records of `object` deleted at or after `since` (a cursor value) and still
    /// in the source's recycle bin: a read of changes whose filter leaves deleted records out
    /// learns of deletions from this.
    fn deleted_since(&self, object: &str, since: &str) -> Result<Vec<String>, EngineError> {
        let _ = (object, since);
        Ok(Vec::new())
    }
    /// The records `request` reads that gained, replaced or were shared a file after `after`
    /// (milliseconds since the epoch), so that a read of changes also copies files added to
    /// records that did not change otherwise. A source may answer records of the object that
    /// its filter leaves out: the read again by id applies the filter.
    fn records_with_new_files(
        &self,
        request: &ExtractRequest,
        after: i64,
    ) -> Result<NewFiles, EngineError> {
        let _ = (request, after);
        Ok(NewFiles::default())
    }
    /// Streams one file's bytes into `out`; returns how many were written, or the source's
    /// message.
    fn attachment_body(
        &self,
        attachment: &AttachmentRef,
        out: &mut dyn Write,
    ) -> Result<u64, String> {
        let _ = (attachment, out);
        Err("this source cannot read attachment bodies".into())
    }
}

/// Create a record, or update one with only the fields that changed.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteAction {
    Create,
    Update { target_id: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriteRequest {
    pub action: WriteAction,
    pub record: Record,
}

/// What became of one write: the target's id and saved record, or the target's own message.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteResult {
    pub outcome: Result<(String, Record), String>,
}

/// `Sync`, as [`Source`] is.
pub trait Target: Sync {
    /// Writes a batch (the target decides how many per call); one result per request, in order.
    fn write(&self, entity: &str, batch: &[WriteRequest]) -> Vec<WriteResult>;
    /// The record whose fields equal `key` (to link instead of duplicating), with its id.
    fn find(
        &self,
        entity: &str,
        key: &[(String, Value)],
    ) -> Result<Option<(String, Record)>, EngineError>;
    /// The id of the record of `entity` whose `by` field equals `value`.
    fn search(&self, entity: &str, by: &str, value: &Value) -> Result<Option<Value>, EngineError>;
    /// API calls made so far.
    fn api_calls(&self) -> u64;
    /// Fields of `entity` that can be set when a record is created but never changed after
    /// (Salesforce's createable but not updateable ones, such as `Opportunity.ContactId`): an
    /// update that names one is refused whole.
    fn create_only_fields(&self, entity: &str) -> Vec<String> {
        let _ = entity;
        Vec::new()
    }
    /// Why records of `entity` cannot hold attachments, or `None` when they can.
    fn attachments_refused(&self, entity: &str) -> Option<String> {
        Some(format!("this target cannot hold attachments on {entity}"))
    }
    /// Attaches a file to record `target_id` of `entity`; returns the target's id for the
    /// attachment, or the target's message.
    fn attach(
        &self,
        entity: &str,
        target_id: &str,
        name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        let _ = (target_id, name, content_type, bytes);
        Err(format!("this target cannot hold attachments on {entity}"))
    }
    /// Deletes record `target_id` of `entity`; the target's message when it cannot.
    fn delete(&self, entity: &str, target_id: &str) -> Result<(), String> {
        let _ = target_id;
        Err(format!("this target cannot delete {entity} records"))
    }
    /// Deletes these records of `entity`, as many per call as the target allows; one outcome
    /// per id, in order. A record already gone counts as deleted.
    fn delete_many(&self, entity: &str, target_ids: &[String]) -> Vec<Result<(), String>> {
        target_ids
            .iter()
            .map(|id| self.delete(entity, id))
            .collect()
    }
    /// Marks record `target_id` of `entity` inactive; the target's message when it cannot.
    fn deactivate(&self, entity: &str, target_id: &str) -> Result<(), String> {
        let _ = target_id;
        Err(format!("this target cannot deactivate {entity} records"))
    }
    /// The fields an update sets to undo [`Target::deactivate`] (the record active again), or
    /// `None` when records of `entity` cannot be deactivated.
    fn reactivation(&self, entity: &str) -> Option<Record> {
        let _ = entity;
        None
    }
    /// The files record `target_id` of `entity` holds (to recognise an upload whose answer
    /// was lost instead of uploading it again).
    fn attachments_of(
        &self,
        entity: &str,
        target_id: &str,
    ) -> Result<Vec<TargetAttachment>, String> {
        let _ = (entity, target_id);
        Ok(Vec::new())
    }
}
