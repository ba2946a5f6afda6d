//! The staging file's memory, threads and checkpoints: DuckDB's buffer pool is capped (32 MB
//! unless `ETL_STAGING_MEMORY` says otherwise; a statement over a whole pipeline's ids gets
//! more while it needs it, and a statement that still does not fit says which setting to
//! raise), it runs one worker thread (unless
//! `ETL_STAGING_THREADS` says otherwise), it checkpoints every 256 MB of write-ahead log
//! (unless `ETL_STAGING_CHECKPOINT` says otherwise), it writes strings with zstd (unless
//! `ETL_STAGING_COMPRESSION` says otherwise), and joins over more ids than fit under the cap
//! spill to `<file>.tmp` instead of failing. This file sets no environment (it is process-wide).

use etl::staging::Store;

mod support;
use support::number;

fn setting(store: &Store, name: &str) -> String {
    store
        .connection()
        .query_row(
            &format!("SELECT current_setting('{name}')::VARCHAR"),
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn the_buffer_pool_is_capped_and_spills_next_to_the_file() {
    if std::env::var_os("ETL_STAGING_MEMORY").is_some() {
        // The cap is the user's then; the rest of this test does not depend on it.
        eprintln!("ETL_STAGING_MEMORY is set: not checking the default cap");
    } else {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        // 32 MB (decimal) as DuckDB prints it.
        assert_eq!(setting(&store, "memory_limit"), "30.5 MiB");
    }
    if std::env::var_os("ETL_STAGING_THREADS").is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        // One worker: staging runs many small statements (see `staging/store.rs`).
        assert_eq!(setting(&store, "threads"), "1");
    }
    if std::env::var_os("ETL_STAGING_CHECKPOINT").is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        // 256 MB (decimal) as DuckDB prints it: checkpoints every 256 MB of log, not 16.
        assert_eq!(setting(&store, "checkpoint_threshold"), "244.1 MiB");
    }
    let zstd = match std::env::var("ETL_STAGING_COMPRESSION") {
        Ok(compression) => compression.trim() == "zstd",
        Err(_) => true,
    };
    if zstd {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        // Strings are written with zstd; other types as DuckDB chooses.
        let connection = store.connection();
        connection
            .execute_batch(
                "CREATE TABLE t AS SELECT i, '{\"Name\": \"Account ' || i || '\"}' AS record
                     FROM range(5000) r(i);
                 CHECKPOINT;",
            )
            .unwrap();
        let compressions: Vec<(String, String)> = connection
            .prepare(
                "SELECT DISTINCT column_name, compression FROM pragma_storage_info('t')
                 WHERE segment_type <> 'VALIDITY' ORDER BY 1",
            )
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(compressions[1], ("record".to_string(), "ZSTD".to_string()));
        assert_ne!(compressions[0].1, "ZSTD", "{compressions:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.duckdb");
    let store = Store::open(&path).unwrap();
    assert_eq!(
        std::path::PathBuf::from(setting(&store, "temp_directory")),
        dir.path().join("s.duckdb.tmp")
    );
    // The shapes of statement etl runs over a whole pipeline's ids (an anti-join sorted, a
    // join, a grouping) over 1M ids, as many as the id map of a 1M-record run holds, under the
    // 32 MB cap. With DuckDB 2.0 all three pass at 32 MB over 2M ids, and one or another fails
    // at 32 or 48 MB over 4M ids and at 96 MB over 8M (checked by hand): etl gives such
    // statements more memory while they need it (the test below). A sort or join of whole
    // record texts does not spill this way, which is why etl never runs one (see
    // `staging/run_links.rs`).
    let connection = store.connection();
    connection
        .execute_batch(
            "CREATE TABLE ids AS
                 SELECT '001' || lpad(((i * 7919) % 1000000)::VARCHAR, 15, '0') AS id, i
                 FROM range(1000000) r(i);
             CREATE TABLE half AS SELECT id FROM ids WHERE i % 2 = 0;
             SET memory_limit = '32MB';",
        )
        .unwrap();
    let count = |sql: &str| -> i64 {
        connection
            .query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    assert_eq!(
        count("SELECT count(*) FROM (SELECT id FROM ids WHERE id NOT IN (SELECT id FROM half) ORDER BY id)"),
        500_000
    );
    assert_eq!(
        count("SELECT count(*) FROM ids a JOIN ids b ON a.id = b.id"),
        1_000_000
    );
    assert_eq!(
        count("SELECT count(*) FROM (SELECT id, min(i) FROM ids GROUP BY id)"),
        1_000_000
    );
}

/// A store whose id map links `links` records of pipeline `p`, every other one of them staged
/// by run `r1` in table `staged`.
fn store_with_links(dir: &std::path::Path, links: usize) -> Store {
    let store = Store::open(&dir.join("s.duckdb")).unwrap();
    store
        .connection()
        .execute_batch(&format!(
            "INSERT INTO id_map (pipeline, source_id, target_id, synced_at, run_id)
                 SELECT 'p', '001' || lpad(i::VARCHAR, 15, '0'), i::VARCHAR, now(), 'r0'
                 FROM range({links}) r(i);
             CREATE TABLE staged AS
                 SELECT 'r1' AS run_id, source_id FROM id_map WHERE target_id::INT % 2 = 0;
             CHECKPOINT;"
        ))
        .unwrap();
    store
}

/// 20,000 links (see `store_with_links`) under a 2 MB limit, where an anti-join sorted over
/// them fails.
fn squeezed_store_with_links(dir: &std::path::Path) -> Store {
    let store = store_with_links(dir, 20_000);
    store
        .connection()
        .execute_batch("SET memory_limit = '2MB'")
        .unwrap();
    store
}

/// Whether etl's default limit is the one in force; says why a check is left out if not.
fn the_default_limit_applies(otherwise: &str) -> bool {
    let applies = std::env::var_os("ETL_STAGING_MEMORY").is_none();
    if !applies {
        eprintln!("ETL_STAGING_MEMORY is set: {otherwise}");
    }
    applies
}

/// [`squeezed_store_with_links`], when etl's default limit is the one a statement given room
/// returns to.
fn squeezed_store_if_default(dir: &std::path::Path) -> Option<Store> {
    the_default_limit_applies("the limit given back is the user's")
        .then(|| squeezed_store_with_links(dir))
}

#[test]
fn a_statement_over_a_whole_pipeline_gets_more_memory_while_it_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    // Far under what the anti-join sorted needs for 20,000 ids: the statement runs again with
    // the limit etl set (32 MB) doubled.
    let Some(store) = squeezed_store_if_default(dir.path()) else {
        return;
    };
    let missing = store
        .linked_but_not_staged("p", "staged", "r1", &[])
        .unwrap();
    assert_eq!(missing.len(), 10_000);
    assert_eq!(missing[0], "001000000000000001");
    assert!(missing.windows(2).all(|pair| pair[0] < pair[1]));
    // And the limit is put back to the one etl set.
    assert_eq!(setting(&store, "memory_limit"), "30.5 MiB");
}

#[test]
fn a_statement_that_does_not_fit_says_which_setting_to_raise() {
    let dir = tempfile::tempdir().unwrap();
    let store = squeezed_store_with_links(dir.path());
    // `etl sql` runs what it is given once, under the limit.
    let error = store
        .query(
            "SELECT source_id FROM id_map WHERE source_id NOT IN (SELECT source_id FROM staged)
             ORDER BY source_id",
        )
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, etl::staging::StagingError::OutOfMemory { .. }),
        "{message}"
    );
    assert!(message.contains("Out of Memory Error"), "{message}");
    assert!(message.contains("ETL_STAGING_MEMORY=512MB"), "{message}");
}

