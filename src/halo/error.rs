//! What can go wrong talking to Halo, worded for the person reading a run's results: every API
//! error names the entity, the record when there is one, the HTTP status and Halo's own message
//! (read from whichever of the error bodies Halo and its proxies are known to send). Secrets never
//! appear here: errors are built from statuses, bodies and URLs without credentials in them.

use serde_json::Value;

/// Everything the Halo connector can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HaloError {
    /// The connection settings cannot work (a bad URL, an entity name that is not a name).
    #[error("Halo connection settings: {0}")]
    Settings(String),
    /// The authorisation server refused the client credentials or answered nonsense.
    #[error("Halo sign-in at {token_url} failed{}: {message}", status_suffix(.status))]
    Auth {
        token_url: String,
        /// `None` when the authorisation server could not be reached.
        status: Option<u16>,
        message: String,
    },
    /// The API answered an error for one call.
    #[error("Halo {entity}{}: HTTP {status}: {message}", record_suffix(.record))]
    Api {
        entity: String,
        record: Option<String>,
        status: u16,
        message: String,
    },
    /// Halo kept answering 429 after every retry.
    #[error("Halo {entity}: still rate limited after {attempts} attempts: {message}")]
    RateLimited {
        entity: String,
        attempts: u32,
        message: String,
    },
    /// The request did not get an answer (refused, dropped, timed out).
    #[error("Halo {entity}: cannot reach {url}: {message}")]
    Transport {
        entity: String,
        url: String,
        message: String,
    },
    /// A create was sent but its answer was lost, so Halo may or may not have saved it; it is
    /// not resent, because a second POST would create a duplicate.
    #[error("Halo {entity}: the answer to a create was lost ({message}); it may or may not have been saved, so it was not resent")]
    Ambiguous { entity: String, message: String },
    /// The answer was not what Halo sends (not JSON, wrong shape).
    #[error("Halo {entity}: unexpected answer: {message}")]
    Unexpected { entity: String, message: String },
    /// Writing a downloaded attachment to its destination failed.
    #[error("Halo attachment {id}: cannot write the download: {source}")]
    Download {
        id: u64,
        #[source]
        source: std::io::Error,
    },
}

fn status_suffix(status: &Option<u16>) -> String {
    match status {
        Some(status) => format!(" (HTTP {status})"),
        None => String::new(),
    }
}

fn record_suffix(record: &Option<String>) -> String {
    match record {
        Some(record) => format!(" record {record}"),
        None => String::new(),
    }
}

impl HaloError {
    /// The HTTP status Halo answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HaloError::Auth { status, .. } => *status,
            HaloError::Api { status, .. } => Some(*status),
            HaloError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Attaches the record an error is about (a write's input, a `get`'s id).
    pub fn with_record(self, record: impl Into<String>) -> HaloError {
        match self {
            HaloError::Api {
                entity,
                status,
                message,
                ..
            } => HaloError::Api {
                entity,
                record: Some(record.into()),
                status,
                message,
            },
            other => other,
        }
    }
}

/// Halo's own message from an error body. Halo answers validation failures with an ASP.NET
/// model-state object (`{"[1].site_id": "Site 999 does not exist."}`); the auth server with
/// OAuth's `{"error", "error_description"}`; other layers with `{"Message"}`, `{"message"}`,
/// `{"errorMessage"}`, `{"ClassName", "Message"}`, an `errors` array, or plain text. All are
/// read; the text is kept short so a run's results stay readable.
pub fn halo_message(body: &str) -> String {
    let text = body.trim();
    if text.is_empty() {
        return "(no message)".to_string();
    }
    let message = match serde_json::from_str::<Value>(text) {
        Ok(value) => message_from_json(&value).unwrap_or_else(|| text.to_string()),
        Err(_) => text.to_string(),
    };
    shorten(&message, 1000)
}

