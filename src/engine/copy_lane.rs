//! The copy lane: the thread that copies a load's files while the load goes on with its next
//! batches (see `attachments.rs` for how the load hands them over and stages what it did). It
//! takes the batches in order and copies each on up to `in_flight` workers, each worker taking
//! one target record at a time: the record's listing, to recognise uploads whose answer was
//! lost, then for each file the body streamed from the source into one buffer and sent to the
//! target in one upload, so at most `in_flight` bodies are held. The lane only talks to the two
//! systems; what it does goes back to the load's thread as events, since the staging store
//! stays on that thread.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::Scope;

use super::connector::{AttachmentRef, Source, Target, TargetAttachment};
use super::error::EngineError;

/// The files of one target record that need the network: its listing (to recognise uploads
/// whose answer was lost), then an upload per file not found there. One worker does all of a
/// record's files, so a record linked from two source records is never listed while another
/// worker uploads to it.
pub(super) struct Transfer {
    pub target_id: String,
    /// The target record was created by this run, so it holds no upload of an earlier one
    /// whose answer was lost: its files need no listing first.
    pub created_here: bool,
    /// (source record, file), in the order the records came.
    pub files: Vec<(String, AttachmentRef)>,
}

/// What a worker did with one file: `transfer` and `file` index [`Transfer::files`].
pub(super) struct Moved {
    pub transfer: usize,
    pub file: usize,
    pub outcome: Outcome,
}

pub(super) enum Outcome {
    /// Uploaded; the target's id for it.
    Copied(String),
    /// Already on the target record (an upload whose answer was lost); its id there.
    Linked(String),
    /// The source's or the target's message.
    Failed(String),
}

/// One batch's transfers, shared by the copy lane (which moves their files) and the load's
/// thread (which stages each outcome by its indexes).
pub(super) type Job = Arc<Vec<Transfer>>;

/// Batches handed to the copy lane and not done yet, at most: one being copied, one waiting.
/// The load waits (staging what the lane did) before it hands over another.
pub(super) const MAX_BATCHES_AT_THE_LANE: usize = 2;

/// What the copy lane tells the load's thread, in the order it happens; always about the oldest
/// batch not done yet, since the lane copies the batches one after the other.
pub(super) enum Event {
    /// A file's outcome.
    Moved(Moved),
    /// Attachments found on the batch's target records that could be uploads whose answer was
    /// lost: which of them does a link account for? Answered once every outcome before it is
    /// committed, so the links of the batches before count.
    Ask(Vec<String>),
    /// Every file of the batch has its outcome.
    Done,
}

