//! The staging of a pipeline's attachments: `<p>_attachments`, what happened to each file in
//! each run (copied, linked, unchanged, skipped or failed, with the system's message), and
//! `<p>_listed_files`, the scratch table that holds a run's listing of files from the extract
//! until the records are loaded, so the listing of a large org is never held in memory. The
//! scratch table is a temporary one: it goes with the connection.

use duckdb::appender_params_from_iter;
use duckdb::types::ToSql;

use super::{StagingError, Store};
use crate::civil;

/// The staging table of a pipeline's attachment results.
pub fn attachments_table(pipeline: &str) -> String {
    format!("{pipeline}_attachments")
}

/// The columns that describe one file, in both tables; all empty for a row about a record's
/// listing rather than one of its files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StagedFile {
    pub attachment_id: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<i64>,
}

impl StagedFile {
    /// The file's columns, in the order both tables have them.
    fn columns(&self) -> [&dyn ToSql; 5] {
        [
            &self.attachment_id,
            &self.kind,
            &self.name,
            &self.content_type,
            &self.size,
        ]
    }
}

/// One row of `<p>_attachments`: a file's outcome in a run, or a record's refused listing
/// (no file).
#[derive(Debug, Clone, Default)]
pub struct AttachmentRow {
    pub run_id: String,
    pub source_id: String,
    pub file: StagedFile,
    pub status: String,
    pub target_id: Option<String>,
    pub attachment_target_id: Option<String>,
    pub message: Option<String>,
}

/// One row of a run's listing: a file of a record, or (no file) why the record's files could
/// not all be listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedFile {
    pub source_id: String,
    pub file: StagedFile,
    pub problem: Option<String>,
}

/// A run's listing of files, waiting in its scratch table for the records to be loaded.
pub struct ListedFiles {
    table: String,
    /// Rows appended so far; each row's number keeps the order files were listed in.
    rows: i64,
}

impl Store {
    /// Makes `<p>_attachments` when it is missing, and a fresh, empty scratch table for this
    /// run's listing.
    pub fn attachment_tables(&self, pipeline: &str) -> Result<ListedFiles, StagingError> {
        let results = attachments_table(pipeline);
        let listed = format!("{pipeline}_listed_files");
        self.connection().execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{results}\" (
                run_id VARCHAR NOT NULL, source_id VARCHAR NOT NULL, attachment_id VARCHAR,
                kind VARCHAR, name VARCHAR, content_type VARCHAR, size BIGINT,
                status VARCHAR NOT NULL, target_id VARCHAR, attachment_target_id VARCHAR,
                message VARCHAR, staged_at TIMESTAMP);
             CREATE OR REPLACE TEMP TABLE \"{listed}\" (
                seq BIGINT, source_id VARCHAR, attachment_id VARCHAR, kind VARCHAR,
                name VARCHAR, content_type VARCHAR, size BIGINT, problem VARCHAR);
             CREATE INDEX \"{listed}_by_record\" ON \"{listed}\" (source_id)"
        ))?;
        Ok(ListedFiles {
            table: listed,
            rows: 0,
        })
    }

    /// Appends result rows to `<p>_attachments` through DuckDB's Appender (a statement per
    /// row made a rerun of thousands of unchanged files slow).
    pub fn append_attachment_rows(
        &self,
        pipeline: &str,
        rows: &[AttachmentRow],
    ) -> Result<(), StagingError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut appender = self.connection().appender(&attachments_table(pipeline))?;
        let staged_at = duckdb::types::Value::Timestamp(
            duckdb::types::TimeUnit::Millisecond,
            civil::now_millis(),
        );
        for row in rows {
            let before: [&dyn ToSql; 2] = [&row.run_id, &row.source_id];
            let after: [&dyn ToSql; 5] = [
                &row.status,
                &row.target_id,
                &row.attachment_target_id,
                &row.message,
                &staged_at,
            ];
            appender.append_row(appender_params_from_iter(
                before.into_iter().chain(row.file.columns()).chain(after),
            ))?;
        }
        appender.flush()?;
        Ok(())
    }
}

