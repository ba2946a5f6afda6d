//! Describe results built from the org's metadata, shaped like a real org's (global describe,
//! per-object describe with full field entries, picklist values and child relationships).

use serde_json::{json, Value};

use super::org::Org;
use crate::salesforce::catalog::{FieldInfo, ObjectInfo};

fn soap_type(field: &FieldInfo) -> &'static str {
    match field.field_type.as_str() {
        "id" | "reference" => "tns:ID",
        "boolean" => "xsd:boolean",
        "int" => "xsd:int",
        "double" | "currency" | "percent" => "xsd:double",
        "date" => "xsd:date",
        "datetime" => "xsd:dateTime",
        "base64" => "xsd:base64Binary",
        "address" => "urn:address",
        _ => "xsd:string",
    }
}

/// A readable label from an API name: `BillingCity` → `Billing City`, `AccountId` → `Account ID`.
fn label_of(name: &str) -> String {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let base = match base.strip_suffix("Id") {
        Some(stem) if !stem.is_empty() => format!("{stem} ID"),
        _ => base.to_string(),
    };
    let mut out = String::new();
    let mut previous_upper = true;
    for c in base.chars() {
        if c.is_ascii_uppercase() && !previous_upper && !out.ends_with(' ') {
            out.push(' ');
        }
        previous_upper = c.is_ascii_uppercase() || c == ' ';
        out.push(c);
    }
    out
}

fn field_json(field: &FieldInfo) -> Value {
    let is_text = matches!(
        field.field_type.as_str(),
        "string"
            | "textarea"
            | "picklist"
            | "multipicklist"
            | "phone"
            | "url"
            | "email"
            | "combobox"
    );
    let (precision, scale) = match field.field_type.as_str() {
        "currency" => (18, 2),
        "percent" => (3, 0),
        "double" => (18, 15),
        _ => (0, 0),
    };
    let picklist: Vec<Value> = field
        .picklist_values
        .iter()
        .map(|v| json!({"active": true, "defaultValue": false, "label": v, "validFor": null, "value": v}))
        .collect();
    json!({
        "aggregatable": field.field_type != "textarea" && field.field_type != "base64",
        "aiPredictionField": false,
        "autoNumber": field.name == "CaseNumber",
        "byteLength": if is_text { field.length * 3 } else { field.length },
        "calculated": false,
        "calculatedFormula": null,
        "cascadeDelete": false,
        "caseSensitive": false,
        "compoundFieldName": null,
        "controllerName": null,
        "createable": field.createable,
        "custom": field.custom,
        "defaultValue": null,
        "defaultValueFormula": null,
        "defaultedOnCreate": matches!(field.name.as_str(), "OwnerId" | "Id" | "IsDeleted" | "CreatedDate" | "CreatedById" | "LastModifiedDate" | "LastModifiedById" | "SystemModstamp" | "Probability" | "Status" | "Priority") || field.field_type == "boolean",
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": if field.field_type == "int" { 9 } else { 0 },
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": field.external_id,
        "extraTypeInfo": null,
        "filterable": field.field_type != "textarea" || field.length <= 255,
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": is_text || matches!(field.field_type.as_str(), "id" | "reference" | "boolean" | "date"),
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": field.name == "Id" || field.external_id,
        "inlineHelpText": null,
        "label": label_of(&field.name),
        "length": if is_text { field.length } else { 0 },
        "mask": null,
        "maskType": null,
        "name": field.name,
        "nameField": field.name == "Name",
        "namePointing": field.reference_to.len() > 1,
        "nillable": field.nillable,
        "permissionable": field.nillable && !field.name.ends_with("Id"),
        "picklistValues": picklist,
        "polymorphicForeignKey": field.reference_to.len() > 1,
        "precision": precision,
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": field.reference_to,
        "relationshipName": field.relationship_name,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": field.restricted_picklist,
        "scale": scale,
        "searchPrefilterable": field.field_type == "reference",
        "soapType": soap_type(field),
        "sortable": field.field_type != "textarea" || field.length <= 255,
        "type": field.field_type,
        "unique": false,
        "updateable": field.updateable,
        "writeRequiresMasterRead": false,
    })
}

fn urls(object: &str, version: &str) -> Value {
    let base = format!("/services/data/v{version}/sobjects/{object}");
    json!({
        "compactLayouts": format!("{base}/describe/compactLayouts"),
        "rowTemplate": format!("{base}/{{ID}}"),
        "describe": format!("{base}/describe"),
        "sobject": base,
    })
}

pub fn object_summary(object: &ObjectInfo, version: &str) -> Value {
    json!({
        "activateable": false,
        "createable": true,
        "custom": object.name.ends_with("__c"),
        "customSetting": false,
        "deletable": true,
        "deprecatedAndHidden": false,
        "feedEnabled": false,
        "hasSubtypes": false,
        "isSubtype": false,
        "keyPrefix": object.key_prefix,
        "label": label_of(&object.name),
        "labelPlural": format!("{}s", label_of(&object.name)),
        "layoutable": true,
        "mergeable": matches!(object.name.as_str(), "Account" | "Contact"),
        "mruEnabled": true,
        "name": object.name,
        "queryable": true,
        "replicateable": true,
        "retrieveable": true,
        "searchable": true,
        "triggerable": true,
        "undeletable": true,
        "updateable": true,
        "urls": urls(&object.name, version),
    })
}

/// `GET /sobjects`
pub fn global(org: &Org, version: &str) -> Value {
    let objects: Vec<Value> = org.objects().map(|o| object_summary(o, version)).collect();
    json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects})
}

/// `GET /sobjects/{Type}/describe`
pub fn object(org: &Org, object: &ObjectInfo, version: &str) -> Value {
    let mut out = object_summary(object, version);
    let children: Vec<Value> = object
        .child_relationships
        .iter()
        .filter_map(|(relationship, child)| {
            let child_info = org.describe(child)?;
            let field = child_info.fields.iter().find(|f| {
                f.field_type == "reference" && f.reference_to.iter().any(|t| t == &object.name)
            })?;
            Some(json!({
                "cascadeDelete": child == "Attachment" || child == "CaseComment",
                "childSObject": child,
                "deprecatedAndHidden": false,
                "field": field.name,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": relationship,
                "restrictedDelete": false,
            }))
        })
        .collect();
    let map = out.as_object_mut().expect("summary is an object");
    map.insert("childRelationships".into(), Value::Array(children));
    map.insert(
        "fields".into(),
        Value::Array(object.fields.iter().map(field_json).collect()),
    );
    map.insert(
        "recordTypeInfos".into(),
        json!([{
            "active": true, "available": true, "defaultRecordTypeMapping": true, "developerName": "Master",
            "master": true, "name": "Master", "recordTypeId": "012000000000000AAA",
            "urls": {"layout": format!("/services/data/v{version}/sobjects/{}/describe/layouts/012000000000000AAA", object.name)}
        }]),
    );
    map.insert("sobjectDescribeOption".into(), json!("FULL"));
    map.insert(
        "supportedScopes".into(),
        json!([{"label": "All", "name": "everything"}, {"label": "Mine", "name": "mine"}]),
    );
    out
}
