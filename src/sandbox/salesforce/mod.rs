//! The emulated Salesforce org: its data, SOQL execution, seed data and (as it grows) the HTTP
//! API that serves them with Salesforce's wire formats.

pub mod ids;
pub mod org;
pub mod query;
pub mod seed;
