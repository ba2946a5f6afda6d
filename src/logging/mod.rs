//! Structured logs: the `tracing` subscriber the `etl` binary installs at start-up, from the
//! global `-v` / `-q` / `--log-format` flags and `RUST_LOG`. Logs go to stderr, one event per
//! line (text for people, JSON lines for log shippers), always through the [`redact`] writer, so
//! the commands' own output on stdout stays untouched and machine-readable.
//!
//! Levels: `warn` by default (retries, rate-limit pauses, failed records), `-q` errors only,
//! `-v` info (runs, pipelines, stages with counts and durations), `-vv` debug (every HTTP
//! request, token renewals), `-vvv` trace. `RUST_LOG`, when set, replaces the level
//! (e.g. `RUST_LOG=etl=debug`, `RUST_LOG=etl::halo=trace`).

pub mod redact;

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `2026-11-28T18:00:00.000Z  INFO etl::engine::run: pipeline done pipeline=accounts …`
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `span`, `spans`.
    Json,
}

/// What the command line asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// How many `-v` were given.
    pub verbose: u8,
    /// `-q`: errors only (and no progress lines from the commands).
    pub quiet: bool,
    pub format: Format,
}

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether `-q` was given: commands leave out their progress lines on stderr (their output on
/// stdout and their errors stay).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether stderr is for people: not under `--log-format json`, where it carries the JSON
/// lines for a log shipper and the commands' text report lines (failed records, drift,
/// conflicts) are left to the log events that say the same.
pub fn human_stderr() -> bool {
    !JSON.load(Ordering::Relaxed)
}

/// Whether commands print their progress lines on stderr: neither `-q` nor JSON logs.
pub fn progress_lines() -> bool {
    human_stderr() && !quiet()
}

/// The filter for these settings: `RUST_LOG` when it is set and not empty, else our crate at
/// the flags' level and everything else at `warn` (or `error` under `-q`).
pub fn filter(settings: &Settings, rust_log: Option<&str>) -> EnvFilter {
    if let Some(directives) = rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        return EnvFilter::builder().parse_lossy(directives);
    }
    let ours = if settings.quiet {
        "error"
    } else {
        match settings.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let others = if settings.quiet { "error" } else { "warn" };
    EnvFilter::builder().parse_lossy(format!("{others},etl={ours}"))
}

/// Installs the subscriber for the process. A second call (tests running `cli::main` twice in
/// one process) keeps the first one.
pub fn init(settings: Settings) {
    QUIET.store(settings.quiet, Ordering::Relaxed);
    JSON.store(settings.format == Format::Json, Ordering::Relaxed);
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(&settings, rust_log.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(redact::Redacting::new(std::io::stderr));
    let installed = match settings.format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().try_init(),
    };
    // Already installed: the first settings stay, which is what a test running twice expects.
    let _ = installed;
}

/// The path of a URL for a log line: no scheme, host or query string (a query may carry
/// record data or, in a token URL, more than that).
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = match (url.contains("://"), after_scheme.find('/')) {
        (true, Some(slash)) => &after_scheme[slash..],
        (true, None) => "/",
        (false, _) => after_scheme,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_leave_out_host_and_query() {
        assert_eq!(
            path_of("http://127.0.0.1:8080/services/data/v62.0/query?q=SELECT+Id"),
            "/services/data/v62.0/query"
        );
        assert_eq!(path_of("https://halo.example.com"), "/");
        assert_eq!(path_of("Users/12?includedetails=true"), "Users/12");
    }

    /// The filter's directives, sorted (its display order is its own).
    fn shown(settings: Settings, rust_log: Option<&str>) -> String {
        let shown = filter(&settings, rust_log).to_string();
        let mut directives: Vec<&str> = shown.split(',').collect();
        directives.sort_by_key(|d| !d.contains('='));
        directives.join(",")
    }

    #[test]
    fn flags_choose_our_level_and_keep_others_at_warn() {
        let base = Settings::default();
        assert_eq!(shown(base, None), "etl=warn,warn");
        let verbose = |n| Settings { verbose: n, ..base };
        assert_eq!(shown(verbose(1), None), "etl=info,warn");
        assert_eq!(shown(verbose(2), None), "etl=debug,warn");
        assert_eq!(shown(verbose(3), None), "etl=trace,warn");
        assert_eq!(shown(verbose(7), None), "etl=trace,warn");
        let quiet = Settings {
            quiet: true,
            verbose: 2,
            ..base
        };
        assert_eq!(shown(quiet, None), "etl=error,error");
    }

    #[test]
    fn rust_log_replaces_the_flags() {
        let settings = Settings {
            verbose: 3,
            ..Settings::default()
        };
        assert_eq!(shown(settings, Some("etl=debug")), "etl=debug");
        assert_eq!(shown(settings, Some("  ")), "etl=trace,warn");
    }
}
