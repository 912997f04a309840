//! Where tokens live: the OS keyring (Secret Service on Linux, Keychain on macOS, Credential
//! Manager on Windows), or a 0600 file when the user opted in. Never silently a file.
//!
//! The opt-in is either `TETHER_TOKEN_STORE=file` (for one process) or the user's choice,
//! recorded in the data directory (the app offers it when no keyring is reachable). The
//! recorded choice is read at each use, so that every Tether process of the user (the app, its
//! agent, a command, the ssh hook) keeps and finds the session in the same place, and follows a
//! change at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::private_files::{write_atomic, FileLock};
use crate::secret::Sensitive;

/// The environment variable that opts in to the file store (`TETHER_TOKEN_STORE=file`).
pub const STORE_ENV: &str = "TETHER_TOKEN_STORE";
/// The file in the data directory that records the user's choice of the file store.
const CHOICE_FILE: &str = "token-store";
/// What the choice file says when the user chose the file store.
const CHOSE_FILE: &str = "file";
/// The entry a check of the keyring writes and deletes again (beside the session's).
const CHECK_KEY: &str = "check";
/// How long a check waits for the keyring: a locked one may show its unlock prompt, which a
/// person answers; one that nobody answers is as good as missing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

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
    #[error("the token store is set for this process ({STORE_ENV}), so it cannot be chosen here")]
    Fixed,
}

/// A named place for a profile's secrets.
#[derive(Debug, Clone)]
pub enum TokenStore {
    /// The OS keyring, under the service `tether:<profile>`.
    Keyring { service: String },
    /// A JSON file, mode 0600 (only with the user's consent).
    File { path: PathBuf },
    /// The keyring, or `file` once the user chose it: the choice is the file `choice`, read at
    /// each use (see the module's doc).
    Chosen {
        service: String,
        file: PathBuf,
        choice: PathBuf,
    },
}

impl TokenStore {
    pub fn keyring(profile_name: &str) -> TokenStore {
        TokenStore::Keyring {
            service: format!("tether:{profile_name}"),
        }
    }

    /// The keyring, unless the user chose to keep sign-ins in a file (recorded in `data_dir`),
    /// and then `file`.
    pub fn keyring_unless_chosen(profile_name: &str, file: PathBuf, data_dir: &Path) -> TokenStore {
        TokenStore::Chosen {
            service: format!("tether:{profile_name}"),
            file,
            choice: data_dir.join(CHOICE_FILE),
        }
    }