/// The thread that copies the batches' files while the load goes on (see the module's doc),
/// as seen from the load's thread. Made by [`CopyLane::start`] inside a thread scope; dropping it
/// stops the lane after the files in hand (their outcomes, never committed, are what the next
/// run finds on the target records by name and size).
pub struct CopyLane {
    jobs: mpsc::Sender<Job>,
    answers: mpsc::Sender<HashSet<String>>,
    events: mpsc::Receiver<Event>,
    /// Batches handed over and not done, oldest first.
    waiting: VecDeque<Job>,
    /// Outcomes of the oldest batch received and not committed yet: (transfer, file, the
    /// target's id for it, status).
    pub(super) arrived: Vec<(usize, usize, String, &'static str)>,
    /// Failed files of the oldest batch, reported when it is done.
    pub(super) failures: Vec<(usize, usize, String)>,
}

impl CopyLane {
    /// Starts the copy lane in `scope`; it takes the batches [`CopyLane::hand_over`] gives it
    /// until it is dropped.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        source: &'scope dyn Source,
        target: &'scope dyn Target,
        entity: String,
        in_flight: usize,
    ) -> CopyLane {
        let (jobs, job_inbox) = mpsc::channel::<Job>();
        let (answers, answer_inbox) = mpsc::channel::<HashSet<String>>();
        let (events_out, events) = mpsc::channel::<Event>();
        // The lane logs under the run's and pipeline's span, as the load's thread does.
        let span = tracing::Span::current();
        scope.spawn(move || {
            let _in_span = span.enter();
            let lane = Lane {
                source,
                target,
                entity: &entity,
                in_flight: in_flight.max(1),
                answers: answer_inbox,
                events: events_out,
            };
            for job in job_inbox {
                if !lane.copy(&job) {
                    break;
                }
            }
        });
        CopyLane {
            jobs,
            answers,
            events,
            waiting: VecDeque::new(),
            arrived: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// The source records whose files a batch still at the lane is copying.
    pub(super) fn copying(&self) -> HashSet<&str> {
        self.waiting
            .iter()
            .flat_map(|job| job.iter())
            .flat_map(|transfer| {
                transfer
                    .files
                    .iter()
                    .map(|(source_id, _)| source_id.as_str())
            })
            .collect()
    }

    /// Batches handed over and not done yet.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Hands a batch's transfers to the lane.
    pub(super) fn hand_over(&mut self, transfers: Vec<Transfer>) -> Result<(), EngineError> {
        let job = Arc::new(transfers);
        self.jobs.send(job.clone()).map_err(|_| lane_stopped())?;
        self.waiting.push_back(job);
        Ok(())
    }

    /// What the lane said next: with `wait`, waits for it; otherwise `None` when it has said
    /// nothing more yet.
    pub(super) fn next_event(&self, wait: bool) -> Result<Option<Event>, EngineError> {
        if wait {
            return self.events.recv().map(Some).map_err(|_| lane_stopped());
        }
        match self.events.try_recv() {
            Ok(event) => Ok(Some(event)),
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => Err(lane_stopped()),
        }
    }

    /// Answers the lane's [`Event::Ask`]: the attachments a link accounts for.
    pub(super) fn answer(&self, known: HashSet<String>) -> Result<(), EngineError> {
        self.answers.send(known).map_err(|_| lane_stopped())
    }

    /// The oldest batch not done yet, which every event is about.
    pub(super) fn oldest(&self) -> Option<Job> {
        self.waiting.front().cloned()
    }

    /// The oldest batch is done and staged.
    pub(super) fn oldest_done(&mut self) {
        self.waiting.pop_front();
    }
}

fn lane_stopped() -> EngineError {
    EngineError::Connection(
        "the attachment copier stopped before copying every file handed to it".into(),
    )
}

/// Whether a target's attachment is a copy of this file, as far as the target says: the same
/// name, and the same size when it gives one.
fn same_file(attachment: &TargetAttachment, file: &AttachmentRef) -> bool {
    attachment.name == file.name && (attachment.size.is_none() || attachment.size == file.size)
}

/// The copy lane's own thread: it copies one batch at a time and only talks to the two systems;
/// what it does goes back to the load's thread as [`Event`]s.
struct Lane<'l> {
    source: &'l dyn Source,
    target: &'l dyn Target,
    entity: &'l str,
    in_flight: usize,
    answers: mpsc::Receiver<HashSet<String>>,
    events: mpsc::Sender<Event>,
}

impl Lane<'_> {
    /// Copies one batch's files on up to `in_flight` workers, then says it is done; `false`
    /// when the load's thread stopped listening (it failed, or the run is ending on an error).
    fn copy(&self, transfers: &[Transfer]) -> bool {
        let Some(present) = self.present_on(transfers) else {
            return false;
        };
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        // Workers log under the run's and pipeline's span, as the lane does.
        let span = tracing::Span::current();
        std::thread::scope(|scope| {
            for _ in 0..self.in_flight.min(transfers.len()) {
                let (next, stop, span, present) = (&next, &stop, &span, &present);
                let events = self.events.clone();
                let (source, target, entity) = (self.source, self.target, self.entity);
                scope.spawn(move || {
                    let _in_span = span.enter();
                    while !stop.load(Ordering::Relaxed) {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(transfer) = transfers.get(index) else {
                            break;
                        };
                        let present = present[index].clone();
                        if !move_files(source, target, entity, present, transfer, index, &events) {
                            // No new copies: the other workers finish the file in hand and stop.
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                });
            }
        });
        !stop.load(Ordering::Relaxed) && self.events.send(Event::Done).is_ok()
    }

    /// What each transfer's target record already holds that could be an upload of one of its
    /// files whose answer was lost (same name and size): the records this run did not create
    /// are listed on up to `in_flight` workers, then the load's thread leaves out the
    /// attachments some link accounts for, looked up for the whole batch at once. `None` when
    /// the load's thread stopped listening.
    fn present_on(&self, transfers: &[Transfer]) -> Option<Vec<Vec<TargetAttachment>>> {
        if transfers.iter().all(|transfer| transfer.created_here) {
            return Some(vec![Vec::new(); transfers.len()]);
        }
        let (target, entity) = (self.target, self.entity);
        let listed = on_workers(self.in_flight, transfers, |transfer| {
            if transfer.created_here {
                return Vec::new();
            }
            // If the target cannot list them, uploading is still right.
            let present = target
                .attachments_of(entity, &transfer.target_id)
                .unwrap_or_default();
            present
                .into_iter()
                .filter(|attachment| {
                    transfer
                        .files
                        .iter()
                        .any(|(_, file)| same_file(attachment, file))
                })
                .collect::<Vec<_>>()
        });
        let candidates: Vec<String> = listed.iter().flatten().map(|a| a.id.clone()).collect();
        if candidates.is_empty() {
            return Some(listed);
        }
        self.events.send(Event::Ask(candidates)).ok()?;
        let known = self.answers.recv().ok()?;
        Some(
            listed
                .into_iter()
                .map(|present| {
                    present
                        .into_iter()
                        .filter(|attachment| !known.contains(&attachment.id))
                        .collect()
                })
                .collect(),
        )
    }
}

/// Runs `work` on each item on up to `workers` threads; the results in the items' order.
fn on_workers<T: Sync, R: Send>(
    workers: usize,
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let next = AtomicUsize::new(0);
    // Workers log under the run's and pipeline's span, as the calling thread does.
    let span = tracing::Span::current();
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1).min(items.len()) {
            let (results, next, span, work) = (&results, &next, &span, &work);
            scope.spawn(move || {
                let _in_span = span.enter();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else {
                        break;
                    };
                    let result = work(item);
                    results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// A worker's part of one transfer: for each file, takes the one already on the target record
/// by name and size (an upload whose answer was lost; `present` holds the candidates) or
/// copies it. Hands each outcome back as soon as it has it; `false` when the caller stopped
/// listening.
fn move_files(
    source: &dyn Source,
    target: &dyn Target,
    entity: &str,
    mut present: Vec<TargetAttachment>,
    transfer: &Transfer,
    index: usize,
    outcomes: &mpsc::Sender<Event>,
) -> bool {
    for (file_index, (_, file)) in transfer.files.iter().enumerate() {
        let outcome = match present.iter().position(|a| same_file(a, file)) {
            Some(found) => Outcome::Linked(present.remove(found).id),
            None => match copy_file(source, target, entity, &transfer.target_id, file) {
                Ok(attachment_id) => Outcome::Copied(attachment_id),
                Err(message) => Outcome::Failed(message),
            },
        };
        let moved = Moved {
            transfer: index,
            file: file_index,
            outcome,
        };
        if outcomes.send(Event::Moved(moved)).is_err() {
            return false;
        }
    }
    true
}

/// Downloads one file whole, checks its size against the listing, uploads it; the target's
/// id for it, or the message of whichever side failed. The body is dropped on return, so a
/// worker holds one at a time.
fn copy_file(
    source: &dyn Source,
    target: &dyn Target,
    entity: &str,
    target_id: &str,
    file: &AttachmentRef,
) -> Result<String, String> {
    let mut body = Vec::with_capacity(file.size.unwrap_or(0).min(64 << 20) as usize);
    let written = source.attachment_body(file, &mut body)?;
    if let Some(expected) = file.size.filter(|expected| *expected != written) {
        return Err(format!(
            "the source sent {written} bytes of {:?}, but lists it at {expected}",
            file.name
        ));
    }
    target.attach(entity, target_id, &file.name, &file.content_type, &body)
}
