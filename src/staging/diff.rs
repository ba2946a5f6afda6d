//! Comparing two runs of a pipeline in the staging file (`etl diff`): which runs staged rows for
//! a pipeline, and the records that differ between the source's state as of two of them. A run
//! that read everything stands for the whole state; a run that read only the changes since a
//! watermark (`extracts`) stages just those, so the state as of a run is, per `source_id`, the
//! newest row among the last full run at or before it and the incremental runs after that one.
//! Each state is built as row ids and digests in a scratch table, the two are joined on
//! `source_id`, and the differing records are read by row id a page at a time, so memory stays
//! within the staging limit however large the tables are. Deciding which fields changed is left to the caller; this file
//! only does the set work, and knows a deleted record only by the flag name the caller gives.

use std::collections::HashMap;

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

/// Differing records read (by row id) at once.
const DIFF_PAGE: usize = 1_000;

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
    /// as removed. Records whose JSON text is the same in both states (the same MD5) are left
    /// out in SQL.
    ///
    /// Memory stays within the staging limit at any size: each state is kept as row ids and
    /// digests in a scratch table of its own (`diff_before`, `diff_after`), the two are joined
    /// into the differing row ids in `source_id` order (`diff_rows`), and the records are read by
    /// row id a page at a time. One query holding both states' records, as before, ran out of
    /// memory at 250,000 records under the default 32 MB (and a large diff even at 64 MB).
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
            Some(flag) if stage == Stage::Extracted => flag_set("t.record", flag),
            Some(_) if self.table_columns(&extracted)?.is_empty() => "false".to_string(),
            Some(flag) => format!(
                "EXISTS (SELECT 1 FROM {} e WHERE e.run_id = t.run_id
                         AND e.source_id = t.source_id AND {})",
                quote(&extracted),
                flag_set("e.record", flag)
            ),
        };
        // Each side's span of runs is from its base (the last run that read everything; the
        // first run when none did) to the run itself (`$2`); the newest row of each record in
        // it is found by its row id alone, and only then is its record read.
        let state = format!(
            "WITH {history},
             span AS (
                SELECT coalesce(max(position) FILTER (WHERE NOT incremental), 1) AS first,
                       max(position) AS last
                FROM history WHERE position <= (SELECT position FROM history WHERE run_id = $2)
             ),
             newest AS (
                SELECT t.source_id,
                       arg_max(t.rowid, (h.position, t.staged_at, t.rowid)) AS row_id
                FROM {table} t
                JOIN history h ON h.run_id = t.run_id
                JOIN span ON h.position BETWEEN span.first AND span.last
                WHERE t.source_id IS NOT NULL
                GROUP BY t.source_id
             )
             SELECT newest.source_id, newest.row_id, md5_number(t.record::VARCHAR) AS digest
             FROM newest JOIN {table} t ON t.rowid = newest.row_id
             WHERE NOT ({deleted})",
            history = history_cte(&table),
            table = quote(&table),
        );
        for (scratch, run) in [("diff_before", from), ("diff_after", to)] {
            self.with_room(|store| {
                store.connection().execute(
                    &format!("CREATE OR REPLACE TEMP TABLE {scratch} AS {state}"),
                    params![pipeline, run],
                )?;
                Ok(())
            })?;
        }
        let count: i64 = self.with_room(|store| {
            store.connection().execute_batch(
                "CREATE OR REPLACE TEMP TABLE diff_rows AS
                 SELECT row_number() OVER (ORDER BY source_id) AS n, * FROM (
                    SELECT coalesce(b.source_id, a.source_id) AS source_id,
                           b.row_id AS before_row, a.row_id AS after_row
                    FROM diff_before b FULL OUTER JOIN diff_after a ON a.source_id = b.source_id
                    WHERE b.source_id IS NULL OR a.source_id IS NULL OR b.digest <> a.digest
                 )",
            )?;
            Ok(store
                .connection()
                .query_row("SELECT count(*) FROM diff_rows", [], |row| row.get(0))?)
        })?;
        for first in (1..=count).step_by(DIFF_PAGE) {
            let page = self.diff_page(&table, first, first + DIFF_PAGE as i64 - 1)?;
            for row in page {
                each(row)?;
            }
        }
        for scratch in ["diff_before", "diff_after", "diff_rows"] {
            self.drop_scratch(scratch)?;
        }
        Ok(())
    }

    /// Rows `first..=last` of `diff_rows`, in order, with their records read from `table` by
    /// row id (their ids inline: DuckDB then skips the row groups that hold none of them).
    fn diff_page(&self, table: &str, first: i64, last: i64) -> Result<Vec<DiffRow>, StagingError> {
        let mut statement = self.connection().prepare_cached(
            "SELECT source_id, before_row, after_row FROM diff_rows
             WHERE n BETWEEN ? AND ? ORDER BY n",
        )?;
        let ids = statement
            .query_map(params![first, last], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let wanted: Vec<String> = ids
            .iter()
            .flat_map(|(_, before, after)| [*before, *after])
            .flatten()
            .map(|row_id| row_id.to_string())
            .collect();
        let mut records: HashMap<i64, String> = HashMap::with_capacity(wanted.len());
        if !wanted.is_empty() {
            let mut statement = self.connection().prepare(&format!(
                "SELECT rowid, record::VARCHAR FROM {} WHERE rowid IN ({})",
                quote(table),
                wanted.join(", ")
            ))?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (row_id, record) = row?;
                records.insert(row_id, record);
            }
        }
        Ok(ids
            .into_iter()
            .map(|(source_id, before, after)| DiffRow {
                source_id,
                before: before.and_then(|row_id| records.get(&row_id).cloned()),
                after: after.and_then(|row_id| records.get(&row_id).cloned()),
            })
            .collect())
    }
}
