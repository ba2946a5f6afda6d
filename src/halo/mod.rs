//! The Halo connector: a synchronous client for the Halo service desk's REST API (HaloPSA,
//! HaloITSM, HaloServiceDesk). It signs in with client credentials, keeps under the rate limit,
//! retries what can safely be retried, pages through lists without holding them, writes in
//! batched POST arrays with a result per input record, and reads and writes custom fields and
//! attachments. It knows nothing of Salesforce or of staging.

mod auth;
mod backoff;
mod client;
mod error;
mod limiter;
mod service;

pub mod attachments;
pub mod custom_fields;
pub mod list;
pub mod records;
pub mod source;
pub mod target;
pub mod write;

pub use attachments::NewAttachment;
pub use backoff::RetryPolicy;
pub use client::{ClientOptions, HaloClient};
pub use custom_fields::{FieldDefinition, FieldRef};
pub use error::{field_errors, halo_message, FieldError, HaloError};
pub use limiter::{RateLimit, RateLimiter};
pub use list::{ListQuery, Pages};
pub use source::HaloSource;
pub use target::HaloTarget;
pub use write::{partial_update, WriteFailure, WriteOutcome};
