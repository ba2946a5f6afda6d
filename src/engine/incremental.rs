//! Incremental imports: which records a run reads when its pipeline has a cursor field, and
//! when the pipeline's watermark moves.
//!
//! A pipeline with a cursor reads in (cursor, id) order from its stored watermark, so that a
//! run reads only what changed. Three things make that safe:
//! - the watermark is saved only when the run's load has finished, so a run that stops early
//!   (crash, connection lost, `etl plan`) leaves it where it was and the next run reads the
//!   same changes again, which the plan then finds unchanged or loads;
//! - the records the last loading run left failed or skipped are read again by id, although
//!   they did not change, so a record that failed for a passing reason (a lookup that was not
//!   there yet, a refused write) is retried as it would be by a full read;
//! - a watermark belongs to one shape of read (the pipeline's definition and the cursor): when
//!   the pipeline file changes, or `--full` is given, the run reads everything again.
//!
//! Files added to or shared with a record do not move the record's cursor, so a read of changes
//! also asks the source which records gained files since the later of the watermark and the
//! newest file an earlier look found (kept beside the watermark as `<pipeline>:files`), and
//! reads those again; a record whose file failed to copy is read again like a failed record.
//! When the source refuses one of the look's listings, the next look starts where this one did
//! (kept as `<pipeline>:files_from` until a look answers in full), not after the watermark the
//! run moved on: a file the refused listing would have found is still found.

use sha2::{Digest, Sha256};

use super::connector::{ExtractRequest, IncrementalRead, NewFiles, Record, Watermark};
use super::error::EngineError;
use crate::civil;
use crate::config::model::Pipeline;
use crate::staging::{ExtractKind, Store, StoredWatermark};

/// The watermarks row that keeps the newest file a pipeline's look for gained files found
/// (pipeline names have no `:`).
fn files_key(pipeline: &str) -> String {
    format!("{pipeline}:files")
}

/// The watermarks row that keeps where a look for gained files started when the source refused
/// one of its listings: the next look starts there too.
fn files_from_key(pipeline: &str) -> String {
    format!("{pipeline}:files_from")
}

/// How this run reads a pipeline with a cursor.
pub(super) struct IncrementalPlan {
    pub read: IncrementalRead,
    /// Records to read again by id (left failed or skipped by the last loading run, or with
    /// a file it failed to copy).
    pub retry: Vec<String>,
    pub kind: ExtractKind,
    shape: String,
    /// The stamp (milliseconds since the epoch) of the newest file an earlier look found.
    files_seen: Option<i64>,
    /// Where an earlier look that missed a listing started (milliseconds since the epoch).
    files_from: Option<i64>,
}

