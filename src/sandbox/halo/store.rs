//! The Halo instance's data: one table of rows per entity, keyed by Halo's integer ids, plus the
//! bytes of uploaded attachments. Rows hold what was written (never nulls); names of related
//! records and other read-only fields are worked out when a row is rendered.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::entity::{Entity, TABLES};
use crate::civil;

/// One stored record. `customfields` is kept as an object of FieldInfo id → value.
pub type Row = Map<String, Value>;

#[derive(Debug, Default, Clone)]
pub struct Table {
    pub rows: BTreeMap<u64, Row>,
    pub next_id: u64,
}

#[derive(Debug, Clone)]
pub struct Store {
    tables: HashMap<Entity, Table>,
    blobs: HashMap<u64, Vec<u8>>,
    /// The last write's time, in Halo's resolution (100 ns).
    last_tick: i64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        let tables = TABLES
            .iter()
            .map(|e| {
                (
                    *e,
                    Table {
                        rows: BTreeMap::new(),
                        next_id: 1,
                    },
                )
            })
            .collect();
        Store {
            tables,
            blobs: HashMap::new(),
            last_tick: 0,
        }
    }

    pub fn table(&self, entity: Entity) -> &Table {
        &self.tables[&entity.table()]
    }

    fn table_mut(&mut self, entity: Entity) -> &mut Table {
        self.tables
            .get_mut(&entity.table())
            .expect("every table exists")
    }

    pub fn get(&self, entity: Entity, id: u64) -> Option<&Row> {
        self.table(entity).rows.get(&id)
    }

    pub fn exists(&self, entity: Entity, id: u64) -> bool {
        self.get(entity, id).is_some()
    }

    /// A time for a write, in 100 ns steps as Halo's own times are: now, but always later than
    /// the previous one, so `last_update` orders every change without running ahead of the
    /// clock in a burst of writes (which a millisecond step would).
    pub fn tick(&mut self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| (d.as_nanos() / 100) as i64);
        self.last_tick = now.max(self.last_tick + 1);
        self.last_tick
    }

    /// Stores a new row under the next id and returns the id.
    pub fn insert(&mut self, entity: Entity, mut row: Row) -> u64 {
        let now = halo_datetime_ticks(self.tick());
        row.entry("datecreated")
            .or_insert(Value::String(now.clone()));
        // When the action was taken / the ticket was logged.
        match entity {
            Entity::Actions => {
                row.entry("datetime").or_insert(Value::String(now.clone()));
            }
            Entity::Tickets | Entity::Opportunities => {
                row.entry("dateoccurred")
                    .or_insert(Value::String(now.clone()));
            }
            _ => {}
        }
        row.insert("last_update".into(), Value::String(now));
        let table = self.table_mut(entity);
        let id = table.next_id;
        table.next_id += 1;
        row.insert("id".into(), Value::from(id));
        table.rows.insert(id, row);
        id
    }

    /// Stores a row under its own id (loading saved data).
    pub fn put(&mut self, entity: Entity, id: u64, row: Row) {
        let table = self.table_mut(entity);
        table.next_id = table.next_id.max(id + 1);
        table.rows.insert(id, row);
    }

    /// Replaces an existing row, moving its `last_update` forward.
    pub fn replace(&mut self, entity: Entity, id: u64, mut row: Row) {
        let now = halo_datetime_ticks(self.tick());
        row.insert("last_update".into(), Value::String(now));
        row.insert("id".into(), Value::from(id));
        self.table_mut(entity).rows.insert(id, row);
    }

    pub fn remove(&mut self, entity: Entity, id: u64) -> Option<Row> {
        if entity == Entity::Attachment {
            self.blobs.remove(&id);
        }
        self.table_mut(entity).rows.remove(&id)
    }

    pub fn put_blob(&mut self, attachment_id: u64, bytes: Vec<u8>) {
        self.blobs.insert(attachment_id, bytes);
    }

    pub fn blob(&self, attachment_id: u64) -> Option<&[u8]> {
        self.blobs.get(&attachment_id).map(Vec::as_slice)
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&u64, &Vec<u8>)> {
        self.blobs.iter()
    }

    /// An integer field of a row (Halo sends some ids as floats, e.g. `18.0`).
    pub fn int(row: &Row, field: &str) -> Option<i64> {
        number(row.get(field)?)
    }

    /// A row's `name`, for the `<x>_name` read-outs of related records.
    pub fn name_of(&self, entity: Entity, id: i64) -> Option<&str> {
        let id = u64::try_from(id).ok()?;
        self.get(entity, id)?.get("name")?.as_str()
    }
}

/// An integer from a JSON number or numeric string (`18`, `18.0`, `"18"`).
pub fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Halo's datetime format in responses: UTC with seven fractional digits and `Z`
/// (`2024-06-20T14:45:15.9746271Z`, from a real response).
pub fn halo_datetime(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let rem = millis.rem_euclid(86_400_000);
    let (secs, ms) = (rem / 1000, rem % 1000);
    format!(
        "{}T{:02}:{:02}:{:02}.{ms:03}0000Z",
        civil::format_date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A time given in 100 ns steps, in Halo's datetime format (see [`halo_datetime`]).
pub fn halo_datetime_ticks(ticks: i64) -> String {
    let text = halo_datetime(ticks.div_euclid(10_000));
    format!(
        "{}{:04}Z",
        &text[..text.len() - 5],
        ticks.rem_euclid(10_000)
    )
}

/// Milliseconds of a Halo datetime, with or without zone (`2022-09-26T16:15:38.897` is read as
/// UTC, as Halo's own zone-less values are) or a plain date.
pub fn parse_halo_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.len() == 10 {
        return civil::parse_date(text).map(|days| days * 86_400_000);
    }
    civil::parse_datetime(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip() {
        let millis = parse_halo_datetime("2024-06-20T14:45:15.974Z").unwrap();
        assert_eq!(halo_datetime(millis), "2024-06-20T14:45:15.9740000Z");
        assert_eq!(
            halo_datetime_ticks(millis * 10_000 + 6271),
            "2024-06-20T14:45:15.9746271Z"
        );
        assert_eq!(
            parse_halo_datetime("2024-06-20T14:45:15.9746271Z"),
            Some(millis)
        );
        assert_eq!(
            parse_halo_datetime("2024-06-20"),
            parse_halo_datetime("2024-06-20T00:00:00")
        );
    }

    #[test]
    fn numbers_from_any_shape() {
        assert_eq!(number(&serde_json::json!(18.0)), Some(18));
        assert_eq!(number(&serde_json::json!("18")), Some(18));
        assert_eq!(number(&serde_json::json!(18.5)), None);
    }
}
