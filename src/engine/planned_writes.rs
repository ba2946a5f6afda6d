//! The sync back's planned writes and links, read back from its staged plan a batch at a time.
//! Planning stages every record's plan row; the load reads the links (records matched to a
//! source record) and then the creates and updates among them again, a window of rows at a
//! time, so a run that changes or matches many records holds one window of them, not all
//! (about 1 KB a write: 49,000 changed Halo users held 46 MB).

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::error::EngineError;
use super::plan::{subset, Action, Change, Planned};
use crate::staging::{StagedWrite, StagingError, Store};

/// Rows of the plan table read per query.
const READ_WINDOW: i64 = 2_000;

/// The writes (or links) planned for each planning chunk, in order: how many, and the rows of
/// the listing the chunk's records were in (`None` when they were not staged).
#[derive(Default)]
pub(super) struct WriteSpans(VecDeque<(usize, ListedRows)>);

impl WriteSpans {
    /// Records that the next chunk planned `writes` writes of records listed in `rows`.
    pub fn push(&mut self, writes: usize, rows: ListedRows) {
        if writes > 0 {
            self.0.push_back((writes, rows));
        }
    }

    pub fn total(&self) -> usize {
        self.0.iter().map(|(writes, _)| writes).sum()
    }

    /// The listing rows of the next `count` writes: `None` when any of them was not staged.
    fn take(&mut self, mut count: usize) -> ListedRows {
        let mut span: Option<ListedRows> = None;
        while count > 0 {
            let (left, rows) = self.0.front_mut()?;
            let taken = count.min(*left);
            span = Some(match (span, *rows) {
                (None, rows) => rows,
                (Some(Some((from, to))), Some((f, t))) => Some((from.min(f), to.max(t))),
                _ => None,
            });
            *left -= taken;
            count -= taken;
            if *left == 0 {
                self.0.pop_front();
            }
        }
        span.flatten()
    }
}

/// Rows of the listing (first, last), as [`ListingCursor::last_rows`] gives them.
///
/// [`ListingCursor::last_rows`]: super::snapshot::ListingCursor::last_rows
type ListedRows = Option<(i64, i64)>;

/// Reads run `run_id`'s planned writes (or links) from its plan table in the order they were
/// planned.
pub(super) struct PlannedWrites<'a> {
    store: &'a Store,
    table: &'a str,
    run_id: &'a str,
    actions: &'a [&'a str],
    /// The plan table's rows still to read.
    rows: Option<(i64, i64)>,
    /// How many of the planned records are still to read.
    unread: usize,
    read: VecDeque<Planned>,
    spans: WriteSpans,
}

impl<'a> PlannedWrites<'a> {
    /// The creates and updates (`actions` of `["create", "update"]`) or the links (`["link"]`)
    /// whose counts `spans` holds, staged in `rows` (first, last) of `table`.
    pub fn new(
        store: &'a Store,
        (table, rows): (&'a str, Option<(i64, i64)>),
        run_id: &'a str,
        actions: &'a [&'a str],
        spans: WriteSpans,
    ) -> PlannedWrites<'a> {
        let unread = spans.total();
        PlannedWrites {
            store,
            table,
            run_id,
            actions,
            rows: rows.filter(|_| unread > 0),
            unread,
            read: VecDeque::new(),
            spans,
        }
    }

    /// The next (up to) `size` writes, with the rows of the listing their records were in.
    pub fn next_batch(
        &mut self,
        size: usize,
    ) -> Result<Option<(Vec<Planned>, ListedRows)>, EngineError> {
        while self.read.len() < size {
            let Some((from, last)) = self.rows else {
                break;
            };
            let to = last.min(from.saturating_add(READ_WINDOW - 1));
            for staged in
                self.store
                    .staged_writes_between(self.table, self.run_id, self.actions, from, to)?
            {
                self.read.push_back(planned(self.table, staged)?);
                self.unread = self.unread.saturating_sub(1);
            }
            // Past the last planned record, the rest of the rows (removals) are not read.
            self.rows = (to < last && self.unread > 0).then_some((to + 1, last));
        }
        if self.read.is_empty() {
            return Ok(None);
        }
        let batch: Vec<Planned> = self.read.drain(..size.min(self.read.len())).collect();
        let rows = self.spans.take(batch.len());
        Ok(Some((batch, rows)))
    }
}

