//! The staging layout a pipeline implies: a typed column in `<p>_extracted` per Salesforce
//! field it reads, and one in `<p>_transformed` per Halo field it writes.

use super::model::{FieldMapping, Pipeline};
use crate::salesforce::catalog::{self, ObjectInfo};
use crate::staging::{column_name, Column, ColumnType, PipelineTables};

/// The DuckDB type for a Salesforce describe type.
fn column_type(salesforce_type: &str) -> ColumnType {
    match salesforce_type {
        "boolean" => ColumnType::Boolean,
        "int" => ColumnType::Integer,
        "double" | "currency" | "percent" => ColumnType::Double,
        "date" => ColumnType::Date,
        "datetime" => ColumnType::Timestamp,
        _ => ColumnType::Text,
    }
}

/// The type of a Salesforce field path, when the offline catalog knows it.
fn source_type(object: Option<&ObjectInfo>, path: &str) -> ColumnType {
    let Some(mut current) = object else {
        return ColumnType::Text;
    };
    let segments: Vec<&str> = path.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        if i + 1 == segments.len() {
            return current
                .field(segment)
                .map_or(ColumnType::Text, |f| column_type(&f.field_type));
        }
        let next = current
            .relationship(segment)
            .and_then(|f| f.reference_to.first())
            .and_then(|target| catalog::standard_object(target));
        match next {
            Some(next) => current = next,
            None => return ColumnType::Text,
        }
    }
    ColumnType::Text
}

fn target_type(object: Option<&ObjectInfo>, mapping: &FieldMapping) -> ColumnType {
    if mapping.lookup.is_some() {
        return ColumnType::Text;
    }
    match (&mapping.salesforce, &mapping.template, &mapping.values) {
        (Some(field), None, None) if !field.starts_with('$') => source_type(object, field),
        _ => ColumnType::Text,
    }
}

/// The staging tables for `pipeline`.
pub fn pipeline_tables(pipeline: &Pipeline) -> PipelineTables {
    let object = catalog::standard_object(&pipeline.salesforce.object);
    let mut extracted: Vec<Column> = Vec::new();
    let mut transformed: Vec<Column> = Vec::new();
    for mapping in &pipeline.fields {
        if let Some(field) = mapping
            .salesforce
            .as_deref()
            .filter(|f| !f.starts_with('$'))
        {
            let name = column_name(field);
            if !extracted.iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
                extracted.push(Column::new(name, source_type(object, field)));
            }
        }
        if let Some(field) = &mapping.halo {
            let name = column_name(field);
            if !transformed
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&name))
            {
                transformed.push(Column::new(name, target_type(object, mapping)));
            }
        }
    }
    PipelineTables {
        pipeline: pipeline.pipeline.clone(),
        extracted,
        transformed,
    }
}
