//! What one pipeline did in one direction (`import` or `sync back`): the counts, failures,
//! conflicts and attachment outcomes the summary table and `--json` print.

use super::conflicts::Conflict;
use super::plan::{Action, Planned};

/// What one pipeline did in one direction, for the summary table and `--json`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PipelineSummary {
    pub pipeline: String,
    /// `import` or `sync back`.
    pub direction: &'static str,
    pub extracted: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub linked: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Planned actions (in plan mode nothing is written).
    pub planned_creates: u64,
    pub planned_updates: u64,
    pub source_api_calls: u64,
    pub target_api_calls: u64,
    /// Records that failed, with the target's message.
    pub failures: Vec<(String, String)>,
    /// Attachments and files the extracted records hold in the source (`AttachmentCount` summed).
    pub attachments_found: u64,
    /// Copied to the target in this run.
    pub attachments_copied: u64,
    /// Copied in an earlier run to the same record.
    pub attachments_unchanged: u64,
    /// Not copied because the target cannot hold them (see `attachment_notes`).
    pub attachments_skipped: u64,
    /// Not copied: a listing or a copy failed (per record in `attachment_failures`).
    pub attachments_failed: u64,
    /// Why attachments were skipped, once per reason (e.g. "Halo cannot hold attachments on
    /// Client").
    pub attachment_notes: Vec<String>,
    /// Records whose attachments could not be listed or copied, with the system's message.
    pub attachment_failures: Vec<(String, String)>,
    /// Fields changed on both sides since the last sync, and how each was settled.
    pub conflicts: Vec<Conflict>,
    /// Fields of the source object added, removed or changed in type since the last run.
    pub schema_drift: Vec<String>,
    /// Target records deleted or deactivated because their source record was deleted.
    pub deleted: u64,
    pub deactivated: u64,
    /// Planned deletions and deactivations (in plan mode nothing is written).
    pub planned_removals: u64,
}

impl PipelineSummary {
    /// Counts a planned write, staged as a change row.
    pub fn count_planned(&mut self, action: Action) {
        match action {
            Action::Create => self.planned_creates += 1,
            Action::Update => self.planned_updates += 1,
            _ => {}
        }
    }

    /// Counts a record written as planned; its result status.
    pub fn count_written(&mut self, action: Action) -> &'static str {
        if action == Action::Create {
            self.created += 1;
            "created"
        } else {
            self.updated += 1;
            "updated"
        }
    }

    /// Counts a record whose write failed, with the system's message.
    pub fn fail(&mut self, source_id: &str, message: &str) {
        tracing::warn!(
            pipeline = %self.pipeline,
            direction = self.direction,
            source_id,
            error = message,
            "record failed"
        );
        self.failed += 1;
        self.failures
            .push((source_id.to_string(), message.to_string()));
    }
}

pub(super) fn count_settled(planned: &Planned, summary: &mut PipelineSummary) {
    match planned.action {
        Action::Unchanged => summary.unchanged += 1,
        Action::Link => summary.linked += 1,
        _ => summary.skipped += 1,
    }
}
