//! The session's SSH certificate: an ed25519 key generated in-process, a certificate from the
//! platform's certifier (`POST {auth}/ssh`), checked with the official client's four rules,
//! written 0600 atomically under a lock, and kept fresh by [`CertKeeper`] while the session is
//! active. After long inactivity the keeper stops and ends the session, so the next command
//! asks to sign in again, as the platform's documentation promises.

use std::path::PathBuf;
use std::time::Duration;

use ssh_key::{Certificate, HashAlg, PublicKey};

use crate::auth::{AuthError, Claims};
use crate::private_files::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the certificate the platform returned is not usable: {0}; load a new certificate, and report it if it persists")]
    Invalid(#[from] CertProblem),
    #[error("the certifier refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the certifier answered something that is not a certificate: {0}")]
    Protocol(String),
    #[error("cannot reach the certifier at {url}: {message}")]
    Network { url: String, message: String },
    #[error("{}", .0.message(false))]
    StepUp(crate::api::StepUp),
    #[error(transparent)]
    Files(#[from] WriteError),
    #[error(
        "the stored key {path} is unreadable ({message}); load a new certificate to replace it"
    )]
    BadKey { path: PathBuf, message: String },
    #[error("the session was signed out after {} without activity: sign in again", human(*.0))]
    Inactive(Duration),
}

/// "8 hours", "5 minutes", "30 seconds".
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        7200.. => format!("{} hours", s / 3600),
        120.. => format!("{} minutes", s / 60),
        _ => format!("{s} seconds"),
    }
}

/// Why a certificate is not usable (the official client's rules, and sanity).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("it is for another key")]
    WrongKey,
    #[error("its signature does not verify")]
    BadSignature,
    #[error("it is signed by {0}, which is not the platform's certificate authority")]
    UnknownCa(String),
    #[error("it expires too soon (valid until {valid_before}, now {now})")]
    ExpiresSoon { valid_before: u64, now: u64 },
    #[error("it is not valid yet")]
    NotYetValid,
    #[error("its key id {found:?} is not the user id {expected:?}")]
    WrongUser { found: String, expected: String },
    #[error("its access-id@platform.sh does not match the session")]
    WrongAccessId,
    #[error("its token-id@platform.sh does not match the session")]
    WrongTokenId,
    #[error("its token-claims@platform.sh do not match the session")]
    WrongClaims,
    #[error("it is not an OpenSSH certificate: {0}")]
    Malformed(String),
}

/// What is needed to judge a certificate.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub key: &'a PublicKey,
    pub claims: &'a Claims,
    pub now: u64,
    /// Seconds of validity an hour-long certificate must still have (120 in the official
    /// client); shorter certificates need proportionally less (see [`usable_margin`]).
    pub margin: u64,
    /// When the certificate was received (Unix seconds), when known: a certificate valid
    /// from before it was issued (platforms backdate for clocks that lag) is judged on the
    /// validity it had when it arrived.
    pub received: Option<u64>,
    /// The platform's CA keys when the profile knows them; otherwise any signer is accepted
    /// as long as the signature verifies.
    pub ca_keys: &'a [PublicKey],
}

/// Applies the official client's rules: expires more than `margin` from now; key id = user id;
/// `access-id@platform.sh` = the token's `access_id`; and unless `amr` is just `pwd`,
/// `token-id@platform.sh` = `jti` and `token-claims@platform.sh` matches the token.
pub fn check(cert: &Certificate, e: &Expectations<'_>) -> Result<(), CertProblem> {
    if cert.public_key() != e.key.key_data() {
        return Err(CertProblem::WrongKey);
    }
    let signer = cert.signature_key();
    if !e.ca_keys.is_empty() && !e.ca_keys.iter().any(|k| k.key_data() == signer) {
        return Err(CertProblem::UnknownCa(
            signer.fingerprint(HashAlg::Sha256).to_string(),
        ));
    }
    // Signature and window, trusting the signer checked above.
    let fingerprint = signer.fingerprint(HashAlg::Sha256);
    if cert.valid_after() > e.now {
        return Err(CertProblem::NotYetValid);
    }
    // Saturating: the times are the platform's, and may be anything up to `u64::MAX`.
    if cert.valid_before()
        <= e.now
            .saturating_add(usable_margin(e.margin, cert, e.received))
    {
        return Err(CertProblem::ExpiresSoon {
            valid_before: cert.valid_before(),
            now: e.now,
        });
    }
    cert.validate_at(e.now, [&fingerprint])
        .map_err(|_| CertProblem::BadSignature)?;
    if cert.key_id() != e.claims.sub {
        return Err(CertProblem::WrongUser {
            found: cert.key_id().to_string(),
            expected: e.claims.sub.clone(),
        });
    }
    let ext = cert.extensions();
    if ext.get("access-id@platform.sh").map(String::as_str) != e.claims.access_id.as_deref() {
        return Err(CertProblem::WrongAccessId);
    }
    if e.claims.amr != ["pwd"] {
        if ext.get("token-id@platform.sh").map(String::as_str) != e.claims.jti.as_deref() {
            return Err(CertProblem::WrongTokenId);
        }
        let found: Option<serde_json::Value> = ext
            .get("token-claims@platform.sh")
            .and_then(|v| serde_json::from_str(v).ok());
        if !claims_match(found.as_ref(), &e.claims.certificate_claims()) {
            return Err(CertProblem::WrongClaims);
        }
    }
    Ok(())
}