/// The lookups read one field of every record a pipeline links, at 1M records 250,000
/// records of about 800 bytes each. Under the default limit that read must stream: with its
/// filter in SQL, DuckDB 2.0 ran out of memory over 25,000 such records (the lookups then had
/// answered nothing, and every contact had taken the default site).
#[test]
fn a_field_of_every_linked_record_is_read_under_the_default_limit() {
    if !the_default_limit_applies("the limit is the user's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.duckdb");
    let store = Store::open(&path).unwrap();
    store
        .connection()
        .execute_batch(
            "INSERT INTO id_map (pipeline, source_id, target_id, synced_at, run_id, target_record)
                 SELECT 'accounts', '001' || lpad(i::VARCHAR, 15, '0'), i::VARCHAR, now(), 'r0',
                        json_object('id', i,
                                    'main_site_id', CASE WHEN i % 10 = 0 THEN NULL ELSE i + 1 END,
                                    'notes', md5(i::VARCHAR) || repeat('x', 750))
                 FROM range(25000) r(i);
             CHECKPOINT;",
        )
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let mut read = 0;
    let mut last = String::new();
    store
        .each_linked_field("accounts", "main_site_id", |source_id, value| {
            read += 1;
            last = format!("{source_id} {value}");
        })
        .unwrap();
    // A null field is left out, as a missing one is.
    assert_eq!(read, 22_500);
    assert_eq!(last, "001000000000024999 25000");
}

