//! A small `multipart/form-data` reader (RFC 7578 over RFC 2046) for the org's blob uploads:
//! the boundary from the `Content-Type` header, then each part's `Content-Disposition` name and
//! filename, its `Content-Type`, and its bytes exactly as sent. Written here rather than taken
//! from axum's `multipart` feature, which would add `multer` and its dependencies to the build.
//!
//! A delimiter counts only at the start of a line (after CRLF, or a bare LF that hand-written
//! request files carry) and when followed by `--` or the end of its line, so a body that holds
//! CRLFs, `--boundary` in mid-line or `--boundaryX` comes back byte for byte.

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `name` of the part's `Content-Disposition`.
    pub name: Option<String>,
    /// `filename` of the part's `Content-Disposition`: a file (Salesforce's "binary part").
    pub filename: Option<String>,
    /// The part's `Content-Type`, as sent.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The `boundary` parameter of a `multipart/*` content type (quoted or not).
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    parameters(params)
        .into_iter()
        .find(|(key, _)| key == "boundary")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty() && value.len() <= 200)
}

/// True for a `multipart/…` content type.
pub fn is_multipart(content_type: &str) -> bool {
    content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
}

/// The parts of `body`, split on `boundary`; an error names what is malformed.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut position = next_delimiter(body, &delimiter, 0, true)
        .ok_or_else(|| format!("no opening boundary `--{boundary}` in the body"))?
        .after;
    let mut parts = Vec::new();
    loop {
        // After a delimiter: `--` closes the body; otherwise padding and the end of the line.
        if body[position..].starts_with(b"--") {
            return Ok(parts);
        }
        position = line_end(body, position).ok_or("a boundary line that does not end")?;
        let (headers, body_start) = split_headers(body, position)
            .ok_or("a part whose headers do not end with an empty line")?;
        let next = next_delimiter(body, &delimiter, body_start, false)
            .ok_or("the body ends before its closing boundary")?;
        let mut part = read_headers(headers)?;
        part.body = body[body_start..next.content_end].to_vec();
        parts.push(part);
        position = next.after;
    }
}

struct Delimiter {
    /// Where the previous part's content ends (before the line break that opens the delimiter).
    content_end: usize,
    /// Just after `--boundary`.
    after: usize,
}

/// The next delimiter from `from`: `--boundary` at the start of a line (or of the body, for the
/// first), followed by `--`, spaces or tabs, or a line break.
fn next_delimiter(body: &[u8], delimiter: &[u8], from: usize, first: bool) -> Option<Delimiter> {
    let mut search = from;
    while let Some(offset) = find(&body[search..], delimiter) {
        let at = search + offset;
        let after = at + delimiter.len();
        let line_start = if first && at == from {
            Some(at)
        } else if at >= 2 && &body[at - 2..at] == b"\r\n" {
            Some(at - 2)
        } else if at >= 1 && body[at - 1] == b'\n' {
            Some(at - 1)
        } else {
            None
        };
        let rest = &body[after..];
        let ends_right = rest.starts_with(b"--")
            || rest
                .iter()
                .find(|b| **b != b' ' && **b != b'\t')
                .is_some_and(|b| *b == b'\r' || *b == b'\n');
        if let (Some(content_end), true) = (line_start, ends_right) {
            // The first delimiter may follow a preamble, which is dropped.
            let content_end = if first { at } else { content_end };
            return Some(Delimiter { content_end, after });
        }
        search = at + 1;
    }
    None
}

/// Skips spaces and tabs and one line break from `from`; where the next line starts.
fn line_end(body: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < body.len() && (body[at] == b' ' || body[at] == b'\t') {
        at += 1;
    }
    if body[at..].starts_with(b"\r\n") {
        Some(at + 2)
    } else if body[at..].starts_with(b"\n") {
        Some(at + 1)
    } else {
        None
    }
}

