//! The crash suite: `etl run` killed with SIGKILL at random points of a load (before its first
//! write, between batches, inside one, during the sync back, after it finished), then run again
//! to completion, must leave both sandboxes exactly as one uninterrupted run does: every Halo
//! customer, user, ticket and attachment and every Salesforce account, contact and opportunity
//! once — no duplicate, nothing missing — and the same links in the id map.
//!
//! Each trial gets its own sandbox, seeded like the reference one, and its own staging file.
//! Writes are slowed by an injected latency so the run lasts long enough to be cut anywhere.
//! Kill points come from a seeded generator; the seed is printed, and `CRASH_SEED=<seed>`
//! replays the same points. `CRASH_TRIALS` (default 30, or 15 when `CI` is set) and
//! `CRASH_THREADS` (default 2: trials run side by side, each with its own sandbox) size it.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etl::sandbox::faults::FaultPlan;
use etl::sandbox::server::{self, Options, Running};

mod reliability;
mod support;
use reliability::{
    etl_run, project, project_with, run_to_completion, seed_from_env, EndState, Rng,
};

/// Few enough records that a trial takes a couple of seconds; enough for several batches in
/// every pipeline and direction.
const ACCOUNTS: u64 = 6;
/// Records per write call: small, so a load is many calls to cut between.
const BATCH_SIZE: usize = 2;

/// Writes on both sides wait 40 ms, every other call 5 ms: the load is most of the run, and
/// a kill lands inside a write as often as between two.
fn slow_sandbox() -> Running {
    let plan: FaultPlan = serde_saphyr::from_str(
        "faults:\n  - { route: \"*\", methods: [POST, PATCH, DELETE], kind: latency, latency_ms: 40 }\n  - { route: \"*\", kind: latency, latency_ms: 5 }\n",
    )
    .unwrap();
    server::start(Options {
        accounts: ACCOUNTS,
        faults: Some(plan),
        ..Options::default()
    })
    .unwrap()
}

/// API calls each sandbox has answered: Halo requests, Salesforce API usage.
fn calls(sandbox: &Running) -> (u64, u64) {
    let halo = etl::sandbox::halo::state::lock(&sandbox.halo_state()).requests;
    let salesforce = sandbox
        .salesforce_state()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .api_used;
    (halo, salesforce)
}

struct Trial {
    number: usize,
    kill_after_ms: u64,
    /// The run had already ended when the kill came.
    finished_first: bool,
    /// Records written (created on either side) before the kill.
    written_before_kill: i64,
    calls_before_kill: (u64, u64),
    problems: Vec<String>,
}

/// Starts a run, kills it `kill_after_ms` after it started, runs it again to completion, and
/// compares both sandboxes with the reference end state.
fn trial(number: usize, kill_after_ms: u64, seeded: usize, reference: &EndState) -> Trial {
    let sandbox = slow_sandbox();
    let project = project(&sandbox, BATCH_SIZE);
    let mut child = etl_run(&project.root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(kill_after_ms));
    let finished_first = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    let calls_before_kill = calls(&sandbox);
    let written_before_kill =
        EndState::read_records(&sandbox).record_count() as i64 - seeded as i64;

    let mut problems = run_to_completion(&project.root);
    let end = EndState::read(&sandbox, &project.root);
    problems.extend(end.differences(reference));
    Trial {
        number,
        kill_after_ms,
        finished_first,
        written_before_kill,
        calls_before_kill,
        problems,
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
        })
        .unwrap_or(default)
}

