//! Files in the sandbox org over real HTTP, as Salesforce's "Insert or Update Blob Data" takes
//! them: a `multipart/form-data` create of a ContentVersion (a JSON `entity_content` part and a
//! binary `VersionData` part) or a JSON one with base64 `VersionData` makes the version, its
//! ContentDocument and, with `FirstPublishLocationId`, the ContentDocumentLink; the bytes come
//! back from `/sobjects/ContentVersion/{id}/VersionData` byte for byte (CRLFs and
//! boundary-like bytes included); malformed uploads get Salesforce's errors and create nothing.

use base64::Engine;
use serde_json::{json, Value};

use etl::sandbox::server::{self, Options, Running};

mod support;
use support::{agent, live_records, reply, salesforce_token as token, Reply};

const API: &str = "/services/data/v62.0";
const BOUNDARY: &str = "boundary_string";

fn start() -> Running {
    server::start(Options {
        accounts: 2,
        ..Options::default()
    })
    .unwrap()
}

fn get(sandbox: &Running, token: &str, path: &str) -> Reply {
    reply(
        agent()
            .get(format!("{}{API}{path}", sandbox.salesforce_url))
            .header("Authorization", format!("Bearer {token}"))
            .call(),
    )
}

fn query(sandbox: &Running, token: &str, soql: &str) -> Vec<Value> {
    let encoded: String = soql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let answer = get(sandbox, token, &format!("/query?q={encoded}"));
    assert_eq!(answer.status, 200, "{soql}: {}", answer.text());
    answer.json()["records"].as_array().unwrap().clone()
}

fn post(sandbox: &Running, token: &str, object: &str, content_type: &str, body: Vec<u8>) -> Reply {
    reply(
        agent()
            .post(format!("{}{API}/sobjects/{object}", sandbox.salesforce_url))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", content_type)
            .send(&body[..]),
    )
}

/// A part of a multipart body: its headers (without the line break ending them) and content.
fn part(headers: &str, content: &[u8]) -> (String, Vec<u8>) {
    (headers.to_string(), content.to_vec())
}

fn json_part(fields: &Value) -> (String, Vec<u8>) {
    part(
        "Content-Disposition: form-data; name=\"entity_content\";\r\nContent-Type: application/json",
        fields.to_string().as_bytes(),
    )
}

fn file_part(name: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    part(
        &format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream"),
        bytes,
    )
}

/// The body Salesforce documents: each part after `--boundary`, the body closed by `--boundary--`.
fn multipart(parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn content_type() -> String {
    format!("multipart/form-data; boundary=\"{BOUNDARY}\"")
}

/// Bytes that try to break a multipart reader: CRLFs, blank lines, the boundary in mid-line,
/// `--boundary` followed by more characters at a line start, and every byte value.
fn awkward_bytes(size: usize) -> Vec<u8> {
    let mut bytes = format!(
        "\r\n--{BOUNDARY}X\r\n\r\nline --{BOUNDARY}-- mid-line\r\n--{BOUNDARY}_not\n\r\n\r"
    )
    .into_bytes();
    let mut state: u32 = 7;
    while bytes.len() < size {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push((state >> 16) as u8);
        if bytes.len() % 997 == 0 {
            bytes.extend_from_slice(b"\r\n--");
            bytes.extend_from_slice(BOUNDARY.as_bytes());
            bytes.push(b'!');
        }
    }
    bytes.extend(0u8..=255);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

fn an_opportunity(sandbox: &Running) -> String {
    live_records(sandbox, "Opportunity")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Checks a version made by an upload: its document, its link to `record`, its bytes.
fn assert_file(
    sandbox: &Running,
    token: &str,
    version: &str,
    record: &str,
    title: &str,
    bytes: &[u8],
) {
    let download = get(
        sandbox,
        token,
        &format!("/sobjects/ContentVersion/{version}/VersionData"),
    );
    assert_eq!(download.status, 200);
    assert!(
        download.body == bytes,
        "the bytes differ ({} against {})",
        download.body.len(),
        bytes.len()
    );

    let rows = query(sandbox, token, &format!(
        "SELECT ContentDocumentId, Title, FileExtension, ContentSize, IsLatest FROM ContentVersion WHERE Id = '{version}'"
    ));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["Title"], title);
    assert_eq!(row["ContentSize"], bytes.len());
    assert_eq!(row["FileExtension"], "bin");
    assert_eq!(row["IsLatest"], true);
    let document = row["ContentDocumentId"].as_str().unwrap().to_string();
    assert!(document.starts_with("069"), "{document}");

    let documents = query(sandbox, token, &format!(
        "SELECT Title, LatestPublishedVersionId, ContentSize FROM ContentDocument WHERE Id = '{document}'"
    ));
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0]["LatestPublishedVersionId"], version);
    assert_eq!(documents[0]["Title"], title);
    assert_eq!(documents[0]["ContentSize"], bytes.len());

    let links = query(sandbox, token, &format!(
        "SELECT ContentDocumentId, ShareType FROM ContentDocumentLink WHERE LinkedEntityId = '{record}'"
    ));
    assert!(
        links
            .iter()
            .any(|l| l["ContentDocumentId"] == document.as_str() && l["ShareType"] == "V"),
        "{links:?}"
    );
}