/// A staged create or update as the load sends it: the whole record for a create, the changed
/// fields for an update (as planning made them); or a link, with the record as planned.
fn planned(table: &str, staged: StagedWrite) -> Result<Planned, EngineError> {
    let unreadable = |detail: String| {
        EngineError::Staging(StagingError::Read {
            what: format!("the planned write of {} in {table}", staged.source_id),
            detail,
        })
    };
    let record = || -> Result<Map<String, Value>, EngineError> {
        let after = staged.after.as_deref().unwrap_or("{}");
        serde_json::from_str(after).map_err(|e| unreadable(e.to_string()))
    };
    let (action, write, after) = match staged.action.as_str() {
        "create" => (Action::Create, Some(record()?), Map::new()),
        "link" => (Action::Link, None, record()?),
        _ => {
            let fields = staged.changed_fields.as_deref().unwrap_or("[]");
            let changes: Vec<StagedChange> =
                serde_json::from_str(fields).map_err(|e| unreadable(e.to_string()))?;
            let changes: Vec<Change> = changes
                .into_iter()
                .map(|change| (change.field, change.before, change.after))
                .collect();
            (Action::Update, Some(subset(&changes)), Map::new())
        }
    };
    Ok(Planned {
        source_id: staged.source_id,
        action,
        target_id: staged.target_id,
        reason: staged.reason,
        changes: Vec::new(),
        before: None,
        after,
        write,
        hash: String::new(),
        matched: None,
    })
}

/// One element of a plan row's `changed_fields`.
#[derive(serde::Deserialize)]
struct StagedChange {
    field: String,
    #[serde(default)]
    before: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_joined_over_the_chunks_a_batch_takes_from() {
        let mut spans = WriteSpans::default();
        spans.push(3, Some((0, 9)));
        spans.push(0, None);
        spans.push(2, Some((10, 19)));
        spans.push(2, None);
        spans.push(1, Some((30, 39)));
        assert_eq!(spans.total(), 8);
        assert_eq!(spans.take(2), Some((0, 9)));
        assert_eq!(spans.take(2), Some((0, 19)));
        assert_eq!(
            spans.take(2),
            None,
            "a write not staged reads the whole listing"
        );
        assert_eq!(spans.take(1), None);
        assert_eq!(spans.take(1), Some((30, 39)));
        assert_eq!(spans.take(1), None, "nothing left");
    }

    #[test]
    fn an_update_sends_its_changed_fields_and_a_create_its_record() {
        let update = StagedWrite {
            source_id: "7".into(),
            action: "update".into(),
            target_id: Some("003A".into()),
            reason: None,
            changed_fields: Some(
                r#"[{"field":"Phone","before":"1","after":"2"},{"field":"Title","before":"x","after":null}]"#
                    .into(),
            ),
            after: None,
        };
        let planned_update = planned("t", update).unwrap();
        assert_eq!(planned_update.action, Action::Update);
        assert_eq!(
            Value::Object(planned_update.write.unwrap()),
            serde_json::json!({"Phone": "2", "Title": null})
        );
        let create = StagedWrite {
            source_id: "8".into(),
            action: "create".into(),
            target_id: None,
            reason: Some("why".into()),
            changed_fields: None,
            after: Some(r#"{"LastName":"Ng","Email":"a@b"}"#.into()),
        };
        let planned_create = planned("t", create).unwrap();
        assert_eq!(
            Value::Object(planned_create.write.unwrap()),
            serde_json::json!({"LastName": "Ng", "Email": "a@b"})
        );
        let link = StagedWrite {
            source_id: "10".into(),
            action: "link".into(),
            target_id: Some("003B".into()),
            reason: Some("matched on Email".into()),
            changed_fields: None,
            after: Some(r#"{"Email":"c@d"}"#.into()),
        };
        let planned_link = planned("t", link).unwrap();
        assert_eq!(
            (planned_link.action, planned_link.write.is_none()),
            (Action::Link, true)
        );
        assert_eq!(
            Value::Object(planned_link.after),
            serde_json::json!({"Email": "c@d"})
        );
        let broken = StagedWrite {
            source_id: "9".into(),
            action: "create".into(),
            target_id: None,
            reason: None,
            changed_fields: None,
            after: Some("{".into()),
        };
        let error = planned("t", broken).unwrap_err().to_string();
        assert!(error.contains("the planned write of 9 in t"), "{error}");
    }
}
