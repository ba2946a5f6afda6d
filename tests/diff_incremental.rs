//! `etl diff` over incremental runs, at the staging level with the real `Store` on a temporary
//! file: runs that read only the changes since a watermark stage just those, and the diff
//! compares the source's state as of each run (the last full run and the incremental ones after
//! it) — a changed record shows as changed, a record not read again is not removed, a full run
//! resets the base, and a record read with the deleted flag set leaves the state. One case
//! drives the binary for the table heading and the JSON shape.

use std::path::PathBuf;

use duckdb::types::Value as Cell;
use serde_json::{json, Value};

use etl::staging::{Column, ColumnType, DiffRow, ExtractKind, PipelineTables, Stage, Store};

mod support;

/// The watermark an incremental run of these tests starts after (`value id`).
const SINCE: &str = "2026-01-01T00:00:00.000Z 001000000000000AAA";

/// A staging file with `accounts` tables, and a project file that points at it.
struct Staging {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Store,
    tables: PipelineTables,
}

/// How a run read the source, as the engine records it in `extracts`.
enum Read {
    /// Not recorded, as by runs from before incremental reads: a full read.
    Unrecorded,
    Full,
    Incremental,
    /// An incremental read with no watermark yet, which reads everything.
    IncrementalFromStart,
}

fn staging() -> Staging {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::write(
        root.join("etl.yaml"),
        "project: test\nstaging: staging.duckdb\npipelines: pipelines\n",
    )
    .unwrap();
    let store = Store::open(&root.join("staging.duckdb")).unwrap();
    let tables = PipelineTables {
        pipeline: "accounts".into(),
        extracted: vec![Column::new("Name", ColumnType::Text)],
        transformed: vec![Column::new("name", ColumnType::Text)],
    };
    store.ensure_pipeline_tables(&tables).unwrap();
    Staging {
        _dir: dir,
        root,
        store,
        tables,
    }
}

impl Staging {
    /// Records run `run_id` of `accounts` started at `started_at`, staging `records` (source
    /// id, extracted record) in `accounts_extracted` and, with Halo's name only, in
    /// `accounts_transformed`, the way the engine stages a page.
    fn run(&self, run_id: &str, started_at: &str, read: Read, records: &[(&str, Value)]) {
        self.store
            .connection()
            .execute(
                "INSERT INTO runs (run_id, command, started_at, status, pipelines)
                 VALUES (?, 'run', ?::TIMESTAMP, 'ok', ['accounts'])",
                [run_id, started_at],
            )
            .unwrap();
        let rows = |stage: Stage| -> Vec<Vec<(String, Cell)>> {
            records
                .iter()
                .map(|(source_id, record)| {
                    let staged = match stage {
                        Stage::Extracted => record.clone(),
                        _ => json!({"name": record["Name"]}),
                    };
                    vec![
                        ("run_id".to_string(), Cell::Text(run_id.to_string())),
                        ("source_id".to_string(), Cell::Text(source_id.to_string())),
                        ("record".to_string(), Cell::Text(staged.to_string())),
                        ("staged_at".to_string(), Cell::Text(started_at.to_string())),
                    ]
                })
                .collect()
        };
        for stage in [Stage::Extracted, Stage::Transformed] {
            self.store
                .append(&self.tables, stage, &rows(stage))
                .unwrap();
        }
        let recorded = match read {
            Read::Unrecorded => None,
            Read::Full => Some((ExtractKind::Full, None)),
            Read::Incremental => Some((ExtractKind::Incremental, Some(SINCE))),
            Read::IncrementalFromStart => Some((ExtractKind::Incremental, None)),
        };
        if let Some((kind, since)) = recorded {
            self.store
                .record_extract(run_id, "accounts", kind, since)
                .unwrap();
        }
    }

