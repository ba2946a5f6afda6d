//! What `etl run`, `etl plan` and `etl apply` print besides `--json`: the summary table per
//! pipeline and direction with each failed record and conflict, the attachments' outcomes, the
//! plan's review table, and the Salesforce calls applying a plan will use.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use crate::config;
use crate::engine::{Mode, PipelineSummary};
use crate::staging::Store;

/// One column of the summary table: its header and how a pipeline's summary fills it.
type SummaryColumn = (&'static str, fn(&PipelineSummary) -> String);

/// The summary table's columns: what was done (`etl run`, `etl apply`) or would be (`etl plan`).
fn summary_columns(mode: Mode) -> Vec<SummaryColumn> {
    let mut columns: Vec<SummaryColumn> = vec![
        ("pipeline", |s| s.pipeline.clone()),
        ("direction", |s| s.direction.to_string()),
        ("extracted", |s| s.extracted.to_string()),
    ];
    match mode {
        Mode::Load => columns.extend([
            (
                "created",
                (|s| s.created.to_string()) as fn(&PipelineSummary) -> String,
            ),
            ("updated", |s| s.updated.to_string()),
            ("unchanged", |s| s.unchanged.to_string()),
            ("linked", |s| s.linked.to_string()),
            ("skipped", |s| s.skipped.to_string()),
            ("removed", |s| (s.deleted + s.deactivated).to_string()),
            ("failed", |s| s.failed.to_string()),
            ("conflicts", records_in_conflict),
        ]),
        Mode::Plan => columns.extend([
            (
                "create",
                (|s| s.planned_creates.to_string()) as fn(&PipelineSummary) -> String,
            ),
            ("update", |s| s.planned_updates.to_string()),
            ("unchanged", |s| s.unchanged.to_string()),
            ("link", |s| s.linked.to_string()),
            ("skip", |s| s.skipped.to_string()),
            ("remove", |s| s.planned_removals.to_string()),
            ("conflicts", records_in_conflict),
        ]),
    }
    columns.push(("API calls (SF/Halo)", |s| {
        format!("{}/{}", s.source_api_calls, s.target_api_calls)
    }));
    columns
}

/// The records with a field changed on both sides (counted among `unchanged` or `skipped`
/// when their policy wrote neither side), each once however many of its fields conflict.
fn records_in_conflict(summary: &PipelineSummary) -> String {
    let records: std::collections::HashSet<&str> = summary
        .conflicts
        .iter()
        .map(|c| c.source_id.as_str())
        .collect();
    records.len().to_string()
}

pub(super) fn print_summary(summaries: &[PipelineSummary], mode: Mode) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let columns = summary_columns(mode);
    table.set_header(columns.iter().map(|(header, _)| *header));
    for summary in summaries {
        table.add_row(columns.iter().map(|(_, cell)| cell(summary)));
    }
    println!("{table}");
}

/// How many of a list (failed records, conflicts, failed attachments) are printed on stderr;
/// past that a line says how many more there are and where to find them all.
const SHOWN: usize = 20;

/// Says how many of `total` were not printed, when some were not, and where they all are.
fn print_rest(total: usize, what: &str, where_all_are: impl FnOnce() -> String) {
    if total > SHOWN {
        eprintln!("… and {} more {what}: {}", total - SHOWN, where_all_are());
    }
}

/// A pipeline's failed records and schema drift, a line each on stderr: what needs a person,
/// said even by a quiet run.
pub(super) fn print_failures_and_drift(summary: &PipelineSummary, run_id: &str) {
    for (id, message) in summary.failures.iter().take(SHOWN) {
        eprintln!(
            "failed {} ({}) {id}: {message}",
            summary.pipeline, summary.direction
        );
    }
    print_rest(summary.failures.len(), "failed records", || {
        format!("`etl runs show {run_id}` lists them all")
    });
    for change in &summary.schema_drift {
        eprintln!("schema drift {}: {change}", summary.pipeline);
    }
}

