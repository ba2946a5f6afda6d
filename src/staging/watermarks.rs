//! Incremental extracts in the staging file: each pipeline's watermark (where its last
//! completed read of changes ended, and the shape of that read), and, per run and pipeline,
//! whether the run read everything or only the changes since a watermark (`extracts`), which
//! is what lets `etl diff` rebuild the state of a source as of any run.
//!
//! The sync back's listing of the target keeps its own mark in the same table, under
//! `<pipeline>:back_listing` (pipeline names have no `:`): a time the target's clock had
//! reached when the last completed listing started, and when that was by our clock.

use duckdb::{params, OptionalExt};

use super::error::StagingError;
use super::store::Store;
use super::tables::quote;

/// A pipeline's stored watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWatermark {
    pub cursor_field: String,
    /// The cursor value of the last record read, as the source wrote it.
    pub value: String,
    /// That record's id (records sharing one cursor value resume after it).
    pub last_id: String,
    /// A fingerprint of what the read selected (object, fields, filter); a read of another
    /// shape starts again from the beginning.
    pub read_shape: String,
    /// The run that completed the read.
    pub run_id: String,
}

/// How a run read a pipeline's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractKind {
    /// Every record the filter selects.
    Full,
    /// Only the records changed since a watermark (and those left to retry).
    Incremental,
}

impl ExtractKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExtractKind::Full => "full",
            ExtractKind::Incremental => "incremental",
        }
    }
}

/// Where the sync back's last completed listing of a pipeline's target stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingMark {
    /// A time the target's own clock had surely reached when that listing started, in
    /// milliseconds on the scale of the target's update times.
    pub target_time: i64,
    /// When that listing started by our clock, in milliseconds since the epoch (kept as the
    /// row's `updated_at`), to count how much time has passed since.
    pub started_at: i64,
    /// The fingerprint of the pipeline when it listed (a changed pipeline lists everything).
    pub read_shape: String,
    /// The run that listed and synced back.
    pub run_id: String,
}

fn listing_key(pipeline: &str) -> String {
    format!("{pipeline}:back_listing")
}

