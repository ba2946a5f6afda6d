//! Sandbox: local emulators of a Salesforce org and a Halo instance, for tests, demos and offline
//! pipeline work. They follow the real wire formats in `shared/reference/`; the engine never
//! knows it is talking to one.

pub mod faults;
pub mod files;
pub mod halo;
pub mod salesforce;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
