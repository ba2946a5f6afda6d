//! Salesforce: what the tool knows about Salesforce without a network (the standard objects and
//! their fields, `catalog.rs`) and the connector that talks to an org: OAuth sign-in and the
//! token store (`auth/`), the request service with refresh, retries and the API budget
//! (`client.rs`), streaming SOQL extracts (`query.rs`, `incremental.rs`, `bulk.rs`), writes
//! (`collections.rs`, `bulk.rs` with its results paired back in `bulk_results.rs`), deletes
//! (`delete.rs`) and online describe checks (`describe.rs`). Synchronous (ureq); it never
//! touches DuckDB.

pub mod auth;
pub mod bulk;
mod bulk_results;

pub mod catalog;
pub mod client;
pub mod collections;
pub mod delete;
pub mod describe;

pub mod error;
pub mod incremental;
pub mod query;
mod random;
pub mod source;
pub mod target;

pub use client::{ApiUsage, ClientOptions, SalesforceClient};
pub use collections::{Operation, Outcome, Written};
pub use error::Error;
pub use query::Record;