/// A pipeline's conflicts, a line each on stderr with both values and what was done.
pub(super) fn print_conflicts(summary: &PipelineSummary, run_id: &str) {
    let show =
        |v: &Option<serde_json::Value>| v.as_ref().map_or("(empty)".to_string(), |v| v.to_string());
    for c in summary.conflicts.iter().take(SHOWN) {
        eprintln!(
            "conflict {} {} / Halo {} field {}: last synced {}, Salesforce {}, Halo {} ({})",
            summary.pipeline,
            c.source_id,
            c.target_id,
            c.field,
            show(&c.last_synced),
            show(&c.source_value),
            show(&c.target_value),
            match c.resolution {
                "source_wins" => "Salesforce's value kept",
                "target_wins" => "Halo's value kept",
                _ => "neither written; change one side to match the other",
            }
        );
    }
    print_rest(summary.conflicts.len(), "conflicts", || {
        format!(
            "`etl sql \"SELECT * FROM {}_conflicts WHERE run_id = '{run_id}'\"`",
            tables_of(summary)
        )
    });
}

/// A pipeline's attachments that could not be copied, a line each on stderr.
pub(super) fn print_attachment_failures(summary: &PipelineSummary, run_id: &str) {
    for (id, message) in summary.attachment_failures.iter().take(SHOWN) {
        eprintln!("attachment failed {} {id}: {message}", summary.pipeline);
    }
    print_rest(
        summary.attachment_failures.len(),
        "failed attachments",
        || {
            format!(
            "`etl sql \"SELECT * FROM {}_attachments WHERE run_id = '{run_id}' AND status = 'failed'\"`",
            summary.pipeline
        )
        },
    );
}

/// A pipeline's attachments, under the summary: found, copied, already there, skipped (with
/// the reason, once) and failed (per record, with the system's message).
pub(super) fn print_attachments(s: &PipelineSummary, mode: Mode, run_id: &str) {
    let any = s.attachments_found
        + s.attachments_copied
        + s.attachments_unchanged
        + s.attachments_skipped
        + s.attachments_failed;
    if any == 0 {
        return;
    }
    if mode == Mode::Plan {
        eprintln!("{}: {} attachments found", s.pipeline, s.attachments_found);
        return;
    }
    // Files of records that were not loaded (deselected, held back, failed) are found but
    // neither copied nor skipped: they go with their record on a later run.
    let settled = s.attachments_copied
        + s.attachments_unchanged
        + s.attachments_skipped
        + s.attachments_failed;
    let not_loaded = match s.attachments_found.saturating_sub(settled) {
        0 => String::new(),
        left => format!(", {left} left with records not loaded"),
    };
    eprintln!(
        "{}: attachments: {} found, {} copied, {} already copied, {} skipped, {} failed{not_loaded}",
        s.pipeline,
        s.attachments_found,
        s.attachments_copied,
        s.attachments_unchanged,
        s.attachments_skipped,
        s.attachments_failed
    );
    for note in &s.attachment_notes {
        eprintln!("{}: attachments skipped: {note}", s.pipeline);
    }
    print_attachment_failures(s, run_id);
}

/// The staging tables' prefix of a summary's direction: `<p>` or `<p>_back`.
pub(super) fn tables_of(summary: &PipelineSummary) -> String {
    match summary.direction {
        "sync back" => format!("{}_back", summary.pipeline),
        _ => summary.pipeline.clone(),
    }
}

/// Rows shown per pipeline in the plan's review table; the rest are in `<p>_changes`.
pub(super) const REVIEW_ROWS: usize = 50;

