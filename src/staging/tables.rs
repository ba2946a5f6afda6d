//! Per-pipeline tables: `<p>_extracted`, `<p>_transformed`, `<p>_changes`, `<p>_results`
//! and `<p>_conflicts` (fields changed on both sides since the last sync).
//! Fixed columns (run id, record ids, the whole record as JSON) plus typed columns from the
//! pipeline's field list; a changed field list adds columns rather than losing old runs.

use duckdb::appender_params_from_iter;
use duckdb::types::Value;

use super::error::StagingError;
use super::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    Double,
    Boolean,
    Date,
    Timestamp,
    Json,
}

impl ColumnType {
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "VARCHAR",
            ColumnType::Integer => "BIGINT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Date => "DATE",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::Json => "JSON",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
}

impl Column {
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Column {
        Column {
            name: name.into(),
            column_type,
        }
    }
}

/// The tables each pipeline stages into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Extracted,
    Transformed,
    Changes,
    Results,
    Conflicts,
}

impl Stage {
    pub fn suffix(self) -> &'static str {
        match self {
            Stage::Extracted => "extracted",
            Stage::Transformed => "transformed",
            Stage::Changes => "changes",
            Stage::Results => "results",
            Stage::Conflicts => "conflicts",
        }
    }

    /// Columns every table of this stage has, before the typed ones.
    pub fn fixed_columns(self) -> Vec<Column> {
        use ColumnType::*;
        let mut columns = vec![Column::new("run_id", Text), Column::new("source_id", Text)];
        match self {
            Stage::Extracted => columns.push(Column::new("record", Json)),
            Stage::Transformed => {
                columns.push(Column::new("target_id", Text));
                columns.push(Column::new("record", Json));
                // What the plan compares with the link's hash (see `run_links.rs`).
                columns.push(Column::new("record_hash", Text));
            }
            Stage::Changes => {
                columns.push(Column::new("target_id", Text));
                columns.push(Column::new("action", Text));
                columns.push(Column::new("reason", Text));
                columns.push(Column::new("changed_fields", Json));
                columns.push(Column::new("before", Json));
                columns.push(Column::new("after", Json));
            }
            Stage::Results => {
                columns.push(Column::new("target_id", Text));
                columns.push(Column::new("action", Text));
                columns.push(Column::new("status", Text));
                columns.push(Column::new("error_code", Text));
                columns.push(Column::new("error_message", Text));
            }
            Stage::Conflicts => {
                columns.push(Column::new("target_id", Text));
                columns.push(Column::new("field", Text));
                columns.push(Column::new("last_synced", Json));
                columns.push(Column::new("source_value", Json));
                columns.push(Column::new("target_value", Json));
                columns.push(Column::new("resolution", Text));
            }
        }
        columns.push(Column::new("staged_at", Timestamp));
        columns
    }
}

/// A pipeline's staging layout: its name and the typed columns of the extracted and
/// transformed tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineTables {
    pub pipeline: String,
    pub extracted: Vec<Column>,
    pub transformed: Vec<Column>,
}

impl PipelineTables {
    pub fn table(&self, stage: Stage) -> String {
        format!("{}_{}", self.pipeline, stage.suffix())
    }

    fn typed_columns(&self, stage: Stage) -> &[Column] {
        match stage {
            Stage::Extracted => &self.extracted,
            Stage::Transformed => &self.transformed,
            Stage::Changes | Stage::Results | Stage::Conflicts => &[],
        }
    }

    /// Every column of the stage's table, fixed first. A typed column whose name clashes with a
    /// fixed one is dropped: the value is still in `record`.
    pub fn columns(&self, stage: Stage) -> Vec<Column> {
        let mut columns = stage.fixed_columns();
        for column in self.typed_columns(stage) {
            if !columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&column.name))
            {
                columns.push(column.clone());
            }
        }
        columns
    }
}

/// Turns a field path into a column name: `Owner.Email` → `Owner_Email`.
pub fn column_name(path: &str) -> String {
    let name: String = path
        .trim_start_matches("$.")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    name.trim_matches('_').to_string()
}

