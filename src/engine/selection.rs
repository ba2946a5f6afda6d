//! Which records a run acts on: the pipeline's `selection` and the run's `--select` /
//! `--exclude`, one rule for both directions. The import keeps the records of the run's extract
//! that the ids and SQL conditions keep; the sync back keeps a Halo record when its id or its
//! linked Salesforce record's is kept the same way, so a record the import left alone (and so
//! checked for no conflict) is never written back over Salesforce.

use std::collections::HashSet;

use super::error::EngineError;
use super::run::RunOptions;
use crate::config::model::Pipeline;
use crate::staging::{PipelineTables, Stage, Store};

/// The ids and conditions that select a pipeline's records in one run.
pub(super) struct Selection {
    /// Only these ids, when not empty.
    only: HashSet<String>,
    /// Never these ids.
    exclude: HashSet<String>,
    /// SQL conditions over the staged extract, each as the user wrote it.
    conditions: Vec<String>,
    /// Where the conditions came from, for the message when one fails.
    from_command_line: bool,
}

impl Selection {
    pub fn of(pipeline: &Pipeline, options: &RunOptions) -> Selection {
        let chosen = &pipeline.selection;
        Selection {
            only: chosen.only.iter().chain(&options.select).cloned().collect(),
            exclude: chosen
                .exclude
                .iter()
                .chain(&options.exclude)
                .cloned()
                .collect(),
            conditions: chosen
                .where_clause
                .iter()
                .chain(options.select_where.iter())
                .cloned()
                .collect(),
            from_command_line: options.select_where.is_some(),
        }
    }

    /// Nothing selected or left out: every record is kept.
    pub fn keeps_everything(&self) -> bool {
        self.only.is_empty() && self.exclude.is_empty() && self.conditions.is_empty()
    }

    /// The ids of the run's extracted records the selection keeps, or `None` when it keeps
    /// every one.
    pub fn import_ids(
        &self,
        store: &Store,
        pipeline: &Pipeline,
        tables: &PipelineTables,
        run_id: &str,
    ) -> Result<Option<HashSet<String>>, EngineError> {
        if self.keeps_everything() {
            return Ok(None);
        }
        let ids = store
            .staged_ids_where(&tables.table(Stage::Extracted), run_id, &self.conditions)
            .map_err(|e| self.condition_error(pipeline, e))?;
        Ok(Some(
            ids.into_iter()
                .filter(|id| self.keeps_id(id, None))
                .collect(),
        ))
    }

    /// The rule for the sync back of `pipeline`, whose import stages its extract in `tables`.
    /// A condition is met by the Salesforce records whose latest staged extract meets it (the
    /// run's own, or an earlier run's for records a read of changes did not read again).
    pub fn for_sync_back(
        &self,
        store: &Store,
        pipeline: &Pipeline,
        tables: &PipelineTables,
    ) -> Result<BackSelection<'_>, EngineError> {
        let meeting = match self.conditions.is_empty() {
            true => None,
            false => Some(
                store
                    .latest_staged_ids_where(&tables.table(Stage::Extracted), &self.conditions)
                    .map_err(|e| self.condition_error(pipeline, e))?
                    .into_iter()
                    .collect(),
            ),
        };
        Ok(BackSelection {
            selection: self,
            meeting,
        })
    }

    /// Kept by the ids: `id` (or the record linked to it, `linked`) is among `only`, when
    /// given, and neither is excluded.
    fn keeps_id(&self, id: &str, linked: Option<&str>) -> bool {
        let named =
            |ids: &HashSet<String>| ids.contains(id) || linked.is_some_and(|l| ids.contains(l));
        (self.only.is_empty() || named(&self.only)) && !named(&self.exclude)
    }

    fn condition_error(&self, pipeline: &Pipeline, error: impl std::fmt::Display) -> EngineError {
        // DuckDB's message names what is wrong with a condition the user wrote.
        let hint = match self.from_command_line {
            true => {
                " (a `--select` condition applies to every pipeline of the run: name the \
                     pipeline whose fields it uses, e.g. `etl plan pipelines/accounts.yaml \
                     --select \"…\"`)"
            }
            false => "",
        };
        EngineError::Config(format!(
            "selection `where` of pipeline {}: {error}{hint}",
            pipeline.pipeline
        ))
    }
}

/// The selection as the sync back applies it to a listed Halo record.
pub(super) struct BackSelection<'a> {
    selection: &'a Selection,
    /// The Salesforce ids meeting the conditions, when there are any.
    meeting: Option<HashSet<String>>,
}

impl BackSelection<'_> {
    /// Whether the Halo record `target_id`, linked to the Salesforce record `source_id` (if
    /// any), is kept. A condition keeps only linked records: a Halo record with no Salesforce
    /// record has nothing the condition could be met by.
    pub fn keeps(&self, target_id: &str, source_id: Option<&str>) -> bool {
        self.selection.keeps_id(target_id, source_id)
            && self
                .meeting
                .as_ref()
                .is_none_or(|meeting| source_id.is_some_and(|id| meeting.contains(id)))
    }
}
