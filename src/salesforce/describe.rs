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
