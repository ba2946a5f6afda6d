//! The emulated Salesforce org: its data, SOQL execution, seed data and (as it grows) the HTTP
//! API that serves them with Salesforce's wire formats.

// Handlers bail out early with a finished HTTP response as their error; boxing it would only add
// noise on a path where size does not matter.
#![allow(clippy::result_large_err)]

pub mod api;
mod blob_upload;
pub mod bulk;
mod collections;
mod content;
pub mod describe;
pub mod dml;
pub mod http;
pub mod ids;
mod indexes;
mod multipart;
pub mod oauth;
pub mod org;
pub mod persist;
pub mod query;
mod rest;
pub mod seed;
pub mod state;
