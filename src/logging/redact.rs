//! The last line of defence for secrets in logs: a process-wide list of every secret value the
//! connectors have read or been given (client secrets, passwords, access and refresh tokens,
//! authorization codes), and a [`MakeWriter`] wrapper that replaces each of them with `***` in
//! whatever the log formatter wrote before it reaches stderr.
//!
//! The code never logs a secret on purpose; this catches the accident — a token inside an
//! error message from a library, a URL or a `{:?}` of a struct someone adds later. A secret is
//! registered where it enters the process (see [`register`]), so the writer knows it before any
//! event could carry it.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::RwLock;

use tracing_subscriber::fmt::MakeWriter;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Values shorter than this are not treated as secrets: masking every `a` or `42` in the logs
/// would garble them, and no credential worth the name is that short.
pub const MIN_SECRET_LEN: usize = 8;

/// Every secret known to this process, longest first (so that a secret containing another is
/// masked whole, not left with a tail).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers a secret so that the log writer masks it. Also registers the forms a formatter
/// may print it in: JSON-escaped (the `json` log format) and `{:?}`-escaped, when they differ.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut forms = vec![secret.to_string()];
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    let debug = format!("{secret:?}");
    forms.push(debug[1..debug.len() - 1].to_string());
    let mut secrets = SECRETS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for form in forms {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    secrets.sort_by_key(|known| std::cmp::Reverse(known.len()));
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut text = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if text.contains(secret.as_str()) {
            text = Cow::Owned(text.replace(secret.as_str(), MASK));
        }
    }
    text
}

/// Wraps the writer the log formatter writes to, masking secrets on the way.
#[derive(Debug, Clone)]
pub struct Redacting<M> {
    inner: M,
}

impl<M> Redacting<M> {
    pub fn new(inner: M) -> Redacting<M> {
        Redacting { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            buffer: Vec::new(),
        }
    }
}

/// One event's writer: the formatter asks for one per event, so the whole event is gathered
/// and masked at once — a secret split across two `write` calls is still found.
pub struct RedactingWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let gathered = std::mem::take(&mut self.buffer);
        let text = String::from_utf8_lossy(&gathered);
        self.inner.write_all(redact(&text).as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed write of a log line; stderr being gone is not fatal.
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer target the tests can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn masks_registered_secrets_and_leaves_the_rest() {
        // Other tests in this process register secrets too: the text around this one uses no
        // word that could be one.
        register("unit-redact-value-1f9a");
        let said = redact("code=unit-redact-value-1f9a&state=xyz");
        assert_eq!(said, "code=***&state=xyz");
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_not_secrets() {
        register("abcdefg");
        assert_eq!(redact("abcdefg abcdefgh"), "abcdefg abcdefgh");
    }

    #[test]
    fn the_longest_secret_is_masked_whole() {
        register("unit-nested-2b7c");
        register("unit-nested-2b7c-and-more");
        assert_eq!(redact("x unit-nested-2b7c-and-more y"), "x *** y");
    }

    #[test]
    fn escaped_forms_are_masked_too() {
        register("unit\"quoted\\secret-77");
        let json = serde_json::to_string("unit\"quoted\\secret-77").unwrap();
        assert_eq!(redact(&json), "\"***\"");
        assert_eq!(
            redact(&format!("{:?}", "unit\"quoted\\secret-77")),
            "\"***\""
        );
    }

    #[test]
    fn the_writer_masks_a_secret_split_across_writes() {
        register("unit-split-token-93d1");
        let captured = Captured::default();
        let make = Redacting::new(captured.clone());
        {
            let mut writer = make.make_writer();
            writer.write_all(b"bearer unit-split-").unwrap();
            writer.write_all(b"token-93d1 refused\n").unwrap();
        }
        assert_eq!(captured.text(), "bearer *** refused\n");
    }

    #[test]
    fn events_through_a_subscriber_are_masked() {
        register("unit-event-secret-5e20");
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(Redacting::new(captured.clone()))
            .json()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(detail = "token unit-event-secret-5e20", "sign-in failed");
        });
        let text = captured.text();
        assert!(!text.contains("unit-event-secret-5e20"), "{text}");
        assert!(text.contains("token ***"), "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN");
    }
}
