//! The session as a user lives it, through the real `tether` binary against tether-sim:
//! browser sign-in with TOTP, API tokens in the real Secret Service, certificates that plain
//! OpenSSH tools use through the written config, step-up to MFA, and sign-out.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use tether_e2e::cli::{User, KEYRING_SERVICE};
use tether_e2e::webdriver::Chromium;
use tether_e2e::*;
use tether_sim::SimOptions;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const APP_HOST: &str = "jyu7waly36ncj-main-7rqtwti--app@ssh.eu-3.tether.test";
const MFA_APP_HOST: &str = "pzt3xbvc7ebkq-main-wq4mt2y--api@ssh.eu-5.tether.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_live_in_the_secret_service_and_nowhere_else() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, true)?;
    let mut logs = String::new();
    let out = user
        .run(&["auth:api-token-login"], Some(&format!("{ALICE_TOKEN}\n")))
        .await?;
    logs.push_str(&text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Signed in as alice"),
        "{}",
        text(&out.stderr)
    );

    // A second process finds the session in the keyring.
    let out = user
        .run(&["auth:info", "--property", "username"], None)
        .await?;
    logs.push_str(&text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "alice", "{}", text(&out.stderr));
    let access_token = user.stored_token("access_token")?;

    let out = user.run(&["ssh-cert:load"], None).await?;
    logs.push_str(&text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = user.run(&["--format", "json", "auth:info"], None).await?;
    logs.push_str(&text(&out.stderr));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(me["email"], "alice@example.com");

    // No token in any file Tether wrote, nor in anything it printed.
    for secret in [ALICE_TOKEN, access_token.as_str()] {
        assert_eq!(
            user.files_containing(secret),
            Vec::<std::path::PathBuf>::new(),
            "{secret} in a file"
        );
        assert!(!logs.contains(secret), "{secret} in the output: {logs}");
    }

    // Sign-out deletes the keyring entries and the session's files.
    user.ok(&["logout"], None).await?;
    let keyring = user.keyring()?;
    assert!(keyring.lookup(KEYRING_SERVICE, "session")?.is_none());
    assert!(keyring.lookup(KEYRING_SERVICE, "api-token")?.is_none());
    assert!(!user.session_dir().exists());
    let out = user.run(&["auth:info"], None).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("tether login"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sign_in_with_totp_through_the_cli() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let out = user
        .sign_in_with_chromium("alice", ALICE_PASSWORD, Some(ALICE_TOTP))
        .await?;
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Signed in as alice"), "{stderr}");
    assert!(
        stderr.contains("tether config:ssh --write"),
        "offers the ssh config: {stderr}"
    );
    assert_eq!(
        user.ok(&["auth:info", "-P", "username"], None)
            .await?
            .trim(),
        "alice"
    );
    let info: serde_json::Value = serde_json::from_str(
        &user
            .ok(&["--format", "json", "ssh-cert:info"], None)
            .await?,
    )?;
    assert_eq!(info["has_mfa"], true, "{info}");
    assert_eq!(info["key_id"], "3f6d9a52-6c1e-4b7b-9c0b-2f1e8d7a1c01");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_openssh_tools_work_through_the_written_config() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    user.ok(&["ssh-cert:load"], None).await?;
    user.ok(&["config:ssh", "--write"], None).await?;

    let mut ssh = user.ssh(APP_HOST);
    ssh.arg("echo $PLATFORM_APPLICATION_NAME; exit 7");
    let out = run_async(ssh).await?;
    assert_eq!(text(&out.stdout).trim(), "app", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(7));

    let file = user.home().join("notes.txt");
    std::fs::write(&file, "through the written config\n")?;
    let cfg = user.ssh_config();
    let mut scp = Command::new("scp");
    scp.arg("-F")
        .arg(&cfg)
        .args(["-o", "BatchMode=yes"])
        .arg(&file)
        .arg(format!("{APP_HOST}:notes.txt"));
    let out = run_async(scp).await?;
    assert!(out.status.success(), "scp: {}", text(&out.stderr));

    let mut rsync = Command::new("rsync");
    rsync
        .arg("-a")
        .arg("-e")
        .arg(format!("ssh -F {} -o BatchMode=yes", cfg.display()))
        .arg(&file)
        .arg(format!("{APP_HOST}:synced.txt"));
    let out = run_async(rsync).await?;
    assert!(out.status.success(), "rsync: {}", text(&out.stderr));

    let batch = user.home().join("batch");
    std::fs::write(&batch, "get synced.txt back.txt\n")?;
    let mut sftp = Command::new("sftp");
    sftp.arg("-F")
        .arg(&cfg)
        .args(["-o", "BatchMode=yes", "-b"])
        .arg(&batch)
        .arg(APP_HOST)
        .current_dir(user.home());
    let out = run_async(sftp).await?;
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(user.home().join("back.txt"))?,
        "through the written config\n"
    );

    // OpenSSH's own sshd, trusting the simulator's CA, accepts the session's key and certificate.
    let alice_principal = "platform-user:3f6d9a52-6c1e-4b7b-9c0b-2f1e8d7a1c01";
    let sshd = Sshd::start(user.home(), &sim.info.ca_public_key, &[alice_principal])?;
    let key = KeyPair {
        private: user.session_dir().join("id_ed25519"),
        public: user.session_dir().join("id_ed25519.pub"),
        cert: user.session_dir().join("id_ed25519-cert.pub"),
    };
    let mut cmd = ssh_command(
        &sshd.known_hosts,
        &key,
        sshd.port,
        &format!("{}@127.0.0.1", current_user()),
    );
    cmd.arg("echo sshd-accepts");
    let out = run_async(cmd).await?;
    assert_eq!(
        text(&out.stdout).trim(),
        "sshd-accepts",
        "{}",
        text(&out.stderr)
    );

    // The block can be taken out again, leaving the file as the user had it (empty).
    user.ok(&["config:ssh", "--remove"], None).await?;
    assert_eq!(std::fs::read_to_string(&cfg)?, "");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_to_mfa_on_the_mfa_organization() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let browser = Chromium::start().await?;
    // Carol is asked for her code only when MFA is demanded: this is a password-only session.
    let out = user
        .browser_login(&browser.driver, "carol", CAROL_PASSWORD, None, &[])
        .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    user.ok(&["config:ssh", "--write"], None).await?;

    // The API answers the typed step-up outcome.
    let session = user.core_session()?;
    let token = session.access_token().await?;
    let api =
        tether_core::api::Api::new(reqwest::Client::new(), url::Url::parse(&sim.info.api_url)?);
    let err = api
        .get::<serde_json::Value>(&token, &format!("projects/{MFA_PROJECT}/environments"))
        .await
        .expect_err("a password-only session must meet step-up");
    let tether_core::api::ApiError::StepUp(step_up) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(step_up.kind, tether_core::api::StepUpKind::Mfa);
    assert_eq!(step_up.login_request().amr, vec!["mfa"]);
    // Core says what to do in words; the shells name their own command or button.
    assert!(
        err.to_string().ends_with("Sign in again with MFA.") && !err.to_string().contains("tether"),
        "{err}"
    );

    // The gateway refuses the password-only certificate with the platform's message.
    let mut ssh = user.ssh(MFA_APP_HOST);
    ssh.arg("echo in");
    let out = run_async(ssh).await?;
    assert!(
        text(&out.stderr).contains("Parameters: {\"amr\":[\"mfa\"]}"),
        "{}",
        text(&out.stderr)
    );

    // After an MFA sign-in the certificate carries has-mfa and the gateway lets her in.
    let out = user
        .browser_login(
            &browser.driver,
            "carol",
            CAROL_PASSWORD,
            Some(CAROL_TOTP),
            &["--method", "mfa"],
        )
        .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("with MFA"),
        "{}",
        text(&out.stderr)
    );
    let mut ssh = user.ssh(MFA_APP_HOST);
    ssh.arg("echo in");
    let out = run_async(ssh).await?;
    assert_eq!(text(&out.stdout).trim(), "in", "{}", text(&out.stderr));
    browser.driver.quit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_missing_sessions_say_what_to_do() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let out = user
        .run(&["auth:api-token-login"], Some("not-a-real-token\n"))
        .await?;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("API token was refused"),
        "{}",
        text(&out.stderr)
    );
    let out = user.run(&["auth:api-token-login"], Some("\n")).await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no API token on standard input"),
        "{}",
        text(&out.stderr)
    );
    let out = user.run(&["ssh-cert:load"], None).await?;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("not signed in"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was left behind by the failures.
    assert!(!user.session_dir().join("tokens.json").exists());

    // The vendor's environment variable works without any stored session.
    let mut cmd = user.tether(&["auth:info", "-P", "username"])?;
    cmd.env("TETHER_SIM_TOKEN", ALICE_TOKEN);
    let out = run_async(cmd).await?;
    assert_eq!(text(&out.stdout).trim(), "alice", "{}", text(&out.stderr));
    let _ = Duration::ZERO;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_stored_session_can_still_be_signed_out_of() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let tokens = user.session_dir().join("tokens.json");
    let mut stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&tokens)?)?;
    stored["session"] = "{half a session".into();
    std::fs::write(&tokens, serde_json::to_vec(&stored)?)?;

    let out = user.run(&["ssh-cert:load"], None).await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unreadable") && text(&out.stderr).contains("tether logout"),
        "{}",
        text(&out.stderr)
    );
    let out = user.run(&["logout"], None).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unreadable"),
        "{}",
        text(&out.stderr)
    );
    // Everything went: the session, the API token that opened it, the session's files.
    assert!(!tokens.exists());
    assert!(!user.session_dir().exists());
    let out = user.run(&["auth:info"], None).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    Ok(())
}
