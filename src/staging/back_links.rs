//! What the sync back asks of the id map and of its listing (`<p>_back_extracted`), answered by
//! joins in staging instead of sets held in memory. DuckDB answers a lookup on the id map's
//! two-column key with a scan of the whole table, so neither one query per record nor every
//! link of a pipeline in memory scales; instead:
//! - the listing's counts (distinct ids, ids listed twice) are read from its staged rows;
//! - the target records linked when the listing started are copied to a scratch table, which
//!   the removal check joins with the id map and the listing once the import has run;
//! - relinking joins the source ids the listed records keep (staged in the column
//!   [`KEPT_SOURCE_ID`]) with the id map into the scratch table `relink_candidates`, read a page
//!   at a time with the records' texts;
//! - the plan joins the listing with the id map once (a window of row ids at a time) into the
//!   scratch table `back_links`, and reads each chunk's links from a narrow range of it.
//!
//! None of these sorts or aggregates the records' texts: at a million records that outgrows the
//! staging memory limit.

use std::collections::HashMap;

use duckdb::params;

use super::error::StagingError;
use super::id_map::{object, Link};
use super::run_links::unmarked;
use super::store::Store;
use super::tables::quote;

/// The column of `<p>_back_extracted` holding the source id a listed record keeps (the
/// pipeline's mapping of the source's id field), when it keeps one.
pub const KEPT_SOURCE_ID: &str = "kept_source_id";

/// What the staged rows of a listing hold: how many records, each once, and the ids listed
/// more than once with the text of their last row.
#[derive(Debug, Default)]
pub struct ListingCounts {
    pub distinct: usize,
    pub twice: Vec<(String, String)>,
}

/// A target record to link to the source id it keeps (see [`Store::relink_candidates`]).
pub struct RelinkCandidate {
    pub target_id: String,
    pub source_id: String,
    /// The record's JSON text, from its last staged row.
    pub record: String,
}

impl Store {
    /// How many records run `run_id` staged in `table`, each once, and those it staged more
    /// than once (a record that moved while the listing paged), with their last text.
    pub fn listing_counts(&self, table: &str, run_id: &str) -> Result<ListingCounts, StagingError> {
        let (distinct, twice): (i64, i64) = self.with_room(|store| {
            Ok(store.connection().query_row(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE n > 1)
                     FROM (SELECT count(*) AS n FROM {} WHERE run_id = ? GROUP BY source_id)",
                    quote(table)
                ),
                [run_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?)
        })?;
        let mut counts = ListingCounts {
            distinct: distinct.max(0) as usize,
            twice: Vec::new(),
        };
        if twice > 0 {
            // The texts are joined to the few ids listed twice, not aggregated for every id.
            let table = quote(table);
            counts.twice = self.with_room(|store| {
                let mut statement = store.connection().prepare(&format!(
                    "SELECT e.source_id, e.record::VARCHAR
                     FROM (SELECT max(rowid) AS last_row FROM {table}
                           WHERE run_id = $1 GROUP BY source_id HAVING count(*) > 1) d
                     JOIN {table} e ON e.rowid = d.last_row
                     WHERE e.run_id = $1
                     ORDER BY e.source_id"
                ))?;
                let rows = statement.query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })?;
        }
        Ok(counts)
    }

    /// The last staged text of `id` in run `run_id` of `table`, if it staged one.
    pub fn staged_text(
        &self,
        table: &str,
        run_id: &str,
        id: &str,
    ) -> Result<Option<String>, StagingError> {
        let mut statement = self.connection().prepare_cached(&format!(
            "SELECT record::VARCHAR FROM {} WHERE run_id = ? AND source_id = ?
             ORDER BY rowid DESC LIMIT 1",
            quote(table)
        ))?;
        let mut rows = statement.query_map(params![run_id, id], |row| row.get::<_, String>(0))?;
        Ok(rows.next().transpose()?)
    }

