//! When a periodic check of a pipeline last ran (e.g. the hard-delete look-up), so a check
//! scheduled every `24h` runs once a day however often the pipeline runs. Kept in the
//! `watermarks` table — it is a cursor in time — under `<pipeline>:<check>`, a name no
//! pipeline can have (pipeline names have no `:`).

use duckdb::params;

use super::error::StagingError;
use super::store::Store;

fn key(pipeline: &str, check: &str) -> String {
    format!("{pipeline}:{check}")
}

impl Store {
    /// When `check` last ran for `pipeline` (milliseconds since the epoch), if it ever did.
    pub fn last_check(&self, pipeline: &str, check: &str) -> Result<Option<i64>, StagingError> {
        let mut statement = self
            .connection()
            .prepare("SELECT cursor_value FROM watermarks WHERE pipeline = ?")?;
        let mut rows = statement.query([key(pipeline, check)])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let value: Option<String> = row.get(0)?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    /// Records that `check` ran for `pipeline` at `at_millis`, in run `run_id`.
    pub fn record_check(
        &self,
        pipeline: &str,
        check: &str,
        at_millis: i64,
        run_id: &str,
    ) -> Result<(), StagingError> {
        let key = key(pipeline, check);
        self.connection()
            .execute("DELETE FROM watermarks WHERE pipeline = ?", [&key])?;
        self.connection().execute(
            "INSERT INTO watermarks (pipeline, cursor_field, cursor_value, updated_at, run_id)
             VALUES (?, 'checked_at', ?, now()::TIMESTAMP, ?)",
            params![key, at_millis.to_string(), run_id],
        )?;
        Ok(())
    }
}