pub(super) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl Store {
    /// Creates the pipeline's tables, or adds columns a changed field list needs.
    pub fn ensure_pipeline_tables(&self, tables: &PipelineTables) -> Result<(), StagingError> {
        for stage in [
            Stage::Extracted,
            Stage::Transformed,
            Stage::Changes,
            Stage::Results,
            Stage::Conflicts,
        ] {
            let table = tables.table(stage);
            let wanted = tables.columns(stage);
            // The catalog is read afresh here: this is where columns are added.
            self.column_cache.borrow_mut().remove(&table);
            let existing = self.table_columns(&table)?;
            if existing.is_empty() {
                let columns: Vec<String> = wanted
                    .iter()
                    .map(|c| format!("{} {}", quote(&c.name), c.column_type.sql()))
                    .collect();
                self.connection().execute_batch(&format!(
                    "CREATE TABLE {} ({})",
                    quote(&table),
                    columns.join(", ")
                ))?;
                continue;
            }
            for column in wanted {
                if !existing
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(&column.name))
                {
                    self.connection().execute_batch(&format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        quote(&table),
                        quote(&column.name),
                        column.column_type.sql()
                    ))?;
                }
            }
        }
        Ok(())
    }

    /// Column names of `table` in order; empty when it does not exist.
    pub fn table_columns(&self, table: &str) -> Result<Vec<String>, StagingError> {
        let mut statement = self.connection().prepare_cached(
            "SELECT column_name FROM duckdb_columns()
             WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index",
        )?;
        let names = statement.query_map([table], |row| row.get::<_, String>(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    }

    /// [`Store::table_columns`] of a table this process appends to, remembered once read.
    fn appended_columns(&self, table: &str) -> Result<Vec<String>, StagingError> {
        if let Some(columns) = self.column_cache.borrow().get(table) {
            return Ok(columns.clone());
        }
        let columns = self.table_columns(table)?;
        if !columns.is_empty() {
            self.column_cache
                .borrow_mut()
                .insert(table.to_string(), columns.clone());
        }
        Ok(columns)
    }

    /// Appends rows given as (column, value) pairs through DuckDB's Appender. Columns a row
    /// does not name are NULL; naming a column the table lacks is an error.
    pub fn append(
        &self,
        tables: &PipelineTables,
        stage: Stage,
        rows: &[Vec<(String, Value)>],
    ) -> Result<usize, StagingError> {
        let table = tables.table(stage);
        let columns = self.appended_columns(&table)?;
        let column_of = |name: &str| {
            columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    duckdb::Error::InvalidParameterName(format!("{table} has no column {name}"))
                })
        };
        let null = Value::Null;
        let mut appender = self.connection().appender(&table)?;
        // Rows of one call mostly name the same columns in the same order: each row's
        // positions are reused from the row before when its names match.
        let mut positions: Vec<usize> = Vec::new();
        let mut previous: Option<&Vec<(String, Value)>> = None;
        for row in rows {
            let same_names = previous.is_some_and(|before| {
                before.len() == row.len() && before.iter().zip(row).all(|((a, _), (b, _))| a == b)
            });
            if !same_names {
                positions = row
                    .iter()
                    .map(|(name, _)| column_of(name))
                    .collect::<Result<Vec<_>, _>>()?;
            }
            let mut values: Vec<&Value> = vec![&null; columns.len()];
            for ((_, value), &index) in row.iter().zip(&positions) {
                values[index] = value;
            }
            appender.append_row(appender_params_from_iter(values))?;
            previous = Some(row);
        }
        appender.flush()?;
        Ok(rows.len())
    }
}

/// Rows of small pages gathered and appended [`GatheredRows::AT_ONCE`] at a time. Each append
/// is a statement of its own in DuckDB (parsed, planned, committed to the log): with one per
/// page of the 100 records Halo lists, the Appender's flushes were a quarter of a no-op
/// rerun's samples at 100k records, and gathering took 14% off its CPU at 1M (BENCHMARKS.md,
/// eleventh session). [`GatheredRows::flush`] appends what is left; rows not yet appended are
/// not in the table.
pub struct GatheredRows<'a> {
    store: &'a Store,
    tables: &'a PipelineTables,
    stage: Stage,
    rows: Vec<Vec<(String, Value)>>,
}

impl<'a> GatheredRows<'a> {
    /// About one Salesforce page: a few MB of records at most.
    pub const AT_ONCE: usize = 2_000;

    pub fn new(store: &'a Store, tables: &'a PipelineTables, stage: Stage) -> GatheredRows<'a> {
        GatheredRows {
            store,
            tables,
            stage,
            rows: Vec::new(),
        }
    }

    /// Keeps `rows`, and appends all kept once there are [`GatheredRows::AT_ONCE`].
    pub fn push(&mut self, rows: Vec<Vec<(String, Value)>>) -> Result<(), StagingError> {
        self.rows.extend(rows);
        if self.rows.len() >= Self::AT_ONCE {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends the rows kept so far.
    pub fn flush(&mut self) -> Result<(), StagingError> {
        if !self.rows.is_empty() {
            self.store.append(self.tables, self.stage, &self.rows)?;
            self.rows.clear();
        }
        Ok(())
    }
}
