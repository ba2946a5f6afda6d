//! Schema drift: each run stages the source's describe of a pipeline's object (`schemas`), and
//! compares it with the one staged by the last run that loaded: fields added, removed or changed
//! in type are reported, and stop the pipeline before any data moves when its policy says
//! `fail`. A field the pipeline reads or writes that the object no longer has always stops it,
//! naming the mapping, since every query and write would fail on it anyway.

use std::collections::BTreeMap;

use super::connector::Source;
use super::error::EngineError;
use crate::config::model::{DriftPolicy, Pipeline};
use crate::staging::Store;

/// The fields a pipeline names on its source object, with where it names them.
fn used_fields(pipeline: &Pipeline) -> Vec<(String, String)> {
    let mut used = Vec::new();
    for (i, mapping) in pipeline.fields.iter().enumerate() {
        if let Some(field) = mapping.salesforce.as_deref() {
            // Relationship paths and JSONPath name other objects' fields.
            if !field.contains('.') && !field.starts_with('$') {
                used.push((field.to_string(), format!("fields[{i}]")));
            }
        }
    }
    if let Some(stages) = &pipeline.sync.stages {
        used.push((stages.salesforce.clone(), "sync.stages.salesforce".into()));
    }
    for field in &pipeline.sync.sync_back.match_on {
        used.push((field.clone(), "sync.sync_back.match".into()));
    }
    if let Some(incremental) = &pipeline.salesforce.incremental {
        used.push((
            incremental.field().to_string(),
            "salesforce.incremental".into(),
        ));
    }
    used
}

/// What changed between two describes, one line per field.
pub fn differences(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (field, kind) in now {
        match before.get(field) {
            None => out.push(format!("{field} added ({kind})")),
            Some(old) if old != kind => out.push(format!("{field} changed type: {old} → {kind}")),
            Some(_) => {}
        }
    }
    for (field, kind) in before {
        if !now.contains_key(field) {
            out.push(format!("{field} removed (was {kind})"));
        }
    }
    out
}

/// Checks the pipeline's object against its last describe; returns the drift to report.
/// `stage` records this describe as the new reference (a run that loads; a plan does not).
pub fn check(
    pipeline: &Pipeline,
    source: &dyn Source,
    store: &Store,
    run_id: &str,
    stage: bool,
) -> Result<Vec<String>, EngineError> {
    let object = pipeline.salesforce.object.as_str();
    let Some(fields) = source.describe(object)? else {
        return Ok(Vec::new());
    };
    let now: BTreeMap<String, String> = fields.into_iter().collect();
    let last = store.last_describe(&pipeline.pipeline, object)?;
    for (field, place) in used_fields(pipeline) {
        if now.contains_key(&field) {
            continue;
        }
        let history = match &last {
            Some((run, before)) if before.contains_key(&field) => {
                format!(" (it was there in run {run})")
            }
            _ => String::new(),
        };
        let spelled = now
            .keys()
            .find(|known| known.eq_ignore_ascii_case(&field))
            .map(|known| format!("; did you mean `{known}`?"))
            .unwrap_or_default();
        return Err(EngineError::Config(format!(
            "pipeline {}: {object} has no field `{field}` ({place}){history}{spelled}; remove it from the pipeline or restore it in Salesforce",
            pipeline.pipeline
        )));
    }
    let drift = match &last {
        Some((_, before)) => differences(before, &now),
        None => Vec::new(),
    };
    if !drift.is_empty() && pipeline.salesforce.schema_drift == Some(DriftPolicy::Fail) {
        let run = last.as_ref().map(|(run, _)| run.as_str()).unwrap_or("?");
        return Err(EngineError::Config(format!(
            "pipeline {}: the fields of {object} changed since run {run}: {}; review them, then run once with `salesforce.schema_drift: warn` to accept the new fields",
            pipeline.pipeline,
            drift.join(", ")
        )));
    }
    if stage && (last.is_none() || !drift.is_empty()) {
        store.stage_describe(run_id, &pipeline.pipeline, object, &now)?;
    }
    Ok(drift
        .into_iter()
        .map(|change| format!("{object}.{change}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn reports_added_removed_and_retyped_fields() {
        let before = fields(&[
            ("Name", "string"),
            ("Type", "picklist"),
            ("Old__c", "string"),
        ]);
        let now = fields(&[("Name", "string"), ("Type", "string"), ("New__c", "double")]);
        assert_eq!(
            differences(&before, &now),
            vec![
                "New__c added (double)",
                "Type changed type: picklist → string",
                "Old__c removed (was string)"
            ]
        );
        assert!(differences(&now, &now).is_empty());
    }
}
