//! `etl watch` end to end: the binary against both sandboxes (in this process), cycle after
//! cycle. A record changed in Salesforce between cycles is updated by the next cycle, SIGTERM
//! stops the watcher with exit 0, a second watcher on the same project refuses with exit 2,
//! and the hidden `--cycles N` stops after N cycles.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

use etl::sandbox::server::{self, Options};

mod support;
use support::{etl_output, live_records, project, touch};

/// Hang protection only: a cycle of the accounts pipeline takes a second or two.
const PATIENCE: Duration = Duration::from_secs(180);

struct Watcher {
    child: Child,
    lines: Receiver<String>,
}

impl Watcher {
    fn start(root: &std::path::Path, args: &[&str]) -> Watcher {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
            .arg("--project")
            .arg(root.join("etl.yaml"))
            .arg("watch")
            .args(args)
            .env("SF_SECRET", "etl-sandbox-secret")
            .env("HALO_SECRET", "etl-sandbox-secret")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// The next health line (`--json`).
    fn health(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .expect("a health line from the watcher");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        status.code().unwrap_or(-1)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_change_between_cycles_is_updated_and_sigterm_exits_0() {
    let sandbox = server::start(Options {
        accounts: 6,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    let watcher = Watcher::start(&project.root, &["--every", "2s", "--json"]);

    let first = watcher.health();
    assert_eq!(first["cycle"], 1, "{first}");
    assert_eq!(first["status"], "ok", "{first}");
    assert!(first["run_id"].as_str().unwrap().starts_with('r'));
    let imported = live_records(&sandbox, "Account").len() as u64;
    let import = &first["import"];
    assert_eq!(
        import["created"].as_u64().unwrap() + import["updated"].as_u64().unwrap(),
        imported,
        "{first}"
    );
    assert_eq!(import["failed"], 0);
    assert!(first["next_run_at"].is_string(), "{first}");

    let account = live_records(&sandbox, "Account")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    touch(
        &sandbox,
        &account,
        json!({"Website": "https://watched.example"}),
    );
    // The change lands in the next cycle that starts after the touch (normally the second).
    let mut updated = None;
    for _ in 0..5 {
        let health = watcher.health();
        assert_eq!(health["status"], "ok", "{health}");
        assert_eq!(health["import"]["created"], 0, "{health}");
        if health["import"]["updated"] != 0 {
            updated = Some(health);
            break;
        }
    }
    let updated = updated.expect("a cycle that updates the touched account");
    assert_eq!(updated["import"]["updated"], 1, "{updated}");
    assert_eq!(updated["import"]["failed"], 0, "{updated}");

    assert_eq!(watcher.terminate(), 0, "SIGTERM stops the watcher cleanly");

    // Every cycle is in the run history as a `watch` run.
    let rows = support::staging_rows(
        &project.root,
        "SELECT count(*) AS n FROM runs WHERE command = 'watch' AND status = 'ok'",
    );
    assert!(rows[0]["n"].as_i64().unwrap() >= 2, "{rows:?}");
}

#[test]
fn a_second_watcher_refuses_and_cycles_stop_the_watch() {
    let sandbox = server::start(Options {
        accounts: 4,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    let watcher = Watcher::start(&project.root, &["--every", "1h", "--json"]);
    let first = watcher.health();
    assert_eq!(first["status"], "ok", "{first}");

    let (code, stdout, stderr) =
        etl_output(&project.root, &["watch", "--every", "1s", "--cycles", "1"]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("already watching this project") && stderr.contains("watch.lock"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "no cycle ran: {stdout}");

    // Waiting for its next tick, the first watcher stops at once.
    assert_eq!(watcher.terminate(), 0);

    // The lock is free again; `--cycles 2` runs two cycles and exits 0.
    let (code, stdout, stderr) = etl_output(
        &project.root,
        &["watch", "--every", "1s", "--cycles", "2", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let cycles: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cycles.len(), 2, "{stdout}");
    assert_eq!(cycles[1]["cycle"], 2);
    assert_eq!(cycles[1]["import"]["created"], 0, "{stdout}");
    assert_eq!(cycles[1]["import"]["updated"], 0, "{stdout}");
    assert!(
        cycles[1]["next_run_at"].is_null(),
        "the last cycle: {stdout}"
    );
}

#[test]
fn a_bad_interval_is_refused() {
    let sandbox = server::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    let (code, _, stderr) = etl_output(&project.root, &["watch", "--every", "5 minutes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not an interval"), "{stderr}");
    let (code, _, stderr) = etl_output(&project.root, &["watch", "--every", "0s"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("longer than 0s"), "{stderr}");
}

#[test]
fn cron_schedules_are_checked_and_a_cron_watch_waits_for_its_first_time() {
    let sandbox = server::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .unwrap();
    let project = project(&sandbox, &["accounts"]);
    for (args, expected) in [
        (
            vec!["watch", "--cron", "*/5 * * *"],
            "has 4 fields; a cron schedule has 5",
        ),
        (
            vec!["watch", "--cron", "0 25 * * *"],
            "out of range for the hour field (0-23)",
        ),
        (vec!["watch", "--cron", "0 0 30 2 *"], "never fires"),
        (
            vec!["watch", "--every", "5m", "--cron", "*/5 * * * *"],
            "cannot be used with",
        ),
        (vec!["watch"], "--every <INTERVAL>"),
    ] {
        let (code, stdout, stderr) = etl_output(&project.root, &args);
        assert_eq!(code, 2, "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "no cycle ran: {stdout}");
    }

    // New Year's midnight is far off: the watcher says when it will run, runs nothing yet,
    // and SIGTERM stops it at once with exit 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .arg("--project")
        .arg(project.root.join("etl.yaml"))
        .args(["watch", "--cron", "0 0 1 JAN *"])
        .env("SF_SECRET", "etl-sandbox-secret")
        .env("HALO_SECRET", "etl-sandbox-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let first_run = loop {
        let line = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no `first run at` line: {seen:?}"));
        if let Some(at) = line.strip_prefix("first run at ") {
            break at.to_string();
        }
        seen.push(line);
    };
    assert!(
        seen.iter()
            .any(|l| l.contains("on the cron schedule `0 0 1 JAN *` (UTC)")),
        "{seen:?}"
    );
    assert!(first_run.ends_with("-01-01 00:00:00Z"), "{first_run}");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty(), "no cycle ran");
    let runs = support::staging_rows(
        &project.root,
        "SELECT count(*) AS n FROM runs WHERE command = 'watch'",
    );
    assert_eq!(runs[0]["n"], 0, "{runs:?}");
}
