//! The source's describe of each pipeline's object as staged by the runs that loaded
//! (`schemas`: one row per field, with its type), so schema drift is found by comparing a run's
//! describe with the last one staged.

use std::collections::BTreeMap;

use duckdb::params;

use super::{StagingError, Store};

/// A staged describe: the run that staged it, and each field's type by name.
pub type StagedDescribe = (String, BTreeMap<String, String>);

impl Store {
    /// The last describe of `object` staged for the pipeline: its run and fields.
    pub fn last_describe(
        &self,
        pipeline: &str,
        object: &str,
    ) -> Result<Option<StagedDescribe>, StagingError> {
        let connection = self.connection();
        // By time, not by run id: two runs started in one second sort by their random suffix.
        let run: Option<String> = connection.query_row(
            "SELECT arg_max(run_id, staged_at) FROM schemas WHERE pipeline = ? AND object = ?",
            params![pipeline, object],
            |row| row.get(0),
        )?;
        let Some(run) = run else {
            return Ok(None);
        };
        let mut statement = connection.prepare(
            "SELECT field, coalesce(field_type, '') FROM schemas
             WHERE pipeline = ? AND object = ? AND run_id = ?",
        )?;
        let fields = statement
            .query_map(params![pipeline, object, run], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(Some((run, fields)))
    }

    /// Stages this run's describe of `object` (field → type) as the pipeline's new reference.
    pub fn stage_describe(
        &self,
        run_id: &str,
        pipeline: &str,
        object: &str,
        fields: &BTreeMap<String, String>,
    ) -> Result<(), StagingError> {
        self.in_transaction(|store| {
            let mut appender = store.connection().appender("schemas")?;
            let at = duckdb::types::Value::Timestamp(
                duckdb::types::TimeUnit::Millisecond,
                crate::civil::now_millis(),
            );
            for (field, kind) in fields {
                appender.append_row(params![run_id, pipeline, object, field, kind, at])?;
            }
            appender.flush()?;
            Ok(())
        })
    }
}
