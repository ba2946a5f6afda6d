//! The sync back's snapshot: the target's records as listed before the import, staged in
//! `<p>_back_extracted` and read back from there a chunk at a time in listing order (or by id),
//! with what the import wrote since applied over them, so that memory holds neither the
//! listed records nor their ids. `sync_back.rs` lists the target into it and plans from it;
//! the import's conflict check (`conflicts.rs`) reads the records it updates from it.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::connector::Record;
use super::error::EngineError;
use super::listing::Listing;
use crate::staging::Store;

/// The target's records as listed before the import, with what the import wrote since.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The records, staged in `<p>_back_extracted` in listing order.
    pub records: SnapshotRecords,
    /// Records the target's own switches keep out of the sync, with the reason.
    pub switched_off: HashMap<String, String>,
    /// (target id, target path) of conflicts left unresolved: not synced back either.
    pub held: HashSet<(String, String)>,
    /// API calls the listing took.
    pub api_calls: u64,
    /// The scratch table holding the target ids linked when the listing started (records the
    /// import creates after it are not missing from it), made when the run looks for removed
    /// records: a full listing, and a `from_halo` choice other than `ignore`.
    pub linked_before: Option<String>,
    /// Whether everything was listed or only the changes, and where the listing stood.
    pub listing: Listing,
}

impl Snapshot {
    /// Applies what the import wrote to a record: at once to a record kept in memory, else
    /// when the record is read. No read of staging per write (a read by id scans the listing):
    /// the writes are kept, and every [`PATCHES_PER_CHECK`] of them one join drops those to
    /// records the listing does not hold (a listing of changes lists few of them).
    pub fn patch(
        &mut self,
        store: &Store,
        target_id: &str,
        written: &Record,
    ) -> Result<(), EngineError> {
        let records = &mut self.records;
        match records.kept.get(target_id).and_then(|text| parse(text)) {
            Some(mut record) => {
                merge(&mut record, written);
                records.keep(target_id.to_string(), &record);
            }
            None => {
                let patches = records.patches.entry(target_id.to_string()).or_default();
                if patches.is_empty() {
                    records.unchecked.push(target_id.to_string());
                }
                patches.push(written.clone());
                if records.unchecked.len() >= PATCHES_PER_CHECK {
                    records.drop_unlisted_patches(store)?;
                }
            }
        }
        Ok(())
    }
}

/// The listed records by id. They live in this run's rows of `<p>_back_extracted`, where the
/// listing stages them, and are read from there when needed, so memory follows neither the
/// records nor their ids: which ids were listed, and how many, are asked of the staged rows.
/// Kept in memory, as JSON text, are only the records the import read to settle conflicts (it
/// patches them next), the latest text of a record listed twice (with its id), and records
/// given without staging them; and what the import wrote to the others, applied as they are
/// read.
#[derive(Debug, Default)]
pub struct SnapshotRecords {
    /// The staging table and run whose rows are the listing; empty when nothing was staged.
    pub(super) table: String,
    pub(super) run_id: String,
    /// How many ids the staged rows hold, each once (see [`SnapshotRecords::finish_listing`]).
    staged_ids: usize,
    /// Ids the listing returned more than once: their latest text is in `kept`.
    twice: HashSet<String>,
    /// Texts that win over the staged rows.
    kept: HashMap<String, Box<str>>,
    /// What the import wrote to records not kept in memory, in order: applied to the staged
    /// row when it is read.
    patches: HashMap<String, Vec<Record>>,
    /// Ids in `patches` not yet checked against the listing.
    unchecked: Vec<String>,
    /// Ids given without a staged row, in the order given.
    unstaged: Vec<String>,
    /// Records read one by one from staging (each a scan of the table's run), for the log.
    point_reads: std::cell::Cell<u64>,
}