impl ListedFiles {
    /// Whether nothing has been listed yet.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends listed files and listing problems, after those appended before.
    pub fn append(&mut self, store: &Store, rows: &[ListedFile]) -> Result<(), StagingError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut appender = store.connection().appender(&self.table)?;
        let mut seq = self.rows;
        for row in rows {
            seq += 1;
            let before: [&dyn ToSql; 2] = [&seq, &row.source_id];
            appender.append_row(appender_params_from_iter(
                before
                    .into_iter()
                    .chain(row.file.columns())
                    .chain([&row.problem as &dyn ToSql]),
            ))?;
        }
        appender.flush()?;
        self.rows = seq;
        Ok(())
    }

    /// The rows listed for these records, in the order they were listed.
    pub fn of(&self, store: &Store, source_ids: &[&str]) -> Result<Vec<ListedFile>, StagingError> {
        if self.rows == 0 || source_ids.is_empty() {
            return Ok(Vec::new());
        }
        // The ids inline, quoted: DuckDB then answers them from the index on `source_id`
        // instead of scanning every file listed so far (with 250,000 listed, 3 against 11 ms a
        // batch; a list parameter is never answered from the index, and a scratch table of
        // the ids, made, filled and joined, cost several times this simple filter per batch).
        let ids: Vec<String> = source_ids
            .iter()
            .map(|id| format!("'{}'", id.replace('\'', "''")))
            .collect();
        let connection = store.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT source_id, attachment_id, kind, name, content_type, size, problem
             FROM \"{}\" WHERE source_id IN ({}) ORDER BY seq",
            self.table,
            ids.join(", ")
        ))?;
        let rows = statement.query_map([], |row| {
            Ok(ListedFile {
                source_id: row.get(0)?,
                file: StagedFile {
                    attachment_id: row.get(1)?,
                    kind: row.get(2)?,
                    name: row.get(3)?,
                    content_type: row.get(4)?,
                    size: row.get(5)?,
                },
                problem: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(source_id: &str, id: &str) -> ListedFile {
        ListedFile {
            source_id: source_id.into(),
            file: StagedFile {
                attachment_id: Some(id.into()),
                kind: Some("file".into()),
                name: Some(format!("{id}.pdf")),
                content_type: Some("application/pdf".into()),
                size: Some(3),
            },
            problem: None,
        }
    }

    #[test]
    fn a_listing_is_read_back_per_record_in_the_order_it_was_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let mut listed = store.attachment_tables("p").unwrap();
        assert!(listed.is_empty());
        assert!(listed.of(&store, &["a"]).unwrap().is_empty());
        listed
            .append(&store, &[file("a", "1"), file("b", "2")])
            .unwrap();
        let refused = ListedFile {
            source_id: "o'brien".into(),
            problem: Some("INSUFFICIENT_ACCESS".into()),
            ..ListedFile::default()
        };
        listed
            .append(&store, &[file("a", "3"), refused.clone()])
            .unwrap();
        assert!(!listed.is_empty());
        let ids = |rows: Vec<ListedFile>| -> Vec<Option<String>> {
            rows.into_iter().map(|r| r.file.attachment_id).collect()
        };
        assert_eq!(
            ids(listed.of(&store, &["a", "c"]).unwrap()),
            [Some("1".to_string()), Some("3".to_string())]
        );
        assert_eq!(listed.of(&store, &["b"]).unwrap(), [file("b", "2")]);
        assert_eq!(listed.of(&store, &["o'brien"]).unwrap(), [refused]);
        // A new run's listing starts empty; the results table is kept.
        store
            .append_attachment_rows(
                "p",
                &[AttachmentRow {
                    run_id: "r1".into(),
                    source_id: "a".into(),
                    file: file("a", "1").file,
                    status: "copied".into(),
                    target_id: Some("7".into()),
                    attachment_target_id: Some("70".into()),
                    message: None,
                }],
            )
            .unwrap();
        let mut listed = store.attachment_tables("p").unwrap();
        listed.append(&store, &[file("b", "9")]).unwrap();
        assert!(listed.of(&store, &["a"]).unwrap().is_empty());
        assert_eq!(
            ids(listed.of(&store, &["b"]).unwrap()),
            [Some("9".to_string())]
        );
        let kept: (String, String, i64, String, String) = store
            .connection()
            .query_row(
                "SELECT name, content_type, size, status, attachment_target_id FROM p_attachments",
                [],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            kept,
            (
                "1.pdf".into(),
                "application/pdf".into(),
                3,
                "copied".into(),
                "70".into()
            )
        );
    }
}