/// A part's header block (from `from` to the empty line) and where its body starts.
fn split_headers(body: &[u8], from: usize) -> Option<(&[u8], usize)> {
    // A part with no headers starts right away with the empty line.
    if body[from..].starts_with(b"\r\n") {
        return Some((&body[from..from], from + 2));
    }
    if body[from..].starts_with(b"\n") {
        return Some((&body[from..from], from + 1));
    }
    let crlf = find(&body[from..], b"\r\n\r\n").map(|i| (i, 4));
    let lf = find(&body[from..], b"\n\n").map(|i| (i, 2));
    let (offset, gap) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 < b.0 {
                a
            } else {
                b
            }
        }
        (one, other) => one.or(other)?,
    };
    Some((&body[from..from + offset], from + offset + gap))
}

fn read_headers(block: &[u8]) -> Result<Part, String> {
    let text = std::str::from_utf8(block).map_err(|_| "part headers that are not UTF-8")?;
    let mut part = Part {
        name: None,
        filename: None,
        content_type: None,
        body: Vec::new(),
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                let (_, params) = value.split_once(';').unwrap_or((value, ""));
                for (key, value) in parameters(params) {
                    match key.as_str() {
                        "name" => part.name = Some(value),
                        "filename" => part.filename = Some(value),
                        _ => {}
                    }
                }
            }
            "content-type" => part.content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    Ok(part)
}

/// `; key=value; key="quoted \" value"` as lower-case keys and unquoted values.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim_start_matches([';', ' ', '\t']);
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(';')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        _ => value.push(c),
                    }
                }
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        out.push((key, value));
        rest = remainder.trim_start_matches([';', ' ', '\t']);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (headers, content) in parts {
            out.extend_from_slice(b"--b0und\r\n");
            out.extend_from_slice(headers.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--b0und--\r\n");
        out
    }

    #[test]
    fn boundary_comes_quoted_or_bare() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"boundary_string\"").as_deref(),
            Some("boundary_string")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;boundary=abc;charset=UTF-8").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary("application/json; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary=\"\""), None);
        assert!(is_multipart(" multipart/form-data; boundary=x"));
        assert!(!is_multipart("application/json"));
    }

    #[test]
    fn parts_keep_names_filenames_types_and_exact_bytes() {
        let binary: Vec<u8> = b"\r\n--b0und-ish\r\n--b0undX\r\nmid --b0und line\n\r\n\r\n"
            .iter()
            .copied()
            .chain(0u8..=255)
            .collect();
        let parsed = parse(
            &body(&[
                (
                    "Content-Disposition: form-data; name=\"entity_content\"\r\nContent-Type: application/json",
                    b"{\"Title\":\"x\"}",
                ),
                (
                    "content-disposition: form-data; name=\"VersionData\"; filename=\"a \\\"q\\\".bin\"\r\nContent-Type: application/octet-stream",
                    &binary,
                ),
            ]),
            "b0und",
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name.as_deref(), Some("entity_content"));
        assert_eq!(parsed[0].filename, None);
        assert_eq!(parsed[0].content_type.as_deref(), Some("application/json"));
        assert_eq!(parsed[0].body, b"{\"Title\":\"x\"}");
        assert_eq!(parsed[1].name.as_deref(), Some("VersionData"));
        assert_eq!(parsed[1].filename.as_deref(), Some("a \"q\".bin"));
        assert_eq!(parsed[1].body, binary);
    }

    #[test]
    fn a_preamble_an_empty_part_and_bare_line_feeds_are_read() {
        let text = b"preamble\r\n--xyz\nContent-Disposition: form-data; name=a\n\nfirst\n--xyz\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--xyz--";
        let parsed = parse(text, "xyz").unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name.as_deref(), Some("a"));
        assert_eq!(parsed[0].body, b"first");
        assert_eq!(parsed[1].name.as_deref(), Some("empty"));
        assert_eq!(parsed[1].body, b"");
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        assert!(parse(b"no boundary here", "b0und")
            .unwrap_err()
            .contains("no opening boundary"));
        assert!(parse(
            b"--b0und\r\nContent-Disposition: form-data; name=x\r\n\r\nnever closed",
            "b0und"
        )
        .unwrap_err()
        .contains("closing boundary"));
        assert!(parse(b"--b0und\r\nContent-Disposition: form-data", "b0und")
            .unwrap_err()
            .contains("headers"));
    }
}
