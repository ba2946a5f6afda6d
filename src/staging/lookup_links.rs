//! The links lookups read (another pipeline's source id → target id, or a field of the linked
//! target records): one at a time for the first few asks, then all of a pipeline's, streamed
//! to the caller a chunk of rows at a time. A plain query would have DuckDB materialize the
//! whole result before the first row is read, and the caller collect it again: at 1M records
//! that is a second and third copy of every link of a pipeline, while the caller
//! (`engine/lookups.rs`) keeps one packed copy.

use duckdb::arrow::array::{Array, AsArray, LargeStringArray, StringArray, StringViewArray};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::params;

use super::error::StagingError;
use super::store::Store;

impl Store {
    /// Hands every link of `pipeline` to a target record to `each` as (source id, target id),
    /// in no particular order.
    pub fn each_link_target(
        &self,
        pipeline: &str,
        each: impl FnMut(&str, &str),
    ) -> Result<(), StagingError> {
        let mut statement = self.connection().prepare(
            "SELECT source_id, target_id FROM id_map WHERE pipeline = ? AND target_id IS NOT NULL",
        )?;
        stream_pairs(statement.stream_arrow(params![pipeline])?, each)
    }

    /// Hands `field` of every target record `pipeline` links to `each` as (source id, the
    /// field's value as JSON text), leaving out records without the field or where it is null.
    pub fn each_linked_field(
        &self,
        pipeline: &str,
        field: &str,
        mut each: impl FnMut(&str, &str),
    ) -> Result<(), StagingError> {
        let path = field_path(field);
        // Nulls are left out here, not by a filter in SQL: with the filter in the statement,
        // DuckDB 2.0 asked for 8 MB more and ran out under the default limit over 25,000
        // records of 800 bytes (`tests/staging_memory.rs`); without it, 250,000 stream.
        let mut statement = self.connection().prepare(
            "SELECT source_id, json_extract(target_record, ?)::VARCHAR
             FROM id_map
             WHERE pipeline = ? AND target_id IS NOT NULL AND target_record IS NOT NULL",
        )?;
        stream_pairs(
            statement.stream_arrow(params![path, pipeline])?,
            |source_id, value| {
                if value != "null" {
                    each(source_id, value)
                }
            },
        )
    }

    /// The target id `pipeline` links `source_id` to, if it links it to one.
    pub fn link_target_of(
        &self,
        pipeline: &str,
        source_id: &str,
    ) -> Result<Option<String>, StagingError> {
        self.one_text(
            "SELECT target_id FROM id_map
             WHERE pipeline = ? AND source_id = ? AND target_id IS NOT NULL",
            params![pipeline, source_id],
        )
    }

    /// `field` of the target record `pipeline` links `source_id` to, as JSON text; `None` when
    /// it is not linked, or the field is missing or null.
    pub fn linked_field_of(
        &self,
        pipeline: &str,
        field: &str,
        source_id: &str,
    ) -> Result<Option<String>, StagingError> {
        let value = self.one_text(
            "SELECT json_extract(target_record, ?)::VARCHAR FROM id_map
             WHERE pipeline = ? AND source_id = ? AND target_id IS NOT NULL",
            params![field_path(field), pipeline, source_id],
        )?;
        Ok(value.filter(|value| value != "null"))
    }

    /// The smallest source id `pipeline` links to `target_id` (one, unless several sources were
    /// linked to one target).
    pub fn source_linked_to(
        &self,
        pipeline: &str,
        target_id: &str,
    ) -> Result<Option<String>, StagingError> {
        self.one_text(
            "SELECT min(source_id) FROM id_map WHERE pipeline = ? AND target_id = ?",
            params![pipeline, target_id],
        )
    }

    /// The text in the first column of the first row, if there is a row and it is not null.
    fn one_text(
        &self,
        sql: &str,
        params: impl duckdb::Params,
    ) -> Result<Option<String>, StagingError> {
        // The same few texts each time: kept prepared.
        let mut statement = self.connection().prepare_cached(sql)?;
        let mut rows = statement.query(params)?;
        match rows.next()? {
            Some(row) => Ok(row.get::<_, Option<String>>(0)?),
            None => Ok(None),
        }
    }
}

/// The JSON path of a top-level field, quoted.
fn field_path(field: &str) -> String {
    format!("$.\"{}\"", field.replace('"', "\\\""))
}

/// Hands each row of a two-text-column result to `each`, one record batch at a time; rows
/// with a null in either column are left out.
fn stream_pairs(
    batches: impl Iterator<Item = duckdb::Result<RecordBatch>>,
    mut each: impl FnMut(&str, &str),
) -> Result<(), StagingError> {
    for batch in batches {
        let batch = batch?;
        let (keys, values) = (Texts::of(&batch, 0)?, Texts::of(&batch, 1)?);
        for row in 0..batch.num_rows() {
            if let (Some(key), Some(value)) = (keys.get(row), values.get(row)) {
                each(key, value);
            }
        }
    }
    Ok(())
}

/// A text column of a record batch, in whichever of Arrow's string layouts DuckDB handed over.
enum Texts<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Texts<'a> {
    fn of(batch: &'a RecordBatch, index: usize) -> Result<Texts<'a>, StagingError> {
        let column = batch.column(index);
        if let Some(array) = column.as_string_opt::<i32>() {
            Ok(Texts::Utf8(array))
        } else if let Some(array) = column.as_string_opt::<i64>() {
            Ok(Texts::Large(array))
        } else if let Some(array) = column.as_string_view_opt() {
            Ok(Texts::View(array))
        } else {
            Err(StagingError::Sql(duckdb::Error::InvalidColumnType(
                index,
                batch.schema().field(index).name().clone(),
                duckdb::types::Type::Text,
            )))
        }
    }

    fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Texts::Utf8(array) => array.is_valid(row).then(|| array.value(row)),
            Texts::Large(array) => array.is_valid(row).then(|| array.value(row)),
            Texts::View(array) => array.is_valid(row).then(|| array.value(row)),
        }
    }
}