/// Where a read of the snapshot in listing order stands (see [`SnapshotRecords::next_chunk`]).
#[derive(Debug, Default)]
pub struct ListingCursor {
    /// The first staged row not read yet, and one past the run's last (once looked up).
    next_rowid: i64,
    end_rowid: Option<i64>,
    unstaged_at: usize,
    /// Ids listed twice already read, so each is read once.
    seen_twice: HashSet<String>,
    /// The staged rows the last chunk was read from, `None` when it holds records given
    /// without staging them.
    last_rows: Option<(i64, i64)>,
}

impl ListingCursor {
    /// The range of staged row ids the last chunk came from (each record of it has its first
    /// row there), or `None` for a chunk of records given without staging them.
    pub fn last_rows(&self) -> Option<(i64, i64)> {
        self.last_rows
    }
}

impl SnapshotRecords {
    /// The records of run `run_id` staged in `table`.
    pub fn staged_in(table: String, run_id: &str) -> SnapshotRecords {
        SnapshotRecords {
            table,
            run_id: run_id.to_string(),
            ..SnapshotRecords::default()
        }
    }

    /// Reads what the listing staged, once it is done: how many records (each once), and the
    /// latest text of those listed more than once, which wins over their first row.
    pub fn finish_listing(&mut self, store: &Store) -> Result<(), EngineError> {
        if self.table.is_empty() {
            return Ok(());
        }
        let counts = store.listing_counts(&self.table, &self.run_id)?;
        self.staged_ids = counts.distinct;
        for (id, text) in counts.twice {
            self.twice.insert(id.clone());
            self.kept.insert(id, text.into_boxed_str());
        }
        Ok(())
    }