#[test]
fn a_multipart_upload_makes_the_file_and_downloads_byte_equal() {
    let sandbox = start();
    let token = token(&sandbox);
    let opportunity = an_opportunity(&sandbox);
    // Over 2 MB, so the sandbox must take bodies larger than axum's default limit.
    let bytes = awkward_bytes(3 * 1024 * 1024);
    let body = multipart(&[
        json_part(
            &json!({"Title": "Signed contract", "PathOnClient": "contract.bin",
                          "FirstPublishLocationId": opportunity}),
        ),
        file_part("VersionData", "contract.bin", &bytes),
    ]);
    let created = post(&sandbox, &token, "ContentVersion", &content_type(), body);
    assert_eq!(created.status, 201, "{}", created.text());
    let answer = created.json();
    let version = answer["id"].as_str().unwrap().to_string();
    assert!(
        version.starts_with("068") && version.len() == 18,
        "{answer}"
    );
    assert_eq!(
        answer,
        json!({"id": version, "success": true, "errors": []})
    );
    assert_eq!(
        created.header("location"),
        Some(format!("{API}/sobjects/ContentVersion/{version}").as_str())
    );
    assert_file(
        &sandbox,
        &token,
        &version,
        &opportunity,
        "Signed contract",
        &bytes,
    );

    // Read as a record, the blob field is the URL of the bytes, as in a real org.
    let record = get(
        &sandbox,
        &token,
        &format!("/sobjects/ContentVersion/{version}"),
    )
    .json();
    assert_eq!(
        record["VersionData"],
        format!("{API}/sobjects/ContentVersion/{version}/VersionData")
    );
}

