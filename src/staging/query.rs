//! Ad-hoc SQL over the staging file (`etl sql`): any statement, its result as columns and rows.

use duckdb::arrow::datatypes::DataType;
use duckdb::types::Value;

use super::error::StagingError;
use super::store::Store;

/// A query's result, in memory: `etl sql` is for looking, and results are printed whole.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Store {
    /// Runs one SQL statement and returns what it produced (statements that produce no rows
    /// return DuckDB's count, if any).
    pub fn query(&self, sql: &str) -> Result<ResultTable, StagingError> {
        let mut statement = self.connection().prepare(sql)?;
        let mut rows = statement.query([])?;
        let (columns, types) = rows
            .as_ref()
            .map(|s| {
                let names = s.column_names();
                let types = (0..names.len())
                    .map(|i| s.column_type(i))
                    .collect::<Vec<_>>();
                (names, types)
            })
            .unwrap_or_default();
        for (name, data_type) in columns.iter().zip(&types) {
            if !matches!(data_type, DataType::Null) && !readable(data_type) {
                return Err(StagingError::Unprintable {
                    column: name.clone(),
                    data_type: data_type.to_string(),
                });
            }
        }
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns.len());
            for (index, data_type) in types.iter().enumerate() {
                // A column of type NULL (`SELECT NULL`) cannot be read through the driver.
                values.push(match data_type {
                    DataType::Null => Value::Null,
                    _ => row.get::<_, Value>(index)?,
                });
            }
            out.push(values);
        }
        Ok(ResultTable { columns, rows: out })
    }
}

/// Whether the driver can read values of this type (it panics on the others).
fn readable(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16
        | Float32 | Float64 | Utf8 | LargeUtf8 | Binary | LargeBinary | FixedSizeBinary(_)
        | Date32 | Time64(_) | Timestamp(..) | Interval(_) | Decimal32(..) | Decimal64(..)
        | Decimal128(..) | Dictionary(..) | Union(..) => true,
        List(field) | LargeList(field) | FixedSizeList(field, _) | Map(field, _) => {
            readable(field.data_type())
        }
        Struct(fields) => fields.iter().all(|f| readable(f.data_type())),
        _ => false,
    }
}
