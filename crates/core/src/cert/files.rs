//! The session's key and certificate on disk: 0600, written atomically under a lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};

use super::CertError;
use crate::private_files::write_atomic;

/// A key pair is reused for up to a day, then replaced.
const KEY_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The session's key and certificate files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub dir: PathBuf,
}

impl CertFiles {
    pub fn new(dir: PathBuf) -> CertFiles {
        CertFiles { dir }
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn public_key(&self) -> PathBuf {
        self.dir.join("id_ed25519.pub")
    }
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("id_ed25519-cert.pub")
    }
    pub(super) fn lock(&self) -> PathBuf {
        self.dir.join("cert.lock")
    }

    pub(super) fn read_key(&self) -> Result<Option<(PrivateKey, bool)>, CertError> {
        let path = self.key();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CertError::BadKey {
                    path,
                    message: e.to_string(),
                })
            }
        };
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| CertError::BadKey {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let young = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < KEY_MAX_AGE);
        Ok(Some((key, young)))
    }

    /// Deletes the key and the certificate (best effort: what cannot be deleted is unusable
    /// without the session anyway).
    pub fn forget(&self) {
        for path in [self.key(), self.public_key(), self.certificate()] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// When the stored certificate was received: its file's modification time.
    pub fn received_at(&self) -> Option<u64> {
        std::fs::metadata(self.certificate())
            .and_then(|m| m.modified())
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }

    /// The stored certificate, if there is one that parses.
    pub fn read_certificate(&self) -> Option<Certificate> {
        let text = std::fs::read_to_string(self.certificate()).ok()?;
        Certificate::from_openssh(text.trim()).ok()
    }

    /// The session's key and certificate, for connecting in-process (tunnels, commands).
    pub fn read_pair(&self) -> Result<Option<(PrivateKey, Certificate)>, CertError> {
        let Some((key, _)) = self.read_key()? else {
            return Ok(None);
        };
        Ok(self.read_certificate().map(|cert| (key, cert)))
    }

    pub(super) fn write(&self, key: &PrivateKey, cert: &Certificate) -> Result<(), CertError> {
        let protocol = |e: ssh_key::Error| CertError::Protocol(e.to_string());
        let key_text = key.to_openssh(LineEnding::LF).map_err(protocol)?;
        let public = key.public_key().to_openssh().map_err(protocol)?;
        let cert_text = cert.to_openssh().map_err(protocol)?;
        write_atomic(&self.key(), key_text.as_bytes(), 0o600)?;
        write_atomic(&self.public_key(), format!("{public}\n").as_bytes(), 0o600)?;
        write_atomic(
            &self.certificate(),
            format!("{cert_text}\n").as_bytes(),
            0o600,
        )?;
        Ok(())
    }
}

pub(super) fn new_key() -> Result<PrivateKey, CertError> {
    let mut seed = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut seed);
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment("tether");
    Ok(key)
}

/// What `ssh-cert:info` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub path: PathBuf,
    pub key_id: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub has_mfa: bool,
    pub extensions: Vec<String>,
    pub fingerprint: String,
}

impl CertInfo {
    pub fn of(cert: &Certificate, path: &Path) -> CertInfo {
        CertInfo {
            path: path.to_path_buf(),
            key_id: cert.key_id().to_string(),
            principals: cert.valid_principals().to_vec(),
            valid_after: cert.valid_after(),
            valid_before: cert.valid_before(),
            has_mfa: cert.extensions().contains_key("has-mfa@platform.sh"),
            extensions: cert.extensions().keys().cloned().collect(),
            fingerprint: PublicKey::from(cert.public_key().clone())
                .fingerprint(HashAlg::Sha256)
                .to_string(),
        }
    }
}
