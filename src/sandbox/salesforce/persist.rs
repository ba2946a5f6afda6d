//! Saving the org to its data folder and loading it back, so that a second start of the sandbox
//! sees the same org: records as JSON lines, blobs base64-encoded, custom fields as the
//! catalog's one-line format. Files are written to a temporary name and renamed into place.

use std::fs;
use std::path::Path;

use base64::Engine;
use serde_json::json;

use super::org::Org;
use crate::salesforce::catalog;
use crate::sandbox::files::{read_json_lines, write_json_lines};

const RECORDS: &str = "salesforce-records.jsonl";
const BLOBS: &str = "salesforce-blobs.jsonl";
/// Custom fields, one per line: `Object Field type length flags [values=a|b]`.
pub const CUSTOM_FIELDS: &str = "salesforce-custom-fields.txt";

/// Custom fields a fresh data folder starts with. The three `*_Value__c` stand for the fields
/// an org adds for the guide's "Potential Value" (annual, monthly, one-off).
/// A custom picklist made in Setup restricts its values unless the admin unticks "Restrict
/// picklist to the values defined in the value set", so `TaskType__c` is restricted (`r`);
/// standard picklists such as `StageName` are not (a real org accepted any stage), but a line
/// for them here (`Opportunity StageName picklist 255 cur values=…`) replaces their definition.
const DEFAULT_CUSTOM_FIELDS: &str = "# Object Field type length flags (c createable, u updateable, n nillable, x external id, r restricted picklist) [values=a|b]
Opportunity TaskType__c picklist 255 cunr values=New Business|Renewal|Upgrade
Opportunity Annual_Value__c currency 18 cun
Opportunity Monthly_Value__c currency 18 cun
Opportunity One_off_Value__c currency 18 cun
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

/// Writes the org's records and blobs into `dir`.
pub fn save(org: &Org, dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut objects: Vec<_> = org.tables().collect();
    objects.sort_by(|a, b| a.0.cmp(b.0));
    let records = objects.into_iter().flat_map(|(object, table)| {
        table
            .records
            .iter()
            .map(move |record| json!({"object": object, "record": record}))
    });
    write_json_lines(&dir.join(RECORDS), records)?;
    let blobs = org.blobs().map(|(id, bytes)| {
        json!({"id": id, "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
    });
    write_json_lines(&dir.join(BLOBS), blobs)
}

/// Reads a saved org from `dir` into `org` (which has its custom fields already).
pub fn load(org: &mut Org, dir: &Path) -> std::io::Result<()> {
    read_json_lines(&dir.join(RECORDS), |value| {
        let object = value.get("object")?.as_str()?;
        let record = value.get("record")?.as_object()?;
        org.put(object, record.clone());
        Some(())
    })?;
    let blobs = dir.join(BLOBS);
    if blobs.exists() {
        read_json_lines(&blobs, |value| {
            let id = value.get("id")?.as_str()?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(value.get("data")?.as_str()?)
                .ok()?;
            org.put_blob(id, data);
            Some(())
        })?;
    }
    Ok(())
}