#[test]
fn a_json_upload_with_base64_version_data_makes_the_same_file() {
    let sandbox = start();
    let token = token(&sandbox);
    let opportunity = an_opportunity(&sandbox);
    let bytes = awkward_bytes(40_000);
    let body = json!({"Title": "Quote", "PathOnClient": "quote.BIN", "FirstPublishLocationId": opportunity,
                      "VersionData": base64::engine::general_purpose::STANDARD.encode(&bytes)});
    let created = post(
        &sandbox,
        &token,
        "ContentVersion",
        "application/json",
        body.to_string().into_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let version = created.json()["id"].as_str().unwrap().to_string();
    assert_file(&sandbox, &token, &version, &opportunity, "Quote", &bytes);

    // A file published nowhere gets its document but no link to a record.
    let created = post(
        &sandbox,
        &token,
        "ContentVersion",
        &content_type(),
        multipart(&[
            json_part(&json!({"Title": "Private", "PathOnClient": "private.bin"})),
            file_part("VersionData", "private.bin", b"just mine"),
        ]),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let version = created.json()["id"].as_str().unwrap().to_string();
    let documents = query(
        &sandbox,
        &token,
        &format!("SELECT ContentDocumentId FROM ContentVersion WHERE Id = '{version}'"),
    );
    let document = documents[0]["ContentDocumentId"].as_str().unwrap();
    assert!(live_records(&sandbox, "ContentDocumentLink")
        .iter()
        .all(|l| l["ContentDocumentId"] != document));
}

#[test]
fn an_attachment_takes_a_multipart_body_too() {
    let sandbox = start();
    let token = token(&sandbox);
    let opportunity = an_opportunity(&sandbox);
    let bytes = awkward_bytes(5_000);
    let created = post(
        &sandbox,
        &token,
        "Attachment",
        &content_type(),
        multipart(&[
            part(
                "Content-Disposition: form-data; name=\"entity_attachment\"\r\nContent-Type: application/json",
                json!({"Name": "notes.bin", "ParentId": opportunity}).to_string().as_bytes(),
            ),
            file_part("Body", "notes.bin", &bytes),
        ]),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    let download = get(&sandbox, &token, &format!("/sobjects/Attachment/{id}/Body"));
    assert!(download.body == bytes);
    let rows = query(
        &sandbox,
        &token,
        &format!("SELECT BodyLength FROM Attachment WHERE Id = '{id}'"),
    );
    assert_eq!(rows[0]["BodyLength"], bytes.len());

    // A new body in base64 on update replaces the bytes and their length.
    let replaced = reply(
        agent()
            .patch(format!(
                "{}{API}/sobjects/Attachment/{id}",
                sandbox.salesforce_url
            ))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(
                json!({"Body": base64::engine::general_purpose::STANDARD.encode(b"v2\r\n")})
                    .to_string(),
            ),
    );
    assert_eq!(replaced.status, 204, "{}", replaced.text());
    let download = get(&sandbox, &token, &format!("/sobjects/Attachment/{id}/Body"));
    assert_eq!(download.body, b"v2\r\n");
    let rows = query(
        &sandbox,
        &token,
        &format!("SELECT BodyLength FROM Attachment WHERE Id = '{id}'"),
    );
    assert_eq!(rows[0]["BodyLength"], 4);
}

#[test]
fn malformed_uploads_get_salesforces_errors_and_create_nothing() {
    let sandbox = start();
    let token = token(&sandbox);
    let fields = json!({"Title": "x", "PathOnClient": "x.bin"});
    let invalid =
        |message: &str| json!([{"message": message, "errorCode": "INVALID_MULTIPART_REQUEST"}]);
    let cases: Vec<(&str, String, Vec<u8>, Value)> = vec![
        (
            "no JSON part",
            content_type(),
            multipart(&[file_part("VersionData", "x.bin", b"bytes")]),
            invalid("Multipart message must include a non-binary part"),
        ),
        (
            "no binary part",
            content_type(),
            multipart(&[json_part(&fields)]),
            json!([{"message": "Required fields are missing: [VersionData]",
                    "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["VersionData"]}]),
        ),
        (
            "two binary parts",
            content_type(),
            multipart(&[
                json_part(&fields),
                file_part("VersionData", "x.bin", b"one"),
                file_part("VersionData", "y.bin", b"two"),
            ]),
            invalid("Cannot include more than one binary part"),
        ),
        (
            "two JSON parts",
            content_type(),
            multipart(&[json_part(&fields), json_part(&fields), file_part("VersionData", "x.bin", b"one")]),
            invalid("Cannot include more than one non-binary part"),
        ),
        (
            "a non-binary part that is not JSON",
            content_type(),
            multipart(&[
                part("Content-Disposition: form-data; name=\"entity_content\"\r\nContent-Type: image/jpeg", b"\xff\xd8"),
                file_part("VersionData", "x.bin", b"one"),
            ]),
            invalid("Non-binary part must be JSON or XML, was: 'image/jpeg'"),
        ),
        (
            "the binary part named after no field",
            content_type(),
            multipart(&[json_part(&fields), file_part("Data", "x.bin", b"one")]),
            json!([{"message": "No such column 'Data' on sobject of type ContentVersion",
                    "errorCode": "INVALID_FIELD", "fields": []}]),
        ),
        (
            "an unknown field in the JSON part",
            content_type(),
            multipart(&[
                json_part(&json!({"Title": "x", "PathOnClient": "x.bin", "Colour": "red"})),
                file_part("VersionData", "x.bin", b"one"),
            ]),
            json!([{"message": "No such column 'Colour' on sobject of type ContentVersion",
                    "errorCode": "INVALID_FIELD", "fields": []}]),
        ),
    ];
    for (what, kind, body, expected) in cases {
        let answer = post(&sandbox, &token, "ContentVersion", &kind, body);
        assert_eq!(answer.status, 400, "{what}: {}", answer.text());
        assert_eq!(answer.json(), expected, "{what}");
    }
    // Bodies that are not multipart as announced.
    let no_boundary = post(
        &sandbox,
        &token,
        "ContentVersion",
        "multipart/form-data",
        b"--x\r\n".to_vec(),
    );
    assert_eq!(no_boundary.status, 400);
    assert_eq!(
        no_boundary.json()[0]["errorCode"],
        "INVALID_MULTIPART_REQUEST"
    );
    let unclosed =
        format!("--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{{}}").into_bytes();
    let unclosed = post(
        &sandbox,
        &token,
        "ContentVersion",
        &content_type(),
        unclosed,
    );
    assert_eq!(unclosed.status, 400);
    assert!(unclosed.json()[0]["message"]
        .as_str()
        .unwrap()
        .contains("closing boundary"));

    assert!(live_records(&sandbox, "ContentVersion").is_empty());
    assert!(live_records(&sandbox, "ContentDocument").is_empty());
}
