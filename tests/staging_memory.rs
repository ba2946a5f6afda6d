//! The staging file's memory, threads and checkpoints: DuckDB's buffer pool is capped (96 MB
//! unless `ETL_STAGING_MEMORY` says otherwise), it runs one worker thread (unless
//! `ETL_STAGING_THREADS` says otherwise), it checkpoints every 256 MB of write-ahead log
//! (unless `ETL_STAGING_CHECKPOINT` says otherwise), it writes strings with zstd (unless
//! `ETL_STAGING_COMPRESSION` says otherwise), and joins over more ids than fit under the cap
//! spill to `<file>.tmp` instead of failing. This file sets no environment (it is process-wide).

use etl::staging::Store;

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
        // 96 MB (decimal) as DuckDB prints it.
        assert_eq!(setting(&store, "memory_limit"), "91.5 MiB");
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
    // 96 MB cap. DuckDB 2.0 refuses them at 32 MB and spills them at 96 MB up to 4M ids (checked
    // by hand), so the cap keeps a margin. A sort or join of whole record texts does not spill
    // this way, which is why etl never runs one (see `staging/run_links.rs`).
    let connection = store.connection();
    connection
        .execute_batch(
            "CREATE TABLE ids AS
                 SELECT '001' || lpad(((i * 7919) % 1000000)::VARCHAR, 15, '0') AS id, i
                 FROM range(1000000) r(i);
             CREATE TABLE half AS SELECT id FROM ids WHERE i % 2 = 0;
             SET memory_limit = '96MB';",
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