    /// The differences between the states as of `from` and `to`: added, removed and changed
    /// source ids (changed: in both with different JSON text, as `diff_runs` reports them).
    fn diff(&self, stage: Stage, from: &str, to: &str, flag: Option<&str>) -> Found {
        let mut found = Found::default();
        self.store
            .diff_runs("accounts", stage, from, to, flag, &mut |row: DiffRow| {
                match (&row.before, &row.after) {
                    (None, Some(_)) => found.added.push(row.source_id),
                    (Some(_), None) => found.removed.push(row.source_id),
                    (Some(before), Some(after)) => {
                        found
                            .changed
                            .push((row.source_id, before.clone(), after.clone()))
                    }
                    (None, None) => panic!("a row in neither state: {}", row.source_id),
                }
                Ok(())
            })
            .unwrap();
        found
    }

    fn extracted(&self, from: &str, to: &str) -> Found {
        self.diff(Stage::Extracted, from, to, Some("IsDeleted"))
    }
}

#[derive(Debug, Default)]
struct Found {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<(String, String, String)>,
}

impl Found {
    fn changed_ids(&self) -> Vec<&str> {
        self.changed.iter().map(|(id, _, _)| id.as_str()).collect()
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn account<'a>(id: &'a str, name: &str) -> (&'a str, Value) {
    (id, json!({"Id": id, "Name": name}))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn incremental_runs_stand_on_the_full_run_before_them() {
    let s = staging();
    s.run(
        "f1",
        "2026-01-01 00:00:00",
        Read::Unrecorded,
        &[
            account("001A", "Acme"),
            account("001B", "Bolt"),
            account("001C", "Cog"),
        ],
    );
    // Only what changed: Bolt renamed, Dyn new. Acme and Cog are not read again.
    s.run(
        "i1",
        "2026-01-02 00:00:00",
        Read::Incremental,
        &[account("001B", "Bolt Ltd"), account("001D", "Dyn")],
    );
    let found = s.extracted("f1", "i1");
    assert_eq!(found.added, ["001D"], "{found:?}");
    assert!(
        found.removed.is_empty(),
        "records not read again are not removed: {found:?}"
    );
    assert_eq!(found.changed_ids(), ["001B"], "{found:?}");
    let (_, before, after) = &found.changed[0];
    assert_eq!(json_of(before)["Name"], "Bolt");
    assert_eq!(json_of(after)["Name"], "Bolt Ltd");

    // The transformed records follow the same states.
    let found = s.diff(Stage::Transformed, "f1", "i1", Some("IsDeleted"));
    assert_eq!(
        (
            found.added.as_slice(),
            found.removed.len(),
            found.changed_ids()
        ),
        (&["001D".to_string()][..], 0, vec!["001B"]),
        "{found:?}"
    );

    // A second incremental run: its state still holds Bolt Ltd and Dyn from the first.
    s.run(
        "i2",
        "2026-01-03 00:00:00",
        Read::Incremental,
        &[account("001C", "Cog & Co")],
    );
    let found = s.extracted("i1", "i2");
    assert!(
        found.added.is_empty() && found.removed.is_empty(),
        "{found:?}"
    );
    assert_eq!(
        found.changed_ids(),
        ["001C"],
        "only Cog changed since i1: {found:?}"
    );
    let found = s.extracted("f1", "i2");
    assert_eq!(found.added, ["001D"]);
    assert_eq!(found.changed_ids(), ["001B", "001C"], "{found:?}");
    // Backwards, added and removed swap.
    let found = s.extracted("i2", "f1");
    assert_eq!(found.removed, ["001D"]);
    assert!(found.added.is_empty(), "{found:?}");

    // An incremental run that found no change staged nothing, and is still a run of accounts.
    s.run("i3", "2026-01-04 00:00:00", Read::Incremental, &[]);
    let runs = s
        .store
        .pipeline_runs("accounts", Stage::Extracted)
        .unwrap()
        .unwrap();
    let listed: Vec<(&str, i64, ExtractKind)> = runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.rows, r.kind))
        .collect();
    assert_eq!(
        listed,
        [
            ("f1", 3, ExtractKind::Full),
            ("i1", 2, ExtractKind::Incremental),
            ("i2", 1, ExtractKind::Incremental),
            ("i3", 0, ExtractKind::Incremental),
        ]
    );
    assert!(s.extracted("i2", "i3").is_empty());
    assert!(s.extracted("i3", "i3").is_empty());
}