impl Store {
    /// `pipeline`'s sync-back listing mark, if a run ever completed one.
    pub fn listing_mark(&self, pipeline: &str) -> Result<Option<ListingMark>, StagingError> {
        let mark = self
            .connection()
            .query_row(
                "SELECT cursor_value, epoch_ms(updated_at), read_shape, run_id FROM watermarks
                 WHERE pipeline = ? AND cursor_value IS NOT NULL",
                [listing_key(pipeline)],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        Ok(mark.and_then(|(time, started_at, shape, run_id)| {
            Some(ListingMark {
                target_time: time.parse().ok()?,
                started_at,
                read_shape: shape.unwrap_or_default(),
                run_id,
            })
        }))
    }

    /// Replaces `pipeline`'s sync-back listing mark.
    pub fn save_listing_mark(
        &self,
        pipeline: &str,
        mark: &ListingMark,
    ) -> Result<(), StagingError> {
        let key = listing_key(pipeline);
        self.in_transaction(|store| {
            store
                .connection()
                .execute("DELETE FROM watermarks WHERE pipeline = ?", [&key])?;
            store.connection().execute(
                "INSERT INTO watermarks
                     (pipeline, cursor_field, cursor_value, read_shape, updated_at, run_id)
                 VALUES (?, 'target_time', ?, ?, epoch_ms(?::BIGINT), ?)",
                params![
                    key,
                    mark.target_time.to_string(),
                    mark.read_shape,
                    mark.started_at,
                    mark.run_id
                ],
            )?;
            Ok(())
        })
    }

    /// The sources run `run_id` failed to write in `results_table` (for the sync back, the
    /// target records whose write back failed), which a listing of changes reads again.
    pub fn failed_sources(
        &self,
        results_table: &str,
        run_id: &str,
    ) -> Result<Vec<String>, StagingError> {
        self.ids_where(results_table, "source_id", "status = 'failed'", run_id)
    }

    /// The target records whose conflicts run `run_id` held (`skip_and_report`) in
    /// `conflicts_table`: the next run must see them again to keep holding them.
    pub fn held_conflicts(
        &self,
        conflicts_table: &str,
        run_id: &str,
    ) -> Result<Vec<String>, StagingError> {
        self.ids_where(
            conflicts_table,
            "target_id",
            "resolution = 'skipped'",
            run_id,
        )
    }

    fn ids_where(
        &self,
        table: &str,
        column: &str,
        condition: &str,
        run_id: &str,
    ) -> Result<Vec<String>, StagingError> {
        if self.table_columns(table)?.is_empty() {
            return Ok(Vec::new());
        }
        let mut statement = self.connection().prepare(&format!(
            "SELECT DISTINCT {column} FROM {}
             WHERE run_id = ? AND {column} IS NOT NULL AND {condition} ORDER BY 1",
            quote(table)
        ))?;
        let ids = statement
            .query_map([run_id], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// `pipeline`'s watermark, if a read of changes ever completed.
    pub fn watermark(&self, pipeline: &str) -> Result<Option<StoredWatermark>, StagingError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT cursor_field, cursor_value, last_id, read_shape, run_id FROM watermarks
                 WHERE pipeline = ? AND cursor_value IS NOT NULL AND last_id IS NOT NULL",
                [pipeline],
                |row| {
                    Ok(StoredWatermark {
                        cursor_field: row.get(0)?,
                        value: row.get(1)?,
                        last_id: row.get(2)?,
                        read_shape: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        run_id: row.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Replaces `pipeline`'s watermark.
    pub fn save_watermark(
        &self,
        pipeline: &str,
        watermark: &StoredWatermark,
    ) -> Result<(), StagingError> {
        self.in_transaction(|store| {
            store
                .connection()
                .execute("DELETE FROM watermarks WHERE pipeline = ?", [pipeline])?;
            store.connection().execute(
                "INSERT INTO watermarks
                     (pipeline, cursor_field, cursor_value, last_id, read_shape, updated_at, run_id)
                 VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
                params![
                    pipeline,
                    watermark.cursor_field,
                    watermark.value,
                    watermark.last_id,
                    watermark.read_shape,
                    watermark.run_id
                ],
            )?;
            Ok(())
        })
    }

    /// Forgets `pipeline`'s watermark, so its next read is a full one.
    pub fn clear_watermark(&self, pipeline: &str) -> Result<(), StagingError> {
        self.connection()
            .execute("DELETE FROM watermarks WHERE pipeline = ?", [pipeline])?;
        Ok(())
    }

    /// Records how run `run_id` read `pipeline`'s source; `since` is the watermark an
    /// incremental read started after, as `value id`.
    pub fn record_extract(
        &self,
        run_id: &str,
        pipeline: &str,
        kind: ExtractKind,
        since: Option<&str>,
    ) -> Result<(), StagingError> {
        self.connection().execute(
            "INSERT INTO extracts (run_id, pipeline, kind, since, staged_at)
             VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
            params![run_id, pipeline, kind.as_str(), since],
        )?;
        Ok(())
    }

    /// How run `run_id` read `pipeline`'s source; runs from before incremental reads existed,
    /// and runs that did not record it, read everything.
    pub fn extract_kind(&self, run_id: &str, pipeline: &str) -> Result<ExtractKind, StagingError> {
        let kind: Option<String> = self
            .connection()
            .query_row(
                "SELECT kind FROM extracts WHERE run_id = ? AND pipeline = ? LIMIT 1",
                [run_id, pipeline],
                |row| row.get(0),
            )
            .optional()?;
        Ok(match kind.as_deref() {
            Some("incremental") => ExtractKind::Incremental,
            _ => ExtractKind::Full,
        })
    }

    /// The source ids that run `run_id` left unsettled: failed or skipped in `results_table`,
    /// or with a file whose copy failed in `attachments_table` (either table may not exist
    /// yet). The next read of changes reads them again although they did not change.
    pub fn unsettled_sources(
        &self,
        results_table: &str,
        attachments_table: &str,
        run_id: &str,
    ) -> Result<Vec<String>, StagingError> {
        let mut parts = Vec::new();
        if !self.table_columns(results_table)?.is_empty() {
            parts.push(format!(
                "SELECT source_id FROM {} WHERE run_id = $1 AND status IN ('failed', 'skipped')",
                quote(results_table)
            ));
        }
        if !self.table_columns(attachments_table)?.is_empty() {
            parts.push(format!(
                "SELECT source_id FROM {} WHERE run_id = $1 AND status = 'failed'",
                quote(attachments_table)
            ));
        }
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let mut statement = self.connection().prepare(&format!(
            "SELECT DISTINCT source_id FROM ({}) ORDER BY source_id",
            parts.join(" UNION ALL ")
        ))?;
        let ids = statement
            .query_map([run_id], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }
}