/// The sync back joins the listed records with their links a window of rows at a time into a
/// scratch table; under a limit far too small for that join it gets its room.
#[test]
fn the_listing_joined_with_its_links_gets_more_memory_while_it_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = squeezed_store_if_default(dir.path()) else {
        return;
    };
    store
        .connection()
        .execute_batch(
            "CREATE TABLE listed AS SELECT 'r1' AS run_id, target_id AS source_id FROM id_map;
             CHECKPOINT;",
        )
        .unwrap();
    store
        .stage_back_links("listed", "r1", "p", (0, 19_999))
        .unwrap();
    let linked: i64 = store
        .connection()
        .query_row(
            "SELECT count(DISTINCT target_id) FROM back_links",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(linked, 20_000);
    assert_eq!(setting(&store, "memory_limit"), "30.5 MiB");
}

/// A new store with the (empty) staging tables of a pipeline `p` without typed columns.
fn store_with_pipeline_p(dir: &std::path::Path) -> (Store, etl::staging::PipelineTables) {
    let store = Store::open(&dir.join("s.duckdb")).unwrap();
    let tables = etl::staging::PipelineTables {
        pipeline: "p".into(),
        extracted: Vec::new(),
        transformed: Vec::new(),
    };
    store.ensure_pipeline_tables(&tables).unwrap();
    (store, tables)
}