/// The fingerprint of a pipeline's read and transform: any change to the pipeline file makes
/// the next read a full one, so no record keeps values from an older definition.
pub(super) fn read_shape(pipeline: &Pipeline) -> String {
    let definition = serde_json::to_string(pipeline).unwrap_or_default();
    let digest = Sha256::digest(definition.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The read for this run, or `None` when the pipeline has no cursor (it reads everything).
pub(super) fn plan(
    pipeline: &Pipeline,
    store: &Store,
    results_table: &str,
    full: bool,
) -> Result<Option<IncrementalPlan>, EngineError> {
    let Some(cursor) = &pipeline.salesforce.incremental else {
        return Ok(None);
    };
    let shape = read_shape(pipeline);
    let stored = store.watermark(&pipeline.pipeline)?.filter(|mark| {
        !full && mark.read_shape == shape && mark.cursor_field.eq_ignore_ascii_case(cursor.field())
    });
    let retry = match &stored {
        Some(mark) => store.unsettled_sources(
            results_table,
            &crate::staging::attachments_table(&pipeline.pipeline),
            &mark.run_id,
        )?,
        None => Vec::new(),
    };
    let kept_time = |key: String| -> Result<Option<i64>, EngineError> {
        Ok(match &stored {
            Some(_) => store
                .watermark(&key)?
                .filter(|mark| mark.read_shape == shape)
                .and_then(|mark| mark.value.parse::<i64>().ok()),
            None => None,
        })
    };
    let files_seen = kept_time(files_key(&pipeline.pipeline))?;
    let files_from = kept_time(files_from_key(&pipeline.pipeline))?;
    Ok(Some(IncrementalPlan {
        read: IncrementalRead {
            cursor_field: cursor.field().to_string(),
            since: stored.as_ref().map(|mark| Watermark {
                value: mark.value.clone(),
                id: mark.last_id.clone(),
            }),
            lookback: cursor.lookback(),
        },
        retry,
        kind: if stored.is_some() {
            ExtractKind::Incremental
        } else {
            ExtractKind::Full
        },
        shape,
        files_seen,
        files_from,
    }))
}

impl IncrementalPlan {
    /// The watermark this read started after, as staged in `extracts.since`.
    pub fn since_text(&self) -> Option<String> {
        self.read
            .since
            .as_ref()
            .map(|mark| format!("{} {}", mark.value, mark.id))
    }

    /// The request that reads again, by id, the records left to retry and `also` (records
    /// that gained files), leaving out those `already_read` answers were read already.
    pub fn retry_request<E>(
        &self,
        request: &ExtractRequest,
        also: Vec<String>,
        already_read: impl FnOnce(&[String]) -> Result<std::collections::HashSet<String>, E>,
    ) -> Result<Option<ExtractRequest>, E> {
        let wanted: Vec<String> = self
            .retry
            .iter()
            .cloned()
            .chain(also)
            .collect::<std::collections::BTreeSet<String>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return Ok(None);
        }
        let read = already_read(&wanted)?;
        let ids: Vec<String> = wanted.into_iter().filter(|id| !read.contains(id)).collect();
        Ok((!ids.is_empty()).then(|| ExtractRequest {
            ids,
            incremental: None,
            ..request.clone()
        }))
    }

    /// After what time (milliseconds since the epoch) to look for files added to records: the
    /// later of the watermark and the newest file found before, or where a look that missed a
    /// listing started, less the cursor's lookback. `None` on a first read, which lists every
    /// record's files anyway.
    pub fn files_after(&self) -> Result<Option<i64>, EngineError> {
        Ok(self
            .look_start()?
            .map(|start| start - self.read.lookback.as_millis() as i64))
    }

    /// Where the look for gained files starts, before the lookback.
    fn look_start(&self) -> Result<Option<i64>, EngineError> {
        let Some(since) = &self.read.since else {
            return Ok(None);
        };
        if let Some(from) = self.files_from {
            return Ok(Some(from));
        }
        let Some(read_to) = civil::parse_datetime(&since.value) else {
            return Err(EngineError::Config(format!(
                "the watermark {} of {} is not a datetime, so files added to records since \
                 cannot be looked for: use a datetime cursor such as SystemModstamp",
                since.value, self.read.cursor_field
            )));
        };
        Ok(Some(read_to.max(self.files_seen.unwrap_or(i64::MIN))))
    }

    /// Saves where this run's read ended, after its load finished, and what its look for
    /// gained files found: the stamp of the newest file, and where the next look starts when
    /// this one missed a listing. A read that found nothing keeps the old position, under
    /// this run (whose results say what is left to retry).
    pub fn save(
        &self,
        store: &Store,
        pipeline: &str,
        reached: Option<Watermark>,
        files: &NewFiles,
        run_id: &str,
    ) -> Result<(), EngineError> {
        let kept_time = |key: String, time: i64| {
            store.save_watermark(
                &key,
                &StoredWatermark {
                    cursor_field: self.read.cursor_field.clone(),
                    value: time.to_string(),
                    last_id: String::new(),
                    read_shape: self.shape.clone(),
                    run_id: run_id.to_string(),
                },
            )
        };
        let newest_file = files
            .newest
            .filter(|&newest| self.files_seen.is_none_or(|seen| newest > seen));
        if let Some(newest) = newest_file {
            kept_time(files_key(pipeline), newest)?;
        }
        match (files.complete, self.look_start()) {
            (false, Ok(Some(start))) if self.files_from != Some(start) => {
                kept_time(files_from_key(pipeline), start)?
            }
            // A full read lists every record's files: no look is left to make again.
            (true, _) if self.files_from.is_some() || self.read.since.is_none() => {
                store.clear_watermark(&files_from_key(pipeline))?
            }
            _ => {}
        }
        let Some(mark) = reached.or_else(|| self.read.since.clone()) else {
            return Ok(());
        };
        store.save_watermark(
            pipeline,
            &StoredWatermark {
                cursor_field: self.read.cursor_field.clone(),
                value: mark.value,
                last_id: mark.id,
                read_shape: self.shape.clone(),
                run_id: run_id.to_string(),
            },
        )?;
        Ok(())
    }
}

/// A record's position in the cursor order, if it carries the cursor field and its id.
pub(super) fn position(record: &Record, cursor_field: &str, id_field: &str) -> Option<Watermark> {
    let text = |name: &str| {
        record
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_str())
            .map(str::to_string)
    };
    Some(Watermark {
        value: text(cursor_field)?,
        id: text(id_field)?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TEN: &str = "2026-11-30T10:00:00.000+0000";

    fn incremental(
        since: Option<&str>,
        lookback_secs: u64,
        files_seen: Option<i64>,
    ) -> IncrementalPlan {
        IncrementalPlan {
            read: IncrementalRead {
                cursor_field: "SystemModstamp".into(),
                since: since.map(|value| Watermark {
                    value: value.into(),
                    id: "001000000000001AAA".into(),
                }),
                lookback: Duration::from_secs(lookback_secs),
            },
            retry: Vec::new(),
            kind: ExtractKind::Incremental,
            shape: "shape".into(),
            files_seen,
            files_from: None,
        }
    }

    fn found(newest: Option<i64>, complete: bool) -> NewFiles {
        NewFiles {
            records: Vec::new(),
            newest,
            complete,
        }
    }

    #[test]
    fn files_are_looked_for_after_the_later_of_the_watermark_and_the_newest_file_found() {
        let ten = civil::parse_datetime(TEN).unwrap();
        let after = |plan: IncrementalPlan| plan.files_after().unwrap();
        assert_eq!(after(incremental(None, 0, None)), None, "a first read");
        assert_eq!(after(incremental(Some(TEN), 0, None)), Some(ten));
        assert_eq!(
            after(incremental(Some(TEN), 0, Some(ten + 5_000))),
            Some(ten + 5_000)
        );
        assert_eq!(
            after(incremental(Some(TEN), 0, Some(ten - 5_000))),
            Some(ten)
        );
        assert_eq!(
            after(incremental(Some(TEN), 300, Some(ten + 5_000))),
            Some(ten + 5_000 - 300_000),
            "less the lookback"
        );
        let error = incremental(Some("42"), 0, None).files_after().unwrap_err();
        assert!(error.to_string().contains("not a datetime"), "{error}");
    }

    #[test]
    fn the_newest_file_found_is_kept_only_when_it_moves_the_mark_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let kept = |store: &Store| {
            store
                .watermark(&files_key("p"))
                .unwrap()
                .map(|mark| (mark.value, mark.run_id))
        };
        let ten = civil::parse_datetime(TEN).unwrap();
        incremental(Some(TEN), 0, None)
            .save(&store, "p", None, &found(None, true), "r1")
            .unwrap();
        assert_eq!(kept(&store), None, "nothing found");
        incremental(Some(TEN), 0, None)
            .save(&store, "p", None, &found(Some(ten + 1), true), "r2")
            .unwrap();
        assert_eq!(kept(&store), Some(((ten + 1).to_string(), "r2".into())));
        incremental(Some(TEN), 0, Some(ten + 1))
            .save(&store, "p", None, &found(Some(ten), true), "r3")
            .unwrap();
        assert_eq!(kept(&store), Some(((ten + 1).to_string(), "r2".into())));
    }

    #[test]
    fn a_look_that_missed_a_listing_is_made_again_from_where_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.duckdb")).unwrap();
        let ten = civil::parse_datetime(TEN).unwrap();
        let held = |store: &Store| {
            store
                .watermark(&files_from_key("p"))
                .unwrap()
                .map(|mark| mark.value)
        };
        // The look from ten was refused a listing; the read moved the watermark an hour on.
        incremental(Some(TEN), 0, Some(ten - 5_000))
            .save(&store, "p", None, &found(Some(ten + 1), false), "r1")
            .unwrap();
        assert_eq!(held(&store), Some(ten.to_string()));
        let mut next = incremental(Some("2026-11-30T11:00:00.000+0000"), 60, Some(ten + 1));
        next.files_from = Some(ten);
        assert_eq!(
            next.files_after().unwrap(),
            Some(ten - 60_000),
            "where the refused look started, less the lookback"
        );
        // Refused again: the same start is kept; answered in full: forgotten.
        next.save(&store, "p", None, &found(None, false), "r2")
            .unwrap();
        assert_eq!(held(&store), Some(ten.to_string()));
        next.save(&store, "p", None, &found(None, true), "r3")
            .unwrap();
        assert_eq!(held(&store), None);
    }
}
