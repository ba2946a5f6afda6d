//! Opening the staging file: creating it, refusing files it must not touch (locked, foreign,
//! too new), upgrading older ones, and the run history.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use duckdb::{params, Connection};

use super::error::StagingError;
use super::migrations::{MIGRATIONS, SCHEMA_VERSION};

/// An open staging file. Only one `etl` process may hold it at a time (DuckDB locks the file).
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Column names of the tables appended to, read from the catalog once per table: asking
    /// DuckDB's catalog on every append cost a tenth of a large run's time.
    pub(super) column_cache: RefCell<HashMap<String, Vec<String>>>,
    /// DuckDB's memory limit in bytes, as set when the file was opened (`None` for a size
    /// etl cannot read, which DuckDB read for it).
    pub(super) memory_limit: Option<u64>,
}

/// One row of `runs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub pipelines: String,
}

fn classify_open_error(path: &Path, error: duckdb::Error) -> StagingError {
    let detail = error.to_string();
    if detail.contains("Could not set lock") || detail.contains("Conflicting lock") {
        StagingError::Locked {
            path: path.to_path_buf(),
            detail,
        }
    } else {
        StagingError::Open {
            path: path.to_path_buf(),
            detail,
        }
    }
}

impl Store {
    /// Opens (or creates) the staging file at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StagingError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let conn = Connection::open(path).map_err(|e| classify_open_error(path, e))?;
        // DuckDB's buffer pool would otherwise grow towards 80% of the machine's memory as a
        // long run writes and reads its tables, and it is most of etl's memory: the pool fills
        // to its limit on any large run. Past the limit DuckDB evicts pages and spills big
        // sorts and joins to `<file>.tmp` (its default temporary directory for a file).
        let limit = memory_limit();
        set(
            &conn,
            path,
            &format!("memory_limit = '{limit}'"),
            &format!("the memory limit `{limit}` (ETL_STAGING_MEMORY) is not a size DuckDB takes, such as 512MB"),
        )?;
        // etl asks staging for many small statements (a batch's rows, a window's join): with a
        // worker per core, DuckDB's hand-offs between them cost more CPU than the parallelism
        // saves, on a machine whose other core runs the HTTP side (BENCHMARKS.md, eighth
        // session: 12% less CPU on a first import with one thread).
        let threads = staging_threads();
        set(
            &conn,
            path,
            &format!("threads = {threads}"),
            &format!("DuckDB refused {threads} threads (ETL_STAGING_THREADS)"),
        )?;
        // DuckDB checkpoints when its write-ahead log reaches this size. At its default of 16
        // MB a large run checkpointed every few batches, and each checkpoint compresses again
        // the partly filled last row group of every table it appended to: a fifth of `etl`'s
        // CPU at 100k records. At 256 MB a 1M-record first import used 11% less CPU and no
        // more memory (BENCHMARKS.md, ninth session); the run still ends with a checkpoint.
        let checkpoint = checkpoint_threshold();
        set(
            &conn,
            path,
            &format!("checkpoint_threshold = '{checkpoint}'"),
            &format!("the checkpoint threshold `{checkpoint}` (ETL_STAGING_CHECKPOINT) is not a size DuckDB takes, such as 256MB"),
        )?;
        // Staged records are JSON text. DuckDB's checkpoints, mostly compressing it with its
        // default dictionary plus FSST, took a quarter of the contacts' load at 1M records;
        // zstd writes such strings in about a seventh of that CPU and a third of the space,
        // and first imports and no-op reruns at 100k and 1M records used 4–8% less CPU with
        // it (BENCHMARKS.md, tenth session). Other types keep DuckDB's choice.
        let compression = compression();
        set(
            &conn,
            path,
            &format!("force_compression = '{compression}'"),
            &format!("the compression `{compression}` (ETL_STAGING_COMPRESSION) is not one DuckDB knows, such as zstd or auto"),
        )?;
        // DuckDB's checkpoints merge row groups holding deleted rows, and for a table with a key
        // (the id map) re-enter every moved row's key into its index, in memory it cannot evict
        // until the checkpoint ends. A checkpoint that runs out of memory invalidates the open
        // database: after every Halo user of a 400k-record project changed, the run stopped
        // there (BENCHMARKS.md, fifteenth session). Runs leave those rows in place, and
        // the end of a run rewrites the id map without them when there are enough
        // (`checkpoints.rs`).
        set(
            &conn,
            path,
            "max_vacuum_tasks = 0",
            "DuckDB refused to hold off merging deleted rows (max_vacuum_tasks)",
        )?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            column_cache: RefCell::default(),
            memory_limit: super::room::size_in_bytes(&limit),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64, StagingError> {
        let version: String = self.conn.query_row(
            "SELECT value FROM etl_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )?;
        Ok(version.parse().unwrap_or(0))
    }

    fn table_exists(&self, name: &str) -> Result<bool, StagingError> {
        let count: i64 = self.conn.query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
            params![name],
            |row| row.get(0),
        )?;
        Ok(count > 0)
    }

