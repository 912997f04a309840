//! The session's SSH config must not lock users out of their own keys, the platform's other way
//! in: against OpenSSH's real `sshd`, which trusts both the session's certificate authority and
//! a key the user registered, plain `ssh -F <session config>` gets in with no certificate, with
//! an expired one, and, when the certificate is valid, offers it before any other key.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Result};
use tether_core::cert::CertFiles;
use tether_core::openssh::{self, RefreshHook, SshFiles};
use tether_core::profile::SshEndpoint;
use tether_core::{Paths, Profile};
use tether_e2e::*;

/// `sshd` for the user running the tests, accepting certificates from `ca` (any principal in
/// `principals`) and the keys in `authorized_keys`.
fn sshd(dir: &Path, ca: &KeyPair, authorized_keys: &Path) -> Result<(ChildGuard, u16, String)> {
    let host_key = dir.join("host_ed25519");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key),
    )?;
    let principals = dir.join("principals");
    std::fs::write(&principals, "tether-user\n")?;
    if is_root() {
        std::fs::create_dir_all("/run/sshd")?;
    }
    let config = dir.join("sshd_config");
    let (guard, port) = spawn_on_free_port("sshd", Duration::from_secs(10), |port| {
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile none\n\
                 TrustedUserCAKeys {ca}\nAuthorizedPrincipalsFile {pf}\nAuthorizedKeysFile {ak}\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n",
                hk = host_key.display(),
                ca = ca.public.display(),
                pf = principals.display(),
                ak = authorized_keys.display(),
            ),
        )?;
        let mut cmd = Command::new("/usr/sbin/sshd");
        cmd.args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(cmd)
    })?;
    let host_pub = std::fs::read_to_string(host_key.with_extension("pub"))?;
    Ok((guard, port, host_pub.trim().to_string()))
}

/// Plain `ssh` with only the session's config file, no agent, no prompt; returns its exit
/// status and its `-v` log.
fn plain_ssh(config: &Path, destination: &str) -> Result<(i32, String)> {
    let out = run(Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-v", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .arg(destination)
        .arg("echo in")
        .env_remove("SSH_AUTH_SOCK"))?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if code == 0 && stdout.trim() != "in" {
        bail!("ssh succeeded but printed {stdout:?}");
    }
    Ok((code, log))
}

/// The keys ssh offered, in order (`Offering public key: <path> …`).
fn offered(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once("Offering public key: "))
        .filter_map(|(_, rest)| rest.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn a_user_without_a_valid_certificate_still_gets_in_with_their_own_key() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("tether-own-keys-")
        .tempdir()?;
    let home = dir.path().join("home");
    let paths = Paths::under_home(&home, None);
    std::fs::create_dir_all(&paths.ssh_dir)?;
    // The user's own key, registered with the platform (here: authorized on the server).
    let own = ssh_keygen(&paths.ssh_dir, "id_ed25519")?;
    let authorized_keys = dir.path().join("authorized_keys");
    std::fs::copy(&own.public, &authorized_keys)?;
    let ca = ssh_keygen(dir.path(), "ca")?;
    let (_sshd, port, host_key) = sshd(dir.path(), &ca, &authorized_keys)?;

    let profile = Profile {
        name: "own-keys".into(),
        title: "Own keys test".into(),
        api_url: url::Url::parse("http://127.0.0.1:9")?,
        auth_url: url::Url::parse("http://127.0.0.1:9")?,
        client_id: "tether".into(),
        token_env_var: "OWN_KEYS_TOKEN".into(),
        ssh_host_patterns: vec!["*.ownkeys.test".into()],
        gateway_host_keys: Vec::new(),
        ssh_ca_keys: Vec::new(),
        ssh: Some(SshEndpoint {
            hostname: "127.0.0.1".into(),
            port,
            host_keys: vec![host_key],
        }),
    };
    let cert = CertFiles::new(paths.session_dir(&profile));
    let files = SshFiles::new(&paths, &profile);
    // The refresh hook fails, as it would for a user with no Tether session.
    let hook = RefreshHook {
        program: "/bin/false".into(),
        profile_arg: "own-keys".into(),
    };
    openssh::write_session_files(&profile, &cert, &files, Some(&hook))?;
    let destination = format!("{}@app.ownkeys.test", current_user());

    // No session at all: no certificate, no session key.
    let (code, log) = plain_ssh(&files.config, &destination)?;
    assert_eq!(
        code, 0,
        "no certificate: locked out of the user's own key:\n{log}"
    );
    assert!(
        log.contains(&format!("Server accepts key: {}", own.private.display())),
        "{log}"
    );

    // A session whose certificate has expired.
    std::fs::create_dir_all(paths.session_dir(&profile))?;
    let session_key = ssh_keygen(&paths.session_dir(&profile), "id_ed25519")?;
    assert_eq!(session_key.cert, cert.certificate());
    sign_with_ssh_keygen(
        &ca.private,
        &session_key,
        "u-1",
        "tether-user",
        "20200101:20200102",
    )?;
    let (code, log) = plain_ssh(&files.config, &destination)?;
    assert_eq!(code, 0, "expired certificate: locked out:\n{log}");

    // A valid certificate is offered before the user's key, and is what gets in.
    sign_with_ssh_keygen(&ca.private, &session_key, "u-1", "tether-user", "-5m:+1h")?;
    let (code, log) = plain_ssh(&files.config, &destination)?;
    assert_eq!(code, 0, "valid certificate:\n{log}");
    let order = offered(&log);
    assert_eq!(
        order.first().map(String::as_str),
        Some(cert.certificate().to_string_lossy().as_ref()),
        "the certificate must be offered first: {order:?}\n{log}"
    );
    assert!(
        log.contains(&format!(
            "Server accepts key: {}",
            cert.certificate().display()
        )),
        "{log}"
    );
    Ok(())
}
