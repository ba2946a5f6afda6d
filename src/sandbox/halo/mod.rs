//! The Halo sandbox: an emulated Halo instance (HaloPSA / HaloITSM) with its authorisation
//! server, the `/api` entities the Salesforce integration uses, Halo's envelopes, paging,
//! model-state errors and rolling-window rate limit, following `shared/reference/halo-api.md`.
//! Where the reference is uncertain, the choice and its reason sit beside the code.

// Handlers refuse with the response itself (`Result<_, Response>`): error paths of a local
// test server, where boxing would only add noise.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
pub mod entity;
pub mod http;
pub mod persist;
pub mod render;
pub mod rules;
pub mod seed;
pub mod state;
pub mod store;

pub use state::{Config, RateLimit};
