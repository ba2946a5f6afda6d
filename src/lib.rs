//! etl: a declarative ETL engine that keeps Salesforce and the Halo service desk in step,
//! staging every step in DuckDB. See ARCHITECTURE.md for how the pieces fit.

// A real org's describe entry has 60 keys; `json!` needs the deeper macro recursion.
#![recursion_limit = "256"]

pub mod civil;
pub mod cli;
pub mod config;
pub mod cron;
pub mod engine;
pub mod halo;
pub mod http_agent;
pub mod logging;
pub mod prefetch;
pub mod salesforce;
pub mod sandbox;
pub mod soql;
pub mod staging;
pub mod transform;