    /// Every target id `pipeline` links to, sorted (the parents a per-parent listing reads).
    pub fn linked_target_ids_sorted(&self, pipeline: &str) -> Result<Vec<String>, StagingError> {
        self.with_room(|store| {
            let mut statement = store.connection().prepare(
                "SELECT target_id FROM id_map WHERE pipeline = ? AND target_id IS NOT NULL
                 ORDER BY target_id",
            )?;
            let ids = statement.query_map([pipeline], |row| row.get(0))?;
            Ok(ids.collect::<Result<_, _>>()?)
        })
    }

    /// Copies the target ids `pipeline` links to now into the scratch table `scratch` (made
    /// afresh), so that records linked later in the run (the import's creates) can be told
    /// from those linked when the listing started.
    pub fn keep_linked_targets(&self, pipeline: &str, scratch: &str) -> Result<(), StagingError> {
        self.with_room(|store| {
            store.connection().execute(
                &format!(
                    "CREATE OR REPLACE TEMP TABLE {} AS
                     SELECT DISTINCT target_id FROM id_map WHERE pipeline = ? AND target_id IS NOT NULL",
                    quote(scratch)
                ),
                [pipeline],
            )?;
            Ok(())
        })
    }

    /// Drops a scratch table made by this file.
    pub fn drop_scratch(&self, scratch: &str) -> Result<(), StagingError> {
        self.connection()
            .execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(scratch)))?;
        Ok(())
    }

    /// The links of `pipeline` (target id, source id) whose target id is in `linked_before`
    /// (see [`Store::keep_linked_targets`]) and that run `run_id` did not stage in `table`,
    /// leaving out those whose hash is one of `marks`; by target id, each target once.
    pub fn linked_but_not_listed(
        &self,
        pipeline: &str,
        linked_before: &str,
        table: &str,
        run_id: &str,
        marks: &[&str],
    ) -> Result<Vec<(String, String)>, StagingError> {
        let unmarked = unmarked(marks);
        self.with_room(|store| {
            let mut statement = store.connection().prepare(&format!(
                "SELECT DISTINCT ON (m.target_id) m.target_id, m.source_id
                 FROM id_map m JOIN {} b ON b.target_id = m.target_id
                 WHERE m.pipeline = ? {unmarked}
                   AND m.target_id NOT IN (SELECT source_id FROM {} WHERE run_id = ?)
                 ORDER BY m.target_id, m.source_id",
                quote(linked_before),
                quote(table)
            ))?;
            let rows = statement.query_map(params![pipeline, run_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Finds the records run `run_id` listed in `table` that keep a source id `pipeline` does
    /// not link, on a target record it does not link either: the kept id of each record's
    /// first row, the first record in listing order for a source id kept by several. Puts them
    /// in the scratch table `relink_candidates` numbered in listing order (ids and row ids
    /// only: sorting the records' texts could outgrow the staging memory limit); returns how
    /// many (read them with [`Store::relink_candidates`]).
    pub fn stage_relink_candidates(
        &self,
        table: &str,
        run_id: &str,
        pipeline: &str,
    ) -> Result<usize, StagingError> {
        let table = quote(table);
        self.with_room(|store| {
            store.connection().execute(
                &format!(
                    "CREATE OR REPLACE TEMP TABLE relink_candidates AS
                     WITH listed AS (
                         SELECT source_id, min(rowid) AS first_row, max(rowid) AS last_row
                         FROM {table} WHERE run_id = $1 GROUP BY source_id),
                     kept AS (
                         SELECT l.source_id AS target_id, e.{KEPT_SOURCE_ID} AS source_id,
                                l.first_row, l.last_row
                         FROM listed l JOIN {table} e ON e.rowid = l.first_row
                         WHERE e.run_id = $1 AND e.{KEPT_SOURCE_ID} IS NOT NULL),
                     free AS (
                         SELECT * FROM kept k
                         WHERE k.source_id NOT IN (
                                 SELECT source_id FROM id_map
                                 WHERE pipeline = $2 AND target_id IS NOT NULL)
                           AND k.target_id NOT IN (
                                 SELECT target_id FROM id_map
                                 WHERE pipeline = $2 AND target_id IS NOT NULL)
                         QUALIFY row_number() OVER (PARTITION BY k.source_id ORDER BY k.first_row) = 1)
                     SELECT row_number() OVER (ORDER BY first_row) AS n,
                            target_id, source_id, last_row
                     FROM free
                     ORDER BY n"
                ),
                params![run_id, pipeline],
            )?;
            Ok(())
        })?;
        let count: i64 =
            self.connection()
                .query_row("SELECT count(*) FROM relink_candidates", [], |row| {
                    row.get(0)
                })?;
        Ok(count.max(0) as usize)
    }

    /// Candidates `from + 1 ..= to` (in listing order) of `relink_candidates`, made by
    /// [`Store::stage_relink_candidates`] from run `run_id`'s rows of `table`, each with the
    /// text of its record's last row.
    pub fn relink_candidates(
        &self,
        table: &str,
        run_id: &str,
        from: usize,
        to: usize,
    ) -> Result<Vec<RelinkCandidate>, StagingError> {
        let mut statement = self.connection().prepare(&format!(
            "SELECT c.target_id, c.source_id, e.record::VARCHAR
             FROM (SELECT * FROM relink_candidates WHERE n > $1 AND n <= $2) c
             JOIN {} e ON e.rowid = c.last_row
             WHERE e.run_id = $3
             ORDER BY c.n",
            quote(table)
        ))?;
        let rows = statement.query_map(params![from as i64, to as i64, run_id], |row| {
            Ok(RelinkCandidate {
                target_id: row.get(0)?,
                source_id: row.get(1)?,
                record: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Joins each row run `run_id` listed in `table` (rows `first..=last`) with `pipeline`'s
    /// link of its record (by target id), into the scratch table `back_links`, for
    /// [`Store::back_links_between`]. The links carry their last synced record, not the
    /// target's. Like `run_links`, the join is made a window of row ids at a time, so each
    /// window's rows come before the next one's and a chunk's read skips the others (an
    /// `ORDER BY` over the synced records could outgrow the staging memory limit).
    pub fn stage_back_links(
        &self,
        table: &str,
        run_id: &str,
        pipeline: &str,
        rows: (i64, i64),
    ) -> Result<(), StagingError> {
        self.fill_by_row_windows(
            "CREATE OR REPLACE TEMP TABLE back_links (
                row_id BIGINT, source_id VARCHAR, target_id VARCHAR, source_hash VARCHAR,
                synced_record VARCHAR)",
            &format!(
                "INSERT INTO back_links
                 SELECT e.rowid, m.source_id, m.target_id, m.source_hash, m.synced_record::VARCHAR
                 FROM {} e JOIN id_map m ON m.target_id = e.source_id
                 WHERE e.run_id = ? AND e.rowid >= ? AND e.rowid < ? AND m.pipeline = ?",
                quote(table)
            ),
            run_id,
            pipeline,
            rows,
        )
    }

    /// The links of the records listed in rows `from..to`, from `back_links`: target id →
    /// (source id, link without the target's record). A record listed twice has its link
    /// wherever one of its rows is.
    pub fn back_links_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<HashMap<String, (String, Link)>, StagingError> {
        // Prepared afresh: `back_links` is made anew for each sync back.
        let mut statement = self.connection().prepare(
            "SELECT source_id, target_id, source_hash, synced_record FROM back_links
             WHERE row_id >= ? AND row_id < ?",
        )?;
        let rows = statement.query_map(params![from, to], |row| {
            let source_id: String = row.get(0)?;
            let link = Link {
                target_id: row.get(1)?,
                source_hash: row.get(2)?,
                synced_record: object(row.get(3)?),
                target_record: None,
            };
            Ok((link.target_id.clone(), (source_id, link)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
