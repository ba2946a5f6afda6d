//! A listed target record planned for the sync back, up to the search for a source record its
//! match keys find: left as it is when Halo's "don't sync" switch or the selection says so;
//! otherwise turned backwards and, when linked, compared with the last synced values turned the
//! same way (an update of the fields changed on the target side, or unchanged); when not linked,
//! the source record its `sync_back.match` fields find, if any.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use super::stages::is_blank;
use super::{backwards, BackSystems};
use crate::config::model::{Pipeline, StageNames, SyncBack};
use crate::engine::connector::Record;
use crate::engine::error::EngineError;
use crate::engine::lookups::EngineLookups;
use crate::engine::plan::{subset, Action, Planned};
use crate::engine::selection::BackSelection;
use crate::engine::snapshot::Snapshot;
use crate::staging::Link;
use crate::transform::{changed_fields, record_hash, Transformer};

/// A snapshot record planned up to the match search, in [`sync_back`]'s chunk.
pub(super) struct Draft<'l> {
    pub planned: Planned,
    /// Its link: (source id, link).
    pub linked: Option<&'l (String, Link)>,
    /// For a record with no link (and nothing else that settles it): the source record its
    /// match keys found, if any, not yet checked against the id map.
    pub unlinked: Option<Option<String>>,
}

/// What planning the sync back's records needs, for one pipeline's run.
pub(super) struct BackPlanner<'a> {
    pipeline: &'a Pipeline,
    snapshot: &'a Snapshot,
    systems: &'a BackSystems<'a>,
    /// The sync back's transform.
    back: &'a Transformer,
    stages: Option<&'a StageNames>,
    lookups: &'a EngineLookups<'a>,
    /// The run's selection (`selection`, `--select`, `--exclude`), as the import applies it.
    selection: &'a BackSelection<'a>,
    /// Source fields set only when a record is created (see
    /// [`crate::engine::connector::Target::create_only_fields`]), asked for when the first
    /// update is planned, so a run with none makes no call for them.
    create_only: OnceLock<HashSet<String>>,
    /// The target path of each field written back (source field → target path), to honour
    /// the conflicts the import held.
    path_of: HashMap<String, String>,
}

impl<'a> BackPlanner<'a> {
    pub fn new(
        pipeline: &'a Pipeline,
        snapshot: &'a Snapshot,
        systems: &'a BackSystems<'a>,
        back: &'a Transformer,
        lookups: &'a EngineLookups<'a>,
        selection: &'a BackSelection<'a>,
    ) -> BackPlanner<'a> {
        let stages = pipeline.sync.stages.as_ref();
        let mut path_of: HashMap<String, String> = back
            .field_pairs()
            .into_iter()
            .map(|(target_path, source_field)| (source_field, target_path))
            .collect();
        if let Some(stages) = stages {
            path_of.remove(&stages.salesforce);
        }
        BackPlanner {
            pipeline,
            snapshot,
            systems,
            back,
            stages,
            lookups,
            selection,
            create_only: OnceLock::new(),
            path_of,
        }
    }

    fn settings(&self) -> &'a SyncBack {
        &self.pipeline.sync.sync_back
    }

    /// The listed record `id` planned up to the match search; `linked` is its link (source
    /// id, link), if it has one.
    pub fn draft<'l>(
        &self,
        id: &String,
        record: &Record,
        linked: Option<&'l (String, Link)>,
    ) -> Result<Draft<'l>, EngineError> {
        let mut planned = Planned {
            source_id: id.clone(),
            action: Action::Skip,
            target_id: linked.map(|(source_id, _)| source_id.clone()),
            reason: None,
            changes: Vec::new(),
            before: None,
            after: Record::new(),
            write: None,
            hash: String::new(),
            matched: None,
        };
        let mut unlinked = None;
        let deselected = !self.selection.keeps(id, planned.target_id.as_deref());
        if let Some(reason) = self.snapshot.switched_off.get(id) {
            planned.reason = Some(reason.clone());
        } else if deselected {
            planned.reason = Some("deselected".into());
        } else {
            let transformed = backwards(self.back, self.stages, record, self.lookups);
            planned.after = transformed.record;
            planned.hash = record_hash(&planned.after);
            if !transformed.problems.is_empty() {
                let problems: Vec<String> =
                    transformed.problems.iter().map(|p| p.to_string()).collect();
                planned.reason = Some(problems.join("; "));
            } else if let Some((_, link)) = linked {
                let nothing_synced = Record::new();
                let base = link.synced_record.as_ref().unwrap_or(&nothing_synced);
                let before = backwards(self.back, self.stages, base, self.lookups).record;
                let changes: Vec<_> = changed_fields(&before, &planned.after)
                    .into_iter()
                    .filter(|(field, _, _)| {
                        self.path_of.get(field).is_none_or(|path| {
                            !self.snapshot.held.contains(&(id.clone(), path.clone()))
                        })
                    })
                    .collect();
                planned.before = Some(before);
                // Salesforce refuses an update that names a field it sets only on create, so
                // such a change is left out (and said) rather than failing the whole record.
                let (changes, fixed): (Vec<_>, Vec<_>) = match changes.is_empty() {
                    true => (changes, Vec::new()),
                    false => {
                        let create_only = self.create_only.get_or_init(|| {
                            let object = &self.pipeline.salesforce.object;
                            self.systems
                                .writer
                                .create_only_fields(object)
                                .into_iter()
                                .collect()
                        });
                        changes
                            .into_iter()
                            .partition(|(field, _, _)| !create_only.contains(field))
                    }
                };
                if !fixed.is_empty() {
                    let fields: Vec<String> = fixed
                        .iter()
                        .map(|(field, _, _)| format!("`{field}`"))
                        .collect();
                    planned.reason = Some(format!(
                        "{} can be set only when the {} is created: the change made in Halo is \
                         not written",
                        fields.join(", "),
                        self.pipeline.salesforce.object
                    ));
                }
                if changes.is_empty() && fixed.is_empty() {
                    planned.action = Action::Unchanged;
                } else if changes.is_empty() {
                    // Skipped, with the reason above.
                } else if !self.settings().update {
                    planned.reason = Some("changed, but `sync_back.update` is off".into());
                } else {
                    planned.action = Action::Update;
                    planned.write = Some(subset(&changes));
                    planned.changes = changes;
                }
            } else {
                unlinked = Some(self.find_match(&planned.after)?);
            }
        }
        Ok(Draft {
            planned,
            linked,
            unlinked,
        })
    }

    /// The source record a not yet linked target record matches by the pipeline's
    /// `sync_back.match` fields. Whether it is linked already (to another record, or earlier in
    /// this run) is for the caller to check.
    fn find_match(&self, after: &Record) -> Result<Option<String>, EngineError> {
        let settings = self.settings();
        if settings.match_on.is_empty() {
            return Ok(None);
        }
        let mut key = Vec::new();
        for field in &settings.match_on {
            match after.get(field) {
                Some(value) if !is_blank(value) => key.push((field.clone(), value.clone())),
                _ => return Ok(None),
            }
        }
        Ok(self
            .systems
            .writer
            .find(&self.pipeline.salesforce.object, &key)?
            .map(|(found, _)| found))
    }
}
