//! Attachments of imported records: listed from the source page by page while extracting (so
//! `AttachmentCount` is staged with each record and shown in the plan), then, after each load
//! batch, handed to the copy lane (`copy_lane.rs`: a thread that copies the batches' files on
//! `defaults.in_flight` workers while the load goes on with the next batches; at most two
//! batches wait for it). This file is the load's side: which files of a batch need copying,
//! and the staging of every outcome as it arrives (between the load's own batches, and while
//! it waits for the lane), because the staging store is not shared between threads. Every
//! copied file is remembered in the id map under `<pipeline>:attachments` (source file id →
//! target attachment id), so a rerun never uploads it twice. What happens to each file is
//! staged in `<pipeline>_attachments`; a refused listing or a failed copy is reported per
//! record with the system's own message, and the run goes on.
//!
//! Memory stays flat as the org grows: the listing waits for the load in a scratch table
//! (`<pipeline>_listed_files`, dropped with the connection), and each batch reads back only its
//! own records' files and the id map links of those files.

use std::collections::{HashMap, HashSet};
use std::thread::Scope;

use serde_json::{json, Value};

use super::connector::{AttachmentKind, AttachmentRef, Source, Target};
pub use super::copy_lane::CopyLane;
use super::copy_lane::{Event, Moved, Outcome, Transfer, MAX_BATCHES_AT_THE_LANE};
use super::error::EngineError;
use super::id_filter::IdFilter;
use super::summary::PipelineSummary;
use crate::staging::{AttachmentRow, Link, ListedFile, ListedFiles, StagedFile, Store};

/// The id map pipeline that remembers a pipeline's copied attachments.
pub fn links_pipeline(pipeline: &str) -> String {
    format!("{pipeline}:attachments")
}

/// The id map key of one file on one record: the attachment id for classic attachments (each
/// has one parent); `<version id>:<record id>` for a file, which can be linked to several.
fn link_key(attachment: &AttachmentRef) -> String {
    match attachment.kind {
        AttachmentKind::Attachment => attachment.id.clone(),
        AttachmentKind::File => format!("{}:{}", attachment.id, attachment.parent_id),
    }
}

/// Whether a file was copied to this record before, by its link (`copied`: links by key).
fn copied_to<'l>(
    copied: &'l HashMap<String, Link>,
    file: &AttachmentRef,
    target_id: &str,
) -> Option<&'l Link> {
    let link = copied.get(&link_key(file))?;
    let on = link
        .target_record
        .as_ref()
        .and_then(|r| r.get("record_id"))
        .and_then(Value::as_str);
    // A record recreated in the target since gets its files again.
    (on.is_none() || on == Some(target_id)).then_some(link)
}

/// How a file is described in the staging tables (all empty for a row about a record).
fn staged_file(file: Option<&AttachmentRef>) -> StagedFile {
    StagedFile {
        attachment_id: file.map(|f| f.id.clone()),
        kind: file.map(|f| f.kind.as_str().to_string()),
        name: file.map(|f| f.name.clone()),
        content_type: file.map(|f| f.content_type.clone()),
        size: file.and_then(|f| f.size).map(|s| s as i64),
    }
}

/// One record's part of this run's listing.
#[derive(Default)]
struct Listed {
    /// Why its files could not all be listed, in the source's words.
    problem: Option<String>,
    files: Vec<AttachmentRef>,
}

pub struct Copier<'a> {
    source: &'a dyn Source,
    target: &'a dyn Target,
    store: &'a Store,
    run_id: &'a str,
    pipeline: String,
    entity: String,
    /// How many copies run at once (workers), and so how many file bodies are held at most.
    in_flight: usize,
    /// Why the target cannot hold attachments on this entity, if it cannot.
    refused: Option<String>,
    /// This run's listing (files and listing problems by record), staged until the records
    /// are loaded.
    listed: ListedFiles,
    /// The records that have rows there, so that a batch of records without files (most of
    /// them, as a rule) reads nothing back.
    with_rows: IdFilter,
    /// Result rows not written yet: appended together at the end of each `copy`, because a
    /// statement per file made a rerun of thousands of unchanged files slow.
    pending: Vec<AttachmentRow>,
    /// Target records the batch being copied created.
    created_here: HashSet<String>,
}

/// Most file outcomes committed in one transaction.
const MAX_OUTCOMES_PER_COMMIT: usize = 200;

