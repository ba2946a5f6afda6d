//! What the staging file does when it is not what etl expects: random bytes where the DuckDB
//! file should be, a DuckDB file of someone else's tables, a second `etl` holding the file, and
//! a disk that fills up. Each must end with a clear message naming the file and what to do
//! (exit 2 or 3, never a panic), and leave the file as it was: a corrupt file is not deleted or
//! rewritten, a foreign database keeps its tables, and a file held by another process is usable
//! again once that process lets go.

use std::path::{Path, PathBuf};
use std::process::Command;

use etl::sandbox::server::{self, Options};

mod support;

/// A project with no sandbox behind it: enough for `etl sql` and `etl runs`.
fn offline_project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("etl.yaml"),
        "project: test\nstaging: .etl/staging.duckdb\npipelines: pipelines\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    let staging = dir.path().join(".etl/staging.duckdb");
    std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
    (dir, staging)
}

fn etl(root: &Path, args: &[&str]) -> (i32, String, String) {
    support::etl_output(root, args)
}

/// A refusal as the issue wants it: exit 2 or 3, no panic, the file named.
fn assert_clear_refusal(what: &str, (code, stdout, stderr): &(i32, String, String), file: &Path) {
    assert!(
        *code == 2 || *code == 3,
        "{what}: exit {code}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what} panicked: {stderr}"
    );
    assert!(
        stderr.contains(&file.display().to_string())
            || stderr.contains("staging.duckdb")
            || stderr.contains(file.file_name().unwrap().to_str().unwrap()),
        "{what}: the message does not name the file: {stderr}"
    );
}

#[test]
fn a_corrupt_staging_file_is_refused_and_left_untouched() {
    let (dir, staging) = offline_project();
    // Not a DuckDB file at all: arbitrary bytes, bigger than a header.
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&staging, &garbage).unwrap();

    for args in [&["sql", "select 1"][..], &["runs"][..]] {
        let output = etl(dir.path(), args);
        assert_clear_refusal(&format!("etl {args:?}"), &output, &staging);
        assert_eq!(
            std::fs::read(&staging).unwrap(),
            garbage,
            "etl {args:?} changed the corrupt file"
        );
    }
    let (_, _, stderr) = etl(dir.path(), &["sql", "select 1"]);
    assert!(
        stderr.contains("staging"),
        "the message says it is the staging file: {stderr}"
    );

    // Moving the corrupt file away is enough to carry on.
    std::fs::rename(&staging, staging.with_extension("corrupt")).unwrap();
    let (code, stdout, stderr) = etl(dir.path(), &["sql", "select 1 as one"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains('1'), "{stdout}");
}

#[test]
fn a_truncated_staging_file_is_refused_and_left_untouched() {
    let (dir, staging) = offline_project();
    let (code, _, stderr) = etl(dir.path(), &["sql", "select 1"]);
    assert_eq!(code, 0, "{stderr}");
    let whole = std::fs::read(&staging).unwrap();
    // Half a file: a crash or a copy cut short.
    let half = whole[..whole.len() / 2].to_vec();
    std::fs::write(&staging, &half).unwrap();
    let output = etl(dir.path(), &["sql", "select 1"]);
    // DuckDB may accept a file cut after its last checkpointed block; what matters is that it
    // never panics and never rewrites the bytes it was given when it refuses.
    if output.0 != 0 {
        assert_clear_refusal("a truncated file", &output, &staging);
        assert_eq!(std::fs::read(&staging).unwrap(), half);
    }
    assert!(!output.2.contains("panicked"), "{}", output.2);
}

