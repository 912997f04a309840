//! Where tokens live: the OS keyring (Secret Service on Linux, Keychain on macOS, Credential
//! Manager on Windows), or a 0600 file when the user opted in. Never silently a file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::private_files::{write_atomic, FileLock};
use crate::secret::Sensitive;

/// The environment variable that opts in to the file store (`TETHER_TOKEN_STORE=file`).
pub const STORE_ENV: &str = "TETHER_TOKEN_STORE";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no OS keyring is reachable ({0}). Start one (on Linux: a Secret Service such as \
         gnome-keyring-daemon, unlocked, on the session bus), or keep tokens in a file readable \
         only by you with {STORE_ENV}=file"
    )]
    Unavailable(String),
    #[error("the keyring refused: {0}")]
    Keyring(String),
    #[error("the token file {path} cannot be used: {message}")]
    File { path: PathBuf, message: String },
}

/// A named place for a profile's secrets.
#[derive(Debug, Clone)]
pub enum TokenStore {
    /// The OS keyring, under the service `tether:<profile>`.
    Keyring { service: String },
    /// A JSON file, mode 0600 (only with the user's consent).
    File { path: PathBuf },
}

impl TokenStore {
    pub fn keyring(profile_name: &str) -> TokenStore {
        TokenStore::Keyring {
            service: format!("tether:{profile_name}"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TokenStore::Keyring { .. } => "the OS keyring".to_string(),
            TokenStore::File { path } => format!("the file {}", path.display()),
        }
    }

    fn file_err(path: &std::path::Path, message: impl std::fmt::Display) -> StoreError {
        StoreError::File {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    fn read_file(path: &std::path::Path) -> Result<BTreeMap<String, String>, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Self::file_err(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Self::file_err(path, e)),
        }
    }

    fn update_file(
        path: &std::path::Path,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<(), StoreError> {
        if let Some(dir) = path.parent() {
            crate::private_files::create_private_dir(dir).map_err(|e| Self::file_err(path, e))?;
        }
        let lock_path = path.with_extension("lock");
        let _lock = FileLock::acquire(&lock_path).map_err(|e| Self::file_err(path, e))?;
        let mut map = Self::read_file(path)?;
        change(&mut map);
        let json = serde_json::to_vec_pretty(&map).map_err(|e| Self::file_err(path, e))?;
        write_atomic(path, &json, 0o600).map_err(|e| Self::file_err(path, e))
    }

    fn blocking_load(&self, key: &str) -> Result<Option<Sensitive<String>>, StoreError> {
        match self {
            TokenStore::Keyring { service } => {
                let entry = keyring::Entry::new(service, key).map_err(keyring_error)?;
                match entry.get_password() {
                    Ok(v) => Ok(Some(Sensitive::new(v))),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(keyring_error(e)),
                }
            }
            TokenStore::File { path } => Ok(Self::read_file(path)?.remove(key).map(Sensitive::new)),
        }
    }

    fn blocking_save(&self, key: &str, value: &Sensitive<String>) -> Result<(), StoreError> {
        match self {
            TokenStore::Keyring { service } => keyring::Entry::new(service, key)
                .and_then(|e| e.set_password(value.expose()))
                .map_err(keyring_error),
            TokenStore::File { path } => Self::update_file(path, |m| {
                m.insert(key.to_string(), value.expose().clone());
            }),
        }
    }

    fn blocking_delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            TokenStore::Keyring { service } => {
                match keyring::Entry::new(service, key).and_then(|e| e.delete_credential()) {
                    Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                    Err(e) => Err(keyring_error(e)),
                }
            }
            TokenStore::File { path } => {
                if !path.exists() {
                    return Ok(());
                }
                Self::update_file(path, |m| {
                    m.remove(key);
                })
            }
        }
    }

    /// Reads a secret; `None` when there is none.
    pub async fn load(&self, key: &str) -> Result<Option<Sensitive<String>>, StoreError> {
        let (store, key) = (self.clone(), key.to_string());
        run_blocking(move || store.blocking_load(&key)).await
    }

    pub async fn save(&self, key: &str, value: Sensitive<String>) -> Result<(), StoreError> {
        let (store, key) = (self.clone(), key.to_string());
        run_blocking(move || store.blocking_save(&key, &value)).await
    }

    /// Deletes a secret; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let (store, key) = (self.clone(), key.to_string());
        run_blocking(move || store.blocking_delete(&key)).await
    }
}

/// The keyring crate talks to D-Bus synchronously: keep it off the async threads.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Keyring(e.to_string()))?
}

fn keyring_error(e: keyring::Error) -> StoreError {
    match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            StoreError::Unavailable(inner.to_string())
        }
        other => StoreError::Keyring(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_store_keeps_secrets_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = TokenStore::File { path: path.clone() };
        assert!(store.load("session").await.unwrap().is_none());
        store
            .save("session", Sensitive::new("s3cret".into()))
            .await
            .unwrap();
        store
            .save("api-token", Sensitive::new("t0ken".into()))
            .await
            .unwrap();
        assert_eq!(
            store.load("session").await.unwrap().unwrap().expose(),
            "s3cret"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        store.delete("session").await.unwrap();
        store.delete("session").await.unwrap();
        assert!(store.load("session").await.unwrap().is_none());
        assert_eq!(
            store.load("api-token").await.unwrap().unwrap().expose(),
            "t0ken"
        );
    }

    #[tokio::test]
    async fn a_corrupt_token_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = TokenStore::File { path: path.clone() }
            .load("session")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("tokens.json"), "{err}");
    }
}