#[test]
fn a_full_run_after_incremental_ones_resets_the_base() {
    let s = staging();
    s.run(
        "f1",
        "2026-01-01 00:00:00",
        Read::Full,
        &[
            account("001A", "Acme"),
            account("001B", "Bolt"),
            account("001C", "Cog"),
        ],
    );
    s.run(
        "i1",
        "2026-01-02 00:00:00",
        Read::Incremental,
        &[account("001B", "Bolt Ltd")],
    );
    // A full read: Cog is gone (deleted for good, so no incremental read saw it go).
    s.run(
        "f2",
        "2026-01-03 00:00:00",
        Read::Full,
        &[account("001A", "Acme"), account("001B", "Bolt Ltd")],
    );
    s.run(
        "i2",
        "2026-01-04 00:00:00",
        Read::Incremental,
        &[account("001A", "Acme Corp")],
    );

    let found = s.extracted("i1", "f2");
    assert_eq!(found.removed, ["001C"], "{found:?}");
    assert!(
        found.added.is_empty() && found.changed.is_empty(),
        "Bolt Ltd is the same in both states: {found:?}"
    );
    // i2 stands on f2, not f1: Cog does not come back.
    let found = s.extracted("f2", "i2");
    assert!(
        found.added.is_empty() && found.removed.is_empty(),
        "{found:?}"
    );
    assert_eq!(found.changed_ids(), ["001A"]);
    let found = s.extracted("i1", "i2");
    assert_eq!(found.removed, ["001C"]);
    assert_eq!(found.changed_ids(), ["001A"], "{found:?}");

    // An incremental read that had no watermark read everything: it is a base too.
    s.run(
        "i3",
        "2026-01-05 00:00:00",
        Read::IncrementalFromStart,
        &[account("001A", "Acme Corp")],
    );
    let found = s.extracted("i2", "i3");
    assert_eq!(found.removed, ["001B"], "{found:?}");
    assert!(found.changed.is_empty(), "{found:?}");
}

#[test]
fn runs_are_ordered_by_start_time_not_by_id() {
    let s = staging();
    // "r-late" sorts first by id but started last; the state as of it holds its change.
    s.run(
        "r-zero",
        "2026-01-01 00:00:00",
        Read::Full,
        &[account("001A", "Acme"), account("001B", "Bolt")],
    );
    s.run(
        "r-late",
        "2026-01-03 00:00:00",
        Read::Incremental,
        &[account("001A", "Acme Late")],
    );
    s.run(
        "r-mid",
        "2026-01-02 00:00:00",
        Read::Incremental,
        &[account("001A", "Acme Mid")],
    );
    let found = s.extracted("r-mid", "r-late");
    assert_eq!(found.changed_ids(), ["001A"]);
    let (_, before, after) = &found.changed[0];
    assert_eq!(
        (
            json_of(before)["Name"].clone(),
            json_of(after)["Name"].clone()
        ),
        (json!("Acme Mid"), json!("Acme Late"))
    );
    assert!(found.removed.is_empty(), "Bolt stays: {found:?}");
}

