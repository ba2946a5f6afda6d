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
/// `~/` for the home folder), or `salesforce-token.json` in the staging file's folder. The
/// answer remembers the project folder, so a [`TokenStore`] made from it can resolve the
/// project's other relative paths (the `jwt_bearer` flow's `private_key_file`).
pub fn store_path(root: &Path, staging: Option<&str>, token_store: Option<&str>) -> StorePath {
    let path = if let Some(configured) = token_store {
        project_path(root, configured)
    } else {
        let staging = root.join(staging.unwrap_or(".etl/staging.duckdb"));
        staging
            .parent()
            .map_or_else(|| root.to_path_buf(), Path::to_path_buf)
            .join("salesforce-token.json")
    };
    StorePath {
        path,
        root: Some(root.to_path_buf()),
    }
}

/// A path from `etl.yaml`: relative to the project folder, `~/` for the home folder.
pub fn project_path(root: &Path, configured: &str) -> PathBuf {
    if let (Some(rest), Some(home)) = (configured.strip_prefix("~/"), std::env::var_os("HOME")) {
        return PathBuf::from(home).join(rest);
    }
    root.join(configured)
}

/// The token store's file and, when known, the project folder it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePath {
    pub path: PathBuf,
    pub root: Option<PathBuf>,
}

impl std::ops::Deref for StorePath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for StorePath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl From<StorePath> for PathBuf {
    fn from(store: StorePath) -> PathBuf {
        store.path
    }
}

impl From<PathBuf> for StorePath {
    fn from(path: PathBuf) -> StorePath {
        StorePath { path, root: None }
    }
}

impl From<&Path> for StorePath {
    fn from(path: &Path) -> StorePath {
        path.to_path_buf().into()
    }
}

impl From<&PathBuf> for StorePath {
    fn from(path: &PathBuf) -> StorePath {
        path.clone().into()
    }
}

impl From<&str> for StorePath {
    fn from(path: &str) -> StorePath {
        PathBuf::from(path).into()
    }
}

impl From<String> for StorePath {
    fn from(path: String) -> StorePath {
        PathBuf::from(path).into()
    }
}

/// The file itself.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
    /// The project folder, when the store came from [`store_path`].
    root: Option<PathBuf>,
}

impl TokenStore {
    pub fn new(path: impl Into<StorePath>) -> TokenStore {
        let StorePath { path, root } = path.into();
        TokenStore { path, root }
    }

    /// The project folder relative paths of `etl.yaml` start from, when known.
    pub fn project_root(&self) -> Option<&Path> {
        self.root.as_deref()
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
        // Tokens others can read are as good as leaked: refuse them rather than use them.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&self.path)
                .map_err(|e| self.error(e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(self.error(format!(
                    "readable by other users (mode {:o}); run `chmod 600 {}` (and consider `etl auth logout` and signing in again, since others may have read the tokens)",
                    mode & 0o777,
                    self.path.display()
                )));
            }
        }
        // serde_json's message names a position, never the content, so no token leaks here.
        let stored: StoredTokens = serde_json::from_str(&text).map_err(|e| {
            self.error(format!(
                "not a token store ({e}); delete it and sign in again"
            ))
        })?;
        super::flows::register_secret(&stored.access_token);
        if let Some(refresh_token) = &stored.refresh_token {
            super::flows::register_secret(refresh_token);
        }
        Ok(Some(stored))
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
            *store_path(root, None, None),
            *Path::new("/project/.etl/salesforce-token.json")
        );
        assert_eq!(
            *store_path(root, Some("data/stage.duckdb"), None),
            *Path::new("/project/data/salesforce-token.json")
        );
        assert_eq!(
            *store_path(root, None, Some("secrets/sf.json")),
            *Path::new("/project/secrets/sf.json")
        );
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                store_path(root, None, Some("~/.config/etl/a.json")).path,
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
