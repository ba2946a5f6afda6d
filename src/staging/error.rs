//! What can go wrong with the staging file, in words that say what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("the staging file {path} is in use by another etl process; wait for it to finish or point `staging:` in etl.yaml at another file ({detail})")]
    Locked { path: PathBuf, detail: String },
    #[error("{path} is not an etl staging file (it holds other tables); point `staging:` in etl.yaml at a new file")]
    Foreign { path: PathBuf },
    #[error("the staging file {path} was written by a newer etl (schema version {found}, this etl knows up to {known}); upgrade etl")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot open the staging file {path}: {detail}")]
    Open { path: PathBuf, detail: String },
    #[error("column `{column}` has type {data_type}, which etl cannot print; cast it in the query, e.g. `{column}::VARCHAR`")]
    Unprintable { column: String, data_type: String },
    /// DuckDB could not fit a statement under the staging memory limit.
    #[error("staging ran out of memory under its limit (ETL_STAGING_MEMORY, {} unless set): {detail}; set a higher limit, e.g. ETL_STAGING_MEMORY=512MB", super::store::DEFAULT_MEMORY_LIMIT)]
    OutOfMemory { detail: String },
    /// A read that fed something else (e.g. the lookups' links) and could not finish.
    #[error("could not read {what}: {detail}")]
    Read { what: String, detail: String },
    /// DuckDB's own message, e.g. for a query that does not parse.
    #[error("{0}")]
    Sql(duckdb::Error),
    #[error("cannot create the folder for the staging file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<duckdb::Error> for StagingError {
    fn from(error: duckdb::Error) -> StagingError {
        let detail = error.to_string();
        if detail.contains("Out of Memory Error") {
            StagingError::OutOfMemory { detail }
        } else {
            StagingError::Sql(error)
        }
    }
}
