//! Staging: the DuckDB file where every step of a run is kept — run history, the id map,
//! watermarks and, per pipeline, what was extracted, transformed, planned and loaded — so anyone
//! can inspect and compare runs with SQL. Knows nothing of HTTP or of any vendor.

mod attachments;
mod back_links;
mod checkpoints;
mod checks;
mod diff;
mod error;
mod id_map;
mod lookup_links;
mod migrations;
mod plans;
mod query;
mod room;
mod run_links;
mod schemas;
mod staged_records;
mod store;
mod tables;
mod values;
mod watermarks;

pub use attachments::{attachments_table, AttachmentRow, ListedFile, ListedFiles, StagedFile};
pub use back_links::{ListingCounts, RelinkCandidate, KEPT_SOURCE_ID};
pub use diff::{DiffRow, StagedRun};
pub use error::StagingError;
pub use id_map::{Link, NewLinks};
pub use migrations::{MIGRATIONS, SCHEMA_VERSION};
pub use plans::{StagedWrite, ACTING};
pub use query::ResultTable;
pub use run_links::LinkedRecord;
pub use schemas::StagedDescribe;
pub use store::{RunRecord, Store};
pub use tables::{column_name, Column, ColumnType, GatheredRows, PipelineTables, Stage};
pub use values::{cell_to_json, cell_to_text, json_to_cell, Cell};
pub use watermarks::{ExtractKind, ListingMark, StoredWatermark};