/// The validity a certificate must keep to be used: the official client's fixed margin for
/// hour-long certificates, a tenth of the lifetime for short ones. A fixed 120 s would make a
/// certificate of two minutes or less unusable the moment it is issued.
pub fn usable_margin(cap: u64, cert: &Certificate, received: Option<u64>) -> u64 {
    cap.min(lifetime(cert, received).div_ceil(10))
}

/// When a certificate's useful life began: when it was received, or its `valid_after` if that
/// is later (or the receipt is unknown).
pub fn useful_from(cert: &Certificate, received: Option<u64>) -> u64 {
    received.map_or(cert.valid_after(), |r| r.max(cert.valid_after()))
}

/// The certificate's useful lifetime in seconds.
pub fn lifetime(cert: &Certificate, received: Option<u64>) -> u64 {
    cert.valid_before()
        .saturating_sub(useful_from(cert, received))
}

/// Compares claim objects, treating a missing key like `null`.
fn claims_match(found: Option<&serde_json::Value>, expected: &serde_json::Value) -> bool {
    let (Some(found), Some(expected)) = (found.and_then(|f| f.as_object()), expected.as_object())
    else {
        return false;
    };
    let keys: std::collections::BTreeSet<&String> = found.keys().chain(expected.keys()).collect();
    keys.into_iter().all(|k| {
        let null = serde_json::Value::Null;
        found.get(k).unwrap_or(&null) == expected.get(k).unwrap_or(&null)
    })
}

mod files;
mod keeper;

pub use files::{CertFiles, CertInfo};
pub use keeper::{CertKeeper, Ensured, Event, RenewalPolicy, Stopped};

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::private::Ed25519Keypair;
    use ssh_key::PrivateKey;

    const T0: u64 = 1_800_000_000;

    pub(crate) fn cert(valid_after: u64, valid_before: u64) -> Certificate {
        let ca = PrivateKey::from(Ed25519Keypair::from_seed(&[1; 32]));
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[2; 32]));
        let mut b = ssh_key::certificate::Builder::new(
            vec![0; 16],
            key.public_key().key_data().clone(),
            valid_after,
            valid_before,
        )
        .unwrap();
        b.cert_type(ssh_key::certificate::CertType::User)
            .unwrap()
            .key_id("u")
            .unwrap()
            .valid_principal("p")
            .unwrap();
        b.sign(&ca).unwrap()
    }

    #[test]
    fn a_certificate_valid_until_u64_max_is_usable_and_its_times_do_not_overflow() {
        let c = cert(T0, u64::MAX);
        assert_eq!(lifetime(&c, Some(T0 + 5)), u64::MAX - T0 - 5);
        assert_eq!(usable_margin(120, &c, None), 120);
        assert_eq!(useful_from(&c, Some(T0 + 5)), T0 + 5);
        let forever = cert(0, u64::MAX);
        assert_eq!(lifetime(&forever, None), u64::MAX);
        assert_eq!(
            usable_margin(u64::MAX, &forever, None),
            u64::MAX.div_ceil(10)
        );
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[2; 32]));
        let claims = Claims {
            sub: "u".into(),
            access_id: None,
            jti: None,
            amr: vec!["pwd".into()],
            auth_time: None,
            scp: None,
            grant: None,
            act: None,
            exp: None,
        };
        let at = |now, margin| Expectations {
            key: key.public_key(),
            claims: &claims,
            now,
            margin,
            received: None,
            ca_keys: &[],
        };
        assert_eq!(check(&c, &at(T0 + 10, 120)), Ok(()));
        // A clock or margin at the end of time does not wrap around into "valid".
        assert!(matches!(
            check(&forever, &at(u64::MAX - 1, u64::MAX)),
            Err(CertProblem::ExpiresSoon { .. })
        ));
    }

    #[test]
    fn the_official_rules_decide_usability() {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[2; 32]));
        let claims = Claims {
            sub: "u".into(),
            access_id: None,
            jti: None,
            amr: vec!["pwd".into()],
            auth_time: None,
            scp: None,
            grant: None,
            act: None,
            exp: None,
        };
        let e = |now| Expectations {
            key: key.public_key(),
            claims: &claims,
            now,
            margin: 120,
            received: None,
            ca_keys: &[],
        };
        let c = cert(T0, T0 + 3600);
        assert_eq!(check(&c, &e(T0 + 10)), Ok(()));
        assert!(matches!(
            check(&c, &e(T0 + 3481)),
            Err(CertProblem::ExpiresSoon { .. })
        ));
        assert_eq!(check(&c, &e(T0 - 10)), Err(CertProblem::NotYetValid));
        // A four-second certificate is usable for its first three seconds.
        let short = cert(T0, T0 + 4);
        assert_eq!(check(&short, &e(T0 + 2)), Ok(()));
        assert!(matches!(
            check(&short, &e(T0 + 3)),
            Err(CertProblem::ExpiresSoon { .. })
        ));
        let mut other = claims.clone();
        other.sub = "someone".into();
        let e2 = Expectations {
            key: key.public_key(),
            claims: &other,
            now: T0 + 10,
            margin: 120,
            received: None,
            ca_keys: &[],
        };
        assert!(matches!(check(&c, &e2), Err(CertProblem::WrongUser { .. })));
        // amr beyond pwd: the token id and claims must match too.
        let mut mfa = claims.clone();
        mfa.amr = vec!["pwd".into(), "mfa".into()];
        mfa.jti = Some("j".into());
        let e3 = Expectations {
            key: key.public_key(),
            claims: &mfa,
            now: T0 + 10,
            margin: 120,
            received: None,
            ca_keys: &[],
        };
        assert_eq!(check(&c, &e3), Err(CertProblem::WrongTokenId));
    }
}
