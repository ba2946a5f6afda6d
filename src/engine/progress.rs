//! How far a run has got, for whoever shows it. The engine reports each stage's count as it
//! moves (records extracted, planned, written; files copied) to a [`ProgressSink`] the caller
//! hands in through `RunOptions`; it knows nothing of terminals or formats.

use std::sync::Arc;

/// A stage of one pipeline's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Records read from the source (and staged, transformed).
    Extract,
    /// Records compared with the id map.
    Plan,
    /// Records written to the target, failed ones included.
    Load,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Extract => "extract",
            Stage::Plan => "plan",
            Stage::Load => "load",
        }
    }
}

/// One report: `done` records so far in this stage, of `total` when it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    pub pipeline: &'a str,
    /// `import` or `sync back`.
    pub direction: &'a str,
    pub stage: Stage,
    pub done: u64,
    pub total: Option<u64>,
}

/// Receives progress reports; called on the run's thread, often, so it should be cheap.
pub trait ProgressSink: Send + Sync {
    fn report(&self, progress: &Progress);
}

/// The sink a run reports to, or none.
#[derive(Clone, Default)]
pub struct ProgressReporter(Option<Arc<dyn ProgressSink>>);

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressReporter(on)"
        } else {
            "ProgressReporter(off)"
        })
    }
}

impl ProgressReporter {
    pub fn new(sink: Arc<dyn ProgressSink>) -> ProgressReporter {
        ProgressReporter(Some(sink))
    }

    pub fn report(
        &self,
        pipeline: &str,
        direction: &str,
        stage: Stage,
        done: u64,
        total: Option<u64>,
    ) {
        if let Some(sink) = &self.0 {
            sink.report(&Progress {
                pipeline,
                direction,
                stage,
                done,
                total,
            });
        }
    }
}