    fn migrate(&self) -> Result<(), StagingError> {
        if !self.table_exists("etl_meta")? {
            let tables: i64 =
                self.conn
                    .query_row("SELECT count(*) FROM duckdb_tables()", [], |row| row.get(0))?;
            if tables > 0 {
                return Err(StagingError::Foreign {
                    path: self.path.clone(),
                });
            }
            self.conn.execute_batch(
                "BEGIN;
                 CREATE TABLE etl_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
                 INSERT INTO etl_meta VALUES ('schema_version', '0');
                 COMMIT;",
            )?;
        }
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StagingError::TooNew {
                path: self.path.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = index as i64 + 1;
            // Each migration and its version bump commit together, so a crash leaves the file
            // at a whole version.
            self.conn.execute_batch("BEGIN")?;
            let applied = self.conn.execute_batch(migration).and_then(|_| {
                self.conn.execute(
                    "UPDATE etl_meta SET value = ? WHERE key = 'schema_version'",
                    params![version.to_string()],
                )
            });
            match applied {
                Ok(_) => self.conn.execute_batch("COMMIT")?,
                Err(error) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Records the start of a run and returns its id.
    pub fn begin_run(&self, command: &str, pipelines: &[String]) -> Result<String, StagingError> {
        let mut attempt = 0;
        loop {
            let run_id = new_run_id();
            let inserted = self.conn.execute(
                "INSERT INTO runs (run_id, command, started_at, status, pipelines)
                 VALUES (?, ?, now()::TIMESTAMP, 'running', string_split(?, ','))",
                params![run_id, command, pipelines.join(",")],
            );
            match inserted {
                Ok(_) => return Ok(run_id),
                // Two runs started in the same second can draw the same id: draw again.
                Err(error) if attempt < 3 && error.to_string().contains("Duplicate key") => {
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The API calls a run made on each side, shown by `etl runs`.
    pub fn record_api_calls(
        &self,
        run_id: &str,
        source_calls: u64,
        target_calls: u64,
    ) -> Result<(), StagingError> {
        self.conn.execute(
            "UPDATE runs SET api_calls_source = ?, api_calls_target = ? WHERE run_id = ?",
            params![source_calls as i64, target_calls as i64, run_id],
        )?;
        Ok(())
    }

    /// Records how a run ended.
    pub fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        summary: &serde_json::Value,
    ) -> Result<(), StagingError> {
        self.conn.execute(
            "UPDATE runs SET finished_at = now()::TIMESTAMP, status = ?, summary = ? WHERE run_id = ?",
            params![status, summary.to_string(), run_id],
        )?;
        // Fold the write-ahead log into the file now, so that a later run killed mid-way leaves
        // a log with only its own work to replay (a crash suite once saw the replay of an
        // updated `runs` row refused as a duplicate key). Not fatal: the log still holds it all.
        if let Err(error) = self.conn.execute_batch("CHECKPOINT") {
            tracing::warn!(%error, "could not checkpoint the staging file after the run");
            return Ok(());
        }
        if let Err(error) = self.compact_if_due() {
            tracing::warn!(%error, "could not reclaim the id map's deleted rows after the run");
        }
        Ok(())
    }

    /// Run history, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StagingError> {
        let mut statement = self.conn.prepare(
            "SELECT run_id, command, strftime(started_at, '%Y-%m-%d %H:%M:%S'),
                    strftime(finished_at, '%Y-%m-%d %H:%M:%S'), status, array_to_string(pipelines, ', ')
             FROM runs ORDER BY started_at DESC, run_id DESC",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(RunRecord {
                run_id: row.get(0)?,
                command: row.get(1)?,
                started_at: row.get(2)?,
                finished_at: row.get(3)?,
                status: row.get(4)?,
                pipelines: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Applies `SET <assignment>` to a newly opened staging file; `refused` says what was wrong
/// when DuckDB does not take it (DuckDB's own message follows).
fn set(
    conn: &Connection,
    path: &Path,
    assignment: &str,
    refused: &str,
) -> Result<(), StagingError> {
    conn.execute_batch(&format!("SET {assignment}"))
        .map_err(|e| StagingError::Open {
            path: path.to_path_buf(),
            detail: format!("{refused}: {e}"),
        })
}

/// DuckDB's memory limit when `ETL_STAGING_MEMORY` is not set (see [`memory_limit`]).
pub(super) const DEFAULT_MEMORY_LIMIT: &str = "32MB";

/// DuckDB's memory limit: `ETL_STAGING_MEMORY` (a DuckDB size such as `512MB` or `2GB`) or
/// 32 MB. What etl asks of staging is joins and scans over a window of rows, which DuckDB runs
/// in a bounded space or spills, and nothing sorts records wholesale; the few statements over
/// a whole pipeline's ids get more while they need it (`room.rs`). At 1M records 32 MB took
/// 51–72 MB off the peaks of 96 MB for 0–9% more CPU (BENCHMARKS.md, twelfth session).
fn memory_limit() -> String {
    env_setting("ETL_STAGING_MEMORY", DEFAULT_MEMORY_LIMIT)
}

/// How DuckDB compresses the staging file's strings: `ETL_STAGING_COMPRESSION` (a method name
/// such as `auto`, DuckDB's own choice) or zstd.
fn compression() -> String {
    env_setting("ETL_STAGING_COMPRESSION", "zstd")
}

/// The write-ahead log's size that starts a checkpoint: `ETL_STAGING_CHECKPOINT` (a size
/// DuckDB takes, such as `64MB`) or 256 MB.
fn checkpoint_threshold() -> String {
    env_setting("ETL_STAGING_CHECKPOINT", "256MB")
}

/// A setting from the environment variable `name`, or `default`. Only letters, digits and dots
/// pass (DuckDB checks the rest), so the value cannot break out of the `SET` it goes into.
fn env_setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_string())
        .filter(|value| {
            !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
        .unwrap_or_else(|| default.to_string())
}

/// DuckDB's worker threads: `ETL_STAGING_THREADS` (a number from 1) or 1.
fn staging_threads() -> u32 {
    std::env::var("ETL_STAGING_THREADS")
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .filter(|threads| *threads >= 1)
        .unwrap_or(1)
}

/// A run id that sorts by time: `r20261128-104500-3f2a`.
fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let date = crate::civil::format_date(days);
    format!(
        "r{}-{:02}{:02}{:02}-{:04x}",
        date.replace('-', ""),
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        (now.subsec_nanos() ^ std::process::id()) & 0xffff
    )
}
