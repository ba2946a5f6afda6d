//! The OAuth 2.0 JWT bearer grant's client half (`flow: jwt_bearer`): reads the RSA private key
//! of `private_key_file` (PEM, PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`),
//! builds the assertion `{"alg":"RS256"}` . `{"iss","sub","aud","exp"}` (base64url without
//! padding, signed with RSASSA-PKCS1-v1_5 SHA-256) and trades it at the token endpoint. There
//! is no refresh token in this flow: a new assertion is signed whenever a token is needed. The
//! key and the assertion never reach a log, an error or the output; errors name the file only.

use std::path::Path;

use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::civil;
use crate::config::model::SalesforceConnection;
use crate::salesforce::Error;

/// The grant type the token endpoint knows this flow by.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion is valid: Salesforce takes at most a few minutes.
pub const LIFETIME_SECONDS: i64 = 180;

const FIX: &str = "set connections.salesforce.private_key_file in etl.yaml to the PEM private key \
                   whose certificate is uploaded to the connected app (relative to etl.yaml)";

/// Reads and parses the private key. Errors name the file and the fix, never its content.
pub fn load_key(path: &Path) -> Result<RsaPrivateKey, Error> {
    let shown = path.display();
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Config(format!(
                "private_key_file {shown} does not exist: {FIX}"
            )))
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "private_key_file {shown} cannot be read ({}): {FIX}",
                e.kind()
            )))
        }
    };
    let text = String::from_utf8(text).map_err(|_| not_rsa_pem(path, "it is not PEM text"))?;
    let label = text
        .lines()
        .map(str::trim)
        .find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
        })
        .map(str::to_string);
    // The parsers' messages name what is wrong (an OID, a length), never key bytes; still only
    // our own words are shown.
    match label.as_deref() {
        Some("PRIVATE KEY") => RsaPrivateKey::from_pkcs8_pem(&text).map_err(|_| {
            not_rsa_pem(
                path,
                "its PKCS#8 key is not an RSA key or is damaged (Salesforce needs RSA)",
            )
        }),
        Some("RSA PRIVATE KEY") => RsaPrivateKey::from_pkcs1_pem(&text)
            .map_err(|_| not_rsa_pem(path, "its PKCS#1 RSA key is damaged")),
        Some("ENCRYPTED PRIVATE KEY") => Err(not_rsa_pem(
            path,
            "it is encrypted; write an unencrypted copy with \
             `openssl pkcs8 -in KEY -out server.key -nocrypt` and keep it private",
        )),
        Some(other) => Err(not_rsa_pem(
            path,
            &format!("it holds a `{other}`, not `PRIVATE KEY` or `RSA PRIVATE KEY`"),
        )),
        None => Err(not_rsa_pem(path, "it has no `-----BEGIN … -----` line")),
    }
}

fn not_rsa_pem(path: &Path, why: &str) -> Error {
    Error::Config(format!(
        "private_key_file {} is not an RSA private key in PEM: {why}",
        path.display()
    ))
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed assertion for `iss` (the consumer key), `sub` (the username) and `aud` (the
/// login host), valid until `now_seconds` + [`LIFETIME_SECONDS`].
pub fn assertion(
    key: &RsaPrivateKey,
    iss: &str,
    sub: &str,
    aud: &str,
    now_seconds: i64,
) -> Result<String, Error> {
    let header = base64url(br#"{"alg":"RS256"}"#);
    let claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": now_seconds + LIFETIME_SECONDS});
    let claims = base64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let digest = Sha256::digest(signing_input.as_bytes());
    // Blinded with the OS's randomness against timing attacks on the key.
    let signature = key
        .sign_with_rng(
            &mut rsa::rand_core::OsRng,
            Pkcs1v15Sign::new::<Sha256>(),
            &digest,
        )
        .map_err(|_| {
            Error::Config(
                "private_key_file: the RSA key cannot sign (is it at least 2048 bits?)".into(),
            )
        })?;
    Ok(format!("{signing_input}.{}", base64url(&signature)))
}

/// The audience Salesforce expects: the login host, without a trailing slash.
pub fn audience(connection: &SalesforceConnection) -> &str {
    connection.login_url.trim_end_matches('/')
}

/// A fresh assertion for the connection; `private_key_file` must already be resolved against
/// the project folder. The key is read anew each time and dropped after signing.
pub fn signed_assertion(connection: &SalesforceConnection) -> Result<String, Error> {
    let (Some(username), Some(key_file)) = (
        connection.username.as_deref().filter(|u| !u.is_empty()),
        connection
            .private_key_file
            .as_deref()
            .filter(|k| !k.is_empty()),
    ) else {
        return Err(Error::Config(
            "flow jwt_bearer needs connections.salesforce.username and private_key_file".into(),
        ));
    };
    let key = load_key(Path::new(key_file))?;
    assertion(
        &key,
        &connection.client_id,
        username,
        audience(connection),
        civil::now_millis() / 1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    fn small_key() -> RsaPrivateKey {
        // 1024 bits keeps the unit test fast; real keys are 2048 or more.
        RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap()
    }

    #[test]
    fn signs_a_verifiable_assertion() {
        let key = small_key();
        let jwt = assertion(
            &key,
            "app",
            "me@example.com",
            "https://login.salesforce.com",
            1000,
        )
        .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('='));
        let decode = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        assert_eq!(decode(parts[0]), br#"{"alg":"RS256"}"#);
        let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(claims["iss"], "app");
        assert_eq!(claims["sub"], "me@example.com");
        assert_eq!(claims["aud"], "https://login.salesforce.com");
        assert_eq!(claims["exp"], 1180);
        let verifying = VerifyingKey::<Sha256>::new(key.to_public_key());
        let signature = Signature::try_from(decode(parts[2]).as_slice()).unwrap();
        verifying
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn names_the_file_never_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let error = load_key(&missing).unwrap_err().to_string();
        assert!(
            error.contains("nope.key") && error.contains("does not exist"),
            "{error}"
        );
        let ec = dir.path().join("ec.key");
        std::fs::write(
            &ec,
            "-----BEGIN EC PRIVATE KEY-----\nSECRETSTUFF\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = load_key(&ec).unwrap_err().to_string();
        assert!(error.contains("not an RSA private key"), "{error}");
        assert!(!error.contains("SECRETSTUFF"));
        let broken = dir.path().join("broken.key");
        std::fs::write(
            &broken,
            "-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = load_key(&broken).unwrap_err().to_string();
        assert!(
            error.contains("broken.key") && !error.contains("SECRETSTUFF"),
            "{error}"
        );
    }
}
