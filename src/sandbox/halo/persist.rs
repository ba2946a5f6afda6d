//! Saving the Halo instance to the data folder and loading it back: rows as JSON lines tagged
//! with their entity, attachment bodies base64-encoded.

use std::path::Path;

use base64::Engine;
use serde_json::json;

use super::entity::{Entity, TABLES};
use super::store::Store;
use crate::sandbox::files::{read_json_lines, write_json_lines};

const RECORDS: &str = "halo-records.jsonl";
const BLOBS: &str = "halo-blobs.jsonl";

/// True when the folder holds a saved Halo instance.
pub fn exists(dir: &Path) -> bool {
    dir.join(RECORDS).exists()
}

pub fn save(store: &Store, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let rows = TABLES.iter().flat_map(|entity| {
        store
            .table(*entity)
            .rows
            .iter()
            .map(move |(id, row)| json!({"entity": entity.name(), "id": id, "row": row}))
    });
    write_json_lines(&dir.join(RECORDS), rows)?;
    let blobs = store.blobs().map(|(id, bytes)| {
        json!({"id": id, "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
    });
    write_json_lines(&dir.join(BLOBS), blobs)
}

pub fn load(dir: &Path) -> std::io::Result<Store> {
    let mut store = Store::new();
    read_json_lines(&dir.join(RECORDS), |value| {
        let entity = Entity::from_path(value.get("entity")?.as_str()?)?;
        let id = value.get("id")?.as_u64()?;
        let row = value.get("row")?.as_object()?.clone();
        store.put(entity, id, row);
        Some(())
    })?;
    let blobs = dir.join(BLOBS);
    if blobs.exists() {
        read_json_lines(&blobs, |value| {
            let id = value.get("id")?.as_u64()?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(value.get("data")?.as_str()?)
                .ok()?;
            store.put_blob(id, data);
            Some(())
        })?;
    }
    Ok(store)
}
