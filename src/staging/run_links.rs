//! The links a run's plan needs, joined in staging instead of held in memory. DuckDB answers a
//! lookup on the id map's two-column key with a scan of the whole table (its key index serves
//! only the upsert), so reading links one at a time costs a scan each, and holding every link of
//! a pipeline costs memory that grows with the pipeline. Instead the plan joins once: when it
//! starts, the run's transformed records are joined with their links into the scratch table
//! `run_links`, ordered by the records' row ids, and each chunk of the plan reads its records
//! with their links from a narrow range of it. Sets of ids the engine asks about (records left
//! to retry, links missing from a run) are answered by joins too.

use std::collections::{HashMap, HashSet};

use duckdb::params;
use serde_json::{Map, Value};

use super::error::StagingError;
use super::id_map::{object, Link};
use super::store::Store;
use super::tables::quote;

/// One transformed record of a run, with its link when it has one.
pub struct LinkedRecord {
    pub source_id: String,
    pub record: Map<String, Value>,
    /// The record's hash as staged with it (none in rows staged before the hash was kept).
    pub record_hash: Option<String>,
    /// The link's target id and last synced hash; its last synced record too when the record's
    /// hash moved (the only case that reads it). No target record.
    pub link: Option<Link>,
}

/// The SQL condition (on the id map as `m`) that leaves out links whose hash is one of `marks`
/// (the marks `deletes.rs` keeps in the hash of a link it settled).
pub(super) fn unmarked(marks: &[&str]) -> String {
    if marks.is_empty() {
        return String::new();
    }
    let marks: Vec<String> = marks
        .iter()
        .map(|m| format!("'{}'", m.replace('\'', "''")))
        .collect();
    format!(
        "AND (m.source_hash IS NULL OR m.source_hash NOT IN ({}))",
        marks.join(", ")
    )
}

