//! The emulated org's data: describe metadata (the offline catalog plus custom fields from the
//! data folder) and the records of every object, indexed by Id.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::ids;
use super::indexes::Indexes;
use crate::civil;
use crate::salesforce::catalog::{self, FieldInfo, ObjectInfo};

/// One record: field API name → value as Salesforce puts it on the wire.
pub type Record = Map<String, Value>;

#[derive(Debug, Default, Clone)]
pub struct Table {
    pub records: Vec<Record>,
    pub by_id: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
pub struct Org {
    pub org_id: String,
    objects: BTreeMap<String, ObjectInfo>,
    tables: HashMap<String, Table>,
    counters: HashMap<String, u64>,
    /// Key prefix → object name, to find the object of an Id.
    prefixes: HashMap<String, String>,
    /// The last timestamp handed out, so that every write moves `SystemModstamp` forward.
    last_millis: i64,
    /// Bodies of blob fields (`Attachment.Body`, `ContentVersion.VersionData`) by record Id.
    blobs: HashMap<String, Vec<u8>>,
    /// Indexes SOQL execution built over the records, forgotten by every change below.
    indexes: Indexes,
}

impl Default for Org {
    fn default() -> Self {
        Org::new()
    }
}

impl Org {
    pub fn new() -> Org {
        let mut objects = BTreeMap::new();
        let mut prefixes = HashMap::new();
        for name in catalog::standard_object_names() {
            let info = catalog::standard_object(name).expect("listed").clone();
            prefixes.insert(info.key_prefix.clone(), info.name.clone());
            objects.insert(info.name.clone(), info);
        }
        Org {
            org_id: ids::to_18("00D5g0000000001"),
            objects,
            tables: HashMap::new(),
            counters: HashMap::new(),
            prefixes,
            last_millis: 0,
            blobs: HashMap::new(),
            indexes: Indexes::default(),
        }
    }

    /// Adds a custom field (`TaskType__c`) to an object's describe, or redefines a field it has.
    pub fn add_custom_field(&mut self, object: &str, field: FieldInfo) -> Result<(), String> {
        self.indexes.clear();
        let info = self
            .objects
            .get_mut(object)
            .ok_or_else(|| format!("no object {object}"))?;
        // A line for a standard field (`StageName` made restricted) redefines it in place, so
        // the describe keeps Salesforce's field order.
        match info.fields.iter_mut().find(|f| f.name == field.name) {
            Some(existing) => *existing = field,
            None => info.fields.push(field),
        }
        Ok(())
    }

    /// Deletes a field from an object's describe, as an admin deleting it in Setup would (the
    /// values stay in the records but the API no longer knows the field).
    pub fn remove_field(&mut self, object: &str, field: &str) -> Result<(), String> {
        self.indexes.clear();
        let info = self
            .objects
            .get_mut(object)
            .ok_or_else(|| format!("no object {object}"))?;
        info.fields.retain(|f| f.name != field);
        Ok(())
    }

    pub fn describe(&self, object: &str) -> Option<&ObjectInfo> {
        self.objects.get(object)
    }