fn message_from_json(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(message_from_json).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        Value::Object(map) => {
            if let Some(error) = map.get("error").and_then(Value::as_str) {
                return Some(match map.get("error_description").and_then(Value::as_str) {
                    Some(description) => format!("{error}: {description}"),
                    None => error.to_string(),
                });
            }
            for key in ["errorMessage", "Message", "message", "error_description"] {
                if let Some(text) = map.get(key).and_then(Value::as_str) {
                    return Some(text.to_string());
                }
            }
            if let Some(errors) = map.get("errors") {
                return message_from_json(errors);
            }
            // Model state: every value is a message (or a list of them) under a field path.
            let parts: Vec<String> = map
                .iter()
                .filter_map(|(key, value)| {
                    message_from_json(value).map(|message| format!("{key}: {message}"))
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

/// One entry of a model-state error body: which posted element (when the key says), which
/// field, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub index: Option<usize>,
    pub field: String,
    pub message: String,
}

/// The model-state entries of a 400 body, e.g. `{"[1].site_id": "..."}` gives index 1, field
/// `site_id`. Keys without an index (`{"id": "..."}`) come back with `index: None`; a body that
/// is not a model-state object gives an empty list.
pub fn field_errors(body: &str) -> Vec<FieldError> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body.trim()) else {
        return Vec::new();
    };
    if map.contains_key("error") || map.contains_key("errors") {
        return Vec::new();
    }
    map.iter()
        .filter_map(|(key, value)| {
            let message = message_from_json(value)?;
            let (index, field) = split_model_key(key);
            Some(FieldError {
                index,
                field,
                message,
            })
        })
        .collect()
}

/// `"[3].customfields[0].value"` → `(Some(3), "customfields[0].value")`; `"name"` → `(None,
/// "name")`.
fn split_model_key(key: &str) -> (Option<usize>, String) {
    let key = key.trim();
    if let Some(rest) = key.strip_prefix('[') {
        if let Some((number, field)) = rest.split_once(']') {
            if let Ok(index) = number.trim().parse::<usize>() {
                let field = field.strip_prefix('.').unwrap_or(field);
                return (Some(index), field.to_string());
            }
        }
    }
    (None, key.to_string())
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let cut: String = text.chars().take(limit).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_state_bodies() {
        let body = r#"{"[1].site_id": "Site 999 does not exist."}"#;
        assert_eq!(halo_message(body), "[1].site_id: Site 999 does not exist.");
        assert_eq!(
            field_errors(body),
            vec![FieldError {
                index: Some(1),
                field: "site_id".into(),
                message: "Site 999 does not exist.".into()
            }]
        );
    }

    #[test]
    fn model_state_lists_and_keys_without_index() {
        let body =
            r#"{"name": ["Name is required.", "Too short."], "[0].customfields[2].value": "bad"}"#;
        let errors = field_errors(body);
        assert_eq!(errors[0].index, None);
        assert_eq!(errors[0].field, "name");
        assert_eq!(errors[0].message, "Name is required.; Too short.");
        assert_eq!(errors[1].index, Some(0));
        assert_eq!(errors[1].field, "customfields[2].value");
    }

    #[test]
    fn reads_oauth_and_other_error_shapes() {
        assert_eq!(
            halo_message(r#"{"error":"invalid_client","error_description":"Unknown client."}"#),
            "invalid_client: Unknown client."
        );
        assert_eq!(
            halo_message(r#"{"Message":"An error has occurred."}"#),
            "An error has occurred."
        );
        assert_eq!(
            halo_message(r#"{"ClassName":"System.Exception","Message":"boom"}"#),
            "boom"
        );
        assert_eq!(halo_message(r#"{"errors":["a","b"]}"#), "a; b");
        assert_eq!(
            halo_message("Rate Limit Reached - 300 Requests per rolling 5 minute window"),
            "Rate Limit Reached - 300 Requests per rolling 5 minute window"
        );
        assert_eq!(halo_message(""), "(no message)");
        assert!(field_errors(r#"{"error":"invalid_client"}"#).is_empty());
        assert!(field_errors("plain text").is_empty());
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(5000);
        assert!(halo_message(&long).chars().count() <= 1001);
    }

    #[test]
    fn api_errors_name_entity_and_record() {
        let error = HaloError::Api {
            entity: "Users".into(),
            record: None,
            status: 400,
            message: "site_id: Site 999 does not exist.".into(),
        }
        .with_record("#2 (name \"Ann\")");
        assert_eq!(
            error.to_string(),
            "Halo Users record #2 (name \"Ann\"): HTTP 400: site_id: Site 999 does not exist."
        );
        assert_eq!(error.status(), Some(400));
    }
}
