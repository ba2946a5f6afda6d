//! Online describe: `GET /sobjects/{Type}/describe` turned into the same `ObjectInfo` the
//! offline catalog uses, cached per object, so `config::rules` checks a pipeline's fields
//! against the org itself (custom fields, exact case, relationship paths, createable /
//! updateable) with the one resolver and suggestion logic it already has offline.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::auth::flows::encode;
use super::catalog::{FieldInfo, ObjectInfo};
use super::{Error, SalesforceClient};
use crate::config::rules::Describes;

impl SalesforceClient {
    /// The org's describe of `object`; `Ok(None)` when the org has no such object.
    pub fn describe(&self, object: &str) -> Result<Option<ObjectInfo>, Error> {
        match self.get_json(&format!("sobjects/{}/describe", encode(object))) {
            Ok(value) => object_info(&value).map(Some),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A describe answer as an `ObjectInfo`.
pub fn object_info(describe: &Value) -> Result<ObjectInfo, Error> {
    let name = describe["name"]
        .as_str()
        .ok_or_else(|| Error::Protocol("a describe without a name".into()))?;
    let text = |v: &Value, k: &str| v[k].as_str().map(str::to_string);
    let flag = |v: &Value, k: &str| v[k].as_bool().unwrap_or(false);
    let fields = describe["fields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            Some(FieldInfo {
                name: text(f, "name")?,
                field_type: text(f, "type").unwrap_or_default(),
                length: f["length"].as_u64().unwrap_or(0) as u32,
                createable: flag(f, "createable"),
                updateable: flag(f, "updateable"),
                nillable: flag(f, "nillable"),
                external_id: flag(f, "externalId"),
                custom: flag(f, "custom"),
                reference_to: f["referenceTo"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                relationship_name: text(f, "relationshipName"),
                picklist_values: f["picklistValues"]
                    .as_array()
                    .map(|p| p.iter().filter_map(|v| text(v, "value")).collect())
                    .unwrap_or_default(),
                restricted_picklist: flag(f, "restrictedPicklist"),
            })
        })
        .collect();
    let child_relationships = describe["childRelationships"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| Some((text(c, "relationshipName")?, text(c, "childSObject")?)))
        .collect();
    Ok(ObjectInfo {
        name: name.to_string(),
        key_prefix: text(describe, "keyPrefix").unwrap_or_default(),
        fields,
        child_relationships,
    })
}

/// The org as a `Describes` for `config::rules::check_pipeline_online`: each object described
/// once. The first failure that is not "no such object" is kept in `failure` (the checks then
/// cannot be trusted, and the caller reports the failure instead).
pub struct OrgDescribes<'c> {
    client: &'c SalesforceClient,
    cache: HashMap<String, Option<Arc<ObjectInfo>>>,
    pub failure: Option<Error>,
}

impl<'c> OrgDescribes<'c> {
    pub fn new(client: &'c SalesforceClient) -> OrgDescribes<'c> {
        OrgDescribes {
            client,
            cache: HashMap::new(),
            failure: None,
        }
    }
}

impl Describes for OrgDescribes<'_> {
    fn object(&mut self, name: &str) -> Option<Arc<ObjectInfo>> {
        if let Some(known) = self.cache.get(name) {
            return known.clone();
        }
        if self.failure.is_some() {
            return None;
        }
        let found = match self.client.describe(name) {
            Ok(found) => found.map(Arc::new),
            Err(e) => {
                self.failure = Some(e);
                return None;
            }
        };
        // Salesforce answers a describe of `opportunity` too; the pipeline must spell it right.
        let found = found.filter(|o| o.name == name);
        self.cache.insert(name.to_string(), found.clone());
        found
    }

    fn complete(&self) -> bool {
        true
    }
}

/// Lets the org judge a pipeline's own SOQL (`where` or `query`) by asking for a
/// `SELECT COUNT()` of it: a query Salesforce refuses becomes a diagnostic at the line of that
/// value, with Salesforce's own `errorCode` and message. SOQL that does not parse offline, or
/// whose line already has an offline problem, is left to the offline report. One API call per
/// pipeline with a `where` or `query`.
pub fn check_pipeline_soql(
    client: &SalesforceClient,
    loaded: &crate::config::rules::LoadedPipeline,
    known: &[crate::config::Diagnostic],
    out: &mut Vec<crate::config::Diagnostic>,
) -> Result<(), Error> {
    use crate::config::rules::{node_at, Step};
    let side = &loaded.pipeline.salesforce;
    let (key, count) = match (&side.query, &side.where_clause) {
        (Some(query), _) => match crate::soql::parse(query) {
            Ok(_) => ("query", super::bulk::count_query(query)?.0),
            Err(_) => return Ok(()),
        },
        (None, Some(condition)) => match crate::soql::parse_condition(condition) {
            Ok(_) => (
                "where",
                format!("SELECT COUNT() FROM {} WHERE {condition}", side.object),
            ),
            Err(_) => return Ok(()),
        },
        (None, None) => return Ok(()),
    };
    let Some(node) = node_at(&loaded.tree, &[Step::Key("salesforce"), Step::Key(key)]) else {
        return Ok(());
    };
    let already = known
        .iter()
        .any(|d| d.file == loaded.source.path && d.line == node.loc.line && d.is_error());
    if already {
        return Ok(());
    }
    match client.count(&count) {
        Ok(_) => Ok(()),
        Err(Error::Api {
            status: 400,
            code,
            message,
            ..
        }) => {
            // Salesforce's message repeats the query with a caret; its last line says why.
            let reason = message
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(&message)
                .trim()
                .to_string();
            let position = message
                .lines()
                .find(|l| l.starts_with("ERROR at Row"))
                .map(str::to_string);
            let mut diagnostic = loaded.source.error(
                "salesforce-query",
                node.loc,
                format!("Salesforce refused this {key}: {code}: {reason}"),
            );
            if let Some(position) = position {
                diagnostic = diagnostic.label(format!("{position} of `{count}`"));
            }
            out.push(diagnostic.hint(
                "Salesforce checked it as SELECT COUNT() with the pipeline's object and condition",
            ));
            Ok(())
        }
        Err(other) => Err(other),
    }
}
