//! SOQL extracts over REST, as a stream of pages: `query` (or `queryAll`, which adds deleted
//! and archived records) answers the first page and a `nextRecordsUrl`, which is followed until
//! `done`. Only one page (up to 2,000 records) is held at a time, whatever the object's size.
//!
//! Each record comes out flat, the way a table wants it: `attributes` dropped, parent
//! relationships flattened by path (`Owner.Email`, null when the lookup is empty), compound
//! address and location fields expanded into their components (`BillingStreet`, …,
//! `Loc__Latitude__s`) instead of left as objects. A child subquery keeps the shape Salesforce
//! gives it, a query result (`{"totalSize": 2, "done": true, "records": [flat records]}`), so
//! mappings read `$.Attachments.totalSize` and `$.Attachments.records[*].Id`; a child result
//! Salesforce pages (`done: false`, its own `nextRecordsUrl`) has its other pages fetched before
//! the parent's next page (which would end the child's cursor), and one Salesforce gives as
//! `null` (no child rows) becomes an empty result, so `totalSize` reads 0.

use serde_json::{json, Map, Value};

use super::client::{Request, SalesforceClient};
use super::Error;

/// One record, flat: field path → value.
pub type Record = Map<String, Value>;

enum Next {
    First { soql: String, all_rows: bool },
    More(String),
    Done,
}

/// The pages of one query. Ends after the first error.
pub struct QueryPages<'c> {
    client: &'c SalesforceClient,
    next: Next,
    selected: Vec<String>,
    /// The relationship names of the query's child subqueries (`Attachments`).
    children: Vec<String>,
    total_size: Option<u64>,
}

impl SalesforceClient {
    /// The pages of a SOQL query; `all_rows` uses `queryAll` (deleted and archived too).
    pub fn query_pages(&self, soql: &str, all_rows: bool) -> QueryPages<'_> {
        QueryPages {
            client: self,
            next: Next::First {
                soql: soql.to_string(),
                all_rows,
            },
            selected: selected_paths(soql),
            children: child_relationships(soql),
            total_size: None,
        }
    }

    /// `SELECT COUNT() …`: how many records a condition matches.
    pub fn count(&self, soql_count: &str) -> Result<u64, Error> {
        let page = self.get_json(&format!(
            "query?q={}",
            super::auth::flows::encode(soql_count)
        ))?;
        page["totalSize"]
            .as_u64()
            .ok_or_else(|| Error::Protocol("a COUNT() answer without totalSize".into()))
    }
}

impl QueryPages<'_> {
    /// `totalSize` from the first page, once it has been read.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }
}

impl Iterator for QueryPages<'_> {
    type Item = Result<Vec<Record>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let url = match std::mem::replace(&mut self.next, Next::Done) {
            Next::Done => return None,
            Next::First { soql, all_rows } => format!(
                "{}?q={}",
                if all_rows { "queryAll" } else { "query" },
                super::auth::flows::encode(&soql)
            ),
            Next::More(url) => url,
        };
        let mut page = match self.fetch(url) {
            Ok(page) => page,
            Err(e) => return Some(Err(e)),
        };
        if self.total_size.is_none() {
            self.total_size = page.get("totalSize").and_then(Value::as_u64);
        }
        let done = page.get("done").and_then(Value::as_bool).unwrap_or(true);
        if !done {
            match page.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(next) => self.next = Next::More(next.to_string()),
                None => {
                    return Some(Err(Error::Protocol(
                        "a query page with done=false and no nextRecordsUrl".into(),
                    )))
                }
            }
        }
        let records = match page.remove("records") {
            Some(Value::Array(records)) => records,
            _ => Vec::new(),
        };
        let mut flat = Vec::with_capacity(records.len());
        for record in records {
            let Value::Object(mut record) = record else {
                continue;
            };
            if let Err(e) = self.complete_children(&mut record) {
                self.next = Next::Done;
                return Some(Err(e));
            }
            let mut record = flatten_selected(record, &self.selected);
            for child in &self.children {
                empty_when_null(&mut record, child);
            }
            flat.push(record);
        }
        Some(Ok(flat))
    }
}

