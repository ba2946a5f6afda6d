//! What the engine needs from a system it reads from ([`Source`]) or writes to ([`Target`]).
//! Records are JSON objects: a source's are flat, keyed by field path (`Owner.Email`); a
//! target's are nested as the transform shaped them (`customfields.CFx` is `{"customfields":
//! {"CFx": …}}`). Ids are strings on both sides.

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
}

pub trait Source {
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

pub trait Target {
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
}
