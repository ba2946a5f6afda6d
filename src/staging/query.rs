//! Ad-hoc SQL over the staging file (`etl sql`): any statement, its result as columns and rows.

use duckdb::types::Value;

use super::error::StagingError;
use super::store::Store;

/// A query's result, in memory: `etl sql` is for looking, and results are printed whole.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Store {
    /// Runs one SQL statement and returns what it produced (statements that produce no rows
    /// return DuckDB's count, if any).
    pub fn query(&self, sql: &str) -> Result<ResultTable, StagingError> {
        let mut statement = self.connection().prepare(sql)?;
        let mut rows = statement.query([])?;
        let columns = rows
            .as_ref()
            .map(|s| s.column_names())
            .unwrap_or_default();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns.len());
            for index in 0..columns.len() {
                values.push(row.get::<_, Value>(index)?);
            }
            out.push(values);
        }
        Ok(ResultTable { columns, rows: out })
    }
}
