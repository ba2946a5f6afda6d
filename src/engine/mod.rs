//! The engine: runs pipelines in `depends_on` order through extract → stage → transform → plan
//! → load, writing every step to the staging file. It talks to the two systems only through the
//! [`Source`] and [`Target`] traits, so it never names a vendor; the connectors implement them.

pub mod attachments;
pub mod conflicts;
pub mod connector;
mod copy_lane;
pub mod deletes;
pub mod drift;
pub mod error;
mod extract;
mod id_filter;
mod import_plan;
mod incremental;
pub mod linked_targets;
pub mod listing;
mod load;
pub mod lookups;
mod packed_pairs;
pub mod plan;
mod planned_writes;
pub mod progress;
mod review;
mod rows;
pub mod run;
mod selection;
pub mod snapshot;
pub mod summary;
pub mod sync_back;

pub use connector::{
    AttachmentKind, AttachmentListing, AttachmentRef, ExtractRequest, IncrementalRead, NewFiles,
    Record, Source, Target, TargetAttachment, Watermark, WriteAction, WriteRequest, WriteResult,
};
pub use error::EngineError;
pub use run::{run_both_ways, run_pipeline, Mode, RunOptions, Systems};
pub use summary::PipelineSummary;