    /// Where secrets go now: the keyring or a file, the user's choice read.
    fn place(&self) -> Place {
        match self {
            TokenStore::Keyring { service } => Place::Keyring(service.clone()),
            TokenStore::File { path } => Place::File(path.clone()),
            TokenStore::Chosen {
                service,
                file,
                choice,
            } => {
                if chose_file(choice) {
                    Place::File(file.clone())
                } else {
                    Place::Keyring(service.clone())
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        match self.place() {
            Place::Keyring(_) => "the OS keyring".to_string(),
            Place::File(path) => format!("the file {}", path.display()),
        }
    }

    /// Whether secrets go to a file now.
    pub fn in_file(&self) -> bool {
        matches!(self.place(), Place::File(_))
    }

    /// Whether the user may choose between the keyring and the file (not when the environment
    /// fixed the store).
    pub fn choosable(&self) -> bool {
        matches!(self, TokenStore::Chosen { .. })
    }

    /// Reads a secret; `None` when there is none.
    pub async fn load(&self, key: &str) -> Result<Option<Sensitive<String>>, StoreError> {
        let (place, key) = (self.place(), key.to_string());
        run_blocking(move || place.load(&key)).await
    }

    pub async fn save(&self, key: &str, value: Sensitive<String>) -> Result<(), StoreError> {
        let (place, key) = (self.place(), key.to_string());
        run_blocking(move || place.save(&key, &value)).await
    }

    /// Deletes a secret; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let (place, key) = (self.place(), key.to_string());
        run_blocking(move || place.delete(&key)).await
    }

    /// Whether secrets can be kept now, found before a sign-in rather than after it: the store
    /// is asked to keep (and then forget) an entry of its own, which is what a locked keyring
    /// refuses (it may first show its unlock prompt), and a file that cannot be written too.
    pub async fn check(&self) -> Result<(), StoreError> {
        let place = self.place();
        let check = run_blocking(move || {
            place.save(CHECK_KEY, &Sensitive::new(CHECK_KEY.to_string()))?;
            place.delete(CHECK_KEY)
        });
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(checked) => checked,
            Err(_) => Err(StoreError::Unavailable(format!(
                "the keyring did not answer within {} s",
                CHECK_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Records the user's choice, a file (`true`) or the keyring, and moves what is stored
    /// under `keys` there. What cannot be read where it was (a keyring that is not there) is
    /// not moved; a secret is deleted where it was only once it is kept in its new place.
    pub async fn choose(&self, file: bool, keys: &[&str]) -> Result<(), StoreError> {
        let TokenStore::Chosen {
            service,
            file: path,
            choice,
        } = self
        else {
            return Err(StoreError::Fixed);
        };
        let from = self.place();
        let to = if file {
            Place::File(path.clone())
        } else {
            Place::Keyring(service.clone())
        };
        let (choice, keys): (PathBuf, Vec<String>) =
            (choice.clone(), keys.iter().map(|k| k.to_string()).collect());
        run_blocking(move || {
            let moving: Vec<(String, Sensitive<String>)> = if from == to {
                Vec::new()
            } else {
                keys.iter()
                    .filter_map(|k| Some((k.clone(), from.load(k).ok()??)))
                    .collect()
            };
            for (k, v) in &moving {
                to.save(k, v)?;
            }
            record_choice(&choice, file)?;
            for (k, _) in &moving {
                if let Err(e) = from.delete(k) {
                    tracing::warn!(error = %e, "cannot delete a moved secret where it was");
                }
            }
            Ok(())
        })
        .await
    }
}

/// Where a secret is read and written: the two kinds of store, each a place.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// The keyring's service (`tether:<profile>`).
    Keyring(String),
    File(PathBuf),
}

impl Place {
    fn load(&self, key: &str) -> Result<Option<Sensitive<String>>, StoreError> {
        match self {
            Place::Keyring(service) => {
                let entry = keyring::Entry::new(service, key).map_err(keyring_error)?;
                match entry.get_password() {
                    Ok(v) => Ok(Some(Sensitive::new(v))),
                    Err(keyring::Error::NoEntry) => Ok(None),
                    Err(e) => Err(keyring_error(e)),
                }
            }
            Place::File(path) => Ok(read_file(path)?.remove(key).map(Sensitive::new)),
        }
    }

    fn save(&self, key: &str, value: &Sensitive<String>) -> Result<(), StoreError> {
        match self {
            Place::Keyring(service) => keyring::Entry::new(service, key)
                .and_then(|e| e.set_password(value.expose()))
                .map_err(keyring_error),
            Place::File(path) => update_file(path, |m| {
                m.insert(key.to_string(), value.expose().clone());
            }),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Place::Keyring(service) => {
                match keyring::Entry::new(service, key).and_then(|e| e.delete_credential()) {
                    Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                    Err(e) => Err(keyring_error(e)),
                }
            }
            Place::File(path) => {
                if !path.exists() {
                    return Ok(());
                }
                update_file(path, |m| {
                    m.remove(key);
                })
            }
        }
    }
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> StoreError {
    StoreError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| file_err(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(file_err(path, e)),
    }
}

fn update_file(
    path: &Path,
    change: impl FnOnce(&mut BTreeMap<String, String>),
) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        crate::private_files::create_private_dir(dir).map_err(|e| file_err(path, e))?;
    }
    let lock_path = path.with_extension("lock");
    let _lock = FileLock::acquire(&lock_path).map_err(|e| file_err(path, e))?;
    let mut map = read_file(path)?;
    change(&mut map);
    let json = serde_json::to_vec_pretty(&map).map_err(|e| file_err(path, e))?;
    write_atomic(path, &json, 0o600).map_err(|e| file_err(path, e))
}

/// Whether the user chose the file store (the choice file says so).
fn chose_file(choice: &Path) -> bool {
    std::fs::read_to_string(choice).is_ok_and(|t| t.trim() == CHOSE_FILE)
}

/// Writes the user's choice: the file store (`true`), or the keyring (no choice file).
fn record_choice(choice: &Path, file: bool) -> Result<(), StoreError> {
    if file {
        if let Some(dir) = choice.parent() {
            crate::private_files::create_private_dir(dir).map_err(|e| file_err(choice, e))?;
        }
        write_atomic(choice, format!("{CHOSE_FILE}\n").as_bytes(), 0o600)
            .map_err(|e| file_err(choice, e))
    } else {
        match std::fs::remove_file(choice) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_err(choice, e)),
        }
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
    async fn the_users_choice_of_the_file_is_read_at_each_use() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sessions/p/tokens.json");
        let store = TokenStore::keyring_unless_chosen("p", file.clone(), dir.path());
        assert!(store.choosable() && !store.in_file());
        assert_eq!(store.describe(), "the OS keyring");
        // Another process records the choice: this store follows it at once.
        record_choice(&dir.path().join(CHOICE_FILE), true).unwrap();
        assert!(store.in_file());
        store
            .save("session", Sensitive::new("s3cret".into()))
            .await
            .unwrap();
        assert!(read_file(&file).unwrap().contains_key("session"));
        assert!(store.check().await.is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(&dir.path().join(CHOICE_FILE)), 0o600);
        }
        // Anything but the word is no choice.
        std::fs::write(dir.path().join(CHOICE_FILE), "files\n").unwrap();
        assert!(!store.in_file());
        record_choice(&dir.path().join(CHOICE_FILE), false).unwrap();
        record_choice(&dir.path().join(CHOICE_FILE), false).unwrap();
        assert!(!store.in_file());
        // A store the environment fixed cannot be chosen.
        let fixed = TokenStore::File { path: file };
        assert!(!fixed.choosable());
        assert!(matches!(
            fixed.choose(false, &["session"]).await,
            Err(StoreError::Fixed)
        ));
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
