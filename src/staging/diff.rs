//! Comparing two runs of a pipeline in the staging file (`etl diff`): which runs staged rows for
//! a pipeline, and the records that differ between the source's state as of two of them. A run
//! that read everything stands for the whole state; a run that read only the changes since a
//! watermark (`extracts`) stages just those, so the state as of a run is, per `source_id`, the
//! newest row among the last full run at or before it and the incremental runs after that one.
//! The two states are built and compared in one query (a window over the union of those runs'
//! rows, then a FULL OUTER JOIN on `source_id`) streamed row by row, so memory stays flat
//! however large the tables are. Deciding which fields changed is left to the caller; this file
//! only does the set work, and knows a deleted record only by the flag name the caller gives.

use duckdb::params;

use super::error::StagingError;
use super::store::Store;
use super::tables::{quote, Stage};
use super::watermarks::ExtractKind;

/// A run that staged rows for a pipeline, or recorded how it read the pipeline's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRun {
    pub run_id: String,
    pub command: String,
    pub started_at: String,
    /// Rows the run itself staged in the stage's table (for an incremental run, the records
    /// that changed since the watermark, which can be none).
    pub rows: i64,
    /// Whether the run read everything or only the changes since a watermark.
    pub kind: ExtractKind,
}

/// One record that is not textually identical in the two states: only in `after` (added), only
/// in `before` (removed), or in both with different JSON text (maybe changed: the caller
/// compares the values, so `18` and `18.0` can still turn out equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffRow {
    pub source_id: String,
    /// The record's JSON as of the `from` run.
    pub before: Option<String>,
    /// The record's JSON as of the `to` run.
    pub after: Option<String>,
}

fn stage_table(pipeline: &str, stage: Stage) -> String {
    format!("{pipeline}_{}", stage.suffix())
}

/// The suffix of a pipeline's sync-back tables (`accounts_back_extracted`): a run lists the
/// pipeline (`accounts`), not its tables' name.
const BACK_SUFFIX: &str = "_back";

