//! Attachments: uploading a file to a ticket or action (`POST /api/Attachment` with the bytes
//! as a `data:<type>;base64,...` URI in `data_base64`, as Halo's own clients send them) and
//! downloading one (`GET /api/Attachment/{id}` answers the raw bytes), streamed to a writer a
//! buffer at a time so a large file is never held whole. Uploads are held whole: Halo takes them
//! only inside a JSON body.

use std::io::{Read, Write};

use base64::Engine;
use serde_json::{json, Value};

use super::client::HaloClient;
use super::error::HaloError;
use super::service::{Call, ReadFailure};

/// A file to attach.
#[derive(Debug, Clone, Copy)]
pub struct NewAttachment<'a> {
    pub ticket_id: u64,
    /// The action (note) it belongs to, if any.
    pub action_id: Option<u64>,
    pub filename: &'a str,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

impl NewAttachment<'_> {
    fn content_type(&self) -> &str {
        if self.content_type.trim().is_empty() {
            "application/octet-stream"
        } else {
            self.content_type.trim()
        }
    }

    /// The POST body, `[element]`, written straight into one buffer: the file is encoded
    /// into it once, with no intermediate copies of the (larger) base64 text.
    pub fn to_body(&self) -> Vec<u8> {
        let content_type = self.content_type();
        let mut element = json!({
            "filename": self.filename,
            "isimage": content_type.starts_with("image/"),
            "ticket_id": self.ticket_id,
        });
        if let Some(action_id) = self.action_id {
            element["action_id"] = json!(action_id);
        }
        let head = element.to_string();
        let prefix = Value::String(format!("data:{content_type};base64,")).to_string();
        let mut body =
            Vec::with_capacity(head.len() + prefix.len() + self.bytes.len() * 4 / 3 + 32);
        body.push(b'[');
        // `{…}` without its closing brace, then the data URI, then the brace.
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"data_base64\":");
        // The opening quote and prefix, without the closing quote.
        body.extend_from_slice(&prefix.as_bytes()[..prefix.len() - 1]);
        let start = body.len();
        body.resize(
            start + base64::encoded_len(self.bytes.len(), true).unwrap_or(0),
            0,
        );
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(self.bytes, &mut body[start..])
            .unwrap_or(0);
        body.truncate(start + written);
        body.extend_from_slice(b"\"}]");
        body
    }

    /// The POST element Halo expects.
    pub fn to_json(&self) -> Value {
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.bytes);
        let content_type = self.content_type();
        let mut element = json!({
            "filename": self.filename,
            "isimage": content_type.starts_with("image/"),
            "data_base64": format!("data:{content_type};base64,{encoded}"),
            "ticket_id": self.ticket_id,
        });
        if let Some(action_id) = self.action_id {
            element["action_id"] = json!(action_id);
        }
        element
    }
}

impl HaloClient {
    /// Uploads a file; Halo answers with the attachment's details, `id` included.
    pub fn upload_attachment(&self, attachment: &NewAttachment) -> Result<Value, HaloError> {
        let body = attachment.to_body();
        let call = Call::post("Attachment", body, false);
        let record = format!(
            "{:?} on ticket {}",
            attachment.filename, attachment.ticket_id
        );
        let answer = self
            .service
            .json(&call)
            .map_err(|error| error.with_record(record.clone()))?;
        match answer {
            Value::Object(_) => Ok(answer),
            Value::Array(mut items) if items.len() == 1 => Ok(items.remove(0)),
            other => Err(HaloError::Unexpected {
                entity: "Attachment".into(),
                message: format!("the upload of {record} was answered with {other}"),
            }),
        }
    }

    /// Streams attachment `id`'s bytes into `out`; returns how many were written. If the
    /// connection drops after some bytes were written, `out` holds a partial file and an error
    /// is returned (the caller discards it); before that, the download is simply tried again.
    pub fn download_attachment(&self, id: u64, out: &mut dyn Write) -> Result<u64, HaloError> {
        let call = Call {
            // The file itself, whatever its type, not a JSON description of it.
            accept: "*/*",
            ..Call::get("Attachment", format!("Attachment/{id}"), Vec::new())
        };
        let answer = self.service.exchange(&call, |response| {
            let mut reader = response.into_body().into_reader();
            let mut buffer = vec![0u8; 64 * 1024];
            let mut written: u64 = 0;
            loop {
                let count = match reader.read(&mut buffer) {
                    Ok(0) => return Ok(written),
                    Ok(count) => count,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) if written == 0 => return Err(ReadFailure::Lost(error.to_string())),
                    Err(error) => {
                        return Err(ReadFailure::Final(HaloError::Transport {
                            entity: "Attachment".into(),
                            url: format!("Attachment/{id}"),
                            message: format!(
                                "the download broke off after {written} bytes: {error}"
                            ),
                        }))
                    }
                };
                out.write_all(&buffer[..count])
                    .map_err(|source| ReadFailure::Final(HaloError::Download { id, source }))?;
                written += count as u64;
            }
        })?;
        match answer {
            Ok(written) => {
                out.flush()
                    .map_err(|source| HaloError::Download { id, source })?;
                Ok(written)
            }
            Err(rejection) => Err(rejection
                .into_error("Attachment")
                .with_record(format!("id {id}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_element_is_a_data_uri() {
        let attachment = NewAttachment {
            ticket_id: 4,
            action_id: Some(9),
            filename: "a.txt",
            content_type: "text/plain",
            bytes: b"hello",
        };
        assert_eq!(
            attachment.to_json(),
            json!({
                "filename": "a.txt",
                "isimage": false,
                "data_base64": "data:text/plain;base64,aGVsbG8=",
                "ticket_id": 4,
                "action_id": 9
            })
        );
        let image = NewAttachment {
            content_type: "image/png",
            action_id: None,
            ..attachment
        };
        assert_eq!(image.to_json()["isimage"], json!(true));
        let unknown = NewAttachment {
            content_type: "",
            ..attachment
        };
        for element in [attachment, image, unknown] {
            let body: Value = serde_json::from_slice(&element.to_body()).unwrap();
            assert_eq!(body, json!([element.to_json()]));
        }
        assert!(unknown.to_json()["data_base64"]
            .as_str()
            .unwrap()
            .starts_with("data:application/octet-stream;base64,"));
    }
}
