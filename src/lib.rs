//! etl: a declarative ETL engine that keeps Salesforce and the Halo service desk in step,
//! staging every step in DuckDB. See ARCHITECTURE.md for how the pieces fit.

pub mod civil;
pub mod cli;
pub mod config;
pub mod salesforce;
pub mod sandbox;
pub mod soql;
pub mod staging;
pub mod transform;
