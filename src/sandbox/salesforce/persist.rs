//! Saving the org to its data folder and loading it back, so that a second start of the sandbox
//! sees the same org: records as JSON lines, blobs base64-encoded, custom fields as the
//! catalog's one-line format. Files are written to a temporary name and renamed into place.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use base64::Engine;
use serde_json::{json, Value};

use super::org::Org;
use crate::salesforce::catalog;

const RECORDS: &str = "salesforce-records.jsonl";
const BLOBS: &str = "salesforce-blobs.jsonl";
/// Custom fields, one per line: `Object Field type length flags [values=a|b]`.
pub const CUSTOM_FIELDS: &str = "salesforce-custom-fields.txt";

/// Custom fields a fresh data folder starts with.
const DEFAULT_CUSTOM_FIELDS: &str = "# Object Field type length flags (c createable, u updateable, n nillable, x external id) [values=a|b]
Opportunity TaskType__c picklist 255 cun values=New Business|Renewal|Upgrade
Account External_Id__c string 50 cunx
Contact External_Id__c string 50 cunx
";

/// Adds the custom fields listed in the data folder (writing the defaults to a fresh folder).
pub fn load_custom_fields(org: &mut Org, dir: &Path) -> std::io::Result<()> {
    let path = dir.join(CUSTOM_FIELDS);
    if !path.exists() {
        fs::write(&path, DEFAULT_CUSTOM_FIELDS)?;
    }
    add_custom_fields(org, &fs::read_to_string(&path)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Adds the default custom fields, for an org kept in memory.
pub fn default_custom_fields(org: &mut Org) {
    add_custom_fields(org, DEFAULT_CUSTOM_FIELDS).expect("the defaults name standard objects");
}

fn add_custom_fields(org: &mut Org, text: &str) -> Result<(), String> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((object, rest)) = line.split_once(' ') else {
            continue;
        };
        org.add_custom_field(object, catalog::field_from_line(rest.trim()))?;
    }
    Ok(())
}

/// True when the folder holds a saved org.
pub fn exists(dir: &Path) -> bool {
    dir.join(RECORDS).exists()
}

fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    {
        let mut out = BufWriter::new(File::create(&temporary)?);
        fill(&mut out)?;
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    fs::rename(&temporary, path)
}

/// Writes the org's records and blobs into `dir`.
pub fn save(org: &Org, dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    write_atomically(&dir.join(RECORDS), |out| {
        let mut objects: Vec<_> = org.tables().collect();
        objects.sort_by(|a, b| a.0.cmp(b.0));
        for (object, table) in objects {
            for record in &table.records {
                serde_json::to_writer(&mut *out, &json!({"object": object, "record": record}))?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    })?;
    write_atomically(&dir.join(BLOBS), |out| {
        for (id, bytes) in org.blobs() {
            let data = base64::engine::general_purpose::STANDARD.encode(bytes);
            serde_json::to_writer(&mut *out, &json!({"id": id, "data": data}))?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Reads a saved org from `dir` into `org` (which has its custom fields already).
pub fn load(org: &mut Org, dir: &Path) -> std::io::Result<()> {
    let bad = |line: usize, file: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: line {line} is not a saved record",
                dir.join(file).display()
            ),
        )
    };
    for (n, line) in BufReader::new(File::open(dir.join(RECORDS))?)
        .lines()
        .enumerate()
    {
        let value: Value = serde_json::from_str(&line?).map_err(|_| bad(n + 1, RECORDS))?;
        let object = value
            .get("object")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(n + 1, RECORDS))?;
        let record = value
            .get("record")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(n + 1, RECORDS))?;
        org.put(object, record.clone());
    }
    if let Ok(file) = File::open(dir.join(BLOBS)) {
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let value: Value = serde_json::from_str(&line?).map_err(|_| bad(n + 1, BLOBS))?;
            let id = value
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(n + 1, BLOBS))?;
            let data = value
                .get("data")
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .ok_or_else(|| bad(n + 1, BLOBS))?;
            org.put_blob(id, data);
        }
    }
    Ok(())
}
