//! Comparing two runs of a pipeline in the staging file (`etl diff`): which runs staged rows for
//! a pipeline, and the records that differ between two of them, found with one FULL OUTER JOIN
//! on `source_id` and streamed row by row so memory stays flat however large the tables are.
//! Deciding which fields changed is left to the caller; this file only does the set work.

use duckdb::params;

use super::error::StagingError;
use super::store::Store;
use super::tables::Stage;

/// A run that staged rows for a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRun {
    pub run_id: String,
    pub command: String,
    pub started_at: String,
    /// Rows the run staged in the stage's table.
    pub rows: i64,
}

/// One record that is not textually identical in the two runs: only in `after` (added), only
/// in `before` (removed), or in both with different JSON text (maybe changed: the caller
/// compares the values, so `18` and `18.0` can still turn out equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffRow {
    pub source_id: String,
    /// The record's JSON in the `from` run.
    pub before: Option<String>,
    /// The record's JSON in the `to` run.
    pub after: Option<String>,
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn stage_table(pipeline: &str, stage: Stage) -> String {
    format!("{pipeline}_{}", stage.suffix())
}

impl Store {
    /// Pipelines that have a table for `stage` with rows in it, with how many runs staged them,
    /// by name.
    pub fn staged_pipelines(&self, stage: Stage) -> Result<Vec<(String, i64)>, StagingError> {
        let suffix = format!("_{}", stage.suffix());
        let mut statement = self.connection().prepare(
            "SELECT table_name FROM duckdb_tables()
             WHERE schema_name = 'main' AND ends_with(table_name, ?) ORDER BY table_name",
        )?;
        let tables = statement
            .query_map([&suffix], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for table in tables {
            let runs: i64 = self.connection().query_row(
                &format!("SELECT count(DISTINCT run_id) FROM {}", quote(&table)),
                [],
                |row| row.get(0),
            )?;
            if runs > 0 {
                let pipeline = table[..table.len() - suffix.len()].to_string();
                out.push((pipeline, runs));
            }
        }
        Ok(out)
    }

    /// The runs of `pipeline` (runs whose `pipelines` names it and that staged rows in its
    /// `stage` table), oldest first; `None` when the pipeline has no such table.
    pub fn pipeline_runs(
        &self,
        pipeline: &str,
        stage: Stage,
    ) -> Result<Option<Vec<StagedRun>>, StagingError> {
        let table = stage_table(pipeline, stage);
        if self.table_columns(&table)?.is_empty() {
            return Ok(None);
        }
        let mut statement = self.connection().prepare(&format!(
            "SELECT r.run_id, r.command, strftime(r.started_at, '%Y-%m-%d %H:%M:%S'), s.n
             FROM runs r
             JOIN (SELECT run_id, count(*) AS n FROM {} GROUP BY run_id) s ON s.run_id = r.run_id
             WHERE list_contains(r.pipelines, ?)
             ORDER BY r.started_at, r.run_id",
            quote(&table)
        ))?;
        let runs = statement.query_map(params![pipeline], |row| {
            Ok(StagedRun {
                run_id: row.get(0)?,
                command: row.get(1)?,
                started_at: row.get(2)?,
                rows: row.get(3)?,
            })
        })?;
        Ok(Some(runs.collect::<Result<_, _>>()?))
    }

    /// The pipelines a run of the history names, or `None` when there is no such run.
    pub fn run_pipelines(&self, run_id: &str) -> Result<Option<Vec<String>>, StagingError> {
        let mut statement = self
            .connection()
            .prepare("SELECT array_to_string(pipelines, ',') FROM runs WHERE run_id = ?")?;
        let mut rows = statement.query(params![run_id])?;
        match rows.next()? {
            Some(row) => {
                let names: String = row.get(0)?;
                Ok(Some(
                    names
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect(),
                ))
            }
            None => Ok(None),
        }
    }

    /// Streams the records of `pipeline`'s `stage` table that differ between runs `from` and
    /// `to`, by `source_id`, to `each`. Records whose JSON text is the same in both runs are
    /// left out in SQL; a record staged twice in one run counts once (the last staged).
    pub fn diff_runs(
        &self,
        pipeline: &str,
        stage: Stage,
        from: &str,
        to: &str,
        each: &mut dyn FnMut(DiffRow) -> Result<(), StagingError>,
    ) -> Result<(), StagingError> {
        let table = quote(&stage_table(pipeline, stage));
        let side = |name: &str| {
            format!(
                "{name} AS (
                    SELECT source_id, record::VARCHAR AS record FROM {table}
                    WHERE run_id = ? AND source_id IS NOT NULL
                    QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY staged_at DESC) = 1
                )"
            )
        };
        let sql = format!(
            "WITH {}, {}
             SELECT coalesce(b.source_id, a.source_id) AS source_id, b.record, a.record
             FROM before_run b FULL OUTER JOIN after_run a ON a.source_id = b.source_id
             WHERE b.source_id IS NULL OR a.source_id IS NULL
                OR b.record IS DISTINCT FROM a.record
             ORDER BY 1",
            side("before_run"),
            side("after_run")
        );
        let mut statement = self.connection().prepare(&sql)?;
        let mut rows = statement.query(params![from, to])?;
        while let Some(row) = rows.next()? {
            each(DiffRow {
                source_id: row.get(0)?,
                before: row.get(1)?,
                after: row.get(2)?,
            })?;
        }
        Ok(())
    }
}
