//! The import's first pass: each page the source reads is staged in `<p>_extracted`,
//! transformed, and staged in `<p>_transformed`, with how many attachments each record holds
//! (the copier lists them page by page) staged as `AttachmentCount`. A pipeline with a cursor
//! reads the changes since its watermark, then, by id, the records its last load left to retry
//! and those that gained files since.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::attachments::Copier;
use super::connector::{ExtractRequest, NewFiles, Record, Source, Watermark};
use super::error::EngineError;
use super::incremental::IncrementalPlan;
use super::lookups::EngineLookups;
use super::progress::{ProgressReporter, Stage as ProgressStage};
use super::rows::{now_cell, record_cell, text, typed_cells, typed_paths};
use super::summary::PipelineSummary;
use crate::config::model::Pipeline;
use crate::staging::{PipelineTables, Stage, Store};
use crate::transform::{record_hash, Transformer};

/// What the first pass found, for the plan and for the watermark saved after the load.
pub(super) struct Extracted {
    /// Each record's transform problems (target field: message), by source id.
    pub problems: HashMap<String, Vec<String>>,
    /// Records the source read as deleted (when the pipeline acts on deletes).
    pub deleted: HashSet<String>,
    /// Where the read of changes got to.
    pub reached: Option<Watermark>,
    /// The look for records that gained files without changing.
    pub new_files: NewFiles,
}

/// What the first pass reads with and stages into.
#[derive(Clone, Copy)]
pub(super) struct FirstPass<'a> {
    pub pipeline: &'a Pipeline,
    pub source: &'a dyn Source,
    pub store: &'a Store,
    pub tables: &'a PipelineTables,
    pub run_id: &'a str,
    pub transformer: &'a Transformer,
    pub lookups: &'a EngineLookups<'a>,
    /// The field that flags a deleted record, when deletes are read.
    pub deleted_flag: Option<&'a str>,
    pub incremental: Option<&'a IncrementalPlan>,
    pub request: &'a ExtractRequest,
    pub progress: &'a ProgressReporter,
}

impl FirstPass<'_> {
    /// Reads, transforms and stages every record of the run; `copier` lists their files.
    pub fn run(
        self,
        mut copier: Option<&mut Copier>,
        summary: &mut PipelineSummary,
    ) -> Result<Extracted, EngineError> {
        let FirstPass {
            pipeline,
            source,
            store,
            tables,
            run_id,
            transformer,
            lookups,
            deleted_flag,
            incremental,
            request,
            progress,
        } = self;
        let mut reached: Option<Watermark> = None;
        let mut deleted: HashSet<String> = HashSet::new();
        let extracted_paths = typed_paths(pipeline, tables, Stage::Extracted);
        let transformed_paths = typed_paths(pipeline, tables, Stage::Transformed);
        let mut problems: HashMap<String, Vec<String>> = HashMap::new();
        let id_field = source.id_field().to_string();
        let copies_files = copier.is_some();
        // `reading_changes`: the page comes from the read in cursor order (not a re-read by id),
        // so its last record is where the read has got to.
        let mut stage_page = |page: Vec<Record>,
                              reading_changes: bool|
         -> Result<(), EngineError> {
            if let (Some(plan), Some(last), true) = (&incremental, page.last(), reading_changes) {
                reached = super::incremental::position(last, &plan.read.cursor_field, &id_field)
                    .or(reached.take());
            }
            // How many attachments each record holds, staged with it as `AttachmentCount`.
            let counts = match copier.as_mut() {
                Some(copier) => {
                    let ids: Vec<String> = page
                        .iter()
                        .filter_map(|r| r.get(&id_field).and_then(Value::as_str))
                        .map(str::to_string)
                        .collect();
                    Some(copier.list(&ids)?)
                }
                None => None,
            };
            let mut extracted_rows = Vec::with_capacity(page.len());
            let mut transformed_rows = Vec::with_capacity(page.len());
            for mut record in page {
                let Some(source_id) = record
                    .get(&id_field)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                else {
                    continue;
                };
                if let Some(flag) = &deleted_flag {
                    if super::deletes::is_deleted(&record, flag) {
                        deleted.insert(source_id.clone());
                    }
                }
                let transformed = transformer.transform(&record, lookups);
                if let Some(count) = counts.as_ref().and_then(|c| c.get(&source_id)) {
                    record.insert("AttachmentCount".into(), Value::from(*count));
                    summary.attachments_found += count;
                }
                if !transformed.problems.is_empty() {
                    problems.insert(
                        source_id.clone(),
                        transformed
                            .problems
                            .iter()
                            .map(|p| format!("{}: {}", p.target, p.message))
                            .collect(),
                    );
                }
                let mut row = vec![
                    ("run_id".to_string(), text(run_id)),
                    ("source_id".to_string(), text(&source_id)),
                    ("record".to_string(), record_cell(&record)),
                    ("staged_at".to_string(), now_cell()),
                ];
                row.extend(typed_cells(&record, &extracted_paths));
                extracted_rows.push(row);
                let mut row = vec![
                    ("run_id".to_string(), text(run_id)),
                    ("source_id".to_string(), text(&source_id)),
                    ("record".to_string(), record_cell(&transformed.record)),
                    (
                        "record_hash".to_string(),
                        text(&record_hash(&transformed.record)),
                    ),
                    ("staged_at".to_string(), now_cell()),
                ];
                row.extend(typed_cells(&transformed.record, &transformed_paths));
                transformed_rows.push(row);
            }
            summary.extracted += extracted_rows.len() as u64;
            progress.report(
                &pipeline.pipeline,
                "import",
                ProgressStage::Extract,
                summary.extracted,
                None,
            );
            store.append(tables, Stage::Extracted, &extracted_rows)?;
            store.append(tables, Stage::Transformed, &transformed_rows)?;
            tracing::debug!(
                records = extracted_rows.len(),
                extracted = summary.extracted,
                "page extracted, transformed and staged"
            );
            Ok(())
        };
        source.extract(request, &mut |page| stage_page(page, true))?;
        // Files added to a record do not move the record's own cursor.
        let files_after = match &incremental {
            Some(plan) if copies_files => plan.files_after()?,
            _ => None,
        };
        let mut new_files = match files_after {
            Some(after) => source.records_with_new_files(request, after)?,
            None => NewFiles::default(),
        };
        let gained_files = std::mem::take(&mut new_files.records);
        let extracted_table = tables.table(Stage::Extracted);
        let retry = match &incremental {
            Some(plan) => plan.retry_request(request, gained_files, |ids| {
                store.staged_among(&extracted_table, run_id, ids)
            })?,
            None => None,
        };
        if let Some(retry) = retry {
            tracing::info!(
                records = retry.ids.len(),
                "reading again the records left to retry"
            );
            source.extract(&retry, &mut |page| stage_page(page, false))?;
        }
        Ok(Extracted {
            problems,
            deleted,
            reached,
            new_files,
        })
    }
}