#[test]
fn runs_killed_at_random_points_end_like_an_uninterrupted_run() {
    // 30 trials take 75-100 s on a busy 2-core machine; CI, which runs every suite, does 15.
    let default_trials = if std::env::var_os("CI").is_some() {
        15
    } else {
        30
    };
    let trials = env_number("CRASH_TRIALS", default_trials);
    let threads = env_number("CRASH_THREADS", 2).max(1);
    let seed = seed_from_env("CRASH_SEED");
    let started = Instant::now();

    // The reference: one uninterrupted run on a sandbox seeded like every trial's.
    let sandbox = slow_sandbox();
    let seeded = EndState::read_records(&sandbox).record_count();
    let project = project(&sandbox, BATCH_SIZE);
    let clock = Instant::now();
    let problems = run_to_completion(&project.root);
    let full_ms = clock.elapsed().as_millis() as u64;
    assert!(problems.is_empty(), "the reference run: {problems:?}");
    let reference = EndState::read(&sandbox, &project.root);
    let full_calls = calls(&sandbox);
    assert!(
        reference.record_count() > seeded && reference.link_count() > 0,
        "the reference run wrote nothing"
    );
    drop(sandbox);
    eprintln!(
        "crash suite: seed {seed} (CRASH_SEED={seed} replays these kill points); {trials} trials on {threads} threads; \
         an uninterrupted run takes {full_ms} ms, {} Halo / {} Salesforce calls, writes {} records and {} links",
        full_calls.0,
        full_calls.1,
        reference.record_count() - seeded,
        reference.link_count()
    );

    // Kill points over the whole run, from before the first call to after the last.
    let mut rng = Rng(seed);
    let kill_points: Vec<u64> = (0..trials).map(|_| rng.between(0, full_ms + 1)).collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                let Some(&kill_after_ms) = kill_points.get(number) else {
                    break;
                };
                let done = trial(number, kill_after_ms, seeded, &reference);
                results.lock().unwrap().push(done);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|t| t.number);

    let mut report = String::new();
    for t in &results {
        report.push_str(&format!(
            "trial {:2}: killed at {:4} ms{}, after {:3} Halo / {:3} Salesforce calls and {:3} records written: {}\n",
            t.number,
            t.kill_after_ms,
            if t.finished_first { " (already done)" } else { "" },
            t.calls_before_kill.0,
            t.calls_before_kill.1,
            t.written_before_kill,
            if t.problems.is_empty() {
                "rerun ends like the uninterrupted run".to_string()
            } else {
                t.problems.join("; ")
            }
        ));
    }
    let failed = results.iter().filter(|t| !t.problems.is_empty()).count();
    let mid_load = results
        .iter()
        .filter(|t| {
            !t.finished_first
                && t.written_before_kill > 0
                && t.written_before_kill < (reference.record_count() - seeded) as i64
        })
        .count();
    eprintln!(
        "{report}crash suite: {} trials, {mid_load} killed with part of the records written, {failed} failed, {:.1} s in all (seed {seed})",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        failed, 0,
        "{failed} of {} trials did not end like the uninterrupted run (CRASH_SEED={seed} replays them):\n{report}",
        results.len()
    );
}

/// The window the random trials found a duplicate in: a Halo ticket created in Salesforce by
/// the sync back, the run killed before the new Id was recorded on the ticket and in the id
/// map. Salesforce reads are slowed so the kill lands in that window every time: after the
/// create, during its read-back. The rerun must link the record, not create it again.
fn killed_right_after_a_sync_back_create(pipelines: &[&str], object: &str) {
    let start = || {
        let plan: FaultPlan = serde_saphyr::from_str(
            "faults:\n  - { route: \"/services/data/*/query*\", kind: latency, latency_ms: 150 }\n",
        )
        .unwrap();
        server::start(Options {
            accounts: ACCOUNTS,
            faults: Some(plan),
            ..Options::default()
        })
        .unwrap()
    };
    let created = |sandbox: &Running| support::live_records(sandbox, object).len();

    let sandbox = start();
    let reference_project = project_with(&sandbox, pipelines, BATCH_SIZE);
    let seeded = created(&sandbox);
    assert!(run_to_completion(&reference_project.root).is_empty());
    assert!(
        created(&sandbox) > seeded,
        "the sync back created no {object}"
    );
    let reference = EndState::read(&sandbox, &reference_project.root);
    drop(sandbox);

    let sandbox = start();
    let killed = project_with(&sandbox, pipelines, BATCH_SIZE);
    let mut child = etl_run(&killed.root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while created(&sandbox) == seeded {
        assert!(
            Instant::now() < deadline,
            "the sync back never created a {object}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the sync back created a {object}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();

    let problems = run_to_completion(&killed.root);
    assert!(problems.is_empty(), "{problems:?}");
    let differences = EndState::read(&sandbox, &killed.root).differences(&reference);
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Opportunities import first: the rerun's import meets the new Opportunity before the sync
/// back meets its ticket, and links the two by `halo.match: [summary, client_id]`.
#[test]
fn a_run_killed_right_after_a_sync_back_create_does_not_create_the_opportunity_twice() {
    killed_right_after_a_sync_back_create(
        &["accounts", "contacts", "opportunities"],
        "Opportunity",
    );
}

/// Cases only sync back: the rerun links the ticket to its Case by `sync_back.match`.
#[test]
fn a_run_killed_right_after_a_sync_back_create_does_not_create_the_case_twice() {
    killed_right_after_a_sync_back_create(&["accounts", "contacts", "cases"], "Case");
}
