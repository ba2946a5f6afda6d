//! `etl watch [PATH...] --every 5m` (or `--cron "*/5 * * * *"`, UTC, see `cron.rs`): runs the
//! pipelines on a schedule, one cycle at a time, each
//! cycle through `etl run`'s own path (recorded in `runs` as `watch`). It takes the lock file
//! `watch.lock` beside the staging file so that a second watcher on the same project refuses
//! (exit 2), starts the sandbox once for the whole watch when `etl.yaml` points at it and
//! nothing answers, prints one health line per cycle (time, run id, created / updated / failed
//! per direction, duration, next run), logs a failing cycle and goes on to the next tick, and
//! on SIGINT / SIGTERM finishes the cycle under way and exits 0.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::json;

use super::run::{self, Report, RunArgs};
use super::EXIT_CONFIG;
use crate::config;
use crate::cron::Schedule;
use crate::engine::{Mode, PipelineSummary};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// How often to run: a number and a unit, `30s`, `5m`, `1h` (or `1d`). The first cycle
    /// runs at once.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_every, required_unless_present = "cron", conflicts_with = "cron")]
    pub every: Option<Duration>,
    /// When to run instead, as a five-field cron schedule in UTC (minute hour day-of-month
    /// month day-of-week), e.g. `"*/5 * * * *"` or `"0 6 * * MON-FRI"`. The first cycle waits
    /// for the first time on the schedule.
    #[arg(long, value_name = "SCHEDULE", value_parser = parse_cron)]
    pub cron: Option<Schedule>,
    /// Stop after this many cycles.
    #[arg(long, hide = true, value_name = "N")]
    pub cycles: Option<u64>,
}

fn parse_every(text: &str) -> Result<Duration, String> {
    match config::rules::parse_duration(text) {
        Some(0) => Err("the interval must be longer than 0s".into()),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(format!(
            "`{text}` is not an interval: write a number and a unit, e.g. 30s, 5m, 1h"
        )),
    }
}

fn parse_cron(text: &str) -> Result<Schedule, String> {
    Schedule::parse(text)
}

/// When the cycles start.
enum Cadence {
    /// Every interval from the start (ticks a long cycle overran are skipped).
    Every(Duration),
    Cron(Schedule),
}

impl Cadence {
    /// How long to wait, `elapsed` after the first tick, for the next one; `tick` counts the
    /// interval's ticks.
    fn wait(&self, elapsed: Duration, tick: &mut u32) -> Duration {
        match self {
            Cadence::Every(every) => {
                while *every * *tick <= elapsed {
                    *tick += 1;
                }
                *every * *tick - elapsed
            }
            Cadence::Cron(schedule) => {
                let now = crate::civil::now_millis();
                let next = schedule.next_after(now).unwrap_or(now + 366 * 86_400_000);
                Duration::from_millis((next - now).max(0) as u64)
            }
        }
    }
}

