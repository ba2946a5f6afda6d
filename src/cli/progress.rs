//! Progress of `etl run` / `plan` / `apply` / `watch` on stderr. On a terminal: one line per
//! stage, redrawn in place at most ten times a second, with the count, a bar when the total is
//! known, and the rate. Elsewhere (a log file, CI, cron): a plain line every ten seconds while
//! a stage runs, so long runs show they are alive and short ones print nothing extra.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::progress::{Progress, ProgressSink};

const REDRAW_EVERY: Duration = Duration::from_millis(100);
const PLAIN_LINE_EVERY: Duration = Duration::from_secs(10);
const BAR_WIDTH: usize = 24;

/// The stage being shown.
struct Current {
    key: (String, String, &'static str),
    started: Instant,
    shown: Instant,
    done: u64,
    total: Option<u64>,
}

pub struct StderrProgress {
    terminal: bool,
    current: Mutex<Option<Current>>,
}

impl StderrProgress {
    pub fn new(terminal: bool) -> StderrProgress {
        StderrProgress {
            terminal,
            current: Mutex::new(None),
        }
    }

    /// Ends the line being redrawn (before the summary is printed).
    pub fn finish(&self) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stage) = current.take() {
            if self.terminal {
                eprintln!("\r\x1b[2K{}", line(&stage));
            }
        }
    }
}

/// `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bar(done: u64, total: u64) -> String {
    let filled = if total == 0 {
        BAR_WIDTH
    } else {
        ((done.min(total) as f64 / total as f64) * BAR_WIDTH as f64).round() as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
}

/// `accounts import · plan [#####---] 5,000/10,000 · 2,000/s`.
fn line(stage: &Current) -> String {
    let (pipeline, direction, name) = &stage.key;
    let seconds = stage.started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        format!(
            "{}/s",
            grouped((stage.done as f64 / seconds).round() as u64)
        )
    } else {
        "-".into()
    };
    let count = match stage.total {
        Some(total) => format!(
            "{} {}/{}",
            bar(stage.done, total),
            grouped(stage.done),
            grouped(total)
        ),
        None => grouped(stage.done),
    };
    format!("{pipeline} {direction} · {name} {count} · {rate} · {seconds:.1} s")
}

impl ProgressSink for StderrProgress {
    fn report(&self, progress: &Progress) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            progress.pipeline.to_string(),
            progress.direction.to_string(),
            progress.stage.as_str(),
        );
        let now = Instant::now();
        if current.as_ref().is_none_or(|c| c.key != key) {
            if let (Some(previous), true) = (current.take(), self.terminal) {
                // The finished stage keeps its last line.
                eprintln!("\r\x1b[2K{}", line(&previous));
            }
            *current = Some(Current {
                key,
                started: now,
                shown: now,
                done: 0,
                total: None,
            });
        }
        let Some(stage) = current.as_mut() else {
            return;
        };
        stage.done = progress.done;
        stage.total = progress.total;
        let every = if self.terminal {
            REDRAW_EVERY
        } else {
            PLAIN_LINE_EVERY
        };
        if now.duration_since(stage.shown) < every {
            return;
        }
        stage.shown = now;
        let mut stderr = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(stderr, "\r\x1b[2K{}", line(stage))
        } else {
            writeln!(stderr, "{}", line(stage))
        };
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands_and_draws_bars() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(
            bar(5, 10),
            format!("[{}{}]", "#".repeat(12), "-".repeat(12))
        );
        assert_eq!(bar(20, 10), format!("[{}]", "#".repeat(24)));
        assert_eq!(bar(0, 0), format!("[{}]", "#".repeat(24)));
    }

    #[test]
    fn a_line_names_the_pipeline_stage_count_and_rate() {
        let stage = Current {
            key: ("accounts".into(), "import".into(), "plan"),
            started: Instant::now() - Duration::from_secs(2),
            shown: Instant::now(),
            done: 4_000,
            total: Some(8_000),
        };
        let text = line(&stage);
        assert!(text.starts_with("accounts import · plan ["), "{text}");
        assert!(text.contains("4,000/8,000"), "{text}");
        assert!(text.contains("/s"), "{text}");
    }
}
