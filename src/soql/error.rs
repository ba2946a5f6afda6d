//! SOQL errors, carrying Salesforce's error code and wording plus the position they refer to.

use std::fmt;

/// The Salesforce `errorCode` a SOQL problem maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    MalformedQuery,
    InvalidField,
    InvalidType,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedQuery => "MALFORMED_QUERY",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::InvalidType => "INVALID_TYPE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub code: ErrorCode,
    /// Salesforce's own text, e.g. `unexpected token: 'FORM'`.
    pub text: String,
    /// Byte offset into the query of the token the error is about.
    pub offset: usize,
    /// What would have been accepted here, for people (not part of Salesforce's text).
    pub hint: Option<String>,
    /// Whether Salesforce points at a token: a restriction on the query as a whole (such as
    /// the filter `ContentDocumentLink` requires) comes as its bare text.
    pub positioned: bool,
}

impl SoqlError {
    pub fn new(code: ErrorCode, text: impl Into<String>, offset: usize) -> Self {
        SoqlError {
            code,
            text: text.into(),
            offset,
            hint: None,
            positioned: true,
        }
    }

    /// An error about the whole query, which Salesforce words without a position.
    pub fn unpositioned(code: ErrorCode, text: impl Into<String>) -> Self {
        SoqlError {
            positioned: false,
            ..SoqlError::new(code, text, 0)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// 1-based (row, column) of the offending token, counted in characters as Salesforce does.
    pub fn row_column(&self, query: &str) -> (usize, usize) {
        let before = &query[..self.offset.min(query.len())];
        let row = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (row, column)
    }

    /// The message exactly as Salesforce returns it in a REST error body: the line of the query,
    /// a caret under the token, `ERROR at Row:r:Column:c` and the text (the text alone for an
    /// error without a position).
    pub fn salesforce_message(&self, query: &str) -> String {
        if !self.positioned {
            return self.text.clone();
        }
        let (row, column) = self.row_column(query);
        let line = query.lines().nth(row - 1).unwrap_or("");
        format!(
            "\n{line}\n{caret:>width$}\nERROR at Row:{row}:Column:{column}\n{text}",
            caret = "^",
            width = column,
            text = self.text
        )
    }
}

impl fmt::Display for SoqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.text)
    }
}

impl std::error::Error for SoqlError {}