impl Store {
    /// The first and last row ids of run `run_id` in `table`, if it staged any row there.
    pub fn run_rowids(
        &self,
        table: &str,
        run_id: &str,
    ) -> Result<Option<(i64, i64)>, StagingError> {
        let range = self.connection().query_row(
            &format!(
                "SELECT min(rowid), max(rowid) FROM {} WHERE run_id = ?",
                quote(table)
            ),
            [run_id],
            |row| Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, Option<i64>>(1)?)),
        )?;
        Ok(match range {
            (Some(first), Some(last)) => Some((first, last)),
            _ => None,
        })
    }

    /// Joins run `run_id`'s transformed records in `table` (which hold `record_hash`) with
    /// `pipeline`'s links, into `run_links`, for [`Store::linked_records`]. The last synced
    /// record is kept only for records whose hash moved.
    ///
    /// The join is made a window of row ids at a time, so `run_links` holds each window's rows
    /// before the next one's and a chunk's read skips the other windows (by DuckDB's min/max
    /// per row group). `ORDER BY` would do it in one statement, but DuckDB's sort of the last
    /// synced records ran out of memory under the staging memory limit at 1M records.
    pub fn stage_run_links(
        &self,
        table: &str,
        run_id: &str,
        pipeline: &str,
        rows: (i64, i64),
    ) -> Result<(), StagingError> {
        self.fill_by_row_windows(
            "CREATE OR REPLACE TEMP TABLE run_links (
                row_id BIGINT, target_id VARCHAR, source_hash VARCHAR, synced_record VARCHAR)",
            &format!(
                "INSERT INTO run_links
                 SELECT t.rowid, m.target_id, m.source_hash,
                        CASE WHEN t.record_hash IS NULL OR m.source_hash IS DISTINCT FROM t.record_hash
                             THEN m.synced_record::VARCHAR END
                 FROM {} t JOIN id_map m ON m.source_id = t.source_id
                 WHERE t.run_id = ? AND t.rowid >= ? AND t.rowid < ?
                   AND m.pipeline = ? AND m.target_id IS NOT NULL",
                quote(table)
            ),
            run_id,
            pipeline,
            rows,
        )
    }

    /// Makes a scratch table with `create`, then fills it with `insert` (whose parameters are
    /// the run id, a window's first and past-the-end row ids, and the pipeline) a window of row
    /// ids at a time over `first..=last`: each window's rows then come before the next one's,
    /// so a read of a narrow range of row ids skips the other windows.
    pub(super) fn fill_by_row_windows(
        &self,
        create: &str,
        insert: &str,
        run_id: &str,
        pipeline: &str,
        (first, last): (i64, i64),
    ) -> Result<(), StagingError> {
        const WINDOW: i64 = 100_000;
        // Each window is joined with all of the pipeline's links: under the 32 MB default the
        // sync back's one ran out now and then (one 1% rerun in 15 at 25,000 accounts). Given
        // room then; the table is made afresh on each try.
        self.with_room(|store| {
            let connection = store.connection();
            connection.execute_batch(create)?;
            let mut statement = connection.prepare(insert)?;
            let mut from = first;
            while from <= last {
                let to = (from + WINDOW).min(last + 1);
                statement.execute(params![run_id, from, to, pipeline])?;
                from = to;
            }
            Ok(())
        })
    }

    /// Run `run_id`'s transformed records in rows `from..to` of `table`, in staging order, each
    /// with its link from `run_links` (made by [`Store::stage_run_links`] for this run). Both
    /// ends of the range bound both scans: with only a lower one, `ORDER BY rowid LIMIT n`
    /// reads every later row of the run to find the first n.
    pub fn linked_records(
        &self,
        table: &str,
        run_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<LinkedRecord>, StagingError> {
        // Prepared afresh: `run_links` is made anew for each plan.
        let mut statement = self.connection().prepare(&format!(
            "SELECT t.source_id, t.record::VARCHAR, t.record_hash, l.target_id, l.source_hash,
                    l.synced_record
             FROM {} t
             LEFT JOIN (SELECT * FROM run_links WHERE row_id >= $2 AND row_id < $3) l
               ON l.row_id = t.rowid
             WHERE t.run_id = $1 AND t.rowid >= $2 AND t.rowid < $3
             ORDER BY t.rowid",
            quote(table)
        ))?;
        let rows = statement.query_map(params![run_id, from, to], |row| {
            let target_id: Option<String> = row.get(3)?;
            Ok(LinkedRecord {
                source_id: row.get(0)?,
                record: object(row.get(1)?).unwrap_or_default(),
                record_hash: row.get(2)?,
                link: match target_id {
                    Some(target_id) => Some(Link {
                        target_id,
                        source_hash: row.get(4)?,
                        synced_record: object(row.get(5)?),
                        target_record: None,
                    }),
                    None => None,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The source ids `pipeline` links (to a target record) that run `run_id` did not stage in
    /// `table`, sorted, leaving out links whose hash is one of `marks`.
    pub fn linked_but_not_staged(
        &self,
        pipeline: &str,
        table: &str,
        run_id: &str,
        marks: &[&str],
    ) -> Result<Vec<String>, StagingError> {
        let unmarked = unmarked(marks);
        self.with_room(|store| {
            let mut statement = store.connection().prepare(&format!(
                "SELECT m.source_id FROM id_map m
                 WHERE m.pipeline = ? AND m.target_id IS NOT NULL {unmarked}
                   AND m.source_id NOT IN (SELECT source_id FROM {} WHERE run_id = ?)
                 ORDER BY m.source_id",
                quote(table)
            ))?;
            let ids = statement.query_map(params![pipeline, run_id], |row| row.get(0))?;
            Ok(ids.collect::<Result<_, _>>()?)
        })
    }

    /// Which of `ids` run `run_id` staged in `table`.
    pub fn staged_among(
        &self,
        table: &str,
        run_id: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, StagingError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        self.fill_wanted_ids(ids.iter())?;
        let mut statement = self.connection().prepare(&format!(
            "SELECT DISTINCT t.source_id FROM {} t JOIN wanted_ids w ON w.id = t.source_id
             WHERE t.run_id = ?",
            quote(table)
        ))?;
        let found = statement.query_map([run_id], |row| row.get(0))?;
        Ok(found.collect::<Result<_, _>>()?)
    }

    /// The links (whole, or without their records) of these source records of `pipeline`,
    /// those that have one, by source id: one join, not a scan per id.
    pub(super) fn links_of_ids(
        &self,
        pipeline: &str,
        source_ids: impl IntoIterator<Item = impl AsRef<str>>,
        whole: bool,
    ) -> Result<HashMap<String, Link>, StagingError> {
        if self.fill_wanted_ids(source_ids)? == 0 {
            return Ok(HashMap::new());
        }
        let records = match whole {
            true => "m.synced_record::VARCHAR, m.target_record::VARCHAR",
            false => "NULL::VARCHAR, NULL::VARCHAR",
        };
        let mut statement = self.connection().prepare(&format!(
            "SELECT m.source_id, m.target_id, m.source_hash, {records}
             FROM id_map m JOIN wanted_ids w ON w.id = m.source_id
             WHERE m.pipeline = ? AND m.target_id IS NOT NULL"
        ))?;
        let rows = statement.query_map([pipeline], |row| {
            Ok((
                row.get::<_, String>(0)?,
                Link {
                    target_id: row.get(1)?,
                    source_hash: row.get(2)?,
                    synced_record: object(row.get(3)?),
                    target_record: object(row.get(4)?),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Fills the scratch table `wanted_ids` with `ids` (made afresh: DuckDB keeps deleted rows
    /// until a checkpoint, so a scratch table emptied by DELETE grows with every use). Returns
    /// how many ids it holds.
    pub(super) fn fill_wanted_ids(
        &self,
        ids: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<usize, StagingError> {
        let connection = self.connection();
        connection.execute_batch("CREATE OR REPLACE TEMP TABLE wanted_ids (id VARCHAR)")?;
        let mut count = 0;
        let mut appender = connection.appender("wanted_ids")?;
        for id in ids {
            appender.append_row(params![id.as_ref()])?;
            count += 1;
        }
        appender.flush()?;
        Ok(count)
    }
}