impl QueryPages<'_> {
    /// One page of a query result (the first, a parent's next, or a child's next).
    fn fetch(&self, url: String) -> Result<Map<String, Value>, Error> {
        let mut request = Request::get(url);
        if let Some(size) = self.client.options().query_batch_size {
            request = request.header("Sforce-Query-Options", format!("batchSize={size}"));
        }
        match self.client.send(request)?.json()? {
            Value::Object(page) => Ok(page),
            _ => Err(Error::Protocol("a query page that is not an object".into())),
        }
    }

    /// Fetches the other pages of every child result of `record` that Salesforce paged
    /// (`done: false`), and of their own children, so the record holds all of its child rows.
    /// A page's own child results are completed before the page after it is asked for, since
    /// moving a result on ends the cursors of the children of its earlier pages.
    fn complete_children(&self, record: &mut Map<String, Value>) -> Result<(), Error> {
        for (relationship, value) in record.iter_mut() {
            let Value::Object(result) = value else {
                continue;
            };
            if !is_query_result(result) {
                continue;
            }
            let mut rows = match result.remove("records") {
                Some(Value::Array(rows)) => rows,
                _ => Vec::new(),
            };
            self.complete_rows(&mut rows)?;
            let mut done = result.get("done").and_then(Value::as_bool).unwrap_or(true);
            let mut next = result.remove("nextRecordsUrl");
            while !done {
                let Some(Value::String(url)) = next else {
                    return Err(Error::Protocol(format!(
                        "the child result `{relationship}` has done=false and no nextRecordsUrl"
                    )));
                };
                let mut page = self.fetch(url)?;
                let Some(Value::Array(mut more)) = page.remove("records") else {
                    return Err(Error::Protocol(format!(
                        "a page of the child result `{relationship}` has no records"
                    )));
                };
                self.complete_rows(&mut more)?;
                rows.append(&mut more);
                done = page.get("done").and_then(Value::as_bool).unwrap_or(true);
                next = page.remove("nextRecordsUrl");
            }
            result.insert("done".into(), Value::Bool(true));
            result.insert("records".into(), Value::Array(rows));
        }
        Ok(())
    }

    fn complete_rows(&self, rows: &mut [Value]) -> Result<(), Error> {
        for row in rows {
            if let Value::Object(row) = row {
                self.complete_children(row)?;
            }
        }
        Ok(())
    }
}

/// Whether an object in a record is a child subquery's result rather than a compound field.
fn is_query_result(object: &Map<String, Value>) -> bool {
    object.contains_key("records") && object.contains_key("totalSize")
}

/// The empty result for a selected child relationship Salesforce answered with `null` (no child
/// rows), so `totalSize` reads 0 and `records[*]` an empty list, as for any other record.
fn empty_when_null(record: &mut Record, relationship: &str) {
    let key = record
        .keys()
        .find(|k| k.eq_ignore_ascii_case(relationship))
        .cloned()
        .unwrap_or_else(|| relationship.to_string());
    let slot = record.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = json!({"totalSize": 0, "done": true, "records": []});
    }
}

/// The dotted paths a query selects (empty when it does not parse here; Salesforce decides).
fn selected_paths(soql: &str) -> Vec<String> {
    select_items(soql, |item| match item {
        crate::soql::SelectItem::Field { field, .. } => Some(field.dotted()),
        _ => None,
    })
}

/// The relationship names of a query's child subqueries (`(SELECT Id FROM Attachments)`).
fn child_relationships(soql: &str) -> Vec<String> {
    select_items(soql, |item| match item {
        crate::soql::SelectItem::SubQuery { query, .. } => Some(query.from.object.clone()),
        _ => None,
    })
}

/// What `pick` takes from each item a query selects; nothing when it does not parse here.
fn select_items(
    soql: &str,
    pick: impl Fn(&crate::soql::SelectItem) -> Option<String>,
) -> Vec<String> {
    crate::soql::parse(soql)
        .map(|query| query.select.iter().filter_map(&pick).collect())
        .unwrap_or_default()
}