impl<'a> Copier<'a> {
    pub fn new(
        source: &'a dyn Source,
        target: &'a dyn Target,
        store: &'a Store,
        run_id: &'a str,
        pipeline: &str,
        entity: &str,
        in_flight: usize,
    ) -> Result<Copier<'a>, EngineError> {
        let listed = store.attachment_tables(pipeline)?;
        Ok(Copier {
            source,
            target,
            store,
            run_id,
            pipeline: pipeline.to_string(),
            entity: entity.to_string(),
            in_flight: in_flight.max(1),
            refused: target.attachments_refused(entity),
            listed,
            with_rows: IdFilter::default(),
            pending: Vec::new(),
            created_here: HashSet::new(),
        })
    }

    /// Lists the files of a page of records; returns how many each record holds (a record
    /// whose listing was refused holds what the other listings found).
    pub fn list(&mut self, record_ids: &[String]) -> Result<HashMap<String, u64>, EngineError> {
        let mut counts: HashMap<String, u64> =
            record_ids.iter().map(|id| (id.clone(), 0)).collect();
        if record_ids.is_empty() {
            return Ok(counts);
        }
        let listing = self.source.attachments(record_ids)?;
        let mut rows = Vec::new();
        if !listing.problems.is_empty() {
            let message = listing.problems.join("; ");
            for id in record_ids {
                self.with_rows.insert(id);
                rows.push(ListedFile {
                    source_id: id.clone(),
                    problem: Some(message.clone()),
                    ..ListedFile::default()
                });
            }
        }
        for file in listing.attachments {
            let Some(count) = counts.get_mut(&file.parent_id) else {
                continue;
            };
            *count += 1;
            self.with_rows.insert(&file.parent_id);
            let staged = staged_file(Some(&file));
            rows.push(ListedFile {
                source_id: file.parent_id,
                file: staged,
                problem: None,
            });
        }
        self.listed.append(self.store, &rows)?;
        Ok(counts)
    }

    /// The listing of these records, read back from the scratch table: the listing problem
    /// and the files of each record that has either, files in the order they were listed
    /// (each once).
    fn listed_of(
        &self,
        records: &[(String, String)],
    ) -> Result<HashMap<String, Listed>, EngineError> {
        let mut listed: HashMap<String, Listed> = HashMap::new();
        // Only the records the listing may have found files for (see `with_rows`; in the
        // benchmark a batch of contacts has none, one of opportunities a seventh).
        let ids: Vec<&str> = records
            .iter()
            .map(|(source_id, _)| source_id.as_str())
            .filter(|source_id| self.with_rows.may_contain(source_id))
            .collect();
        if self.listed.is_empty() || ids.is_empty() {
            return Ok(listed);
        }
        for row in self.listed.of(self.store, &ids)? {
            let entry = listed.entry(row.source_id.clone()).or_default();
            if let Some(problem) = row.problem {
                entry.problem.get_or_insert(problem);
            }
            let Some(id) = row.file.attachment_id else {
                continue;
            };
            let file = AttachmentRef {
                kind: match row.file.kind.as_deref() {
                    Some("file") => AttachmentKind::File,
                    _ => AttachmentKind::Attachment,
                },
                id,
                parent_id: row.source_id,
                name: row.file.name.unwrap_or_default(),
                content_type: row.file.content_type.unwrap_or_default(),
                size: row.file.size.map(|size| size as u64),
            };
            // A record read twice in one run (a change, then again by id) is listed twice.
            if !entry.files.iter().any(|listed| listed.id == file.id) {
                entry.files.push(file);
            }
        }
        Ok(listed)
    }

    /// Notes target records the next batch's load created (see [`Transfer::created_here`]).
    pub fn created_here(&mut self, target_ids: impl IntoIterator<Item = String>) {
        self.created_here.extend(target_ids);
    }

    /// Copies the files of records just loaded (source id, target id) to their target records
    /// and waits until every one has its outcome: [`Copier::send`] on a lane of its own, then
    /// [`Copier::finish`].
    pub fn copy(
        &mut self,
        records: &[(String, String)],
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        std::thread::scope(|scope| {
            let mut lane = self.start(scope);
            self.send(&mut lane, records, summary)?;
            self.finish(&mut lane, summary)
        })
    }

    /// Starts the copy lane in `scope`; it takes the batches [`Copier::send`] hands it until the
    /// lane is dropped.
    pub fn start<'scope>(&self, scope: &'scope Scope<'scope, '_>) -> CopyLane
    where
        'a: 'scope,
    {
        CopyLane::start(
            scope,
            self.source,
            self.target,
            self.entity.clone(),
            self.in_flight,
        )
    }

    /// Hands the files of records just loaded (source id, target id) to the copy lane. What
    /// needs no network (skipped, copied before, a refused listing) is staged here and now; a
    /// batch is handed over once fewer than two wait at the lane, and what the lane has done
    /// meanwhile is staged.
    pub fn send(
        &mut self,
        lane: &mut CopyLane,
        records: &[(String, String)],
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        // A record whose files an earlier batch is still copying (read twice in one run) waits
        // for them, so that their links are there to be found.
        let copying = lane.copying();
        if records
            .iter()
            .any(|(source_id, _)| copying.contains(source_id.as_str()))
        {
            self.finish(lane, summary)?;
        }
        let transfers = self.transfers_of(records, summary)?;
        if !transfers.is_empty() {
            while lane.waiting() >= MAX_BATCHES_AT_THE_LANE {
                self.receive(lane, summary, true)?;
            }
            lane.hand_over(transfers)?;
        }
        self.receive(lane, summary, false)
    }

    /// Stages what the lane has done so far, without waiting for it.
    pub fn settle(
        &mut self,
        lane: &mut CopyLane,
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        self.receive(lane, summary, false)
    }

    /// Waits for the lane to copy every file handed to it, staging each outcome.
    pub fn finish(
        &mut self,
        lane: &mut CopyLane,
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        while lane.waiting() > 0 {
            self.receive(lane, summary, true)?;
        }
        Ok(())
    }

    /// The batch's files that need the network, by target record. What needs none (skipped,
    /// copied before, a refused listing) is staged here.
    fn transfers_of(
        &mut self,
        records: &[(String, String)],
        summary: &mut PipelineSummary,
    ) -> Result<Vec<Transfer>, EngineError> {
        let mut listed = self.listed_of(records)?;
        if listed.is_empty() {
            // Noted for this batch only: a record is created once.
            self.created_here.clear();
            return Ok(Vec::new());
        }
        // Which of these files were copied before: their links, read for this batch only. A
        // record the load just created has none to look for (its files go whatever links an
        // older target record left), and each look reads the whole id map: on a first import
        // it was a third of the time at 1M records.
        let keys: Vec<String> = records
            .iter()
            .filter(|(_, target_id)| !self.created_here.contains(target_id))
            .filter_map(|(source_id, _)| listed.get(source_id))
            .flat_map(|l| l.files.iter().map(link_key))
            .collect();
        let copied = if self.refused.is_none() && !keys.is_empty() {
            self.store
                .links_of(&links_pipeline(&self.pipeline), &keys)?
        } else {
            HashMap::new()
        };
        let mut transfers: Vec<Transfer> = Vec::new();
        let mut transfer_of: HashMap<&str, usize> = HashMap::new();
        for (source_id, target_id) in records {
            let Some(Listed { problem, files }) = listed.remove(source_id) else {
                continue;
            };
            if let Some(problem) = problem.filter(|_| self.refused.is_none()) {
                tracing::warn!(source_id = %source_id, error = %problem, "attachments failed");
                summary.attachments_failed += 1;
                summary
                    .attachment_failures
                    .push((source_id.clone(), problem.clone()));
                self.stage(
                    source_id,
                    None,
                    "failed",
                    Some(target_id),
                    None,
                    Some(&problem),
                );
            }
            for file in files {
                if let Some(refused) = self.refused.clone() {
                    summary.attachments_skipped += 1;
                    if !summary.attachment_notes.contains(&refused) {
                        summary.attachment_notes.push(refused.clone());
                    }
                    self.stage(
                        source_id,
                        Some(&file),
                        "skipped",
                        Some(target_id),
                        None,
                        Some(&refused),
                    );
                } else if let Some(link) = copied_to(&copied, &file, target_id) {
                    summary.attachments_unchanged += 1;
                    let copied_as = link.target_id.clone();
                    self.stage(
                        source_id,
                        Some(&file),
                        "unchanged",
                        Some(target_id),
                        Some(&copied_as),
                        None,
                    );
                } else {
                    let index = *transfer_of.entry(target_id).or_insert_with(|| {
                        transfers.push(Transfer {
                            target_id: target_id.clone(),
                            created_here: self.created_here.contains(target_id),
                            files: Vec::new(),
                        });
                        transfers.len() - 1
                    });
                    transfers[index].files.push((source_id.clone(), file));
                }
            }
        }
        // Noted for this batch only: a record is created once.
        self.created_here.clear();
        self.flush()?;
        Ok(transfers)
    }

    /// Stages what the lane says, oldest first: outcomes committed as they arrive, together
    /// with any others already waiting (a transaction per file made staging, not the copies,
    /// bound large batches), so a run killed at any point loses at most the links of the uploads
    /// in flight or waiting for that commit, which the next run finds on the target record by
    /// name and size. With `wait`, waits for the lane to say something first; returns after a
    /// batch is done or nothing more has arrived.
    fn receive(
        &mut self,
        lane: &mut CopyLane,
        summary: &mut PipelineSummary,
        wait: bool,
    ) -> Result<(), EngineError> {
        if lane.waiting() == 0 {
            return Ok(());
        }
        let mut next = lane.next_event(wait)?;
        while let Some(event) = next.take() {
            match event {
                Event::Moved(Moved {
                    transfer,
                    file,
                    outcome,
                }) => {
                    match outcome {
                        Outcome::Copied(attachment_id) => {
                            summary.attachments_copied += 1;
                            lane.arrived.push((transfer, file, attachment_id, "copied"));
                        }
                        Outcome::Linked(attachment_id) => {
                            summary.attachments_unchanged += 1;
                            lane.arrived.push((transfer, file, attachment_id, "linked"));
                        }
                        Outcome::Failed(message) => lane.failures.push((transfer, file, message)),
                    }
                    if lane.arrived.len() >= MAX_OUTCOMES_PER_COMMIT {
                        self.commit_arrived(lane)?;
                    }
                }
                Event::Ask(candidates) => {
                    self.commit_arrived(lane)?;
                    let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
                    let known: HashSet<String> = self
                        .store
                        .links_by_target(&links_pipeline(&self.pipeline), &candidates)?
                        .into_keys()
                        .collect();
                    lane.answer(known)?;
                }
                Event::Done => {
                    self.commit_arrived(lane)?;
                    self.report_failures(lane, summary)?;
                    lane.oldest_done();
                    return Ok(());
                }
            }
            next = lane.next_event(false).unwrap_or(None);
        }
        self.commit_arrived(lane)
    }

    /// Commits the oldest batch's outcomes received so far (see [`Copier::remember`]).
    fn commit_arrived(&mut self, lane: &mut CopyLane) -> Result<(), EngineError> {
        if lane.arrived.is_empty() {
            return Ok(());
        }
        let Some(job) = lane.oldest() else {
            return Ok(());
        };
        let arrived = std::mem::take(&mut lane.arrived);
        let done: Vec<_> = arrived
            .into_iter()
            .map(|(transfer, file, attachment_id, status)| {
                let (source_id, file) = &job[transfer].files[file];
                (
                    source_id,
                    &job[transfer].target_id,
                    file,
                    attachment_id,
                    status,
                )
            })
            .collect();
        self.remember(&done)
    }

    /// Reports and stages the oldest batch's failed files, in the order the records came,
    /// whichever worker was faster.
    fn report_failures(
        &mut self,
        lane: &mut CopyLane,
        summary: &mut PipelineSummary,
    ) -> Result<(), EngineError> {
        let Some(job) = lane.oldest() else {
            return Ok(());
        };
        let mut failures = std::mem::take(&mut lane.failures);
        failures.sort_by_key(|(transfer, file, _)| (*transfer, *file));
        for (transfer, file, message) in failures {
            let (source_id, file) = &job[transfer].files[file];
            let target_id = &job[transfer].target_id;
            let message = format!(
                "{} {:?} ({}): {message}",
                file.kind.as_str(),
                file.name,
                file.id
            );
            tracing::warn!(source_id = %source_id, error = %message, "attachment failed");
            summary.attachments_failed += 1;
            summary
                .attachment_failures
                .push((source_id.clone(), message.clone()));
            self.stage(
                source_id,
                Some(file),
                "failed",
                Some(target_id),
                None,
                Some(&message),
            );
        }
        self.flush()
    }

    /// Appends the pending result rows in one go.
    fn flush(&mut self) -> Result<(), EngineError> {
        let rows = std::mem::take(&mut self.pending);
        self.store.append_attachment_rows(&self.pipeline, &rows)?;
        Ok(())
    }

    /// Records copied or linked files (source id, target record, file, the target's id for
    /// it, status): their result rows and links in one transaction.
    fn remember(
        &mut self,
        done: &[(&String, &String, &AttachmentRef, String, &str)],
    ) -> Result<(), EngineError> {
        if done.is_empty() {
            return Ok(());
        }
        let mut links = Vec::with_capacity(done.len());
        let mut rows = Vec::with_capacity(done.len());
        for (source_id, target_id, file, attachment_id, status) in done {
            let link = Link {
                target_id: attachment_id.to_string(),
                source_hash: None,
                synced_record: None,
                target_record: json!({
                    "entity": self.entity,
                    "record_id": target_id,
                    "source_record_id": source_id,
                    "filename": file.name,
                    "size": file.size,
                })
                .as_object()
                .cloned(),
            };
            links.push((link_key(file), link));
            rows.push(self.row(
                source_id,
                Some(file),
                status,
                Some(target_id),
                Some(attachment_id),
                None,
            ));
        }
        let links_of = links_pipeline(&self.pipeline);
        // A file is copied or linked only when it has no link yet.
        self.store
            .in_transaction_with_new_links(|store, new_links| {
                store.append_attachment_rows(&self.pipeline, &rows)?;
                store.add_new_links(self.run_id, &links_of, &links, new_links)
            })?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        source_id: &str,
        file: Option<&AttachmentRef>,
        status: &str,
        target_id: Option<&str>,
        attachment_target_id: Option<&str>,
        message: Option<&str>,
    ) -> AttachmentRow {
        AttachmentRow {
            run_id: self.run_id.to_string(),
            source_id: source_id.to_string(),
            file: staged_file(file),
            status: status.to_string(),
            target_id: target_id.map(str::to_string),
            attachment_target_id: attachment_target_id.map(str::to_string),
            message: message.map(str::to_string),
        }
    }

    /// Queues a result row for the next [`Copier::flush`].
    fn stage(
        &mut self,
        source_id: &str,
        file: Option<&AttachmentRef>,
        status: &str,
        target_id: Option<&str>,
        attachment_target_id: Option<&str>,
        message: Option<&str>,
    ) {
        let row = self.row(
            source_id,
            file,
            status,
            target_id,
            attachment_target_id,
            message,
        );
        self.pending.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::TargetAttachment;
    use crate::engine::connector::{AttachmentListing, ExtractRequest, Record};
    use crate::engine::WriteResult;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A source whose file listing Salesforce refuses for some records' object, as an org
    /// without access to Files does.
    #[derive(Default)]
    struct FakeSource {
        refuse: Option<String>,
        /// More files, listed after each record's own.
        more: Vec<AttachmentRef>,
        /// How long each download takes.
        delay: Duration,
        gauge: Arc<Gauge>,
        /// Downloads wait until this is opened (for at most ten seconds).
        gate: Arc<Gate>,
    }

    /// Holds downloads back until the test opens it; a gate never opened lets them go after
    /// ten seconds, so a copier that waits for its own copies fails its test, not hangs it.
    struct Gate {
        open: Mutex<bool>,
        opened: std::sync::Condvar,
    }

    impl Default for Gate {
        fn default() -> Gate {
            Gate {
                open: Mutex::new(true),
                opened: std::sync::Condvar::new(),
            }
        }
    }

    impl Gate {
        fn closed() -> Arc<Gate> {
            Arc::new(Gate {
                open: Mutex::new(false),
                opened: std::sync::Condvar::new(),
            })
        }

        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }

        fn pass(&self) {
            let open = self.open.lock().unwrap();
            let _open = self
                .opened
                .wait_timeout_while(open, Duration::from_secs(10), |open| !*open)
                .unwrap();
        }
    }

    /// File bodies held at once, from the start of a download to the end of its upload.
    #[derive(Default)]
    struct Gauge {
        held: AtomicUsize,
        most: AtomicUsize,
    }

    impl Source for FakeSource {
        fn id_field(&self) -> &str {
            "Id"
        }
        fn extract(
            &self,
            _: &ExtractRequest,
            _: &mut dyn FnMut(Vec<Record>) -> Result<(), EngineError>,
        ) -> Result<(), EngineError> {
            Ok(())
        }
        fn api_calls(&self) -> u64 {
            0
        }
        fn attachments(&self, ids: &[String]) -> Result<AttachmentListing, EngineError> {
            Ok(AttachmentListing {
                attachments: ids
                    .iter()
                    .filter(|id| id.as_str() != "r3")
                    .map(|id| AttachmentRef {
                        id: format!("00P-{id}"),
                        parent_id: id.clone(),
                        kind: AttachmentKind::Attachment,
                        name: format!("{id}.txt"),
                        content_type: "text/plain".into(),
                        size: Some(id.len() as u64),
                    })
                    .chain(
                        self.more
                            .iter()
                            .filter(|file| ids.contains(&file.parent_id))
                            .cloned(),
                    )
                    .collect(),
                problems: self.refuse.iter().cloned().collect(),
            })
        }
        fn attachment_body(
            &self,
            file: &AttachmentRef,
            out: &mut dyn Write,
        ) -> Result<u64, String> {
            let held = self.gauge.held.fetch_add(1, Ordering::SeqCst) + 1;
            self.gauge.most.fetch_max(held, Ordering::SeqCst);
            self.gate.pass();
            std::thread::sleep(self.delay);
            out.write_all(file.parent_id.as_bytes())
                .map_err(|e| e.to_string())?;
            Ok(file.parent_id.len() as u64)
        }
    }

    #[derive(Default)]
    struct FakeTarget {
        uploads: Mutex<Vec<(String, Vec<u8>)>>,
        /// What each record holds: (record, attachment); listed by `attachments_of` when
        /// `lists` (else it lists nothing, as a target that cannot list files).
        held: Mutex<Vec<(String, TargetAttachment)>>,
        lists: bool,
        /// Records whose uploads the target refuses.
        refuse_on: Vec<String>,
        gauge: Arc<Gauge>,
    }

    impl Target for FakeTarget {
        fn write(&self, _: &str, _: &[crate::engine::WriteRequest]) -> Vec<WriteResult> {
            Vec::new()
        }
        fn find(
            &self,
            _: &str,
            _: &[(String, Value)],
        ) -> Result<Option<(String, Record)>, EngineError> {
            Ok(None)
        }
        fn search(&self, _: &str, _: &str, _: &Value) -> Result<Option<Value>, EngineError> {
            Ok(None)
        }
        fn api_calls(&self) -> u64 {
            0
        }
        fn attachments_refused(&self, entity: &str) -> Option<String> {
            (entity != "Tickets").then(|| format!("cannot hold attachments on {entity}"))
        }
        fn attach(
            &self,
            _: &str,
            target_id: &str,
            name: &str,
            _: &str,
            bytes: &[u8],
        ) -> Result<String, String> {
            self.gauge.held.fetch_sub(1, Ordering::SeqCst);
            if self.refuse_on.iter().any(|id| id == target_id) {
                return Err(format!("HTTP 400: ticket {target_id} is closed"));
            }
            let mut uploads = self.uploads.lock().unwrap();
            uploads.push((target_id.to_string(), bytes.to_vec()));
            let id = format!("h{}", uploads.len());
            self.held.lock().unwrap().push((
                target_id.to_string(),
                TargetAttachment {
                    id: id.clone(),
                    name: name.to_string(),
                    size: Some(bytes.len() as u64),
                },
            ));
            Ok(id)
        }
        fn attachments_of(
            &self,
            _: &str,
            target_id: &str,
        ) -> Result<Vec<TargetAttachment>, String> {
            let held = self.held.lock().unwrap();
            Ok(held
                .iter()
                .filter(|(on, _)| self.lists && on == target_id)
                .map(|(_, attachment)| attachment.clone())
                .collect())
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// How many result rows of `table` have `status`.
    fn staged_with_status(store: &Store, table: &str, status: &str) -> i64 {
        store
            .connection()
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE status = ?"),
                [status],
                |row| row.get(0),
            )
            .unwrap()
    }
    #[test]
    fn copies_once_reports_refusals_per_record_and_skips_what_the_target_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let target = FakeTarget::default();
        let records = vec![
            ("r1".to_string(), "t1".to_string()),
            ("r3".into(), "t3".into()),
        ];

        // Files listed and copied, byte for byte, then not again.
        let source = FakeSource::default();
        let mut summary = PipelineSummary::default();
        let mut copier = Copier::new(&source, &target, &store, "run1", "p", "Tickets", 2).unwrap();
        let counts = copier.list(&ids(&["r1", "r3"])).unwrap();
        assert_eq!((counts["r1"], counts["r3"]), (1, 0));
        copier.copy(&records, &mut summary).unwrap();
        assert_eq!(summary.attachments_copied, 1);
        assert_eq!(
            *target.uploads.lock().unwrap(),
            vec![("t1".to_string(), b"r1".to_vec())]
        );
        let mut again = Copier::new(&source, &target, &store, "run2", "p", "Tickets", 2).unwrap();
        again.list(&ids(&["r1", "r3"])).unwrap();
        let mut summary = PipelineSummary::default();
        again.copy(&records, &mut summary).unwrap();
        assert_eq!(
            (summary.attachments_copied, summary.attachments_unchanged),
            (0, 1)
        );

        // A refused listing: every record asked about gets the source's message; the files
        // that could be listed still go.
        let refusing = FakeSource {
            refuse: Some("INSUFFICIENT_ACCESS: no access to files".into()),
            ..FakeSource::default()
        };
        let mut refused =
            Copier::new(&refusing, &target, &store, "run3", "q", "Tickets", 2).unwrap();
        refused.list(&ids(&["r1", "r3"])).unwrap();
        let mut summary = PipelineSummary::default();
        refused.copy(&records, &mut summary).unwrap();
        assert_eq!(summary.attachments_failed, 2);
        assert_eq!(summary.attachment_failures[1].0, "r3");
        assert!(summary.attachment_failures[1]
            .1
            .contains("INSUFFICIENT_ACCESS"));
        assert_eq!(summary.attachments_copied, 1);

        // An entity the target cannot attach to: skipped with the reason once, no failure.
        let mut clients =
            Copier::new(&refusing, &target, &store, "run4", "c", "Client", 2).unwrap();
        clients.list(&ids(&["r1", "r2"])).unwrap();
        let mut summary = PipelineSummary::default();
        clients
            .copy(
                &[("r1".into(), "c1".into()), ("r2".into(), "c2".into())],
                &mut summary,
            )
            .unwrap();
        assert_eq!(
            (summary.attachments_skipped, summary.attachments_failed),
            (2, 0)
        );
        assert_eq!(
            summary.attachment_notes,
            vec!["cannot hold attachments on Client"]
        );
        let staged = staged_with_status(&store, "c_attachments", "skipped");
        assert_eq!(staged, 2);
    }

    #[test]
    fn copies_run_in_flight_holding_at_most_that_many_bodies_and_report_in_record_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let gauge = Arc::new(Gauge::default());
        let source = FakeSource {
            delay: Duration::from_millis(40),
            gauge: gauge.clone(),
            ..FakeSource::default()
        };
        let record_ids: Vec<String> = (1..=9).map(|n| format!("a{n}")).collect();
        let records: Vec<(String, String)> = record_ids
            .iter()
            .map(|id| (id.clone(), format!("t-{id}")))
            .collect();
        let target = FakeTarget {
            refuse_on: ids(&["t-a7", "t-a2", "t-a5"]),
            gauge: gauge.clone(),
            ..FakeTarget::default()
        };

        let mut copier = Copier::new(&source, &target, &store, "run1", "p", "Tickets", 3).unwrap();
        copier.list(&record_ids).unwrap();
        let mut summary = PipelineSummary::default();
        copier.copy(&records, &mut summary).unwrap();

        // Several at once, never more than asked: at most 3 bodies held.
        let most = gauge.most.load(Ordering::SeqCst);
        assert!((2..=3).contains(&most), "{most} bodies held at once");
        // Each file once, byte for byte; the refusals per record, in the records' order.
        let mut uploads = target.uploads.lock().unwrap().clone();
        uploads.sort();
        let expected: Vec<(String, Vec<u8>)> = ["a1", "a3", "a4", "a6", "a8", "a9"]
            .iter()
            .map(|id| (format!("t-{id}"), id.as_bytes().to_vec()))
            .collect();
        assert_eq!(uploads, expected);
        assert_eq!(
            (summary.attachments_copied, summary.attachments_failed),
            (6, 3)
        );
        let failed: Vec<&str> = summary
            .attachment_failures
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(failed, ["a2", "a5", "a7"]);
        assert!(summary.attachment_failures[0]
            .1
            .contains("ticket t-a2 is closed"));
        // Every copy remembered with its result row, every failure staged.
        assert_eq!(store.links(&links_pipeline("p")).unwrap().len(), 6);
        let staged: Vec<(String, i64)> = {
            let connection = store.connection();
            let mut statement = connection
                .prepare("SELECT status, count(*) FROM p_attachments GROUP BY 1 ORDER BY 1")
                .unwrap();
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap();
            rows.map(Result::unwrap).collect()
        };
        assert_eq!(
            staged,
            [("copied".to_string(), 6), ("failed".to_string(), 3)]
        );
    }

    #[test]
    fn a_lost_upload_is_linked_but_never_to_a_file_another_link_accounts_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let target = FakeTarget {
            lists: true,
            ..FakeTarget::default()
        };
        let records = vec![("r1".to_string(), "t1".to_string())];
        let copy = |source: &FakeSource, run: &str| {
            let mut copier = Copier::new(source, &target, &store, run, "p", "Tickets", 2).unwrap();
            copier.list(&ids(&["r1"])).unwrap();
            let mut summary = PipelineSummary::default();
            copier.copy(&records, &mut summary).unwrap();
            summary
        };
        // The record's file is copied (h1).
        let source = FakeSource::default();
        assert_eq!(copy(&source, "run1").attachments_copied, 1);

        // A second file with the same name and size: h1 already stands for the first, so the
        // second is uploaded, not taken for a lost upload of it.
        let twin = AttachmentRef {
            id: "00P-twin".into(),
            parent_id: "r1".into(),
            kind: AttachmentKind::Attachment,
            name: "r1.txt".into(),
            content_type: "text/plain".into(),
            size: Some(2),
        };
        let source = FakeSource {
            more: vec![twin],
            ..FakeSource::default()
        };
        let summary = copy(&source, "run2");
        assert_eq!(
            (summary.attachments_copied, summary.attachments_unchanged),
            (1, 1)
        );
        assert_eq!(target.uploads.lock().unwrap().len(), 2);

        // The twin's link lost (killed before its commit): found on the record as h2 and
        // linked again, nothing uploaded.
        store
            .connection()
            .execute_batch("DELETE FROM id_map WHERE source_id = '00P-twin'")
            .unwrap();
        let summary = copy(&source, "run3");
        assert_eq!(
            (summary.attachments_copied, summary.attachments_unchanged),
            (0, 2)
        );
        assert_eq!(target.uploads.lock().unwrap().len(), 2);
        let links = store.links(&links_pipeline("p")).unwrap();
        assert_eq!(links["00P-r1"].target_id, "h1");
        assert_eq!(links["00P-twin"].target_id, "h2");
    }

    #[test]
    fn a_record_created_by_the_load_gets_its_files_whatever_links_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let target = FakeTarget::default();
        let source = FakeSource::default();
        let records = vec![("r1".to_string(), "t1".to_string())];
        let copy = |run: &str, created: bool| {
            let mut copier = Copier::new(&source, &target, &store, run, "p", "Tickets", 2).unwrap();
            copier.list(&ids(&["r1"])).unwrap();
            if created {
                copier.created_here(["t1".to_string()]);
            }
            let mut summary = PipelineSummary::default();
            copier.copy(&records, &mut summary).unwrap();
            (summary.attachments_copied, summary.attachments_unchanged)
        };
        assert_eq!(copy("run1", false), (1, 0));
        // A link that does not say which record it is on counts as copied for a record that
        // was there already...
        store
            .connection()
            .execute_batch("UPDATE id_map SET target_record = NULL WHERE source_id = '00P-r1'")
            .unwrap();
        assert_eq!(copy("run2", false), (0, 1));
        // ...but a record the load just created holds no file yet: its links are not read.
        assert_eq!(copy("run3", true), (1, 0));
        assert_eq!(target.uploads.lock().unwrap().len(), 2);
    }

    #[test]
    fn each_batch_reads_back_only_its_own_records_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let target = FakeTarget::default();
        let source = FakeSource::default();
        let mut copier = Copier::new(&source, &target, &store, "run1", "p", "Tickets", 2).unwrap();
        // Two pages listed, the first page twice (a record read again by id).
        copier.list(&ids(&["a1", "a2"])).unwrap();
        copier.list(&ids(&["b1", "b2"])).unwrap();
        copier.list(&ids(&["a1"])).unwrap();
        // Loaded in another order, in batches that mix the pages.
        let mut summary = PipelineSummary::default();
        copier
            .copy(
                &[("b2".into(), "t-b2".into()), ("a1".into(), "t-a1".into())],
                &mut summary,
            )
            .unwrap();
        assert_eq!(summary.attachments_copied, 2);
        copier
            .copy(
                &[("a2".into(), "t-a2".into()), ("b1".into(), "t-b1".into())],
                &mut summary,
            )
            .unwrap();
        assert_eq!(summary.attachments_copied, 4);
        let mut uploads = target.uploads.lock().unwrap().clone();
        uploads.sort();
        let expected: Vec<(String, Vec<u8>)> = ["a1", "a2", "b1", "b2"]
            .iter()
            .map(|id| (format!("t-{id}"), id.as_bytes().to_vec()))
            .collect();
        assert_eq!(uploads, expected);
    }

    #[test]
    fn the_lane_copies_a_batch_while_the_load_goes_on_and_holds_at_most_two() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let gate = Gate::closed();
        let source = FakeSource {
            gate: gate.clone(),
            ..FakeSource::default()
        };
        let target = FakeTarget::default();
        let batch = |ids: &[&str]| -> Vec<(String, String)> {
            ids.iter()
                .map(|id| (id.to_string(), format!("t-{id}")))
                .collect()
        };
        let mut copier = Copier::new(&source, &target, &store, "run1", "p", "Tickets", 2).unwrap();
        copier
            .list(&ids(&["a1", "a2", "b1", "b2", "c1", "c2"]))
            .unwrap();
        let mut summary = PipelineSummary::default();
        std::thread::scope(|scope| {
            let mut lane = copier.start(scope);
            let started = std::time::Instant::now();
            // Two batches handed over while no file can move yet: the load is not held up
            // by its copies.
            copier
                .send(&mut lane, &batch(&["a1", "a2"]), &mut summary)
                .unwrap();
            copier
                .send(&mut lane, &batch(&["b1", "b2"]), &mut summary)
                .unwrap();
            assert!(started.elapsed() < Duration::from_secs(5));
            assert!(target.uploads.lock().unwrap().is_empty());
            assert_eq!(summary.attachments_copied, 0);
            // A third waits for the first batch, whose outcomes it stages meanwhile.
            gate.open();
            copier
                .send(&mut lane, &batch(&["c1", "c2"]), &mut summary)
                .unwrap();
            assert!(summary.attachments_copied >= 2);
            copier.finish(&mut lane, &mut summary).unwrap();
        });
        assert_eq!(summary.attachments_copied, 6);
        let mut uploads = target.uploads.lock().unwrap().clone();
        uploads.sort();
        let expected: Vec<(String, Vec<u8>)> = ["a1", "a2", "b1", "b2", "c1", "c2"]
            .iter()
            .map(|id| (format!("t-{id}"), id.as_bytes().to_vec()))
            .collect();
        assert_eq!(uploads, expected);
        assert_eq!(store.links(&links_pipeline("p")).unwrap().len(), 6);
        let staged = staged_with_status(&store, "p_attachments", "copied");
        assert_eq!(staged, 6);
    }

    #[test]
    fn a_lane_dropped_mid_copy_loses_only_links_the_next_run_finds_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let gate = Gate::closed();
        let source = FakeSource {
            gate: gate.clone(),
            ..FakeSource::default()
        };
        let target = FakeTarget {
            lists: true,
            ..FakeTarget::default()
        };
        let records = vec![
            ("r1".to_string(), "t1".to_string()),
            ("r2".into(), "t2".into()),
        ];
        let mut copier = Copier::new(&source, &target, &store, "run1", "p", "Tickets", 2).unwrap();
        copier.list(&ids(&["r1", "r2"])).unwrap();
        let mut summary = PipelineSummary::default();
        std::thread::scope(|scope| {
            let mut lane = copier.start(scope);
            copier.send(&mut lane, &records, &mut summary).unwrap();
            // The load stops (an error, or the end of a failed run): the files in hand finish,
            // nothing more is staged.
            drop(lane);
            gate.open();
        });
        // A worker that had not taken its record yet when the lane stopped takes none.
        let uploaded = target.uploads.lock().unwrap().len();
        assert!((1..=2).contains(&uploaded), "{uploaded} uploads");
        assert!(store.links(&links_pipeline("p")).unwrap().is_empty());

        // The next run finds those on their records and links them, uploads the rest;
        // nothing is uploaded twice.
        let mut again = Copier::new(&source, &target, &store, "run2", "p", "Tickets", 2).unwrap();
        again.list(&ids(&["r1", "r2"])).unwrap();
        let mut summary = PipelineSummary::default();
        again.copy(&records, &mut summary).unwrap();
        assert_eq!(
            (summary.attachments_copied, summary.attachments_unchanged),
            (2 - uploaded as u64, uploaded as u64)
        );
        assert_eq!(target.uploads.lock().unwrap().len(), 2);
        assert_eq!(store.links(&links_pipeline("p")).unwrap().len(), 2);
    }

    #[test]
    fn files_are_keyed_per_record() {
        let file = AttachmentRef {
            id: "068A".into(),
            parent_id: "006B".into(),
            kind: AttachmentKind::File,
            name: "a.pdf".into(),
            content_type: "application/pdf".into(),
            size: Some(3),
        };
        assert_eq!(link_key(&file), "068A:006B");
        let classic = AttachmentRef {
            kind: AttachmentKind::Attachment,
            id: "00PA".into(),
            ..file
        };
        assert_eq!(link_key(&classic), "00PA");
        assert_eq!(links_pipeline("opportunities"), "opportunities:attachments");
    }
}
