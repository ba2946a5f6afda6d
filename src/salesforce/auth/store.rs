//! The token store: one JSON file holding the org's access and refresh tokens, where they came
//! from and when. Per project by default (`.etl/salesforce-token.json`, beside the staging
//! file) so two projects signed in to two orgs never mix; `token_store` in `etl.yaml` moves it
//! (e.g. to a per-user folder). The file is created with mode 0600 and replaced atomically, and
//! nothing here ever prints a token: `Debug` masks them and `mask` shows only the org prefix.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::salesforce::Error;

/// What a sign-in leaves behind.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTokens {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `https://<my domain>.my.salesforce.com`: where the API calls go.
    pub instance_url: String,
    /// The identity URL `…/id/<org id>/<user id>`.
    pub identity_url: String,
    /// When the access token was issued, milliseconds since the epoch.
    pub issued_at_ms: i64,
    /// When this sign-in was first made (a refresh keeps it).
    pub signed_in_at_ms: i64,
    /// The login host and connected app it was made with, so a changed `etl.yaml` is noticed.
    pub login_url: String,
    pub client_id: String,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("access_token", &mask(&self.access_token))
            .field(
                "refresh_token",
                &self.refresh_token.as_deref().map(|_| "********"),
            )
            .field("instance_url", &self.instance_url)
            .field("identity_url", &self.identity_url)
            .field("issued_at_ms", &self.issued_at_ms)
            .finish()
    }
}

impl StoredTokens {
    /// The org Id from the identity URL.
    pub fn org_id(&self) -> Option<&str> {
        self.identity_url.rsplit('/').nth(1)
    }

    /// The user Id from the identity URL.
    pub fn user_id(&self) -> Option<&str> {
        self.identity_url.rsplit('/').next()
    }
}

/// A token shown safely: an access token's org prefix (`00D…!`, public) and its length; any
/// other token only its length.
pub fn mask(token: &str) -> String {
    match token.split_once('!') {
        Some((org, _)) if org.len() <= 18 => format!("{org}!**** ({} chars)", token.len()),
        _ => format!("**** ({} chars)", token.len()),
    }
}

/// Where the token store is: `token_store` from `etl.yaml` (relative to the project folder,
/// `~/` for the home folder), or `salesforce-token.json` in the staging file's folder.
pub fn store_path(root: &Path, staging: Option<&str>, token_store: Option<&str>) -> PathBuf {
    if let Some(configured) = token_store {
        if let (Some(rest), Some(home)) = (configured.strip_prefix("~/"), std::env::var_os("HOME"))
        {
            return PathBuf::from(home).join(rest);
        }
        return root.join(configured);
    }
    let staging = root.join(staging.unwrap_or(".etl/staging.duckdb"));
    staging
        .parent()
        .map_or_else(|| root.to_path_buf(), Path::to_path_buf)
        .join("salesforce-token.json")
}

/// The file itself.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    pub fn new(path: impl Into<PathBuf>) -> TokenStore {
        TokenStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, detail: impl std::fmt::Display) -> Error {
        Error::Store {
            path: self.path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    /// The stored sign-in, or `None` when there is no file.
    pub fn load(&self) -> Result<Option<StoredTokens>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        // serde_json's message names a position, never the content, so no token leaks here.
        serde_json::from_str(&text).map(Some).map_err(|e| {
            self.error(format!(
                "not a token store ({e}); delete it and sign in again"
            ))
        })
    }

    /// Writes the sign-in: a temporary file created 0600 beside the store, then renamed over it,
    /// so a crash never leaves half a file and the tokens are never readable by others.
    pub fn save(&self, tokens: &StoredTokens) -> Result<(), Error> {
        let folder = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(|e| self.error(e))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "salesforce-token.json".into());
        let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(tokens).map_err(|e| self.error(e))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(self.error(e));
        }
        std::fs::rename(&temporary, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            self.error(e)
        })
    }

    /// Removes the file; `false` when there was none.
    pub fn delete(&self) -> Result<bool, Error> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{mask, store_path};

    #[test]
    fn finds_the_store() {
        let root = Path::new("/project");
        assert_eq!(
            store_path(root, None, None),
            Path::new("/project/.etl/salesforce-token.json")
        );
        assert_eq!(
            store_path(root, Some("data/stage.duckdb"), None),
            Path::new("/project/data/salesforce-token.json")
        );
        assert_eq!(
            store_path(root, None, Some("secrets/sf.json")),
            Path::new("/project/secrets/sf.json")
        );
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                store_path(root, None, Some("~/.config/etl/a.json")),
                Path::new(&home).join(".config/etl/a.json")
            );
        }
    }

    #[test]
    fn masks_tokens() {
        assert_eq!(
            mask("00D5g0000000001!AQYAQM7vSH1lzf7"),
            "00D5g0000000001!**** (31 chars)"
        );
        assert_eq!(mask("5Aep861_OKMvio5gy8x"), "**** (19 chars)");
    }
}
