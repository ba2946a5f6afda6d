//! Reading a staged plan back (`etl apply`): which records a plan run would have written or
//! removed, and how many of those a later plan of the same pipeline would not act on the same
//! way (same action, same record to send).

use duckdb::params;

use super::error::StagingError;
use super::store::Store;
use super::tables::quote;

/// The plan actions that act on a record: writes, links and removals.
pub const ACTING: [&str; 5] = ["create", "update", "link", "delete", "deactivate"];

fn acting_list() -> String {
    ACTING
        .iter()
        .map(|action| format!("'{action}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Hands each (source id, action) of run `run_id` in the changes table `table` whose
    /// action acts on a record (see [`ACTING`]) to `each`, as they stream.
    pub fn each_acting(
        &self,
        table: &str,
        run_id: &str,
        mut each: impl FnMut(&str, &str),
    ) -> Result<(), StagingError> {
        let mut statement = self.connection().prepare(&format!(
            "SELECT source_id, action FROM {} WHERE run_id = ? AND action IN ({})",
            quote(table),
            acting_list()
        ))?;
        let mut rows = statement.query(params![run_id])?;
        while let Some(row) = rows.next()? {
            let source_id: String = row.get(0)?;
            let action: String = row.get(1)?;
            each(&source_id, &action);
        }
        Ok(())
    }

    /// How many of run `reviewed`'s acting rows in `table` run `run_id` does not have the
    /// same (source id, action, record sent). The records are compared by their MD5: with
    /// their JSON text, the comparison of two plans of 490,000 creates ran out of memory under
    /// the default limit.
    pub fn plan_differences(
        &self,
        table: &str,
        reviewed: &str,
        run_id: &str,
    ) -> Result<u64, StagingError> {
        let acting = |parameter: &str| {
            format!(
                "SELECT source_id, action, md5_number(after::VARCHAR) FROM {}
                 WHERE run_id = {parameter} AND action IN ({})",
                quote(table),
                acting_list()
            )
        };
        let sql = format!(
            "SELECT count(*) FROM ({} EXCEPT {})",
            acting("$1"),
            acting("$2")
        );
        let count: i64 = self.with_room(|store| {
            Ok(store
                .connection()
                .query_row(&sql, params![reviewed, run_id], |row| row.get(0))?)
        })?;
        Ok(count as u64)
    }
}