/// Flattens a record and makes every selected path present: a path under an empty lookup
/// (`"Owner": null`) becomes `Owner.Email: null`, so every row has the same columns.
pub fn flatten_selected(record: Map<String, Value>, selected: &[String]) -> Record {
    let mut out = flatten(record);
    for path in selected {
        if path.contains('.') && !out.keys().any(|k| k.eq_ignore_ascii_case(path)) {
            // The null relationship itself says nothing more than its null fields do.
            let parent = &path[..path.rfind('.').unwrap_or(0)];
            if let Some(key) = out.keys().find(|k| k.eq_ignore_ascii_case(parent)).cloned() {
                if out[&key].is_null() {
                    out.remove(&key);
                }
            }
            out.insert(path.clone(), Value::Null);
        }
    }
    out
}

/// Flattens one record as the module says.
pub fn flatten(record: Map<String, Value>) -> Record {
    let mut out = Map::new();
    flatten_into("", record, &mut out);
    out
}

fn flatten_into(prefix: &str, record: Map<String, Value>, out: &mut Record) {
    for (key, value) in record {
        if key == "attributes" {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if inner.contains_key("attributes") => {
                flatten_into(&path, inner, out);
            }
            Value::Object(mut inner) if is_query_result(&inner) => {
                // A child result keeps its shape; its rows are flattened like any record.
                let children: Vec<Value> = match inner.remove("records") {
                    Some(Value::Array(rows)) => rows
                        .into_iter()
                        .filter_map(|r| match r {
                            Value::Object(r) => Some(Value::Object(flatten(r))),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let mut result = Map::new();
                result.insert(
                    "totalSize".into(),
                    inner.remove("totalSize").unwrap_or(Value::Null),
                );
                result.insert(
                    "done".into(),
                    inner.remove("done").unwrap_or(Value::Bool(true)),
                );
                if let Some(next) = inner.remove("nextRecordsUrl") {
                    result.insert("nextRecordsUrl".into(), next);
                }
                result.insert("records".into(), Value::Array(children));
                out.insert(path, Value::Object(result));
            }
            Value::Object(inner) => {
                // A compound field (address or geolocation): one column per component.
                for (component, part) in inner {
                    let name = component_name(&key, &component);
                    let full = if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}.{name}")
                    };
                    out.insert(full, part);
                }
            }
            other => {
                out.insert(path, other);
            }
        }
    }
}

/// The API name of a compound field's component: `BillingAddress` + `city` → `BillingCity`,
/// `Address` (Lead) + `street` → `Street`, `Loc__c` + `latitude` → `Loc__Latitude__s`.
pub fn component_name(compound: &str, component: &str) -> String {
    let mut capitalised = component.to_string();
    if let Some(first) = capitalised.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    if let Some(base) = compound.strip_suffix("__c") {
        return format!("{base}__{capitalised}__s");
    }
    if let Some(base) = compound.strip_suffix("Address") {
        return format!("{base}{capitalised}");
    }
    format!("{compound}.{capitalised}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{component_name, flatten_selected};

    #[test]
    fn flattens_relationships_and_compounds() {
        let record = json!({
            "attributes": {"type": "Contact", "url": "/x"},
            "Id": "003",
            "Owner": {"attributes": {"type": "User"}, "Email": "a@b.c"},
            "Account": null,
            "MailingAddress": {"city": "Leeds", "street": "1 Road", "latitude": null},
            "Cases": {"totalSize": 1, "done": true, "records": [{"attributes": {}, "Subject": "s"}]}
        });
        let flat = flatten_selected(
            record.as_object().unwrap().clone(),
            &["Id".into(), "Owner.Email".into(), "Account.Name".into()],
        );
        assert_eq!(
            serde_json::Value::Object(flat),
            json!({"Id": "003", "Owner.Email": "a@b.c", "MailingCity": "Leeds",
                   "MailingStreet": "1 Road", "MailingLatitude": null,
                   "Cases": {"totalSize": 1, "done": true, "records": [{"Subject": "s"}]},
                   "Account.Name": null})
        );
        assert_eq!(component_name("Loc__c", "longitude"), "Loc__Longitude__s");
        assert_eq!(component_name("Address", "postalCode"), "PostalCode");
    }
}
