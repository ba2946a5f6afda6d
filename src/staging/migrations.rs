//! The staging file's schema, as an ordered list of migrations. A file records the version it
//! has reached; opening it applies the rest, so a newer etl upgrades an older file in place.
//! Never edit a released migration: append a new one.

/// Version a file has after every migration below.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` takes a file from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: run history, the id map and incremental watermarks.
    "CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY,
        command VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        status VARCHAR NOT NULL,
        pipelines VARCHAR[] NOT NULL,
        summary JSON
    );
    CREATE TABLE id_map (
        pipeline VARCHAR NOT NULL,
        source_id VARCHAR NOT NULL,
        target_id VARCHAR,
        source_hash VARCHAR,
        synced_at TIMESTAMP NOT NULL,
        run_id VARCHAR NOT NULL,
        PRIMARY KEY (pipeline, source_id)
    );
    CREATE TABLE watermarks (
        pipeline VARCHAR PRIMARY KEY,
        cursor_field VARCHAR NOT NULL,
        cursor_value VARCHAR,
        last_id VARCHAR,
        updated_at TIMESTAMP NOT NULL,
        run_id VARCHAR NOT NULL
    );",
    // 2: per-side API call counts on runs; the hash of the target's values for two-way sync.
    "ALTER TABLE runs ADD COLUMN api_calls_source BIGINT DEFAULT 0;
    ALTER TABLE runs ADD COLUMN api_calls_target BIGINT DEFAULT 0;
    ALTER TABLE id_map ADD COLUMN target_hash VARCHAR;",
    // 3: what was last written to the target (to send only changed fields next time) and the
    // record as the target saved it (for lookups of its fields, e.g. a customer's main site).
    "ALTER TABLE id_map ADD COLUMN synced_record JSON;
    ALTER TABLE id_map ADD COLUMN target_record JSON;",
    // 4: each run's describe of the source objects, to report schema drift between runs.
    "CREATE TABLE schemas (
        run_id VARCHAR NOT NULL,
        pipeline VARCHAR NOT NULL,
        object VARCHAR NOT NULL,
        field VARCHAR NOT NULL,
        field_type VARCHAR,
        staged_at TIMESTAMP NOT NULL
    );",
    // 5: incremental extracts. A watermark remembers the shape of the read it belongs to (a
    // changed field list or filter means reading everything again); each run records per
    // pipeline whether it read everything or only changes since a watermark, so the state as
    // of a run can be rebuilt from the last full read and the incremental ones after it.
    "ALTER TABLE watermarks ADD COLUMN read_shape VARCHAR;
    CREATE TABLE extracts (
        run_id VARCHAR NOT NULL,
        pipeline VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        since VARCHAR,
        staged_at TIMESTAMP NOT NULL
    );",
];
