//! The opportunity stage a target record maps to: the pipeline's `sync.stages` names, checked
//! once against the source object, and each record's stage (blank when it has none).

use serde_json::Value;

use super::config_error;
use crate::config::model::{Pipeline, StageNames};
use crate::engine::connector::Record;
use crate::engine::error::EngineError;
use crate::engine::lookups::id_text;
use crate::engine::plan::get_path;

pub(super) fn check_stages(pipeline: &Pipeline, stages: &StageNames) -> Result<(), EngineError> {
    if stages.names.is_empty() {
        return Err(config_error(pipeline, "`sync.stages.names` lists no stage"));
    }
    if !stages
        .names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&stages.default))
    {
        return Err(config_error(
            pipeline,
            format!(
                "`sync.stages.default` `{}` is not one of `sync.stages.names` ({})",
                stages.default,
                stages.names.join(", ")
            ),
        ));
    }
    Ok(())
}

pub(super) fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// The stage a record syncs with: the first of the stage fields with a value (a name, or a
/// number counting the names from 1), else the default.
pub fn stage_of(stages: &StageNames, record: &Record) -> Result<String, String> {
    for path in &stages.halo {
        let Some(value) = get_path(record, path).filter(|v| !is_blank(v)) else {
            continue;
        };
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        if let Some(number) = number {
            let index = number as usize;
            if number.fract() != 0.0 || index == 0 || index > stages.names.len() {
                return Err(format!(
                    "stage {number} (from `{path}`) is not a position in the stage names (1 to {})",
                    stages.names.len()
                ));
            }
            return Ok(stages.names[index - 1].clone());
        }
        let text = id_text(value);
        return stages
            .names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(text.trim()))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "stage `{text}` (from `{path}`) is not one of the stage names ({})",
                    stages.names.join(", ")
                )
            });
    }
    Ok(stages
        .names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(&stages.default))
        .cloned()
        .unwrap_or_else(|| stages.default.clone()))
}
