//! Problems found in configuration files, each pinned to `file:line:col`, with the offending
//! line, a caret under the spot and a hint; rendered for people or as JSON for machines.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::yaml::Loc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Short stable name of the rule, e.g. `unknown-key`.
    pub code: &'static str,
    pub message: String,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// How many characters the caret line underlines.
    #[serde(skip)]
    pub width: usize,
    /// The source line the problem is on (secrets masked).
    pub snippet: String,
    /// Text printed beside the caret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A configuration file's text, kept to quote lines in diagnostics.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    pub fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line.saturating_sub(1)).unwrap_or("")
    }

    /// Starts a diagnostic at `loc`, underlining the node's first line.
    pub fn error(&self, code: &'static str, loc: Loc, message: impl Into<String>) -> Diagnostic {
        let snippet = self.line_text(loc.line).to_string();
        let width = self
            .text
            .get(loc.offset..loc.offset + loc.len)
            .map(|s| s.lines().next().unwrap_or("").chars().count())
            .unwrap_or(1)
            .max(1);
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: self.path.clone(),
            line: loc.line.max(1),
            column: loc.column.max(1),
            width,
            snippet,
            label: None,
            hint: None,
        }
    }

    /// A diagnostic at an exact line and column, `width` characters wide.
    pub fn error_at(
        &self,
        code: &'static str,
        line: usize,
        column: usize,
        width: usize,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: self.path.clone(),
            line: line.max(1),
            column: column.max(1),
            width: width.max(1),
            snippet: self.line_text(line).to_string(),
            label: None,
            hint: None,
        }
    }
}

impl Diagnostic {
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Replaces the underlined part of the quoted line with asterisks, for values that are secrets.
    pub fn mask_snippet(mut self) -> Self {
        let chars: Vec<char> = self.snippet.chars().collect();
        let start = (self.column - 1).min(chars.len());
        let end = (start + self.width).min(chars.len());
        let mut masked: String = chars[..start].iter().collect();
        masked.push_str(&"*".repeat(end - start));
        masked.extend(&chars[end..]);
        self.snippet = masked;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic the way compilers do:
    ///
    /// ```text
    /// error[unknown-key]: unknown key `feilds`
    ///   --> pipelines/accounts.yaml:12:1
    ///    |
    /// 12 | feilds:
    ///    | ^^^^^^ did you mean `fields`?
    ///    = hint: …
    /// ```
    pub fn render(&self, base: Option<&Path>) -> String {
        let file = base
            .and_then(|b| self.file.strip_prefix(b).ok())
            .unwrap_or(&self.file);
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        let mut out = String::new();
        let _ = writeln!(out, "{severity}[{}]: {}", self.code, self.message);
        let _ = writeln!(
            out,
            "{gutter}--> {}:{}:{}",
            file.display(),
            self.line,
            self.column
        );
        let _ = writeln!(out, "{gutter} |");
        let _ = writeln!(out, "{number} | {}", self.snippet);
        let pad: String = self
            .snippet
            .chars()
            .take(self.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let label = self
            .label
            .as_deref()
            .map(|l| format!(" {l}"))
            .unwrap_or_default();
        let _ = writeln!(out, "{gutter} | {pad}{}{label}", "^".repeat(self.width));
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{gutter} = hint: {hint}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_caret_under_the_spot() {
        let file = SourceFile::new("p.yaml", "pipeline: x\nfeilds:\n");
        let loc = Loc {
            line: 2,
            column: 1,
            offset: 12,
            len: 6,
        };
        let d = file
            .error("unknown-key", loc, "unknown key `feilds`")
            .label("did you mean `fields`?");
        assert_eq!(
            d.render(None),
            "error[unknown-key]: unknown key `feilds`\n --> p.yaml:2:1\n  |\n2 | feilds:\n  | ^^^^^^ did you mean `fields`?\n"
        );
    }

    #[test]
    fn masks_secrets() {
        let file = SourceFile::new("p.yaml", "secret: hunter2\n");
        let loc = Loc {
            line: 1,
            column: 9,
            offset: 8,
            len: 7,
        };
        let d = file.error("literal-secret", loc, "x").mask_snippet();
        assert_eq!(d.snippet, "secret: *******");
    }
}
