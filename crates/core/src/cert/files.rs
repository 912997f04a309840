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

    /// The session's key and certificate, for connecting in-process (tunnels, commands), as
    /// one pair: the two files are replaced one after the other when the key changes, so a
    /// reader between the two writes would see a new key with the old certificate (which the
    /// gateway refuses, and which would look like a refused certificate). Such a read is made
    /// again; the writer is a few milliseconds from done.
    pub fn read_pair(&self) -> Result<Option<(PrivateKey, Certificate)>, CertError> {
        let mut tries = 0;
        loop {
            let Some((key, _)) = self.read_key()? else {
                return Ok(None);
            };
            let Some(cert) = self.read_certificate() else {
                return Ok(None);
            };
            if is_pair(&key, &cert) {
                return Ok(Some((key, cert)));
            }
            tries += 1;
            if tries >= PAIR_READS {
                return Err(CertError::BadKey {
                    path: self.certificate(),
                    message: "the certificate is not for the session's key: load a new \
                              certificate"
                        .into(),
                });
            }
            std::thread::sleep(PAIR_PAUSE);
        }
    }

    pub(super) fn write(&self, key: &PrivateKey, cert: &Certificate) -> Result<(), CertError> {
        let protocol = |e: ssh_key::Error| CertError::Protocol(e.to_string());
        let key_text = key.to_openssh(LineEnding::LF).map_err(protocol)?;
        let public = key.public_key().to_openssh().map_err(protocol)?;
        let cert_text = cert.to_openssh().map_err(protocol)?;
        // Readers of the pair check that it is one (`read_pair`); writers hold the lock.
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

/// How many times a mismatched key and certificate are read again, and how long apart.
const PAIR_READS: u32 = 20;
const PAIR_PAUSE: Duration = Duration::from_millis(5);

/// Whether `cert` certifies `key`.
fn is_pair(key: &PrivateKey, cert: &Certificate) -> bool {
    cert.public_key() == key.public_key().key_data()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn certify(key: &PrivateKey) -> Certificate {
        let ca = PrivateKey::from(Ed25519Keypair::from_seed(&[9; 32]));
        let mut builder = ssh_key::certificate::Builder::new(
            vec![0; 16],
            key.public_key().key_data().clone(),
            0,
            u64::MAX,
        )
        .expect("builder");
        builder.valid_principal("tether").expect("principal");
        builder.sign(&ca).expect("sign")
    }

    #[test]
    fn a_reader_never_sees_a_new_key_with_the_old_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles::new(dir.path().to_path_buf());
        let (old, new) = (key(1), key(2));
        files.write(&old, &certify(&old)).expect("write");
        // The writer is between the key and the certificate: the pair is not one.
        let text = new.to_openssh(LineEnding::LF).expect("openssh");
        write_atomic(&files.key(), text.as_bytes(), 0o600).expect("key");
        let err = files.read_pair().expect_err("a mismatched pair is refused");
        assert!(
            err.to_string().contains("not for the session's key"),
            "{err}"
        );
        // A reader that comes meanwhile waits for the certificate and gets the new pair.
        let reader = {
            let files = files.clone();
            std::thread::spawn(move || files.read_pair())
        };
        std::thread::sleep(Duration::from_millis(20));
        files.write(&new, &certify(&new)).expect("write");
        let (k, c) = reader
            .join()
            .expect("reader")
            .expect("read")
            .expect("a pair");
        assert_eq!(k.public_key(), new.public_key());
        assert!(is_pair(&k, &c));
    }
}
