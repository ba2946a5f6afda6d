//! Which of the target's records the sync back lists in a run: all of them, or only those
//! changed since the last listing, for entities the target can list by update time.
//!
//! A listing of changes asks for the records whose update time is at or after a bound taken
//! from the target's own clock, never ours: the greatest update time among the records it
//! listed, less the time that had passed since the listing started when each page came back
//! (a record saved during the listing may carry a later time than the listing's start),
//! carried on from one listing to the next by the time passed in between, less a lookback
//! (`sync.listing_lookback`, 1 minute by default) for saves whose time was set before they
//! were committed. So the bound is always at or before the time the target's clock showed when
//! the last listing started: whatever changed after that is listed again, the import's own
//! writes included.
//!
//! The mark moves only once the run's sync back has finished, in a run that loads everything
//! it planned (`etl plan`, `etl apply`, `--select` and a failed run leave it where it was). A
//! record the sync back failed to write, and one whose conflict the import held
//! (`skip_and_report`), are read again by id in the next listing of changes, although they did
//! not change, so they are settled as a full listing would settle them.
//!
//! Everything is listed when there is no mark yet, when the pipeline file changed since it was
//! made, with `etl run --full`, and on the `sync.full_listing` schedule (`24h` by default, its
//! last time kept in the staging file like the hard-delete look-up's): only a full listing can
//! tell that a linked record is gone, so removals (`deletes.from_halo`) wait for one.

use std::time::Instant;

use super::connector::{Record, Source};
use super::error::EngineError;
use super::run::RunOptions;
use super::Mode;
use crate::config::model::{FullListing, Pipeline};
use crate::staging::{ExtractKind, ListingMark, Stage, Store};

/// The name the full listing's last time is kept under (see `staging/checks.rs`).
const FULL_LISTING_CHECK: &str = "full_listing";

/// How one run lists the target for the sync back.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every record is listed: a linked record missing from the listing may be gone.
    pub full: bool,
    /// Why everything is listed, for the log.
    pub reason: &'static str,
    /// Only records changed at or after this time (the target's clock) are listed.
    pub since: Option<i64>,
    /// Target ids read again by id although they did not change: left failed by the last
    /// sync back, or holding a conflict.
    pub again: Vec<String>,
    /// Whether the target lists this entity by update time at all.
    lists_changes: bool,
    /// A time the target's clock had surely reached when this listing started.
    reached: Option<i64>,
    started: Option<Instant>,
    /// When this listing started, by our clock (milliseconds since the epoch).
    started_at: i64,
    shape: String,
}

/// Decides how this run lists `entity` of `pipeline`.
pub(super) fn plan(
    pipeline: &Pipeline,
    reader: &dyn Source,
    store: &Store,
    entity: &str,
    options: &RunOptions,
) -> Result<Listing, EngineError> {
    let mut listing = Listing {
        full: true,
        lists_changes: reader.lists_changes(entity),
        shape: super::incremental::read_shape(pipeline),
        started_at: crate::civil::now_millis(),
        ..Listing::default()
    };
    if !listing.lists_changes {
        listing.reason = "the target lists these records only whole";
        return Ok(listing);
    }
    let stored = store.listing_mark(&pipeline.pipeline)?;
    let changed = stored
        .as_ref()
        .is_some_and(|mark| mark.read_shape != listing.shape);
    let mark = stored.filter(|mark| mark.read_shape == listing.shape && !options.full_extract);
    if let Some(mark) = &mark {
        // The target's clock has moved on since the last listing started by as much as ours
        // (whatever either one reads): the time it had reached then, plus what passed since,
        // is a time it had reached when this listing started.
        let passed = (listing.started_at - mark.started_at).max(0);
        listing.reached = Some(mark.target_time.saturating_add(passed));
    }
    let due = || -> Result<Option<&'static str>, EngineError> {
        Ok(match pipeline.sync.full_listing() {
            FullListing::EveryRun => Some("`sync.full_listing` is every_run"),
            FullListing::Every(seconds) => {
                match store.last_check(&pipeline.pipeline, FULL_LISTING_CHECK)? {
                    None => Some("no full listing yet"),
                    Some(last) if listing.started_at - last >= seconds as i64 * 1000 => {
                        Some("the `sync.full_listing` interval has passed")
                    }
                    Some(_) => None,
                }
            }
        })
    };
    let reason = if options.full_extract {
        Some("--full")
    } else if changed {
        Some("the pipeline file changed since the last listing")
    } else if mark.is_none() {
        Some("no listing yet")
    } else {
        due()?
    };
    match (reason, &mark) {
        (None, Some(mark)) => {
            // From the last listing's start: everything that changed after it is listed.
            let lookback = pipeline.sync.listing_lookback().as_millis() as i64;
            listing.full = false;
            listing.since = Some(mark.target_time - lookback);
            let back_results = format!("{}_back_{}", pipeline.pipeline, Stage::Results.suffix());
            let conflicts = format!("{}_{}", pipeline.pipeline, Stage::Conflicts.suffix());
            let mut again = store.failed_sources(&back_results, &mark.run_id)?;
            again.extend(store.held_conflicts(&conflicts, &mark.run_id)?);
            again.sort();
            again.dedup();
            listing.again = again;
        }
        (reason, _) => listing.reason = reason.unwrap_or("no listing yet"),
    }
    Ok(listing)
}

impl Listing {
    /// How the run read the target, for `extracts`: the kind, and the bound as text.
    pub(super) fn extract_kind(&self) -> (ExtractKind, Option<String>) {
        match self.since {
            Some(since) if !self.full => (
                ExtractKind::Incremental,
                Some(crate::civil::iso_datetime(since)),
            ),
            _ => (ExtractKind::Full, None),
        }
    }

    /// Marks the start of the listing: update times later than the target's clock then may
    /// come back in pages read after it.
    pub(super) fn start(&mut self) {
        self.started = Some(Instant::now());
        self.started_at = crate::civil::now_millis();
    }

    /// Raises the time the target's clock had reached at the start with a page's update times,
    /// each less the time that had passed since the start.
    pub(super) fn observe(&mut self, reader: &dyn Source, entity: &str, page: &[Record]) {
        if !self.lists_changes {
            return;
        }
        let Some(latest) = page
            .iter()
            .filter_map(|r| reader.changed_at(entity, r))
            .max()
        else {
            return;
        };
        let passed = self.started.map_or(0, |s| s.elapsed().as_millis() as i64);
        let reached = latest - passed;
        self.reached = Some(self.reached.map_or(reached, |r| r.max(reached)));
    }

    /// Keeps where this listing stood, once the run's sync back has finished, unless the run
    /// did not load everything it planned. A full listing also restarts its schedule.
    pub(super) fn save(
        &self,
        store: &Store,
        pipeline: &Pipeline,
        options: &RunOptions,
    ) -> Result<(), EngineError> {
        // `etl apply` holds back what its reviewed plan did not write, as a selection does.
        let selected = !options.select.is_empty()
            || !options.exclude.is_empty()
            || options.select_where.is_some()
            || options.reviewed.is_some();
        if !self.lists_changes || options.mode != Mode::Load || selected {
            return Ok(());
        }
        if let Some(reached) = self.reached {
            store.save_listing_mark(
                &pipeline.pipeline,
                &ListingMark {
                    target_time: reached,
                    started_at: self.started_at,
                    read_shape: self.shape.clone(),
                    run_id: options.run_id.clone(),
                },
            )?;
        }
        if self.full {
            store.record_check(
                &pipeline.pipeline,
                FULL_LISTING_CHECK,
                self.started_at,
                &options.run_id,
            )?;
        }
        Ok(())
    }
}
