//! Appending staged rows on a thread of their own. An extract's pages (the import's extracted
//! and transformed records, the sync back's snapshot) are appended by a second connection to
//! the same file while the caller transforms the next page: on one thread, DuckDB's appends
//! and the transform took turns on one core while the other sat mostly idle.
//!
//! Pages are appended in the order sent, at most [`PAGES_WAITING`] waiting, so memory stays
//! bounded. [`AppendLane::finish`] waits for all of them; only then does the caller's own
//! connection see them (the plan and the snapshot read them back). A lane dropped without
//! `finish` (the run stopped on an error) still appends what it was sent, so nothing staged
//! is lost.

use std::cell::RefCell;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use duckdb::types::Value;

use super::error::StagingError;
use super::store::Store;
use super::tables::{append_rows, columns_of, PipelineTables, Stage};

/// Rows as [`Store::append`] takes them: (column, value) pairs.
pub type Rows = Vec<Vec<(String, Value)>>;

/// Pages sent and not yet appended: enough for the caller to go on transforming while one is
/// appended, few enough that a slow disk holds back the extract instead of filling memory.
const PAGES_WAITING: usize = 2;

/// A thread appending to the staging file through its own connection (see the module).
pub struct AppendLane {
    sender: Option<SyncSender<(String, Rows)>>,
    worker: RefCell<Option<JoinHandle<Result<(), StagingError>>>>,
}

impl Store {
    /// Starts a lane appending to this file. The tables it appends to must exist (and have
    /// their columns) before rows for them are sent.
    pub fn append_lane(&self) -> Result<AppendLane, StagingError> {
        let connection = self.connection().try_clone()?;
        let mut known = self.column_cache.borrow().clone();
        let (sender, pages) = sync_channel::<(String, Rows)>(PAGES_WAITING);
        let worker = std::thread::Builder::new()
            .name("etl-staging".to_string())
            .spawn(move || {
                for (table, rows) in pages {
                    if !known.contains_key(&table) {
                        let columns = columns_of(&connection, &table)?;
                        known.insert(table.clone(), columns);
                    }
                    append_rows(&connection, &table, &known[&table], &rows)?;
                }
                Ok(())
            })
            .map_err(|e| StagingError::Thread(e.to_string()))?;
        Ok(AppendLane {
            sender: Some(sender),
            worker: RefCell::new(Some(worker)),
        })
    }
}

impl AppendLane {
    /// Hands `rows` to the lane for `stage`'s table. Waits while [`PAGES_WAITING`] pages are
    /// already waiting. An append that failed earlier is reported here (or by `finish`).
    pub fn append(
        &self,
        tables: &PipelineTables,
        stage: Stage,
        rows: Rows,
    ) -> Result<(), StagingError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sent = match &self.sender {
            Some(sender) => sender.send((tables.table(stage), rows)).is_ok(),
            None => false,
        };
        match sent {
            true => Ok(()),
            // The worker has stopped: it holds the reason.
            false => self.wait().and(Err(StagingError::Thread(
                "the staging thread stopped before the rows were appended".to_string(),
            ))),
        }
    }

    /// Waits for every page sent to be appended, and reports the first append that failed.
    pub fn finish(mut self) -> Result<(), StagingError> {
        self.sender.take();
        self.wait()
    }

    fn wait(&self) -> Result<(), StagingError> {
        let Some(worker) = self.worker.borrow_mut().take() else {
            return Ok(());
        };
        worker.join().unwrap_or_else(|_| {
            Err(StagingError::Thread(
                "the staging thread panicked".to_string(),
            ))
        })
    }
}

impl Drop for AppendLane {
    fn drop(&mut self) {
        self.sender.take();
        if let Err(error) = self.wait() {
            tracing::warn!(%error, "staging rows after the run stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staging::{Column, ColumnType};

    fn rows(run: &str, ids: std::ops::Range<u32>) -> Rows {
        ids.map(|n| {
            vec![
                ("run_id".to_string(), Value::Text(run.to_string())),
                ("source_id".to_string(), Value::Text(format!("001{n:05}"))),
                ("record".to_string(), Value::Text(format!("{{\"n\":{n}}}"))),
            ]
        })
        .collect()
    }

    fn staged(store: &Store, table: &str) -> Vec<String> {
        let mut statement = store
            .connection()
            .prepare(&format!("SELECT source_id FROM {table} ORDER BY source_id"))
            .unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn open(dir: &tempfile::TempDir) -> (Store, PipelineTables) {
        let store = Store::open(&dir.path().join("etl.duckdb")).unwrap();
        let tables = PipelineTables {
            pipeline: "accounts".to_string(),
            extracted: vec![Column::new("Name", ColumnType::Text)],
            transformed: vec![Column::new("name", ColumnType::Text)],
        };
        store.ensure_pipeline_tables(&tables).unwrap();
        (store, tables)
    }

    #[test]
    fn every_page_sent_is_staged_in_order_once_the_lane_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tables) = open(&dir);
        let lane = store.append_lane().unwrap();
        for page in 0..10 {
            lane.append(
                &tables,
                Stage::Extracted,
                rows("r1", page * 100..(page + 1) * 100),
            )
            .unwrap();
            lane.append(
                &tables,
                Stage::Transformed,
                rows("r1", page * 100..page * 100 + 1),
            )
            .unwrap();
        }
        lane.finish().unwrap();
        let extracted = staged(&store, "accounts_extracted");
        assert_eq!(extracted.len(), 1000);
        assert_eq!(extracted[999], "00100999");
        assert_eq!(staged(&store, "accounts_transformed").len(), 10);
    }

    #[test]
    fn a_lane_dropped_without_finishing_still_stages_what_it_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tables) = open(&dir);
        {
            let lane = store.append_lane().unwrap();
            lane.append(&tables, Stage::Extracted, rows("r1", 0..50))
                .unwrap();
        }
        assert_eq!(staged(&store, "accounts_extracted").len(), 50);
    }

    #[test]
    fn a_failed_append_is_reported_with_duckdbs_reason_and_stops_the_lane() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tables) = open(&dir);
        let lane = store.append_lane().unwrap();
        let mut bad = rows("r1", 0..1);
        bad[0].push(("no_such_column".to_string(), Value::Text("x".to_string())));
        lane.append(&tables, Stage::Extracted, bad).unwrap();
        // The worker stops on the bad page; a later page or `finish` reports why.
        let mut reported = None;
        for _ in 0..100 {
            if let Err(error) = lane.append(&tables, Stage::Extracted, rows("r1", 1..2)) {
                reported = Some(error.to_string());
                break;
            }
        }
        let reported = match reported {
            Some(message) => message,
            None => lane.finish().unwrap_err().to_string(),
        };
        assert!(reported.contains("no_such_column"), "{reported}");
    }
}
