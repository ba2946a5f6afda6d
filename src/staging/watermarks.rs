//! Incremental extracts in the staging file: each pipeline's watermark (where its last
//! completed read of changes ended, and the shape of that read), and, per run and pipeline,
//! whether the run read everything or only the changes since a watermark (`extracts`), which
//! is what lets `etl diff` rebuild the state of a source as of any run.

use duckdb::{params, OptionalExt};

use super::error::StagingError;
use super::store::Store;

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

impl Store {
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

    /// The source ids that run `run_id` left unsettled in `results_table` (failed or skipped),
    /// which the next read of changes reads again although they did not change.
    pub fn unsettled_sources(
        &self,
        results_table: &str,
        run_id: &str,
    ) -> Result<Vec<String>, StagingError> {
        if self.table_columns(results_table)?.is_empty() {
            return Ok(Vec::new());
        }
        let mut statement = self.connection().prepare(&format!(
            "SELECT DISTINCT source_id FROM \"{}\"
             WHERE run_id = ? AND status IN ('failed', 'skipped') ORDER BY source_id",
            results_table.replace('"', "\"\"")
        ))?;
        let ids = statement
            .query_map([run_id], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }
}
