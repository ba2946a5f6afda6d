//! The staging file: round trip through the Appender, upgrades of older files, and clear
//! refusals for files in use, foreign or too new.

use std::process::Command;

use duckdb::types::Value;
mod support;
use support::number;

use etl::staging::{
    Column, ColumnType, GatheredRows, PipelineTables, Stage, StagingError, Store, MIGRATIONS,
    SCHEMA_VERSION,
};

fn tables() -> PipelineTables {
    PipelineTables {
        pipeline: "accounts".into(),
        extracted: vec![
            Column::new("Name", ColumnType::Text),
            Column::new("AnnualRevenue", ColumnType::Double),
            Column::new("CreatedDate", ColumnType::Timestamp),
        ],
        transformed: vec![Column::new("name", ColumnType::Text)],
    }
}

fn row(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn append_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.duckdb");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let tables = tables();
    store.ensure_pipeline_tables(&tables).unwrap();
    let run_id = store.begin_run("run", &["accounts".into()]).unwrap();
    let rows = vec![
        row(&[
            ("run_id", Value::Text(run_id.clone())),
            ("source_id", Value::Text("001000000000001AAA".into())),
            ("Name", Value::Text("Acme, Inc.".into())),
            ("AnnualRevenue", Value::Double(1.5e6)),
            ("CreatedDate", Value::Text("2024-05-01 10:00:00".into())),
            ("record", Value::Text(r#"{"Name":"Acme, Inc."}"#.into())),
        ]),
        row(&[
            ("run_id", Value::Text(run_id.clone())),
            ("source_id", Value::Text("001000000000002AAA".into())),
        ]),
    ];
    assert_eq!(store.append(&tables, Stage::Extracted, &rows).unwrap(), 2);
    store
        .finish_run(&run_id, "ok", &serde_json::json!({"extracted": 2}))
        .unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    let result = store
        .query("SELECT Name, AnnualRevenue, CreatedDate::VARCHAR, record->>'Name' FROM accounts_extracted ORDER BY source_id")
        .unwrap();
    assert_eq!(result.columns[0], "Name");
    assert_eq!(result.rows[0][0], Value::Text("Acme, Inc.".into()));
    assert_eq!(result.rows[0][1], Value::Double(1.5e6));
    assert_eq!(result.rows[0][2], Value::Text("2024-05-01 10:00:00".into()));
    assert_eq!(result.rows[0][3], Value::Text("Acme, Inc.".into()));
    assert_eq!(result.rows[1][0], Value::Null);
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "ok");
    assert_eq!(runs[0].pipelines, "accounts");
}

#[test]
fn a_changed_field_list_adds_columns_and_keeps_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let mut tables = tables();
    store.ensure_pipeline_tables(&tables).unwrap();
    store
        .append(
            &tables,
            Stage::Extracted,
            &[row(&[("source_id", Value::Text("a".into()))])],
        )
        .unwrap();
    tables
        .extracted
        .push(Column::new("Website", ColumnType::Text));
    store.ensure_pipeline_tables(&tables).unwrap();
    let columns = store.table_columns("accounts_extracted").unwrap();
    assert_eq!(columns.last().map(String::as_str), Some("Website"));
    let count = store
        .query("SELECT count(*) FROM accounts_extracted")
        .unwrap();
    assert_eq!(count.rows[0][0], Value::BigInt(1));
}

#[test]
fn appending_to_a_missing_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let tables = tables();
    store.ensure_pipeline_tables(&tables).unwrap();
    let error = store
        .append(&tables, Stage::Results, &[row(&[("nope", Value::Null)])])
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("accounts_results has no column nope"),
        "{error}"
    );
}

