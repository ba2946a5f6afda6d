//! Salesforce as the engine's [`Source`]: a pipeline's fields and filter become one SOQL query
//! whose pages stream through the REST query API, `Id` always included. Salesforce's own error
//! for a bad query is a configuration error; anything else is a connection error.

use super::client::SalesforceClient;
use super::Error;
use crate::engine::{EngineError, ExtractRequest, Record, Source};

pub struct SalesforceSource<'a> {
    client: &'a SalesforceClient,
}

impl<'a> SalesforceSource<'a> {
    pub fn new(client: &'a SalesforceClient) -> SalesforceSource<'a> {
        SalesforceSource { client }
    }
}

/// The SOQL for a request: its own query, or `SELECT Id, <fields> FROM <object> [WHERE …]`.
pub fn soql(request: &ExtractRequest) -> String {
    if let Some(query) = &request.query {
        return query.clone();
    }
    let mut fields: Vec<&str> = vec!["Id"];
    for field in &request.fields {
        // JSONPath reads come from the record as a whole, not from a selected field.
        let field = field.as_str();
        if field.starts_with('$') || fields.iter().any(|f| f.eq_ignore_ascii_case(field)) {
            continue;
        }
        fields.push(field);
    }
    let mut soql = format!("SELECT {} FROM {}", fields.join(", "), request.object);
    if let Some(filter) = request.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        soql.push_str(" WHERE ");
        soql.push_str(filter);
    }
    soql
}

fn engine_error(error: Error, soql: &str) -> EngineError {
    if error.exit_code() == 2 {
        EngineError::Config(format!("Salesforce refused the query `{soql}`: {error}"))
    } else {
        EngineError::Connection(format!("Salesforce: {error}"))
    }
}

impl Source for SalesforceSource<'_> {
    fn id_field(&self) -> &str {
        "Id"
    }

    fn extract(
        &self,
        request: &ExtractRequest,
        page: &mut dyn FnMut(Vec<Record>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let soql = soql(request);
        for records in self.client.query_pages(&soql, false) {
            page(records.map_err(|e| engine_error(e, &soql))?)?;
        }
        Ok(())
    }

    fn api_calls(&self) -> u64 {
        self.client.calls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_one_query_with_the_id() {
        let request = ExtractRequest {
            object: "Contact".into(),
            fields: vec![
                "FirstName".into(),
                "Account.Id".into(),
                "id".into(),
                "$.x".into(),
            ],
            filter: Some("IsDeleted = false".into()),
            query: None,
        };
        assert_eq!(
            soql(&request),
            "SELECT Id, FirstName, Account.Id FROM Contact WHERE IsDeleted = false"
        );
    }
}