    /// How many records were listed, each once (as of [`finish_listing`](Self::finish_listing)).
    pub fn len(&self) -> usize {
        self.staged_ids + self.unstaged.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` was listed (or given): a read of staging unless kept in memory.
    pub fn contains_key(&self, store: &Store, id: &str) -> Result<bool, EngineError> {
        if self.kept.contains_key(id) {
            return Ok(true);
        }
        if self.table.is_empty() {
            return Ok(false);
        }
        let ids = [id.to_string()];
        Ok(!store
            .staged_among(&self.table, &self.run_id, &ids)?
            .is_empty())
    }

    /// Which of `ids` were not listed: one read of staging.
    pub fn not_listed(&self, store: &Store, ids: Vec<String>) -> Result<Vec<String>, EngineError> {
        let listed = match self.table.is_empty() || ids.is_empty() {
            true => HashSet::new(),
            false => store.staged_among(&self.table, &self.run_id, &ids)?,
        };
        Ok(ids
            .into_iter()
            .filter(|id| !listed.contains(id) && !self.kept.contains_key(id))
            .collect())
    }

    /// The links of `pipeline` (target id, source id) to target records linked before the
    /// listing (in the scratch table `linked_before`) that it did not list, leaving out links
    /// whose hash is one of `marks`; by target id. A snapshot without a staged listing tells
    /// none.
    pub fn linked_but_not_listed(
        &self,
        store: &Store,
        pipeline: &str,
        linked_before: &str,
        marks: &[&str],
    ) -> Result<Vec<(String, String)>, EngineError> {
        if self.table.is_empty() {
            return Ok(Vec::new());
        }
        let mut links = store.linked_but_not_listed(
            pipeline,
            linked_before,
            &self.table,
            &self.run_id,
            marks,
        )?;
        // Records given without staging them are listed too.
        links.retain(|(target_id, _)| !self.unstaged.iter().any(|u| u == target_id));
        Ok(links)
    }

    /// How many records were read one by one from staging.
    pub fn point_reads(&self) -> u64 {
        self.point_reads.get()
    }

    /// Keeps `record` under `id` without staging it (it wins over a staged row); whether `id`
    /// is new.
    pub fn insert(
        &mut self,
        store: &Store,
        id: String,
        record: &Record,
    ) -> Result<bool, EngineError> {
        let new = !self.contains_key(store, &id)?;
        if new {
            self.unstaged.push(id.clone());
        }
        self.keep(id, record);
        Ok(new)
    }

    /// Keeps `record`'s text under `id` in memory, over the staged row.
    fn keep(&mut self, id: String, record: &Record) {
        let text = serde_json::to_string(record).unwrap_or_default();
        self.kept.insert(id, text.into_boxed_str());
    }

    /// The text kept in memory for `id`, if any (it wins over the staged rows).
    pub(super) fn kept_text(&self, id: &str) -> Option<&str> {
        self.kept.get(id).map(|text| &**text)
    }

    /// Drops the writes kept for records the listing does not hold, among those not checked
    /// yet: one join.
    fn drop_unlisted_patches(&mut self, store: &Store) -> Result<(), EngineError> {
        let unchecked = std::mem::take(&mut self.unchecked);
        let listed = match self.table.is_empty() {
            true => HashSet::new(),
            false => store.staged_among(&self.table, &self.run_id, &unchecked)?,
        };
        for id in unchecked.iter().filter(|id| !listed.contains(*id)) {
            self.patches.remove(id);
        }
        Ok(())
    }

    /// The record of `id` from its staged `text`, with what the import wrote to it since.
    fn patched(&self, id: &str, text: &str) -> Option<Record> {
        let mut record = parse(text)?;
        for written in self.patches.get(id).into_iter().flatten() {
            merge(&mut record, written);
        }
        Some(record)
    }

    /// The record listed under `id`; a read of staging unless kept in memory.
    pub fn get(&self, store: &Store, id: &str) -> Result<Option<Record>, EngineError> {
        if let Some(text) = self.kept.get(id) {
            return Ok(parse(text));
        }
        if self.table.is_empty() {
            return Ok(None);
        }
        let Some(text) = store.staged_text(&self.table, &self.run_id, id)? else {
            return Ok(None);
        };
        self.point_reads.set(self.point_reads.get() + 1);
        Ok(self.patched(id, &text))
    }

    /// Like [`get`](Self::get), keeping what it read in memory for the write that follows.
    pub fn get_and_keep(&mut self, store: &Store, id: &str) -> Result<Option<Record>, EngineError> {
        let found = self.get(store, id)?;
        if let Some(record) = &found {
            if !self.kept.contains_key(id) {
                // The text kept holds what the import wrote so far.
                self.patches.remove(id);
                self.keep(id.to_string(), record);
            }
        }
        Ok(found)
    }

    /// Reads the records listed under `ids` (one read of staging per few hundred ids) and keeps
    /// them in memory, as [`get_and_keep`](Self::get_and_keep) does one at a time.
    pub fn keep_many<'a>(
        &mut self,
        store: &Store,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), EngineError> {
        let found = self.get_many(store, ids)?;
        for (id, record) in found {
            if !self.kept.contains_key(&id) {
                self.patches.remove(&id);
                self.keep(id, &record);
            }
        }
        Ok(())
    }

    /// The records listed under `ids`, in one read of staging per few hundred ids.
    pub fn get_many<'a>(
        &self,
        store: &Store,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, Record>, EngineError> {
        self.get_many_within(store, ids, None)
    }

    /// [`get_many`](Self::get_many), told the staged rows (`from..to`) the ids were listed in
    /// (see [`ListingCursor::last_rows`]), so that DuckDB reads only those instead of every
    /// row of the run: a mass edit's write-back read the whole listing for each batch. (Ids
    /// listed twice are answered from memory, with their latest text.)
    pub fn get_many_within<'a>(
        &self,
        store: &Store,
        ids: impl IntoIterator<Item = &'a str>,
        rows: Option<(i64, i64)>,
    ) -> Result<HashMap<String, Record>, EngineError> {
        let mut found = HashMap::new();
        let mut to_read: Vec<&str> = Vec::new();
        for id in ids {
            if let Some(text) = self.kept.get(id) {
                if let Some(record) = parse(text) {
                    found.insert(id.to_string(), record);
                }
            } else if !self.table.is_empty() {
                to_read.push(id);
            }
        }
        to_read.sort_unstable();
        to_read.dedup();
        for ids in to_read.chunks(IDS_PER_READ) {
            let rows = store.staged_records_of(&self.table, &self.run_id, ids, rows)?;
            for (id, text) in rows {
                // Rows come in staging order: the latest of an id listed twice wins.
                if let Some(record) = self.patched(&id, &text) {
                    found.insert(id, record);
                }
            }
        }
        Ok(found)
    }

    /// The next records in listing order, up to `limit` staged rows' worth, as (id, JSON
    /// text), each id once and the texts kept in memory winning; empty at the end. The cursor
    /// tells which staged rows the chunk came from ([`ListingCursor::last_rows`]).
    pub fn next_chunk(
        &self,
        store: &Store,
        cursor: &mut ListingCursor,
        limit: usize,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let mut chunk = Vec::new();
        if cursor.end_rowid.is_none() && !self.table.is_empty() {
            // The run's rows were staged one after the other: read them by range of row ids,
            // so that each read fetches only its own records.
            let (first, last) = store
                .run_rowids(&self.table, &self.run_id)?
                .unwrap_or((0, -1));
            cursor.next_rowid = first;
            cursor.end_rowid = Some(last + 1);
        }
        let end = cursor.end_rowid.unwrap_or(0);
        let limit = limit.max(1) as i64;
        let from = cursor.next_rowid;
        while chunk.is_empty() && cursor.next_rowid < end {
            let to = (cursor.next_rowid + limit).min(end);
            let rows =
                store.staged_records_between(&self.table, &self.run_id, cursor.next_rowid, to)?;
            cursor.next_rowid = to;
            for (id, text) in rows {
                if self.twice.contains(&id) && !cursor.seen_twice.insert(id.clone()) {
                    continue;
                }
                let text = match (self.kept.get(&id), self.patches.contains_key(&id)) {
                    (Some(kept), _) => kept.to_string(),
                    (None, true) => self
                        .patched(&id, &text)
                        .and_then(|record| serde_json::to_string(&record).ok())
                        .unwrap_or(text),
                    (None, false) => text,
                };
                chunk.push((id, text));
            }
        }
        cursor.last_rows = Some((from, cursor.next_rowid));
        if chunk.is_empty() {
            let end = (cursor.unstaged_at + limit as usize).min(self.unstaged.len());
            for id in &self.unstaged[cursor.unstaged_at..end] {
                if let Some(text) = self.kept.get(id) {
                    chunk.push((id.clone(), text.to_string()));
                }
            }
            cursor.unstaged_at = end;
            cursor.last_rows = None;
        }
        Ok(chunk)
    }
}

/// Writes of the import kept (see [`Snapshot::patch`]) between two checks against the listing.
const PATCHES_PER_CHECK: usize = 5_000;

/// Ids per read of [`SnapshotRecords::get_many`].
const IDS_PER_READ: usize = 500;

/// A record from its JSON text; `None` if the text is no object.
pub fn parse(text: &str) -> Option<Record> {
    match serde_json::from_str(text) {
        Ok(Value::Object(record)) => Some(record),
        _ => None,
    }
}

fn merge(into: &mut Record, from: &Record) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staging::{PipelineTables, Stage};
    use serde_json::json;

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("staging.duckdb")).unwrap();
        (dir, store)
    }

    /// Stages `records` as the listing does, noting each in `snapshot`.
    fn stage(store: &Store, snapshot: &mut Snapshot, run_id: &str, records: &[(&str, Value)]) {
        let tables = PipelineTables {
            pipeline: "accounts_back".into(),
            extracted: Vec::new(),
            transformed: Vec::new(),
        };
        store.ensure_pipeline_tables(&tables).unwrap();
        let mut rows = Vec::new();
        for (id, record) in records {
            let text = serde_json::to_string(record).unwrap();
            rows.push(vec![
                ("run_id".to_string(), super::super::rows::text(run_id)),
                ("source_id".to_string(), super::super::rows::text(id)),
                ("record".to_string(), super::super::rows::text(&text)),
                ("staged_at".to_string(), super::super::rows::now_cell()),
            ]);
        }
        store.append(&tables, Stage::Extracted, &rows).unwrap();
        snapshot.records.finish_listing(store).unwrap();
    }

    fn all_in_order(store: &Store, snapshot: &Snapshot, chunk: usize) -> Vec<(String, Value)> {
        let mut cursor = ListingCursor::default();
        let mut read = Vec::new();
        loop {
            let records = snapshot
                .records
                .next_chunk(store, &mut cursor, chunk)
                .unwrap();
            if records.is_empty() {
                return read;
            }
            for (id, text) in records {
                read.push((id, serde_json::from_str(&text).unwrap()));
            }
        }
    }

    #[test]
    fn the_snapshot_is_read_from_staging_with_the_imports_writes_over_it() {
        let (_dir, store) = store();
        let mut snapshot = Snapshot {
            records: SnapshotRecords::staged_in("accounts_back_extracted".into(), "run-2"),
            ..Snapshot::default()
        };
        stage(
            &store,
            &mut snapshot,
            "run-2",
            &[
                (
                    "1",
                    json!({"id": 1, "name": "One", "site": {"city": "Leeds"}}),
                ),
                ("2", json!({"id": 2, "name": "Two, first page"})),
                ("3", json!({"id": 3, "name": "Three"})),
            ],
        );
        // Another run's rows are not this listing.
        let mut other = Snapshot::default();
        stage(&store, &mut other, "run-3", &[("9", json!({"id": 9}))]);
        // A record listed again on a later page (it moved while the listing ran): once, at its
        // first place, with its latest values.
        stage(
            &store,
            &mut snapshot,
            "run-2",
            &[("2", json!({"id": 2, "name": "Two, last page"}))],
        );
        assert_eq!(snapshot.records.len(), 3);
        assert!(snapshot.records.contains_key(&store, "3").unwrap());
        assert!(!snapshot.records.contains_key(&store, "9").unwrap());
        // The import's write wins over the staged row, nested fields merged.
        snapshot
            .patch(&store, "1", &record(json!({"site": {"street": "1 Road"}})))
            .unwrap();
        let one = json!({"id": 1, "name": "One", "site": {"city": "Leeds", "street": "1 Road"}});
        for chunk in [1, 2, 10] {
            assert_eq!(
                all_in_order(&store, &snapshot, chunk),
                vec![
                    ("1".to_string(), one.clone()),
                    ("2".to_string(), json!({"id": 2, "name": "Two, last page"})),
                    ("3".to_string(), json!({"id": 3, "name": "Three"})),
                ],
                "read {chunk} rows at a time"
            );
        }
        assert_eq!(
            snapshot.records.get(&store, "1").unwrap(),
            Some(record(one.clone()))
        );
        assert_eq!(
            snapshot.records.get(&store, "3").unwrap(),
            Some(record(json!({"id": 3, "name": "Three"})))
        );
        assert_eq!(snapshot.records.get(&store, "9").unwrap(), None);
        assert_eq!(
            snapshot.records.point_reads(),
            2,
            "1 and 3 read by id (the patch of 1 reads nothing)"
        );
        let many = snapshot
            .records
            .get_many(&store, ["1", "2", "3", "4"])
            .unwrap();
        assert_eq!(many.len(), 3);
        assert_eq!(many["2"]["name"], json!("Two, last page"));
        assert_eq!(many["1"], record(one));
        // Told the staged rows the ids were listed in, only those are read; an id listed
        // twice is answered from memory all the same.
        let three: i64 = store
            .connection()
            .query_row(
                &format!(
                    "SELECT rowid FROM \"{}\" WHERE source_id = '3'",
                    snapshot.records.table
                ),
                [],
                |row| row.get(0),
            )
            .unwrap();
        let within = |ids: &[&str], rows: (i64, i64)| {
            let found = snapshot
                .records
                .get_many_within(&store, ids.iter().copied(), Some(rows))
                .unwrap();
            let mut ids: Vec<String> = found.into_keys().collect();
            ids.sort();
            ids
        };
        assert_eq!(within(&["3"], (three, three + 1)), ["3"]);
        assert!(within(&["3"], (three + 1, three + 2)).is_empty());
        assert_eq!(within(&["2", "3"], (three + 1, three + 2)), ["2"]);
        // A record given without staging it comes after the staged ones.
        assert!(snapshot
            .records
            .insert(&store, "5".into(), &record(json!({"id": 5})))
            .unwrap());
        assert!(!snapshot
            .records
            .insert(
                &store,
                "3".into(),
                &record(json!({"id": 3, "name": "Three"}))
            )
            .unwrap());
        let ids: Vec<String> = all_in_order(&store, &snapshot, 2)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["1", "2", "3", "5"]);

        // Writes to a record not kept apply in order when it is read; a read to settle a
        // conflict keeps the record with them, and a later write applies to what is kept.
        let (_dir, store) = self::store();
        let mut snapshot = Snapshot {
            records: SnapshotRecords::staged_in("accounts_back_extracted".into(), "run-4"),
            ..Snapshot::default()
        };
        stage(
            &store,
            &mut snapshot,
            "run-4",
            &[("3", json!({"id": 3, "site": null}))],
        );
        let write = |snapshot: &mut Snapshot, value: Value| {
            snapshot.patch(&store, "3", &record(value)).unwrap();
        };
        write(&mut snapshot, json!({"name": "Three"}));
        write(&mut snapshot, json!({"site": {"city": "York"}}));
        // Writes to records the listing does not hold are dropped at the next check.
        snapshot
            .patch(&store, "8", &record(json!({"name": "Eight"})))
            .unwrap();
        snapshot.records.drop_unlisted_patches(&store).unwrap();
        assert_eq!(
            snapshot.records.patches.keys().collect::<Vec<_>>(),
            ["3"],
            "8 is not listed"
        );
        let three = json!({"id": 3, "name": "Three", "site": {"city": "York"}});
        assert_eq!(
            snapshot.records.get_and_keep(&store, "3").unwrap(),
            Some(record(three))
        );
        write(&mut snapshot, json!({"site": {"street": "3 Lane"}}));
        let reads = snapshot.records.point_reads();
        assert_eq!(
            all_in_order(&store, &snapshot, 10),
            vec![(
                "3".to_string(),
                json!({"id": 3, "name": "Three", "site": {"city": "York", "street": "3 Lane"}})
            )]
        );
        assert_eq!(
            snapshot.records.get(&store, "3").unwrap(),
            Some(record(
                json!({"id": 3, "name": "Three", "site": {"city": "York", "street": "3 Lane"}})
            ))
        );
        assert_eq!(snapshot.records.point_reads(), reads, "kept: no read");

        // A chunk's conflict checks read their records together, with the writes so far.
        let (_dir, store) = self::store();
        let mut snapshot = Snapshot {
            records: SnapshotRecords::staged_in("accounts_back_extracted".into(), "run-5"),
            ..Snapshot::default()
        };
        stage(
            &store,
            &mut snapshot,
            "run-5",
            &[("4", json!({"id": 4})), ("5", json!({"id": 5}))],
        );
        snapshot
            .patch(&store, "5", &record(json!({"name": "Five"})))
            .unwrap();
        snapshot.records.keep_many(&store, ["4", "5", "9"]).unwrap();
        assert_eq!(
            snapshot.records.get_and_keep(&store, "5").unwrap(),
            Some(record(json!({"id": 5, "name": "Five"})))
        );
        assert_eq!(
            snapshot.records.get_and_keep(&store, "4").unwrap(),
            Some(record(json!({"id": 4})))
        );
        assert_eq!(
            snapshot.records.point_reads(),
            0,
            "kept together: no read by id"
        );
    }
}