#[test]
fn records_read_deleted_leave_the_state() {
    let s = staging();
    s.run(
        "f1",
        "2026-01-01 00:00:00",
        Read::Full,
        &[
            account("001A", "Acme"),
            account("001B", "Bolt"),
            account("001C", "Cog"),
            account("001D", "Dyn"),
            (
                "001E",
                json!({"Id": "001E", "Name": "Elm", "IsDeleted": false}),
            ),
        ],
    );
    // Read from the recycle bin with the flag in each of the forms the engine accepts, and one
    // with the flag cleared.
    s.run(
        "i1",
        "2026-01-02 00:00:00",
        Read::Incremental,
        &[
            (
                "001A",
                json!({"Id": "001A", "Name": "Acme", "IsDeleted": true}),
            ),
            (
                "001B",
                json!({"Id": "001B", "Name": "Bolt", "IsDeleted": "TRUE"}),
            ),
            ("001C", json!({"Id": "001C", "Name": "Cog", "IsDeleted": 1})),
            (
                "001E",
                json!({"Id": "001E", "Name": "Elm 2", "IsDeleted": "false"}),
            ),
        ],
    );
    for stage in [Stage::Extracted, Stage::Transformed] {
        let found = s.diff(stage, "f1", "i1", Some("IsDeleted"));
        assert_eq!(
            found.removed,
            ["001A", "001B", "001C"],
            "{stage:?}: {found:?}"
        );
        assert!(found.added.is_empty(), "{stage:?}: {found:?}");
        assert_eq!(found.changed_ids(), ["001E"], "{stage:?}: {found:?}");
    }
    // Without a flag name the deleted records are ordinary ones whose IsDeleted changed.
    let found = s.diff(Stage::Extracted, "f1", "i1", None);
    assert!(found.removed.is_empty(), "{found:?}");
    assert_eq!(found.changed_ids(), ["001A", "001B", "001C", "001E"]);

    // Restored from the recycle bin: back in the state; still deleted in a later full read:
    // in neither state, so not listed.
    s.run(
        "i2",
        "2026-01-03 00:00:00",
        Read::Incremental,
        &[(
            "001A",
            json!({"Id": "001A", "Name": "Acme", "IsDeleted": false}),
        )],
    );
    let found = s.extracted("i1", "i2");
    assert_eq!(found.added, ["001A"], "{found:?}");
    assert!(found.removed.is_empty() && found.changed.is_empty());
    s.run(
        "f2",
        "2026-01-04 00:00:00",
        Read::Full,
        &[
            (
                "001A",
                json!({"Id": "001A", "Name": "Acme", "IsDeleted": false}),
            ),
            (
                "001B",
                json!({"Id": "001B", "Name": "Bolt", "IsDeleted": true}),
            ),
            account("001D", "Dyn"),
            (
                "001E",
                json!({"Id": "001E", "Name": "Elm 2", "IsDeleted": "false"}),
            ),
        ],
    );
    assert!(
        s.extracted("i2", "f2").is_empty(),
        "Cog is gone from both, Bolt deleted in both"
    );
}

#[test]
fn the_binary_diffs_states_and_names_incremental_runs() {
    let s = staging();
    s.run(
        "f1",
        "2026-01-01 00:00:00",
        Read::Full,
        &[account("001A", "Acme"), account("001B", "Bolt")],
    );
    s.run(
        "i1",
        "2026-01-02 00:00:00",
        Read::Incremental,
        &[account("001B", "Bolt Ltd")],
    );
    let root = s.root.clone();
    drop(s.store);

    let (code, stdout, stderr) = support::etl_output(&root, &["diff", "accounts", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let diff: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        diff,
        json!({
            "pipeline": "accounts", "from": "f1", "to": "i1", "added": [], "removed": [],
            "changed": [{"source_id": "001B", "fields": [
                {"field": "Name", "before": "Bolt", "after": "Bolt Ltd"}
            ]}]
        })
    );
    let (code, table, stderr) = support::etl_output(&root, &["diff", "accounts"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        table.lines().next(),
        Some(
            "accounts (extracted records): f1 (etl run, 2026-01-01 00:00:00, 2 records) → \
             i1 (etl run, 2026-01-02 00:00:00, incremental, 1 record)"
        ),
        "{table}"
    );
    assert_eq!(table.lines().last(), Some("0 added, 0 removed, 1 changed"));
}
