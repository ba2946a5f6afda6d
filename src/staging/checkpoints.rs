//! The checkpoints staging makes itself, besides DuckDB's own (each 256 MB of write-ahead log),
//! for the id map's key index. DuckDB holds the parts of that index a run reads or changes in
//! memory it cannot evict until a checkpoint: about 64 bytes a changed link, so after every
//! Halo user of a 1M-record project changed, the pool was full after about 175,000 of them
//! were written back, and the run stopped. A commit that leaves the index holding a quarter of
//! the limit checkpoints.
//!
//! And the space of replaced and removed links. A changed link is deleted and written again,
//! and DuckDB keeps a deleted row in its row group until a checkpoint merges the group with its
//! neighbours. For the id map that merge also moves every moved row's key in the index, in
//! that same memory, and a checkpoint that runs out of memory invalidates the open database
//! (merging 1M links with a third deleted needed more than 64 MB). So DuckDB never merges
//! (`max_vacuum_tasks = 0`, set on opening): at the end of a run, once a third of the id map's
//! rows are deleted ones, the live links are copied to a new table a window of rows at a time,
//! each window's keys let go by a checkpoint, and the new table takes the id map's place in
//! one transaction. That fits the default limit (1M links in 32 MB), where the merge needed
//! more than twice as much.

use super::error::StagingError;
use super::store::Store;

/// The id map is rewritten once deleted rows are at least 1 in this many of its rows...
const DELETED_SHARE_TO_COMPACT: u64 = 3;

/// ...and it holds more than one of DuckDB's row groups (rows in one).
const ROW_GROUP_ROWS: u64 = 122_880;

/// Rows of the id map copied by one statement of a rewrite: half a row group, whose keys'
/// index fits the default limit beside what a run leaves in the pool.
const REWRITE_WINDOW_ROWS: u64 = ROW_GROUP_ROWS / 2;

/// The table a rewrite fills before it takes the id map's place.
const REWRITTEN: &str = "id_map_rewritten";

/// A commit checkpoints once the key indexes hold 1 in this many bytes of the memory limit.
const INDEX_SHARE_TO_CHECKPOINT: u64 = 4;

impl Store {
    /// Checkpoints when the key indexes hold more than their share of the memory limit (after
    /// a commit, outside any transaction).
    pub(super) fn checkpoint_if_index_grew(&self) -> Result<(), StagingError> {
        let Some(limit) = self.memory_limit else {
            return Ok(());
        };
        // Asked after every load batch's commit: prepared once.
        let held: i64 = self
            .connection()
            .prepare_cached(
                "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()
                 WHERE tag = 'ART_INDEX'",
            )?
            .query_row([], |row| row.get(0))?;
        if (held as u64) * INDEX_SHARE_TO_CHECKPOINT > limit {
            tracing::debug!(held_bytes = held, "checkpoint for the key index's memory");
            self.connection().execute_batch("CHECKPOINT")?;
        }
        Ok(())
    }

    /// Rewrites the id map without its deleted rows when enough of its rows are deleted ones.
    /// Runs after a checkpoint, so that nothing the run read of the index is still held.
    pub(super) fn compact_if_due(&self) -> Result<(), StagingError> {
        let (live, stored) = self.id_map_rows()?;
        let deleted = stored.saturating_sub(live);
        if stored <= ROW_GROUP_ROWS || deleted * DELETED_SHARE_TO_COMPACT < stored {
            return Ok(());
        }
        tracing::debug!(
            live,
            deleted,
            "rewriting the id map without its deleted rows"
        );
        let rewritten = self.rewrite_id_map();
        // A rewrite that stopped part way leaves the id map as it was.
        if rewritten.is_err() {
            let _ = self
                .connection()
                .execute_batch(&format!("DROP TABLE IF EXISTS {REWRITTEN}"));
        }
        rewritten
    }

    fn rewrite_id_map(&self) -> Result<(), StagingError> {
        let connection = self.connection();
        // The id map's own definition (columns, types, key) under the new name; the name is
        // the statement's first word after `CREATE TABLE`.
        let definition: String = connection.query_row(
            "SELECT sql FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'id_map'",
            [],
            |row| row.get(0),
        )?;
        let create = definition.replacen("id_map", REWRITTEN, 1);
        // One left by a rewrite that was killed.
        connection.execute_batch(&format!("DROP TABLE IF EXISTS {REWRITTEN}; {create}"))?;
        let last_row: i64 =
            connection.query_row("SELECT coalesce(max(rowid), -1) FROM id_map", [], |row| {
                row.get(0)
            })?;
        let mut copy = connection.prepare(&format!(
            "INSERT INTO {REWRITTEN} SELECT * FROM id_map WHERE rowid >= ? AND rowid < ?"
        ))?;
        let mut from = 0;
        while from <= last_row {
            let to = from + REWRITE_WINDOW_ROWS as i64;
            copy.execute([from, to])?;
            // The keys entered stay in memory until a checkpoint writes them.
            connection.execute_batch("CHECKPOINT")?;
            from = to;
        }
        drop(copy);
        self.in_transaction(|store| {
            store.connection().execute_batch(&format!(
                "DROP TABLE id_map; ALTER TABLE {REWRITTEN} RENAME TO id_map"
            ))?;
            Ok(())
        })?;
        // Statements prepared before name the table that is gone.
        connection.flush_prepared_statement_cache();
        // The run still ends with an empty write-ahead log (see `Store::finish_run`).
        connection.execute_batch("CHECKPOINT")?;
        Ok(())
    }

    /// The id map's live rows and the rows its row groups hold, deleted ones included.
    fn id_map_rows(&self) -> Result<(u64, u64), StagingError> {
        Ok(self.connection().query_row(
            "SELECT (SELECT count(*) FROM id_map),
                    (SELECT coalesce(sum(count), 0) FROM pragma_storage_info('id_map')
                     WHERE column_id = 0 AND column_path = '[0]')",
            [],
            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
        )?)
    }
}
