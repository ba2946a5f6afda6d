//! The id map: for each pipeline, which source record is linked to which target record, the
//! hash and values last synced (so an unchanged record costs no API call and a changed one
//! sends only what changed), and the record as the target saved it (for lookups of its fields).

use std::collections::HashMap;

use duckdb::params;
use duckdb::types::TimeUnit;
use serde_json::{Map, Value};

use super::error::StagingError;
use super::store::Store;

/// One linked pair.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Link {
    pub target_id: String,
    /// Hash of the transformed record last written.
    pub source_hash: Option<String>,
    /// The transformed record last written.
    pub synced_record: Option<Map<String, Value>>,
    /// The target's record as it answered the write.
    pub target_record: Option<Map<String, Value>>,
}

pub(super) fn object(text: Option<String>) -> Option<Map<String, Value>> {
    match serde_json::from_str(&text?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// How [`Store::add_new_links`] writes: a plain insert, or a merge with the links there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewLinks {
    Insert,
    Merge,
}

/// The id map's columns a link is written to, in the order both ways of writing give them.
const WRITTEN_COLUMNS: [&str; 8] = [
    "pipeline",
    "source_id",
    "target_id",
    "source_hash",
    "synced_at",
    "run_id",
    "synced_record",
    "target_record",
];

/// The id map's columns a [`Link`] is read from, in [`link_at`]'s order.
const LINK_COLUMNS_WHOLE: &str =
    "target_id, source_hash, synced_record::VARCHAR, target_record::VARCHAR";

/// A link from a row holding `LINK_COLUMNS_WHOLE` (records may be NULL) from column `first`.
fn link_at(row: &duckdb::Row, first: usize) -> duckdb::Result<Link> {
    Ok(Link {
        target_id: row.get(first)?,
        source_hash: row.get(first + 1)?,
        synced_record: object(row.get(first + 2)?),
        target_record: object(row.get(first + 3)?),
    })
}

impl Store {
    /// Every link of a pipeline, whole, by source id (for inspection and tests: a run reads
    /// links by joins, see `run_links.rs`).
    pub fn links(&self, pipeline: &str) -> Result<HashMap<String, Link>, StagingError> {
        let mut statement = self.connection().prepare(&format!(
            "SELECT source_id, {LINK_COLUMNS_WHOLE}
             FROM id_map WHERE pipeline = ? AND target_id IS NOT NULL"
        ))?;
        let rows = statement.query_map([pipeline], |row| {
            Ok((row.get::<_, String>(0)?, link_at(row, 1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The whole links of these source records (those that have one), by source id.
    pub fn links_of(
        &self,
        pipeline: &str,
        source_ids: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<HashMap<String, Link>, StagingError> {
        self.links_of_ids(pipeline, source_ids, true)
    }

    /// The links of these source records without the records they carry, by source id.
    pub fn link_heads_of(
        &self,
        pipeline: &str,
        source_ids: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<HashMap<String, Link>, StagingError> {
        self.links_of_ids(pipeline, source_ids, false)
    }

    /// The whole links of these target records: target id → (source id, link).
    pub fn links_by_target(
        &self,
        pipeline: &str,
        target_ids: &[&str],
    ) -> Result<HashMap<String, (String, Link)>, StagingError> {
        if target_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let connection = self.connection();
        // Made afresh each time: DuckDB keeps deleted rows until a checkpoint, so a scratch
        // table emptied by DELETE grows with every use and each use scans all of it.
        connection
            .execute_batch("CREATE OR REPLACE TEMP TABLE wanted_targets (target_id VARCHAR)")?;
        {
            let mut appender = connection.appender("wanted_targets")?;
            for id in target_ids {
                appender.append_row(params![id])?;
            }
            appender.flush()?;
        }
        let mut statement = connection.prepare(&format!(
            "SELECT source_id, {LINK_COLUMNS_WHOLE}
             FROM id_map JOIN wanted_targets USING (target_id)
             WHERE pipeline = ?"
        ))?;
        let rows = statement.query_map([pipeline], |row| {
            Ok((row.get::<_, String>(0)?, link_at(row, 1)?))
        })?;
        let mut links = HashMap::new();
        for row in rows {
            let (source_id, link) = row?;
            links.insert(link.target_id.clone(), (source_id, link));
        }
        Ok(links)
    }

    /// Records links (new or replacing the old ones) for `pipeline`: appended to a scratch
    /// table, then merged into the id map by one statement (a row-at-a-time INSERT is what made
    /// large loads slow).
    pub fn save_links(
        &self,
        run_id: &str,
        pipeline: &str,
        links: &[(String, Link)],
    ) -> Result<(), StagingError> {
        self.write_links(run_id, pipeline, links, NewLinks::Merge)
    }

    /// Records the links of records just created, which cannot have one yet, the way `how`
    /// says (see [`Store::in_transaction_with_new_links`]).
    pub fn add_new_links(
        &self,
        run_id: &str,
        pipeline: &str,
        links: &[(String, Link)],
        how: NewLinks,
    ) -> Result<(), StagingError> {
        self.write_links(run_id, pipeline, links, how)
    }

    /// Runs `work` in one transaction with the links of created records inserted
    /// ([`NewLinks::Insert`]). DuckDB plans the merge of [`Store::save_links`] as a join over
    /// the whole id map, a cost that grows with every link kept; a plain insert only checks the
    /// key index. Should a link exist after all, the key is refused and the transaction is
    /// aborted: it is rolled back and `work` runs again with the links merged
    /// ([`NewLinks::Merge`]). A lasting fault fails the second time too and is returned.
    pub fn in_transaction_with_new_links<T>(
        &self,
        work: impl Fn(&Store, NewLinks) -> Result<T, StagingError>,
    ) -> Result<T, StagingError> {
        match self.in_transaction(|store| work(store, NewLinks::Insert)) {
            Ok(value) => Ok(value),
            Err(error) => {
                tracing::debug!(%error, "new links saved again by merging");
                self.in_transaction(|store| work(store, NewLinks::Merge))
            }
        }
    }

    fn write_links(
        &self,
        run_id: &str,
        pipeline: &str,
        links: &[(String, Link)],
        how: NewLinks,
    ) -> Result<(), StagingError> {
        if links.is_empty() {
            return Ok(());
        }
        let json = |record: &Option<Map<String, Value>>| {
            record.as_ref().and_then(|r| serde_json::to_string(r).ok())
        };
        let synced_at =
            duckdb::types::Value::Timestamp(TimeUnit::Millisecond, crate::civil::now_millis());
        let connection = self.connection();
        if how == NewLinks::Insert {
            // New links go straight into the id map: its key index refuses a link that exists
            // (and the caller merges instead), and a batch costs no scratch table or statement.
            let mut appender = connection.appender_with_columns("id_map", &WRITTEN_COLUMNS)?;
            for (source_id, link) in links {
                appender.append_row(params![
                    pipeline,
                    source_id,
                    link.target_id,
                    link.source_hash,
                    synced_at,
                    run_id,
                    json(&link.synced_record),
                    json(&link.target_record),
                ])?;
            }
            appender.flush()?;
            return Ok(());
        }
        // Made afresh each time, like `wanted_targets` above.
        connection.execute_batch(
            "CREATE OR REPLACE TEMP TABLE link_batch (
                source_id VARCHAR, target_id VARCHAR, source_hash VARCHAR,
                synced_record VARCHAR, target_record VARCHAR)",
        )?;
        // A source id given twice keeps its last link, as a replace one after the other would.
        let mut seen = std::collections::HashSet::new();
        let links: Vec<&(String, Link)> = {
            let mut last_first: Vec<&(String, Link)> = links
                .iter()
                .rev()
                .filter(|(source_id, _)| seen.insert(source_id.as_str()))
                .collect();
            last_first.reverse();
            last_first
        };
        {
            let mut appender = connection.appender("link_batch")?;
            for (source_id, link) in &links {
                appender.append_row(params![
                    source_id,
                    link.target_id,
                    link.source_hash,
                    json(&link.synced_record),
                    json(&link.target_record),
                ])?;
            }
            appender.flush()?;
        }
        // The old links are deleted and the new ones inserted, not replaced: DuckDB keeps the
        // values an update writes in place in memory it cannot evict until the next
        // checkpoint, and with `INSERT OR REPLACE` about 8,000 changed links filled the 32 MB
        // pool and stopped the run (BENCHMARKS.md, fourteenth session). A deleted row costs a
        // mark; inserted rows are evicted like any. The ids are inline so that the delete
        // finds them by the key's index (8 against 16 ms a batch with 1M links, joined).
        let ids: Vec<String> = links
            .iter()
            .map(|(source_id, _)| format!("'{}'", source_id.replace('\'', "''")))
            .collect();
        connection.execute(
            &format!(
                "DELETE FROM id_map WHERE pipeline = ? AND source_id IN ({})",
                ids.join(", ")
            ),
            params![pipeline],
        )?;
        connection.execute(
            &format!(
                "INSERT INTO id_map ({})
                 SELECT ?, source_id, target_id, source_hash, ?, ?, synced_record::JSON, target_record::JSON
                 FROM link_batch",
                WRITTEN_COLUMNS.join(", ")
            ),
            params![pipeline, synced_at, run_id],
        )?;
        Ok(())
    }

    /// Forgets the links of these source records (their target records were deleted).
    /// One delete joined with the ids: a delete per id would scan the id map each time.
    pub fn remove_links(&self, pipeline: &str, source_ids: &[String]) -> Result<(), StagingError> {
        if self.fill_wanted_ids(source_ids.iter())? == 0 {
            return Ok(());
        }
        self.connection().execute(
            "DELETE FROM id_map WHERE pipeline = ? AND source_id IN (SELECT id FROM wanted_ids)",
            params![pipeline],
        )?;
        Ok(())
    }

    /// Runs `work` in one transaction: all of it is kept, or none.
    pub fn in_transaction<T>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StagingError>,
    ) -> Result<T, StagingError> {
        self.connection().execute_batch("BEGIN TRANSACTION")?;
        match work(self) {
            Ok(value) => {
                self.connection().execute_batch("COMMIT")?;
                self.checkpoint_if_index_grew()?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.connection().execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }
}