    /// The object name as the org spells it, for a name in any case.
    pub fn object_name(&self, name: &str) -> Option<&str> {
        self.objects
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    pub fn objects(&self) -> impl Iterator<Item = &ObjectInfo> {
        self.objects.values()
    }

    /// The object an Id belongs to, by its key prefix.
    pub fn object_of_id(&self, id: &str) -> Option<&str> {
        self.prefixes.get(id.get(..3)?).map(String::as_str)
    }

    pub fn table(&self, object: &str) -> Option<&Table> {
        self.tables.get(object)
    }

    pub fn records(&self, object: &str) -> &[Record] {
        self.tables
            .get(object)
            .map_or(&[], |t| t.records.as_slice())
    }

    /// The record with this (18-character) Id, deleted or not.
    pub fn get(&self, id: &str) -> Option<&Record> {
        let object = self.object_of_id(id)?;
        let table = self.tables.get(object)?;
        table.by_id.get(id).map(|&i| &table.records[i])
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Record> {
        self.indexes.clear();
        let object = self.object_of_id(id)?.to_string();
        let table = self.tables.get_mut(&object)?;
        let index = *table.by_id.get(id)?;
        Some(&mut table.records[index])
    }

    /// Removes a record for good, as emptying the recycle bin does: `queryAll` no longer
    /// finds it. True when it was there.
    pub fn purge(&mut self, id: &str) -> bool {
        self.indexes.clear();
        let Some(object) = self.object_of_id(id).map(str::to_string) else {
            return false;
        };
        let Some(table) = self.tables.get_mut(&object) else {
            return false;
        };
        let Some(index) = table.by_id.remove(id) else {
            return false;
        };
        table.records.remove(index);
        for position in table.by_id.values_mut() {
            if *position > index {
                *position -= 1;
            }
        }
        true
    }

    /// The indexes built over the records since they last changed (positions in
    /// [`Org::records`]).
    pub fn indexes(&self) -> &Indexes {
        &self.indexes
    }

    /// Every object's records, for saving.
    pub fn tables(&self) -> impl Iterator<Item = (&String, &Table)> {
        self.tables.iter()
    }

    /// Every blob, for saving.
    pub fn blobs(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.blobs.iter()
    }

    pub fn put_blob(&mut self, id: &str, body: Vec<u8>) {
        self.blobs.insert(id.to_string(), body);
    }

    pub fn blob(&self, id: &str) -> Option<&[u8]> {
        self.blobs.get(id).map(Vec::as_slice)
    }

    /// A timestamp for a write: now, but always after the previous one.
    pub fn tick(&mut self) -> i64 {
        self.last_millis = civil::now_millis().max(self.last_millis + 1);
        self.last_millis
    }

    /// A fresh Id for `object`.
    pub fn next_id(&mut self, object: &str) -> String {
        let prefix = self
            .objects
            .get(object)
            .map_or("000", |o| o.key_prefix.as_str())
            .to_string();
        let counter = self.counters.entry(object.to_string()).or_insert(0);
        *counter += 1;
        ids::make(&prefix, *counter)
    }

    /// Stores a record as given (its `Id` must be set): for seeding and loading from disk.
    pub fn put(&mut self, object: &str, record: Record) {
        self.indexes.clear();
        let id = record
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(prefix_counter) = id.get(6..15).map(base62_value) {
            let counter = self.counters.entry(object.to_string()).or_insert(0);
            *counter = (*counter).max(prefix_counter);
        }
        let table = self.tables.entry(object.to_string()).or_default();
        match table.by_id.get(&id) {
            Some(&i) => table.records[i] = record,
            None => {
                table.by_id.insert(id, table.records.len());
                table.records.push(record);
            }
        }
    }

    /// Fills the system fields of a new record and stores it; returns its Id.
    pub fn create(&mut self, object: &str, mut record: Record, owner: &str) -> String {
        let id = self.next_id(object);
        let now = civil::salesforce_datetime(self.tick());
        let info = self.objects.get(object);
        if info.is_some_and(|o| o.field("OwnerId").is_some()) && !record.contains_key("OwnerId") {
            record.insert("OwnerId".into(), Value::String(owner.to_string()));
        }
        let mut full = Record::new();
        full.insert("Id".into(), Value::String(id.clone()));
        full.insert("IsDeleted".into(), Value::Bool(false));
        for (key, value) in [
            ("CreatedDate", now.clone()),
            ("CreatedById", owner.to_string()),
            ("LastModifiedDate", now.clone()),
            ("LastModifiedById", owner.to_string()),
            ("SystemModstamp", now),
        ] {
            full.insert(key.into(), Value::String(value));
        }
        full.extend(record);
        derive_fields(object, &mut full);
        self.put(object, full);
        id
    }

    /// Applies changed fields to a record and moves its modification stamps.
    pub fn touch(&mut self, id: &str, changes: Record, by: &str) -> bool {
        let now = civil::salesforce_datetime(self.tick());
        let object = self.object_of_id(id).unwrap_or_default().to_string();
        let Some(record) = self.get_mut(id) else {
            return false;
        };
        record.extend(changes);
        derive_fields(&object, record);
        record.insert("LastModifiedDate".into(), Value::String(now.clone()));
        record.insert("LastModifiedById".into(), Value::String(by.to_string()));
        record.insert("SystemModstamp".into(), Value::String(now));
        true
    }
}

/// Fields Salesforce computes: a person's `Name` from first and last name.
pub fn derive_fields(object: &str, record: &mut Record) {
    if matches!(object, "Contact" | "User") {
        let part = |key: &str| {
            record
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let name = format!("{} {}", part("FirstName"), part("LastName"))
            .trim()
            .to_string();
        record.insert("Name".into(), Value::String(name));
    }
}

/// The counter part of a generated Id (characters 7–15, base 62).
fn base62_value(text: &str) -> u64 {
    text.bytes().fold(0u64, |acc, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => 0,
        };
        acc.wrapping_mul(62).wrapping_add(u64::from(digit))
    })
}