pub fn run(project: &Path, args: WatchArgs) -> i32 {
    let workspace = config::load(project, &args.run.paths, &config::process_env);
    for diagnostic in workspace.diagnostics.iter().filter(|d| d.is_error()) {
        eprintln!("{}", diagnostic.render(None));
    }
    if workspace.has_errors() {
        return EXIT_CONFIG;
    }
    let lock_path = workspace
        .staging_path()
        .parent()
        .map(|dir| dir.join("watch.lock"))
        .unwrap_or_else(|| PathBuf::from("watch.lock"));
    let _lock = match take_lock(&lock_path) {
        Ok(lock) => lock,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_CONFIG;
        }
    };
    // The handlers go in before the first line is printed: whoever reads it may signal at once.
    let stop = match stop_signals() {
        Ok(stop) => stop,
        Err(message) => {
            eprintln!("error: cannot watch for SIGINT / SIGTERM: {message}");
            return 1;
        }
    };
    // Started once for the whole watch; each cycle then finds it answering.
    let _sandbox = if args.run.no_sandbox {
        None
    } else {
        match run::start_sandbox_if_needed(&workspace) {
            Ok(sandbox) => sandbox,
            Err(code) => return code,
        }
    };
    drop(workspace);
    let cadence = match (args.every, args.cron.clone()) {
        (Some(every), _) => Cadence::Every(every),
        (None, Some(schedule)) => Cadence::Cron(schedule),
        (None, None) => {
            eprintln!("error: say when to run: --every 5m or --cron \"*/5 * * * *\"");
            return EXIT_CONFIG;
        }
    };
    if !args.run.json {
        let when = match &cadence {
            Cadence::Every(every) => format!("a run every {}", describe(*every)),
            Cadence::Cron(schedule) => format!("runs on the cron schedule `{schedule}` (UTC)"),
        };
        eprintln!("watching: {when}; Ctrl-C (or SIGTERM) stops after the cycle under way");
    }
    let first = Instant::now();
    let mut tick = 0u32;
    let mut cycle = 0u64;
    let mut stopping = false;
    // On a cron schedule the first cycle waits for the schedule's first time.
    if matches!(cadence, Cadence::Cron(_)) {
        let wait = cadence.wait(first.elapsed(), &mut tick);
        if !args.run.json {
            eprintln!(
                "first run at {}",
                clock(crate::civil::now_millis() + wait.as_millis() as i64)
            );
        }
        match stop.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if !args.run.json {
                    eprintln!("watch stopped before its first cycle");
                }
                return 0;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    loop {
        cycle += 1;
        let started_at = crate::civil::now_millis();
        let started = Instant::now();
        let mut report = Report::default();
        let cycle_args = RunArgs {
            quiet: true,
            command: Some("watch"),
            ..args.run.clone()
        };
        let code = run::run_reporting(project, cycle_args, Mode::Load, None, &mut report);
        let took = started.elapsed();
        stopping |= stop.try_recv().is_ok();
        let last = args.cycles.is_some_and(|n| cycle >= n);
        // The next tick of the schedule that is still ahead (ticks a long cycle overran are
        // skipped, so runs never overlap and never bunch up).
        let wait = cadence.wait(first.elapsed(), &mut tick);
        let next_at =
            (!stopping && !last).then(|| crate::civil::now_millis() + wait.as_millis() as i64);
        print_health(&args.run, cycle, started_at, &report, code, took, next_at);
        if stopping || last {
            break;
        }
        match stop.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    if !args.run.json {
        eprintln!(
            "watch stopped after {cycle} cycle{}",
            if cycle == 1 { "" } else { "s" }
        );
    }
    0
}

/// Created, updated and failed records of one direction, summed over the pipelines.
fn totals(summaries: &[PipelineSummary], direction: &str) -> (u64, u64, u64) {
    summaries
        .iter()
        .filter(|s| s.direction == direction)
        .fold((0, 0, 0), |(c, u, f), s| {
            (
                c + s.created,
                u + s.updated,
                f + s.failed + s.attachments_failed,
            )
        })
}

/// One line per cycle: stdout, as text or (with `--json`) one JSON object.
fn print_health(
    args: &RunArgs,
    cycle: u64,
    started_at: i64,
    report: &Report,
    code: i32,
    took: Duration,
    next_at: Option<i64>,
) {
    let import = totals(&report.summaries, "import");
    let back = totals(&report.summaries, "sync back");
    let status = match (&report.run_id, code) {
        (None, _) => format!("error (exit {code}, see above)"),
        (Some(_), _) if report.status == "error" => format!("error (exit {code}, see above)"),
        (Some(_), _) => report.status.clone(),
    };
    if args.json {
        let counts = |(created, updated, failed): (u64, u64, u64)| json!({"created": created, "updated": updated, "failed": failed});
        println!(
            "{}",
            json!({
                "time": clock(started_at),
                "cycle": cycle,
                "run_id": report.run_id,
                "status": status,
                "exit_code": code,
                "import": counts(import),
                "sync_back": counts(back),
                "duration_ms": took.as_millis() as u64,
                "next_run_at": next_at.map(clock),
                "pipelines": report.summaries,
            })
        );
    } else {
        println!(
            "{} cycle {cycle}: run {} {status}; import {} created, {} updated, {} failed; sync back {} created, {} updated, {} failed; took {:.1} s; next run {}",
            clock(started_at),
            report.run_id.as_deref().unwrap_or("(none)"),
            import.0,
            import.1,
            import.2,
            back.0,
            back.1,
            back.2,
            took.as_secs_f64(),
            next_at.map_or("none (stopping)".to_string(), |at| format!("at {}", clock(at)))
        );
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

/// `2026-11-28 14:20:34Z` (UTC).
fn clock(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02}Z",
        crate::civil::format_date(days),
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn describe(every: Duration) -> String {
    let seconds = every.as_secs();
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Takes the watch lock (held until the process ends, however it ends) and writes our pid
/// into it; a lock another process holds is refused with its pid.
fn take_lock(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open the watch lock {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let pid = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(format!(
                "another `etl watch`{pid} is already watching this project (lock {}): stop it first; two watchers would run the same pipelines twice",
                path.display()
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = writeln!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}

/// SIGINT and SIGTERM, installed before this returns: the first one is sent on the channel
/// (the watch stops after the cycle under way); a second one stops at once (exit 130).
fn stop_signals() -> Result<Receiver<()>, String> {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("watch-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(error.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (mut interrupt, mut terminate) =
                        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                            (Ok(i), Ok(t)) => (i, t),
                            (Err(e), _) | (_, Err(e)) => {
                                let _ = ready_tx.send(Err(e.to_string()));
                                return;
                            }
                        };
                    let _ = ready_tx.send(Ok(()));
                    let mut seen = 0;
                    loop {
                        tokio::select! {
                            _ = interrupt.recv() => {}
                            _ = terminate.recv() => {}
                        }
                        seen += 1;
                        if seen == 1 {
                            eprintln!("stopping: the cycle under way finishes first (signal again to stop now)");
                            let _ = stop_tx.send(());
                        } else {
                            eprintln!("stopped at once: the batches loaded so far are kept");
                            std::process::exit(130);
                        }
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = ready_tx.send(Ok(()));
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = stop_tx.send(());
                    let _ = tokio::signal::ctrl_c().await;
                    std::process::exit(130);
                }
            });
        })
        .map_err(|e| e.to_string())?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(stop_rx),
        Ok(Err(message)) => Err(message),
        Err(_) => Err("the signal thread ended".into()),
    }
}
