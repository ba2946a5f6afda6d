//! Reading a staged plan back: which records a plan run would have written or removed, and how
//! many of those a later plan of the same pipeline would not act on the same way (same action,
//! same record to send), for `etl apply`; and a run's planned writes, a window at a time, for
//! the load that sends them.

use duckdb::params;

use super::error::StagingError;
use super::store::Store;
use super::tables::quote;

/// The plan actions that act on a record: writes, links and removals.
pub const ACTING: [&str; 5] = ["create", "update", "link", "delete", "deactivate"];

fn acting_list() -> String {
    quoted_list(&ACTING)
}

/// `actions` as an SQL list of strings: `'create', 'update'`.
fn quoted_list(actions: &[&str]) -> String {
    actions
        .iter()
        .map(|action| format!("'{}'", action.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A create, update or link as its plan row staged it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedWrite {
    pub source_id: String,
    pub action: String,
    pub target_id: Option<String>,
    pub reason: Option<String>,
    /// The changed fields (JSON: `[{"field", "before", "after"}]`), for an update.
    pub changed_fields: Option<String>,
    /// The whole record (JSON), for a create or a link.
    pub after: Option<String>,
}

impl Store {
    /// Run `run_id`'s rows among the rows `from..=to` of the changes table `table` whose
    /// action is one of `actions` (of `create`, `update` and `link`), in the order they were
    /// staged.
    pub fn staged_writes_between(
        &self,
        table: &str,
        run_id: &str,
        actions: &[&str],
        from: i64,
        to: i64,
    ) -> Result<Vec<StagedWrite>, StagingError> {
        let mut statement = self.connection().prepare_cached(&format!(
            "SELECT source_id, action, target_id, reason,
                    CASE WHEN action = 'update' THEN changed_fields::VARCHAR END,
                    CASE WHEN action <> 'update' THEN after::VARCHAR END
             FROM {} WHERE rowid BETWEEN ? AND ? AND run_id = ? AND action IN ({})
             ORDER BY rowid",
            quote(table),
            quoted_list(actions)
        ))?;
        let writes = statement.query_map(params![from, to, run_id], |row| {
            Ok(StagedWrite {
                source_id: row.get(0)?,
                action: row.get(1)?,
                target_id: row.get(2)?,
                reason: row.get(3)?,
                changed_fields: row.get(4)?,
                after: row.get(5)?,
            })
        })?;
        Ok(writes.collect::<Result<_, _>>()?)
    }

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