/// The plan's review table, like the guide's review screen: one row per record that would
/// change, with its action, a label, and the changed fields as before → after.
pub(super) fn print_review(store: &Store, run_id: &str, summaries: &[PipelineSummary]) {
    for summary in summaries {
        let pending = summary.planned_creates
            + summary.planned_updates
            + summary.linked
            + summary.skipped
            + summary.planned_removals;
        if pending == 0 {
            continue;
        }
        // `AttachmentCount` is staged in the extracted record when the pipeline copies them.
        let sql = format!(
            "SELECT c.source_id, c.action, coalesce(c.reason, ''), c.changed_fields::VARCHAR, c.after::VARCHAR,
                    (SELECT json_extract_string(e.record, '$.AttachmentCount') FROM \"{p}_extracted\" e
                     WHERE e.run_id = c.run_id AND e.source_id = c.source_id LIMIT 1)
             FROM \"{p}_changes\" c WHERE c.run_id = ? AND c.action <> 'unchanged' ORDER BY c.rowid LIMIT {}",
            REVIEW_ROWS,
            p = tables_of(summary)
        );
        let Ok(mut statement) = store.connection().prepare(&sql) else {
            continue;
        };
        let rows = statement.query_map([run_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
            ))
        });
        let Ok(rows) = rows else { continue };
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        let back = summary.direction == "sync back";
        table.set_header([
            if back { "Halo id" } else { "Salesforce Id" },
            "action",
            "record",
            "AttachmentCount",
            "changes",
            "reason",
        ]);
        for (source_id, action, reason, changes, after, attachment_count) in rows.flatten() {
            let after: serde_json::Value = after
                .and_then(|a| serde_json::from_str(&a).ok())
                .unwrap_or_default();
            let label = [
                "name",
                "summary",
                "emailaddress",
                "note",
                "Name",
                "Subject",
                "LastName",
                "CommentBody",
            ]
            .iter()
            .find_map(|key| after.get(*key).and_then(|v| v.as_str()))
            .unwrap_or_default();
            let changes: Vec<serde_json::Value> = changes
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_default();
            let described: Vec<String> = changes
                .iter()
                .take(4)
                .map(|change| {
                    let show = |v: &serde_json::Value| match v {
                        serde_json::Value::Null => "∅".to_string(),
                        serde_json::Value::String(s) => truncate(s, 24),
                        other => truncate(&other.to_string(), 24),
                    };
                    format!(
                        "{}: {} → {}",
                        change["field"].as_str().unwrap_or_default(),
                        show(&change["before"]),
                        show(&change["after"])
                    )
                })
                .collect();
            let more = changes.len().saturating_sub(4);
            let mut changes_text = described.join("\n");
            if more > 0 {
                changes_text.push_str(&format!("\n… {more} more"));
            }
            table.add_row([
                source_id,
                action,
                truncate(label, 32),
                attachment_count.unwrap_or_else(|| "–".into()),
                changes_text,
                truncate(&reason, 60),
            ]);
        }
        println!("{} ({})", summary.pipeline, summary.direction);
        println!("{table}");
        if pending as usize > REVIEW_ROWS {
            let tables = tables_of(summary);
            println!(
                "… {} more in {tables}_changes (etl sql \"SELECT * FROM {tables}_changes WHERE run_id = '{run_id}'\")",
                pending as usize - REVIEW_ROWS,
            );
        }
    }
}

pub(super) fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// Salesforce API calls a load of this plan is expected to use, counted the way the engine
/// makes them: per pipeline the describe, the import's query pages (2,000 records each) and,
/// when it copies attachments, two listing queries per 200 records and one call per file; sync
/// back's writes (200 per Collections call) and the read-back of what it creates.
pub(super) fn estimated_salesforce_calls(
    pipelines: &[config::Pipeline],
    default_attachments: bool,
    summaries: &[PipelineSummary],
) -> u64 {
    let mut calls = 0;
    for s in summaries {
        let Some(pipeline) = pipelines.iter().find(|p| p.pipeline == s.pipeline) else {
            continue;
        };
        calls += match s.direction {
            "sync back" => {
                (s.planned_creates + s.planned_updates).div_ceil(200)
                    + s.planned_creates.div_ceil(200)
            }
            _ => {
                let mut import = s.extracted.div_ceil(2000).max(1);
                if pipeline.attachments.unwrap_or(default_attachments) {
                    import += 2 * s.extracted.div_ceil(200);
                    // Halo holds files on tickets only; each is one read of its body.
                    if matches!(
                        pipeline.halo.entity,
                        config::model::HaloEntity::Tickets
                            | config::model::HaloEntity::Opportunities
                    ) {
                        import += s.attachments_found;
                    }
                }
                import
            }
        };
    }
    let mut names: Vec<&str> = summaries.iter().map(|s| s.pipeline.as_str()).collect();
    names.dedup();
    calls + names.len() as u64
}