#[test]
fn gathered_rows_are_appended_a_few_thousand_at_a_time_and_the_rest_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let staged = || -> i64 {
        store
            .connection()
            .query_row("SELECT count(*) FROM accounts_back_extracted", [], |r| {
                r.get(0)
            })
            .unwrap_or(-1)
    };
    let page = |from: usize| -> Vec<Vec<(String, Value)>> {
        (from..from + 100)
            .map(|n| {
                row(&[
                    ("run_id", Value::Text("r".into())),
                    ("source_id", Value::Text(n.to_string())),
                ])
            })
            .collect()
    };
    let back = PipelineTables {
        pipeline: "accounts_back".into(),
        extracted: Vec::new(),
        transformed: Vec::new(),
    };
    store.ensure_pipeline_tables(&back).unwrap();
    let mut gathered = GatheredRows::new(&store, &back, Stage::Extracted);
    let pages_at_once = GatheredRows::AT_ONCE / 100;
    for n in 0..pages_at_once - 1 {
        gathered.push(page(n * 100)).unwrap();
    }
    assert_eq!(staged(), 0, "pages under the threshold wait");
    gathered.push(page((pages_at_once - 1) * 100)).unwrap();
    assert_eq!(staged(), GatheredRows::AT_ONCE as i64);
    gathered.push(page(GatheredRows::AT_ONCE)).unwrap();
    assert_eq!(staged(), GatheredRows::AT_ONCE as i64);
    gathered.flush().unwrap();
    assert_eq!(staged(), GatheredRows::AT_ONCE as i64 + 100);
    // A bad row is reported by the append that carries it, with DuckDB's reason.
    gathered.push(vec![row(&[("nope", Value::Null)])]).unwrap();
    let error = gathered.flush().unwrap_err();
    assert!(error.to_string().contains("has no column nope"), "{error}");
}

#[test]
fn an_older_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.duckdb");
    {
        // A file as the first released schema left it, with a run in it.
        let conn = duckdb::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE etl_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL); INSERT INTO etl_meta VALUES ('schema_version', '1');")
            .unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("INSERT INTO runs VALUES ('r1', 'run', TIMESTAMP '2026-01-01 00:00:00', NULL, 'ok', ['accounts'], NULL)")
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let result = store
        .query("SELECT run_id, api_calls_source FROM runs")
        .unwrap();
    assert_eq!(
        result.rows,
        vec![vec![Value::Text("r1".into()), Value::BigInt(0)]]
    );
    assert!(store
        .table_columns("id_map")
        .unwrap()
        .contains(&"target_hash".to_string()));
}

#[test]
fn a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.duckdb");
    drop(Store::open(&path).unwrap());
    {
        let conn = duckdb::Connection::open(&path).unwrap();
        conn.execute_batch("UPDATE etl_meta SET value = '99' WHERE key = 'schema_version'")
            .unwrap();
    }
    let error = Store::open(&path).err().unwrap();
    assert!(
        matches!(error, StagingError::TooNew { found: 99, .. }),
        "{error}"
    );
}

#[test]
fn a_foreign_duckdb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.duckdb");
    {
        let conn = duckdb::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER)")
            .unwrap();
    }
    let error = Store::open(&path).err().unwrap();
    assert!(matches!(error, StagingError::Foreign { .. }), "{error}");
    assert!(error.to_string().contains("is not an etl staging file"));
}

#[test]
fn a_file_that_is_not_duckdb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.duckdb");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let error = Store::open(&path).err().unwrap();
    assert!(matches!(error, StagingError::Open { .. }), "{error}");
    assert!(error
        .to_string()
        .starts_with("cannot open the staging file"));
}

#[test]
fn a_file_held_by_another_process_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".etl/staging.duckdb");
    let _held = Store::open(&path).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["sql", "select 1"])
        .current_dir(dir.path())
        .env_remove("ETL_PROJECT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is in use by another etl process"),
        "{stderr}"
    );
}

