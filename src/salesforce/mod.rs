//! Salesforce: what the tool knows about Salesforce without a network (the standard objects and
//! their fields). The REST client, OAuth flows and Bulk API live here as they arrive.

pub mod catalog;
pub mod source;