/// The runs of a pipeline that count, in order, as the SQL CTE `history` (parameter `$1` is the
/// pipeline): runs whose `pipelines` names it (or, for `<p>_back`, names `<p>`) and that staged rows in `table` or recorded an
/// extract for it (an incremental run that found no change stages nothing), numbered by
/// `started_at`, ties by `run_id`. A run is incremental when it says so and started after a
/// watermark: an incremental read without one read everything, so it is a base like a full one;
/// runs with no `extracts` row read everything.
fn history_cte(table: &str) -> String {
    format!(
        "history AS (
            SELECT r.run_id, r.command, r.started_at, coalesce(s.n, 0) AS n,
                   coalesce(x.incremental, false) AS incremental,
                   row_number() OVER (ORDER BY r.started_at, r.run_id) AS position
            FROM runs r
            LEFT JOIN (SELECT run_id, count(*) AS n FROM {table} GROUP BY run_id) s
                ON s.run_id = r.run_id
            LEFT JOIN (
                SELECT run_id, bool_and(kind = 'incremental' AND since IS NOT NULL) AS incremental
                FROM extracts WHERE pipeline = $1 GROUP BY run_id
            ) x ON x.run_id = r.run_id
            WHERE (list_contains(r.pipelines, $1)
                   OR (ends_with($1, '{back}')
                       AND list_contains(r.pipelines, $1[:length($1) - {back_len}])))
              AND (s.run_id IS NOT NULL OR x.run_id IS NOT NULL)
        )",
        table = quote(table),
        back = BACK_SUFFIX,
        back_len = BACK_SUFFIX.len()
    )
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// SQL that is true when the JSON `record` carries the deleted flag `flag`, set — the same
/// reading as the engine's: `true`, a non-zero whole number, or the text `true` in any case.
/// The flag is looked up as one key (a JSON pointer), so flat keys with dots stay whole.
fn flag_set(record: &str, flag: &str) -> String {
    let pointer = literal(&format!("/{}", flag.replace('~', "~0").replace('/', "~1")));
    format!(
        "coalesce(CASE json_type({record}, {pointer})
            WHEN 'BOOLEAN' THEN json_extract_string({record}, {pointer}) = 'true'
            WHEN 'BIGINT' THEN json_extract_string({record}, {pointer}) <> '0'
            WHEN 'UBIGINT' THEN json_extract_string({record}, {pointer}) <> '0'
            WHEN 'VARCHAR' THEN lower(trim(json_extract_string({record}, {pointer}))) = 'true'
            ELSE false END, false)"
    )
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
    /// `stage` table or recorded how they read its source), oldest first; `None` when the
    /// pipeline has no such table.
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
            "WITH {}
             SELECT run_id, command, strftime(started_at, '%Y-%m-%d %H:%M:%S'), n, incremental
             FROM history ORDER BY position",
            history_cte(&table)
        ))?;
        let runs = statement.query_map(params![pipeline], |row| {
            Ok(StagedRun {
                run_id: row.get(0)?,
                command: row.get(1)?,
                started_at: row.get(2)?,
                rows: row.get(3)?,
                kind: if row.get::<_, bool>(4)? {
                    ExtractKind::Incremental
                } else {
                    ExtractKind::Full
                },
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

    /// Streams the records of `pipeline`'s `stage` table that differ between the state as of
    /// run `from` and as of run `to`, by `source_id`, to `each`. The state as of a run is, per
    /// `source_id`, the newest row among the last full run at or before it and every
    /// incremental run after that one up to it (runs ordered by `started_at`, then `run_id`);
    /// for a full run, its own rows. A record staged twice in one run counts once (the last staged).
    /// With `deleted_flag`, a record whose newest row was read with that flag set (in the
    /// extracted record of the same run, whichever the stage) is not in the state, so it shows
    /// as removed. Records whose JSON text is the same in both states are left out in SQL.
    pub fn diff_runs(
        &self,
        pipeline: &str,
        stage: Stage,
        from: &str,
        to: &str,
        deleted_flag: Option<&str>,
        each: &mut dyn FnMut(DiffRow) -> Result<(), StagingError>,
    ) -> Result<(), StagingError> {
        let table = stage_table(pipeline, stage);
        let extracted = stage_table(pipeline, Stage::Extracted);
        let deleted = match deleted_flag {
            None => "false".to_string(),
            Some(flag) if stage == Stage::Extracted => flag_set("newest.record", flag),
            Some(_) if self.table_columns(&extracted)?.is_empty() => "false".to_string(),
            Some(flag) => format!(
                "EXISTS (SELECT 1 FROM {} e WHERE e.run_id = newest.run_id
                         AND e.source_id = newest.source_id AND {})",
                quote(&extracted),
                flag_set("e.record", flag)
            ),
        };
        // `$2` is `from`, `$3` is `to`: each side's span of runs is from its base (the last
        // run that read everything; the first run when none did) to the run itself.
        let state = |name: &str, run: &str| {
            format!(
                "{name}_span AS (
                    SELECT coalesce(max(position) FILTER (WHERE NOT incremental), 1) AS first,
                           max(position) AS last
                    FROM history WHERE position <= (SELECT position FROM history WHERE run_id = {run})
                ),
                {name} AS (
                    SELECT newest.source_id, newest.record::VARCHAR AS record FROM (
                        SELECT t.run_id, t.source_id, t.record
                        FROM {table} t
                        JOIN history h ON h.run_id = t.run_id
                        JOIN {name}_span span ON h.position BETWEEN span.first AND span.last
                        WHERE t.source_id IS NOT NULL
                        QUALIFY row_number() OVER (
                            PARTITION BY t.source_id
                            ORDER BY h.position DESC, t.staged_at DESC NULLS LAST, t.rowid DESC
                        ) = 1
                    ) newest
                    WHERE NOT ({deleted})
                )",
                table = quote(&table)
            )
        };
        let sql = format!(
            "WITH {}, {}, {}
             SELECT coalesce(b.source_id, a.source_id) AS source_id, b.record, a.record
             FROM before_state b FULL OUTER JOIN after_state a ON a.source_id = b.source_id
             WHERE b.source_id IS NULL OR a.source_id IS NULL
                OR b.record IS DISTINCT FROM a.record
             ORDER BY 1",
            history_cte(&table),
            state("before_state", "$2"),
            state("after_state", "$3"),
        );
        let mut statement = self.connection().prepare(&sql)?;
        let mut rows = statement.query(params![pipeline, from, to])?;
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