#[test]
fn example_pipelines_stage_into_typed_tables() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = etl::config::load(&root.join("etl.yaml"), &[], &|_| None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    for loaded in &workspace.pipelines {
        store
            .ensure_pipeline_tables(&etl::config::layout::pipeline_tables(&loaded.pipeline))
            .unwrap();
    }
    let types = store
        .query(
            "SELECT table_name || '.' || column_name, data_type FROM duckdb_columns()
             WHERE table_name = 'opportunities_extracted' AND column_name IN ('Amount', 'CloseDate', 'Name', 'record')
                OR table_name = 'opportunities_transformed' AND column_name IN ('oppvalue', 'client_id', 'customfields_CFSalesforceStage')
                OR table_name = 'accounts_extracted' AND column_name = 'Owner_Email'
             ORDER BY 1",
        )
        .unwrap();
    let pairs: Vec<(String, String)> = types
        .rows
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (Value::Text(a), Value::Text(b)) => (a.clone(), b.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected = [
        ("accounts_extracted.Owner_Email", "VARCHAR"),
        ("opportunities_extracted.Amount", "DOUBLE"),
        ("opportunities_extracted.CloseDate", "DATE"),
        ("opportunities_extracted.Name", "VARCHAR"),
        ("opportunities_extracted.record", "JSON"),
        ("opportunities_transformed.client_id", "VARCHAR"),
        (
            "opportunities_transformed.customfields_CFSalesforceStage",
            "VARCHAR",
        ),
        ("opportunities_transformed.oppvalue", "DOUBLE"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(pairs, expected);
    let tables = store
        .query(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%\\_results' ESCAPE '\\'",
        )
        .unwrap();
    assert_eq!(tables.rows[0][0], Value::BigInt(5));
}

/// The plan reads each chunk of a run's records with its link from one join made in staging:
/// the target id and hash for every linked record, the last synced record only where the hash
/// moved; and sets of ids (missing links, records already read) are answered by joins too.
#[test]
fn a_run_reads_its_records_with_their_links_joined_in_staging() {
    use etl::staging::Link;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let tables = tables();
    store.ensure_pipeline_tables(&tables).unwrap();
    let synced = |name: &str| {
        let mut record = serde_json::Map::new();
        record.insert("name".into(), serde_json::json!(name));
        record
    };
    let link = |target: &str, hash: &str, name: &str| Link {
        target_id: target.into(),
        source_hash: Some(hash.into()),
        synced_record: Some(synced(name)),
        target_record: None,
    };
    store
        .save_links(
            "earlier",
            "accounts",
            &[
                ("A".into(), link("10", "same", "Acme")),
                ("B".into(), link("11", "old", "Beta")),
                ("C".into(), link("12", "old", "Gamma")),
                ("D".into(), link("13", "deactivated", "Delta")),
            ],
        )
        .unwrap();
    let run_id = store.begin_run("run", &["accounts".into()]).unwrap();
    let staged = |id: &str, hash: &str| {
        row(&[
            ("run_id", Value::Text(run_id.clone())),
            ("source_id", Value::Text(id.into())),
            ("record", Value::Text(format!(r#"{{"name":"{id}"}}"#))),
            ("record_hash", Value::Text(hash.into())),
        ])
    };
    let rows = vec![staged("A", "same"), staged("B", "new"), staged("N", "x")];
    store.append(&tables, Stage::Transformed, &rows).unwrap();
    let extracted_rows: Vec<_> = rows[..2]
        .iter()
        .map(|r| {
            r.iter()
                .filter(|(k, _)| k != "record_hash")
                .cloned()
                .collect()
        })
        .collect();
    store
        .append(&tables, Stage::Extracted, &extracted_rows)
        .unwrap();

    let table = tables.table(Stage::Transformed);
    let (first, last) = store.run_rowids(&table, &run_id).unwrap().unwrap();
    assert_eq!(last - first, 2);
    store
        .stage_run_links(&table, &run_id, "accounts", (first, last))
        .unwrap();
    let mut read = store
        .linked_records(&table, &run_id, first, first + 2)
        .unwrap();
    read.extend(
        store
            .linked_records(&table, &run_id, first + 2, last + 1)
            .unwrap(),
    );
    let seen: Vec<(&str, Option<&str>, Option<&str>, bool)> = read
        .iter()
        .map(|r| {
            (
                r.source_id.as_str(),
                r.link.as_ref().map(|l| l.target_id.as_str()),
                r.link.as_ref().and_then(|l| l.source_hash.as_deref()),
                r.link.as_ref().is_some_and(|l| l.synced_record.is_some()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("A", Some("10"), Some("same"), false),
            ("B", Some("11"), Some("old"), true),
            ("N", None, None, false),
        ]
    );
    assert_eq!(read[0].record, synced("A"));
    store.drop_scratch("run_links").unwrap();

    let extracted = tables.table(Stage::Extracted);
    assert_eq!(
        store
            .linked_but_not_staged("accounts", &extracted, &run_id, &["deactivated"])
            .unwrap(),
        vec!["C".to_string()]
    );
    let wanted: Vec<String> = ["A", "C", "Z"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        store.staged_among(&extracted, &run_id, &wanted).unwrap(),
        ["A".to_string()].into()
    );
    let heads = store.link_heads_of("accounts", &wanted).unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads["C"].target_id, "12");
    assert!(heads["C"].synced_record.is_none());
    let whole = store.links_of("accounts", &wanted).unwrap();
    assert_eq!(whole["C"].synced_record, Some(synced("Gamma")));
}

#[test]
fn links_of_created_records_are_inserted_and_a_taken_key_aborts_the_whole_batch() {
    use etl::staging::{Link, NewLinks};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let tables = tables();
    store.ensure_pipeline_tables(&tables).unwrap();
    let link = |target: &str| Link {
        target_id: target.into(),
        source_hash: Some(format!("hash of {target}")),
        synced_record: None,
        target_record: None,
    };
    store
        .add_new_links(
            "first",
            "accounts",
            &[("A".into(), link("10"))],
            NewLinks::Insert,
        )
        .unwrap();
    let result_row = |id: &str| {
        row(&[
            ("run_id", Value::Text("second".into())),
            ("source_id", Value::Text(id.into())),
            ("status", Value::Text("created".into())),
        ])
    };
    // "A" is linked already: the plain insert is refused, and nothing of the batch is kept.
    let batch = [("B".into(), link("11")), ("A".into(), link("12"))];
    let refused = store.in_transaction(|store| {
        store.append(&tables, Stage::Results, &[result_row("B")])?;
        store.add_new_links("second", "accounts", &batch, NewLinks::Insert)
    });
    assert!(refused.is_err());
    let kept = store.links_of("accounts", ["A", "B"]).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept["A"].target_id, "10");
    let results = || -> i64 {
        store
            .connection()
            .query_row("SELECT count(*) FROM accounts_results", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(results(), 0);

    // Run the way a load runs it, the batch is saved again by merging: the old link replaced,
    // the new one kept, the result row staged once.
    let mut tries = Vec::new();
    let tried = std::cell::RefCell::new(&mut tries);
    store
        .in_transaction_with_new_links(|store, how| {
            tried.borrow_mut().push(how);
            store.append(&tables, Stage::Results, &[result_row("B")])?;
            store.add_new_links("second", "accounts", &batch, how)
        })
        .unwrap();
    assert_eq!(tries, [NewLinks::Insert, NewLinks::Merge]);
    let kept = store.links_of("accounts", ["A", "B"]).unwrap();
    assert_eq!(kept["A"].target_id, "12");
    assert_eq!(kept["B"].target_id, "11");
    assert_eq!(results(), 1);
}

#[test]
fn saved_links_replace_the_old_and_a_source_id_given_twice_keeps_its_last() {
    use etl::staging::Link;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let link = |target: &str| Link {
        target_id: target.into(),
        source_hash: Some(format!("h{target}")),
        synced_record: None,
        target_record: None,
    };
    store
        .save_links(
            "r1",
            "accounts",
            &[("A".into(), link("1")), ("B".into(), link("2"))],
        )
        .unwrap();
    store
        .save_links(
            "r2",
            "accounts",
            &[
                ("A".into(), link("3")),
                ("C'x".into(), link("4")),
                ("A".into(), link("5")),
            ],
        )
        .unwrap();
    let links = store
        .links_of("accounts", ["A", "B", "C'x"].map(String::from).iter())
        .unwrap();
    let target = |id: &str| links.get(id).map(|link| link.target_id.as_str());
    assert_eq!(
        (target("A"), target("B"), target("C'x")),
        (Some("5"), Some("2"), Some("4"))
    );
    let rows: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM id_map", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 3);
}

/// A changed link is deleted and written again. DuckDB's checkpoints would merge the row groups
/// holding the deleted rows and move every moved row's key in the id map's index, in memory it
/// cannot evict: a mass edit of 196,000 Halo users stopped there with the staging file's
/// database invalidated. A run leaves the deleted rows in place; the end of the run rewrites
/// the id map without them once they are a third of it.
#[test]
fn replaced_links_are_merged_away_at_the_end_of_a_run_and_not_in_its_checkpoints() {
    use etl::staging::NewLinks;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let run_id = store.begin_run("run", &["contacts".into()]).unwrap();
    let link = |i: usize, version: &str| support::contact_link(i, version, None);
    // 200,000 links fill a row group of 122,880 and most of a second; two in three change.
    let first: Vec<_> = (0..200_000).map(|i| link(i, "v1")).collect();
    for batch in first.chunks(20_000) {
        store
            .add_new_links(&run_id, "contacts", batch, NewLinks::Insert)
            .unwrap();
    }
    let changed: Vec<_> = (0..200_000)
        .filter(|i| i % 3 != 0)
        .map(|i| link(i, "v2"))
        .collect();
    for batch in changed.chunks(20_000) {
        store
            .in_transaction(|store| store.save_links(&run_id, "contacts", batch))
            .unwrap();
    }
    let rows = || {
        let stored = "SELECT sum(count)::BIGINT FROM pragma_storage_info('id_map')
                      WHERE column_id = 0 AND column_path = '[0]'";
        (
            number(&store, "SELECT count(*) FROM id_map"),
            number(&store, stored),
        )
    };
    store.connection().execute_batch("CHECKPOINT").unwrap();
    assert_eq!(
        rows(),
        (200_000, 333_333),
        "a checkpoint in a run merges nothing"
    );
    store
        .finish_run(&run_id, "ok", &serde_json::json!({}))
        .unwrap();
    assert_eq!(rows(), (200_000, 200_000), "the end of the run rewrites it");
    let changed = "SELECT count(*) FROM id_map WHERE source_hash = 'v2'";
    assert_eq!(number(&store, changed), 133_333);
    drop(store);
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let kept = store
        .links_of("contacts", [link(1, "").0, link(3, "").0].iter())
        .unwrap();
    assert_eq!(
        (
            kept[&link(1, "").0].source_hash.as_deref(),
            kept[&link(3, "").0].source_hash.as_deref()
        ),
        (Some("v2"), Some("v1"))
    );
}

/// The rewrite happens once a third of the id map's rows are deleted ones, not before, and a
/// rewrite killed part way (its table left behind) neither stops the next one nor leaves a
/// link out.
#[test]
fn the_id_map_is_rewritten_once_a_third_is_deleted() {
    use etl::staging::NewLinks;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let stored = || {
        number(
            &store,
            "SELECT sum(count)::BIGINT FROM pragma_storage_info('id_map')
             WHERE column_id = 0 AND column_path = '[0]'",
        )
    };
    let links: Vec<_> = (0..245_760)
        .map(|i| support::contact_link(i, "v1", None))
        .collect();
    store
        .add_new_links("r1", "contacts", &links, NewLinks::Insert)
        .unwrap();
    let remove = |every: usize| {
        let removed: Vec<String> = links
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 20 < every)
            .map(|(_, (id, _))| id.clone())
            .collect();
        for batch in removed.chunks(2_000) {
            store.remove_links("contacts", batch).unwrap();
        }
    };
    let finish = |n: usize| {
        let run_id = store.begin_run("run", &["contacts".into()]).unwrap();
        store
            .finish_run(&run_id, "ok", &serde_json::json!({ "n": n }))
            .unwrap();
    };
    // 6 in 20 deleted: under a third, kept.
    remove(6);
    finish(1);
    assert_eq!(stored(), 245_760, "not yet");
    // As a killed rewrite leaves it.
    store
        .connection()
        .execute_batch("CREATE TABLE id_map_rewritten AS SELECT * FROM id_map LIMIT 5")
        .unwrap();
    remove(7);
    finish(2);
    assert_eq!(stored(), 159_744, "rewritten");
    assert_eq!(number(&store, "SELECT count(*) FROM id_map"), 159_744);
    let leftover = "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'id_map_rewritten'";
    assert_eq!(number(&store, leftover), 0);
    // The key still holds, and a link is found and replaced as before.
    let again = support::contact_link(7, "v2", None);
    assert!(store
        .add_new_links(
            "r3",
            "contacts",
            std::slice::from_ref(&again),
            NewLinks::Insert
        )
        .is_err());
    store
        .in_transaction(|store| store.save_links("r3", "contacts", std::slice::from_ref(&again)))
        .unwrap();
    let kept = store
        .links_of("contacts", [again.0.clone()].iter())
        .unwrap();
    assert_eq!(kept[&again.0].source_hash.as_deref(), Some("v2"));
}