/// `etl diff` compares two states of a pipeline. Holding both states' records in one query ran
/// out of memory under the default limit over 10,000 records of about 800 bytes (at 1M records
/// every pipeline's diff failed); the states are now row ids and digests, and the records are
/// read a page at a time.
#[test]
fn two_runs_of_a_large_pipeline_are_compared_under_the_default_limit() {
    use etl::staging::{ExtractKind, Stage};
    if !the_default_limit_applies("the limit is the user's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_pipeline_p(dir.path());
    let mut runs = Vec::new();
    for phone in ["1", "2"] {
        let run = store.begin_run("run", &["p".to_string()]).unwrap();
        store
            .record_extract(&run, "p", ExtractKind::Full, None)
            .unwrap();
        // Every record changes its phone in the second run; every tenth is deleted in it.
        let deleted = if phone == "2" { "i % 10 = 0" } else { "false" };
        store
            .connection()
            .execute_batch(&format!(
                "INSERT INTO p_extracted (run_id, source_id, record, staged_at)
                     SELECT '{run}', '001' || lpad(i::VARCHAR, 15, '0'),
                            json_object('Phone', '{phone}', 'IsDeleted', {deleted},
                                        'Notes', md5(i::VARCHAR) || repeat('x', 750)),
                            now()
                     FROM range(20000) r(i);
                 CHECKPOINT;"
            ))
            .unwrap();
        runs.push(run);
    }
    let (mut changed, mut removed, mut last) = (0, 0, String::new());
    store
        .diff_runs(
            "p",
            Stage::Extracted,
            &runs[0],
            &runs[1],
            Some("IsDeleted"),
            &mut |row| {
                match (&row.before, &row.after) {
                    (Some(before), Some(after)) => {
                        assert!(before.contains(r#""Phone":"1""#), "{before}");
                        assert!(after.contains(r#""Phone":"2""#), "{after}");
                        changed += 1;
                    }
                    (Some(_), None) => removed += 1,
                    _ => panic!("{row:?}"),
                }
                assert!(row.source_id > last, "in source_id order");
                last = row.source_id;
                Ok(())
            },
        )
        .unwrap();
    assert_eq!((changed, removed), (18_000, 2_000));
    assert_eq!(last, "001000000000019999");
    assert_eq!(setting(&store, "memory_limit"), "30.5 MiB");
}

/// `etl apply` compares the reviewed plan with the one it makes again. Compared as JSON text,
/// two plans of 40,000 creates of about 800 bytes ran out of memory under the default limit
/// (at 1M records, the contacts' 490,000 did); they are compared by digest now.
#[test]
fn two_large_plans_are_compared_under_the_default_limit() {
    use etl::staging::Stage;
    if !the_default_limit_applies("the limit is the user's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, tables) = store_with_pipeline_p(dir.path());
    let changes = tables.table(Stage::Changes);
    for (run, changed) in [("r1", "false"), ("r2", "i % 1000 = 0")] {
        store
            .connection()
            .execute_batch(&format!(
                "INSERT INTO {changes} (run_id, source_id, action, after, staged_at)
                     SELECT '{run}', '001' || lpad(i::VARCHAR, 15, '0'), 'create',
                            json_object('name', CASE WHEN {changed} THEN 'moved' ELSE 'n' END,
                                        'notes', md5(i::VARCHAR) || repeat('x', 750)),
                            now()
                     FROM range(40000) r(i);
                 CHECKPOINT;"
            ))
            .unwrap();
    }
    assert_eq!(store.plan_differences(&changes, "r1", "r2").unwrap(), 40);
    assert_eq!(store.plan_differences(&changes, "r1", "r1").unwrap(), 0);
    assert_eq!(setting(&store, "memory_limit"), "30.5 MiB");
}

/// A run that changes many records rewrites their links. Replaced in place (`INSERT OR
/// REPLACE`), DuckDB held every new value in memory it cannot evict until a checkpoint, and
/// about 8,000 changed links of about 800 bytes filled the default pool: the run stopped. Links
/// are deleted and inserted again now.
#[test]
fn many_changed_links_are_saved_under_the_default_limit() {
    use etl::staging::NewLinks;
    if !the_default_limit_applies("the limit is the user's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let link = |i: usize, version: &str| {
        let record = serde_json::json!({
            "phonenumber": format!("{version}-{i}"),
            "notes": "x".repeat(800),
        });
        support::contact_link(i, version, record.as_object().cloned())
    };
    let first: Vec<_> = (0..20_000).map(|i| link(i, "v1")).collect();
    for batch in first.chunks(2_000) {
        store
            .add_new_links("r1", "contacts", batch, NewLinks::Insert)
            .unwrap();
    }
    let changed: Vec<_> = (0..20_000).map(|i| link(i, "v2")).collect();
    for batch in changed.chunks(200) {
        store
            .in_transaction(|store| store.save_links("r2", "contacts", batch))
            .unwrap();
    }
    let changed = "SELECT count(*) FROM id_map WHERE source_hash = 'v2'";
    assert_eq!(number(&store, "SELECT count(*) FROM id_map"), 20_000);
    assert_eq!(number(&store, changed), 20_000);
}

/// DuckDB holds the parts of the id map's key index a run changes in memory it cannot evict
/// until a checkpoint (at 256 MB of log, not soon): after every Halo user of a 1M-record
/// project changed, 175,000 changed links filled the default pool and the run stopped. A
/// commit that leaves the index over a quarter of the limit checkpoints.
#[test]
fn the_key_index_is_let_go_by_a_checkpoint_before_it_fills_the_pool() {
    if !the_default_limit_applies("the quarter is of the user's limit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let index_bytes = || {
        number(
            &store,
            "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()
             WHERE tag = 'ART_INDEX'",
        )
    };
    let link = |i: usize, version: &str| support::contact_link(i, version, None);
    let mut most = 0;
    let first: Vec<_> = (0..300_000).map(|i| link(i, "v1")).collect();
    for batch in first.chunks(2_000) {
        store
            .in_transaction_with_new_links(|store, how| {
                store.add_new_links("r1", "contacts", batch, how)
            })
            .unwrap();
        most = most.max(index_bytes());
    }
    let changed: Vec<_> = (0..100_000).map(|i| link(i * 3, "v2")).collect();
    for batch in changed.chunks(200) {
        store
            .in_transaction(|store| store.save_links("r2", "contacts", batch))
            .unwrap();
        most = most.max(index_bytes());
    }
    // A quarter of 32 MB, and what one batch adds before its commit checks.
    assert!(most <= 9 << 20, "the index held {most} bytes");
    let changed = "SELECT count(*) FROM id_map WHERE source_hash = 'v2'";
    assert_eq!(number(&store, changed), 100_000);
}

/// The id map's deleted rows are reclaimed by copying its live links to a new table a window
/// at a time: it needs no more memory than the pool (DuckDB's own merge of 1M links with a
/// third deleted needed more than 64 MB and invalidates the database when it runs out).
#[test]
fn the_id_map_is_rewritten_without_its_deleted_rows_in_a_small_pool() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
    // Made in one statement, with room for it.
    store
        .connection()
        .execute_batch(
            "SET memory_limit = '256MB';
             INSERT INTO id_map (pipeline, source_id, target_id, synced_at, run_id)
                 SELECT 'p', '001' || lpad(i::VARCHAR, 15, '0'), i::VARCHAR, now(), 'r0'
                 FROM range(400000) r(i);
             CHECKPOINT;
             DELETE FROM id_map WHERE target_id::INT % 3 = 0;
             CHECKPOINT;
             SET memory_limit = '16MB';",
        )
        .unwrap();
    let run_id = store.begin_run("run", &["p".into()]).unwrap();
    store
        .finish_run(&run_id, "ok", &serde_json::json!({}))
        .unwrap();
    let stored = "SELECT sum(count)::BIGINT FROM pragma_storage_info('id_map')
                  WHERE column_id = 0 AND column_path = '[0]'";
    assert_eq!(number(&store, stored), 266_666);
    assert_eq!(number(&store, "SELECT count(*) FROM id_map"), 266_666);
    let key = "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'id_map'
               AND constraint_type = 'PRIMARY KEY'";
    assert_eq!(number(&store, key), 1);
}
