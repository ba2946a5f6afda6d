//! Deletes through sObject Collections: `DELETE /composite/sobjects?ids=…&allOrNone=false`,
//! 200 Ids per call, one outcome per Id in input order (deleted records go to the recycle
//! bin). Sending a delete again is harmless — a record already deleted answers
//! `ENTITY_IS_DELETED` — so lost answers are retried like reads.

use serde_json::Value;

use super::auth::flows::encode;
use super::client::{Request, Retry};
use super::collections::CHUNK;
use super::SalesforceClient;

/// Why Salesforce did not delete a record: its status code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRefused {
    pub code: String,
    pub message: String,
}

impl DeleteRefused {
    /// Whether the record is gone already (in the recycle bin, or purged from it), which is
    /// what the delete wanted.
    pub fn already_gone(&self) -> bool {
        matches!(
            self.code.as_str(),
            "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND"
        )
    }
}

impl std::fmt::Display for DeleteRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl SalesforceClient {
    /// Deletes the records with these Ids; one outcome per Id, in order.
    pub fn delete_records(&self, ids: &[String]) -> Vec<Result<(), DeleteRefused>> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let list: Vec<String> = chunk.iter().map(|id| encode(id.trim())).collect();
            let request = Request {
                method: "DELETE",
                url: format!(
                    "{}/composite/sobjects?ids={}&allOrNone=false",
                    self.api_path(),
                    list.join(",")
                ),
                body: None,
                headers: Vec::new(),
                retry: Retry::Always,
            };
            let refused = |code: &str, message: String| DeleteRefused {
                code: code.to_string(),
                message,
            };
            match self.send(request).and_then(|response| response.json()) {
                Ok(Value::Array(items)) if items.len() == chunk.len() => {
                    outcomes.extend(items.iter().map(outcome_of));
                }
                Ok(_) => outcomes.extend(chunk.iter().map(|_| {
                    Err(refused(
                        "OUTCOME_UNKNOWN",
                        "Salesforce's answer to this delete could not be read".into(),
                    ))
                })),
                Err(error) => {
                    let (code, message) = match &error {
                        super::Error::Api { code, message, .. } => (code.clone(), message.clone()),
                        other => ("CONNECTION_ERROR".to_string(), other.to_string()),
                    };
                    outcomes.extend(chunk.iter().map(|_| Err(refused(&code, message.clone()))));
                }
            }
        }
        outcomes
    }
}

fn outcome_of(item: &Value) -> Result<(), DeleteRefused> {
    if item["success"].as_bool() == Some(true) {
        return Ok(());
    }
    let error = item["errors"].get(0).cloned().unwrap_or(Value::Null);
    Err(DeleteRefused {
        code: error["statusCode"]
            .as_str()
            .or_else(|| error["errorCode"].as_str())
            .unwrap_or("UNKNOWN_ERROR")
            .to_string(),
        message: error["message"].as_str().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_become_outcomes() {
        assert_eq!(
            outcome_of(&json!({"id": "001", "success": true, "errors": []})),
            Ok(())
        );
        let refused = outcome_of(&json!({"id": null, "success": false, "errors": [
            {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}
        ]}))
        .unwrap_err();
        assert!(refused.already_gone());
        let refused = outcome_of(&json!({"success": false, "errors": [
            {"statusCode": "DELETE_FAILED", "message": "in use", "fields": []}
        ]}))
        .unwrap_err();
        assert!(!refused.already_gone());
        assert_eq!(refused.to_string(), "DELETE_FAILED: in use");
    }
}
