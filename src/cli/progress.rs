//! Progress of `etl run` / `plan` / `apply` / `retry` on stderr: one line per pipeline and
//! direction with each stage so far — records extracted, planned (a bar against the records
//! extracted) and written — and their rates. On a terminal the line is redrawn in place at
//! most ten times a second; elsewhere (a log file, CI, cron) it is printed every ten seconds
//! while the pipeline runs, so long runs show they are alive and short ones print nothing.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::progress::{Progress, ProgressSink, Stage};

const REDRAW_EVERY: Duration = Duration::from_millis(100);
const PLAIN_LINE_EVERY: Duration = Duration::from_secs(10);
const BAR_WIDTH: usize = 16;

/// One stage's count so far.
struct StageCount {
    stage: Stage,
    started: Instant,
    done: u64,
    total: Option<u64>,
}

/// The pipeline and direction being shown.
struct Current {
    key: (String, String),
    started: Instant,
    shown: Instant,
    stages: Vec<StageCount>,
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
        if let Some(shown) = current.take() {
            if self.terminal {
                eprintln!("\r\x1b[2K{}", line(&shown));
            }
        }
    }
}

/// `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
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

/// `extract 40,000 3,120/s` or `plan [####----] 5,000/40,000 9,870/s`.
fn stage_text(count: &StageCount) -> String {
    let seconds = count.started.elapsed().as_secs_f64();
    let rate = if seconds >= 0.05 {
        format!(
            " {}/s",
            grouped((count.done as f64 / seconds).round() as u64)
        )
    } else {
        String::new()
    };
    let amount = match count.total {
        Some(total) => format!(
            "{} {}/{}",
            bar(count.done, total),
            grouped(count.done),
            grouped(total)
        ),
        None => grouped(count.done),
    };
    format!("{} {amount}{rate}", count.stage.as_str())
}

/// `accounts import · extract 40,000 3,120/s · plan [...] 5,000/40,000 · 12.8 s`.
fn line(current: &Current) -> String {
    let (pipeline, direction) = &current.key;
    let mut parts = vec![format!("{pipeline} {direction}")];
    parts.extend(current.stages.iter().map(stage_text));
    parts.push(format!("{:.1} s", current.started.elapsed().as_secs_f64()));
    parts.join(" · ")
}

impl ProgressSink for StderrProgress {
    fn report(&self, progress: &Progress) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            progress.pipeline.to_string(),
            progress.direction.to_string(),
        );
        let now = Instant::now();
        if current.as_ref().is_none_or(|c| c.key != key) {
            if let (Some(previous), true) = (current.take(), self.terminal) {
                // The finished direction keeps its last line.
                eprintln!("\r\x1b[2K{}", line(&previous));
            }
            *current = Some(Current {
                key,
                started: now,
                shown: now,
                stages: Vec::new(),
            });
        }
        let Some(shown) = current.as_mut() else {
            return;
        };
        match shown.stages.iter_mut().find(|c| c.stage == progress.stage) {
            Some(count) => {
                count.done = progress.done;
                count.total = progress.total;
            }
            None => shown.stages.push(StageCount {
                stage: progress.stage,
                started: now,
                done: progress.done,
                total: progress.total,
            }),
        }
        let every = if self.terminal {
            REDRAW_EVERY
        } else {
            PLAIN_LINE_EVERY
        };
        if now.duration_since(shown.shown) < every {
            return;
        }
        shown.shown = now;
        let mut stderr = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(stderr, "\r\x1b[2K{}", line(shown))
        } else {
            writeln!(stderr, "{}", line(shown))
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
        assert_eq!(bar(5, 10), format!("[{}{}]", "#".repeat(8), "-".repeat(8)));
        assert_eq!(bar(20, 10), format!("[{}]", "#".repeat(16)));
        assert_eq!(bar(0, 0), format!("[{}]", "#".repeat(16)));
    }

    #[test]
    fn a_line_names_the_pipeline_and_each_stage_with_its_count_and_rate() {
        let two_seconds_ago = Instant::now() - Duration::from_secs(2);
        let current = Current {
            key: ("accounts".into(), "import".into()),
            started: two_seconds_ago,
            shown: Instant::now(),
            stages: vec![
                StageCount {
                    stage: Stage::Extract,
                    started: two_seconds_ago,
                    done: 8_000,
                    total: None,
                },
                StageCount {
                    stage: Stage::Plan,
                    started: two_seconds_ago,
                    done: 4_000,
                    total: Some(8_000),
                },
            ],
        };
        let text = line(&current);
        assert!(
            text.starts_with("accounts import · extract 8,000 4,0"),
            "{text}"
        );
        assert!(
            text.contains(" · plan [########--------] 4,000/8,000 2,0"),
            "{text}"
        );
        assert!(text.ends_with(" s"), "{text}");
    }
}
