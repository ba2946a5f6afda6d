//! Reads of the records a run staged in one of a pipeline's tables, as (source id, record as
//! JSON text) in staging order: a range of row ids (a run's rows are staged one after the
//! other, so each read fetches only its own records), or the rows of some source ids; and the
//! ids a user's SQL condition selects (`--where`).

use super::{StagingError, Store};

impl Store {
    /// The run's rows of `table` with row ids in `from..to`.
    pub fn staged_records_between(
        &self,
        table: &str,
        run_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, String)>, StagingError> {
        let mut statement = self.connection().prepare_cached(&format!(
            "SELECT source_id, record::VARCHAR FROM \"{table}\"
             WHERE run_id = ? AND rowid >= ? AND rowid < ? ORDER BY rowid"
        ))?;
        let rows = statement.query_map(duckdb::params![run_id, from, to], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The run's rows of `table` for these source ids (an id staged twice, twice), only those
    /// with row ids in `within` when given.
    pub fn staged_records_of(
        &self,
        table: &str,
        run_id: &str,
        source_ids: &[&str],
        within: Option<(i64, i64)>,
    ) -> Result<Vec<(String, String)>, StagingError> {
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let within = match within {
            Some((from, to)) => format!("AND rowid >= {from} AND rowid < {to}"),
            None => String::new(),
        };
        let marks = vec!["?"; source_ids.len()].join(", ");
        let mut statement = self.connection().prepare(&format!(
            "SELECT source_id, record::VARCHAR FROM \"{table}\"
             WHERE run_id = ? AND source_id IN ({marks}) {within} ORDER BY rowid"
        ))?;
        let params = std::iter::once(run_id).chain(source_ids.iter().copied());
        let rows = statement.query_map(duckdb::params_from_iter(params), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The source ids of the run's rows of `table` that meet every SQL condition (each as
    /// written by the user, over the table's columns); DuckDB's message when one does not
    /// parse or names a column the table lacks.
    pub fn staged_ids_where(
        &self,
        table: &str,
        run_id: &str,
        conditions: &[String],
    ) -> Result<Vec<String>, StagingError> {
        let mut sql = format!(
            "SELECT source_id FROM \"{table}\" WHERE run_id = '{}'",
            run_id.replace('\'', "''")
        );
        for condition in conditions {
            sql.push_str(&format!(" AND ({condition})"));
        }
        let mut statement = self.connection().prepare(&sql)?;
        let ids = statement.query_map([], |row| row.get::<_, String>(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// The source ids whose latest row of `table` (of whichever run staged it last) meets every
    /// SQL condition; DuckDB's message when one does not parse or names a column the table
    /// lacks.
    pub fn latest_staged_ids_where(
        &self,
        table: &str,
        conditions: &[String],
    ) -> Result<Vec<String>, StagingError> {
        let mut sql = format!(
            "SELECT source_id FROM (SELECT * FROM \"{table}\"
               QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY rowid DESC) = 1)
             WHERE true"
        );
        for condition in conditions {
            sql.push_str(&format!(" AND ({condition})"));
        }
        let mut statement = self.connection().prepare(&sql)?;
        let ids = statement.query_map([], |row| row.get::<_, String>(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }
}
