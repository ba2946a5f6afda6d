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
//! that same memory, and a checkpoint that runs out of memory invalidates the open database. So
//! runs do not merge (`max_vacuum_tasks = 0`, set on opening); at the end of a run, once a
//! third of the id map's rows are deleted ones, one checkpoint merges them, with room for the
//! index. (DuckDB merges two or three neighbouring row groups only into fewer, so with less
//! than a third deleted there may be nothing to merge: the id map holds at most half as many
//! rows again as links. A merge can also find nothing to do, as when the deleted rows are all
//! in the first of two row groups; the next is then due once another third is deleted.)

use super::error::StagingError;
use super::store::Store;

/// The id map is compacted once deleted rows are at least 1 in this many of its rows...
const DELETED_SHARE_TO_COMPACT: u64 = 3;

/// ...and it holds more than one of DuckDB's row groups (rows in one).
const ROW_GROUP_ROWS: u64 = 122_880;

/// Memory a merge needs per live link for the key's index: 417,000 links merged at 24 MB and
/// stopped at 16 MB, about 58 bytes each; twice that leaves a margin.
const INDEX_BYTES_PER_LINK: u64 = 128;

/// The `etl_meta` key of the deleted rows the last merge left in the id map.
const LEFT_BY_LAST_MERGE: &str = "id_map_deleted_after_merge";

/// The number of merges DuckDB allows in a checkpoint when not told otherwise.
const DUCKDB_VACUUM_TASKS: u32 = 100;

/// A commit checkpoints once the key indexes hold 1 in this many bytes of the memory limit.
const INDEX_SHARE_TO_CHECKPOINT: u64 = 4;

impl Store {
    /// Checkpoints when the key indexes hold more than their share of the memory limit (after
    /// a commit, outside any transaction).
    pub(super) fn checkpoint_if_index_grew(&self) -> Result<(), StagingError> {
        let Some(limit) = self.memory_limit else {
            return Ok(());
        };
        let held: i64 = self.connection().query_row(
            "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()
             WHERE tag = 'ART_INDEX'",
            [],
            |row| row.get(0),
        )?;
        if (held as u64) * INDEX_SHARE_TO_CHECKPOINT > limit {
            tracing::debug!(held_bytes = held, "checkpoint for the key index's memory");
            self.connection().execute_batch("CHECKPOINT")?;
        }
        Ok(())
    }

    /// Merges the id map's row groups when enough of its rows are deleted ones. Runs after a
    /// checkpoint, so that nothing the run read of the index is still held.
    pub(super) fn compact_if_due(&self) -> Result<(), StagingError> {
        let (live, stored) = self.id_map_rows()?;
        let deleted = stored.saturating_sub(live);
        let left: Option<String> = self.connection().query_row(
            "SELECT max(value) FROM etl_meta WHERE key = ?",
            [LEFT_BY_LAST_MERGE],
            |row| row.get(0),
        )?;
        let left = left
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0);
        let since = deleted.saturating_sub(left);
        if stored <= ROW_GROUP_ROWS || since * DELETED_SHARE_TO_COMPACT < stored {
            return Ok(());
        }
        let room = self
            .memory_limit
            .map(|limit| limit + live * INDEX_BYTES_PER_LINK);
        tracing::debug!(
            live,
            deleted,
            room_bytes = room,
            "merging the id map's deleted rows"
        );
        if let Some(room) = room {
            self.set_memory_limit(room)?;
        }
        let connection = self.connection();
        let merged = connection
            .execute_batch(&format!("SET max_vacuum_tasks = {DUCKDB_VACUUM_TASKS}"))
            .map_err(StagingError::from)
            // DuckDB merges a table's row groups only in a checkpoint after rows of it were
            // deleted: one link is deleted and written again.
            .and_then(|_| {
                self.in_transaction(|store| {
                    store.connection().execute_batch(
                        "CREATE OR REPLACE TEMP TABLE compact_link AS
                             SELECT * FROM id_map WHERE rowid = (SELECT max(rowid) FROM id_map);
                         DELETE FROM id_map WHERE rowid = (SELECT max(rowid) FROM id_map);
                         INSERT INTO id_map SELECT * FROM compact_link;
                         DROP TABLE compact_link;",
                    )?;
                    Ok(())
                })
            })
            .and_then(|_| Ok(connection.execute_batch("CHECKPOINT")?));
        let held_off = connection.execute_batch("SET max_vacuum_tasks = 0");
        if let Some(limit) = self.memory_limit {
            if let Err(error) = self.set_memory_limit(limit) {
                tracing::debug!(%error, "the staging memory limit stays raised");
            }
        }
        merged?;
        held_off?;
        let (live, stored) = self.id_map_rows()?;
        self.connection().execute(
            "INSERT OR REPLACE INTO etl_meta VALUES (?, ?)",
            [LEFT_BY_LAST_MERGE, &stored.saturating_sub(live).to_string()],
        )?;
        // The run still ends with an empty write-ahead log (see `Store::finish_run`).
        self.connection().execute_batch("CHECKPOINT")?;
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