#[test]
fn a_foreign_duckdb_file_is_refused_and_keeps_its_tables() {
    let (dir, staging) = offline_project();
    {
        let conn = duckdb::Connection::open(&staging).unwrap();
        conn.execute_batch(
            "CREATE TABLE invoices (id INTEGER, total DOUBLE);
             INSERT INTO invoices VALUES (1, 9.5), (2, 12.25);",
        )
        .unwrap();
    }
    let output = etl(dir.path(), &["sql", "select 1"]);
    assert_clear_refusal("a foreign DuckDB file", &output, &staging);
    assert!(
        output.2.contains("not an etl staging file"),
        "says why: {}",
        output.2
    );
    assert!(
        output.2.contains("staging:"),
        "says what to do: {}",
        output.2
    );
    let runs = etl(dir.path(), &["runs"]);
    assert_clear_refusal("etl runs on a foreign file", &runs, &staging);

    // The other program's data is still there and etl added nothing.
    let conn = duckdb::Connection::open(&staging).unwrap();
    let total: f64 = conn
        .query_row("SELECT sum(total) FROM invoices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 21.75);
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM duckdb_tables()", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "etl created no table in a foreign file");
}

#[test]
fn a_second_etl_on_the_same_file_is_refused_until_the_first_lets_go() {
    let sandbox = server::start(Options {
        accounts: 5,
        ..Options::default()
    })
    .unwrap();
    let project = support::project(&sandbox, &["accounts"]);
    let staging = project.root.join(".etl/staging.duckdb");
    let (code, _, stderr) = etl(&project.root, &["run"]);
    assert_eq!(code, 0, "{stderr}");

    // Another process holds the file: a child `etl` cannot be paused at will, so this test
    // process opens it the way etl does (DuckDB takes an exclusive file lock per process).
    let holder = etl::staging::Store::open(&staging).unwrap();
    for args in [&["sql", "select 1"][..], &["run"][..], &["runs"][..]] {
        let output = etl(&project.root, args);
        assert_clear_refusal(&format!("etl {args:?} while held"), &output, &staging);
        assert!(
            output.2.contains("in use by another etl process"),
            "etl {args:?}: says it is busy: {}",
            output.2
        );
        assert!(
            output.2.contains("wait for it to finish"),
            "etl {args:?}: says what to do: {}",
            output.2
        );
    }
    drop(holder);

    // Usable again, with the first run's data intact.
    let rows = support::staging_rows(&project.root, "select count(*) as n from runs");
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["n"].as_i64().unwrap() >= 1, "{rows:?}");
    let (code, _, stderr) = etl(&project.root, &["run"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_full_disk_is_a_clear_error() {
    // A full disk needs a small filesystem to fill: a 1 MiB tmpfs, which only root may mount.
    // Without root (or without mount permission in the container) the test says why and
    // passes: there is no portable way to fake ENOSPC for DuckDB's own writes.
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("tiny");
    std::fs::create_dir_all(&mount_point).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mount_point)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a 1 MiB tmpfs here (needs root and CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount_point.clone());

    let root = dir.path();
    std::fs::write(
        root.join("etl.yaml"),
        format!(
            "project: test\nstaging: {}\npipelines: pipelines\n",
            mount_point.join("staging.duckdb").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    let staging = mount_point.join("staging.duckdb");

    // Fill the staging file past the filesystem's size.
    let output = etl(
        root,
        &[
            "sql",
            "CREATE TABLE filler AS SELECT range AS i, md5(range::VARCHAR) || md5((range * 7)::VARCHAR) AS pad FROM range(400000)",
        ],
    );
    assert!(
        output.0 == 2 || output.0 == 3,
        "filling the disk: exit {}\n{}\n{}",
        output.0,
        output.1,
        output.2
    );
    assert!(!output.2.contains("panicked"), "{}", output.2);
    let said = output.2.to_lowercase();
    assert!(
        said.contains("space") || said.contains("disk") || said.contains("write"),
        "the message says the disk is full: {}",
        output.2
    );

    // Once space is freed (here: nothing to free but the failed write), the file still opens.
    let (code, _, stderr) = etl(root, &["sql", "select 1"]);
    assert!(
        code == 0 || !stderr.contains("panicked"),
        "after a full disk: {stderr}"
    );
    if code == 0 {
        assert!(staging.exists());
    }
}
