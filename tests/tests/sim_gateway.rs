//! The simulator's SSH side against real OpenSSH: the system `ssh`, `scp`, `sftp`, `ssh -L` to
//! real PostgreSQL and Redis, and OpenSSH's own `sshd` trusting the simulator's CA. Each refusal
//! the gateway owes has a test, next to a control that the same setup is otherwise accepted.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use russh::keys::PrivateKey;
use tether_e2e::*;
use tether_sim::{EnvStatus, SimHandle, SimOptions};

const ALICE_ID: &str = "3f6d9a52-6c1e-4b7b-9c0b-2f1e8d7a1c01";

struct Setup {
    sim: SimHandle,
    dir: tempfile::TempDir,
    key: KeyPair,
    known_hosts: std::path::PathBuf,
}

/// A simulator, a key from ssh-keygen and a certificate from the certifier for `api_token`.
async fn setup_with(options: SimOptions, api_token: &str) -> Result<Setup> {
    let sim = demo_sim(options).await?;
    let dir = tempfile::tempdir()?;
    let key = ssh_keygen(dir.path(), "id_ed25519")?;
    let access = api_token_login(&sim.info, api_token).await?;
    request_certificate(&sim.info, &access, &key).await?;
    let known_hosts = known_hosts(dir.path(), &sim.info)?;
    Ok(Setup {
        sim,
        dir,
        key,
        known_hosts,
    })
}

async fn setup() -> Result<Setup> {
    setup_with(SimOptions::default(), ALICE_TOKEN).await
}

impl Setup {
    fn ssh(&self, user: &str) -> Command {
        ssh_command(
            &self.known_hosts,
            &self.key,
            self.sim.info.ssh_port,
            &format!("{user}@127.0.0.1"),
        )
    }

    async fn exec(&self, user: &str, command: &str) -> Result<std::process::Output> {
        let mut cmd = self.ssh(user);
        cmd.arg(command);
        run_async(cmd).await
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn main_app() -> String {
    app_user(DEMO_PROJECT, DEMO_ENV_MACHINE, "app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_ssh_runs_a_command_with_the_environment_and_exit_status() -> Result<()> {
    let s = setup().await?;
    let out = s
        .exec(
            &main_app(),
            "echo app=$PLATFORM_APPLICATION_NAME env=$PLATFORM_ENVIRONMENT; echo \"$PLATFORM_RELATIONSHIPS\" | base64 -d; exit 3",
        )
        .await?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert!(stdout.starts_with("app=app env=main-7rqtwti\n"), "{stdout}");
    let rels: serde_json::Value = serde_json::from_str(stdout.lines().nth(1).unwrap_or_default())?;
    assert_eq!(rels["database"][0]["host"], "database.internal");
    assert_eq!(rels["database"][0]["scheme"], "pgsql");
    assert_eq!(rels["rediscache"][0]["port"], 6379);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_key_is_verified_against_the_published_one() -> Result<()> {
    let s = setup().await?;
    // A known_hosts file with another key for the same address must make ssh refuse.
    let other = ssh_keygen(s.dir.path(), "impostor")?;
    let impostor = std::fs::read_to_string(&other.public)?;
    std::fs::write(
        &s.known_hosts,
        format!("[127.0.0.1]:{} {}", s.sim.info.ssh_port, impostor.trim()),
    )?;
    let out = s.exec(&main_app(), "true").await?;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_and_workers_are_reachable() -> Result<()> {
    let s = setup().await?;
    let instance = format!("{}--1", main_app());
    let out = s.exec(&instance, "basename \"$PWD\"").await?;
    assert_eq!(text(&out.stdout).trim(), "app.1", "{}", text(&out.stderr));
    let worker = format!("{}--queue", main_app());
    let out = s
        .exec(&worker, "echo $PLATFORM_APPLICATION_NAME $PLATFORM_WORKER")
        .await?;
    assert_eq!(
        text(&out.stdout).trim(),
        "app--queue queue",
        "{}",
        text(&out.stderr)
    );
    // An instance the app does not have is no container at all.
    let out = s.exec(&format!("{}--7", main_app()), "true").await?;
    assert_eq!(out.status.code(), Some(255));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_shell_has_a_pty_and_a_welcome_message() -> Result<()> {
    let s = setup().await?;
    let mut cmd = s.ssh(&main_app());
    cmd.arg("-tt");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(b"tty && echo project=$PLATFORM_PROJECT && exit 0\n")
            .await?;
        // Keep stdin open until the shell exits, as a terminal would.
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await??;
        drop(stdin);
        let stdout = text(&out.stdout);
        assert!(stdout.contains("Welcome to Platform.sh"), "{stdout}");
        assert!(
            stdout.contains("environment main (main-7rqtwti) of project Storefront"),
            "{stdout}"
        );
        assert!(stdout.contains("/dev/pts/"), "no pty: {stdout}");
        assert!(stdout.contains("project=jyu7waly36ncj"), "{stdout}");
        assert_eq!(out.status.code(), Some(0));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_sftp_and_rsync_work_through_the_gateway() -> Result<()> {
    let s = setup().await?;
    let user = main_app();
    let local = s.dir.path().join("hello.txt");
    std::fs::write(&local, "hello through scp\n")?;
    let options = ssh_options(&s.known_hosts, &s.key);
    let mut scp = Command::new("scp");
    scp.args(&options);
    scp.args(["-P", &s.sim.info.ssh_port.to_string()])
        .arg(&local)
        .arg(format!("{user}@127.0.0.1:uploaded.txt"));
    let out = run_async(scp).await?;
    assert!(out.status.success(), "scp: {}", text(&out.stderr));
    let out = s.exec(&user, "cat uploaded.txt").await?;
    assert_eq!(text(&out.stdout), "hello through scp\n");

    let batch = s.dir.path().join("batch");
    std::fs::write(&batch, "ls\nget uploaded.txt fetched.txt\n")?;
    let mut sftp = Command::new("sftp");
    sftp.args(&options);
    sftp.args(["-P", &s.sim.info.ssh_port.to_string(), "-b"])
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .current_dir(s.dir.path());
    let out = run_async(sftp).await?;
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("fetched.txt"))?,
        "hello through scp\n"
    );

    // rsync takes the ssh command as one string; the paths here have no spaces.
    let rsh = format!("ssh {} -p {}", options.join(" "), s.sim.info.ssh_port);
    let mut rsync = Command::new("rsync");
    rsync
        .args(["-a", "-e", &rsh])
        .arg(&local)
        .arg(format!("{user}@127.0.0.1:synced.txt"));
    let out = run_async(rsync).await?;
    assert!(out.status.success(), "rsync: {}", text(&out.stderr));
    let out = s.exec(&user, "cat synced.txt").await?;
    assert_eq!(text(&out.stdout), "hello through scp\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_reach_real_postgresql_and_redis() -> Result<()> {
    let pg = Postgres::start()?;
    let redis = Redis::start()?;
    let mut options = SimOptions::default();
    backend(&mut options, "postgresql", pg.port);
    backend(&mut options, "redis", redis.port);
    let s = setup_with(options, ALICE_TOKEN).await?;
    let mut redis_local = 0;
    let (_tunnel, pg_local) = spawn_on_free_port("ssh -L", Duration::from_secs(15), |pg_local| {
        redis_local = free_port();
        let mut cmd = s.ssh(&main_app());
        cmd.args(["-N", "-o", "ExitOnForwardFailure=yes"])
            .arg("-L")
            .arg(format!("127.0.0.1:{pg_local}:database.internal:5432"))
            .arg("-L")
            .arg(format!("127.0.0.1:{redis_local}:rediscache.internal:6379"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Ok(cmd)
    })?;
    wait_for_port(redis_local, Duration::from_secs(15))?;

    let mut psql = Command::new("psql");
    psql.env("PGPASSWORD", "main")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg_local.to_string(),
            "-U",
            "main",
            "-d",
            "main",
        ])
        .args(["-tAc", "select 1"]);
    let out = run_async(psql).await?;
    assert_eq!(text(&out.stdout).trim(), "1", "psql: {}", text(&out.stderr));

    let mut cli = Command::new("redis-cli");
    cli.args(["-h", "127.0.0.1", "-p", &redis_local.to_string(), "PING"]);
    let out = run_async(cli).await?;
    assert_eq!(
        text(&out.stdout).trim(),
        "PONG",
        "redis-cli: {}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_to_something_that_is_no_relationship_is_refused() -> Result<()> {
    let s = setup().await?;
    for target in ["localhost:22", "database.internal:6379", "127.0.0.1:5432"] {
        let mut cmd = s.ssh(&main_app());
        cmd.arg("-W").arg(target);
        let out = run_async(cmd).await?;
        let stderr = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{target} was forwarded");
        assert!(
            stderr.contains("is not a relationship of this app"),
            "{target}: {stderr}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_environment_is_refused_with_a_message() -> Result<()> {
    let s = setup().await?;
    let paused = app_user(DEMO_PROJECT, "feature-search-3jd7ypa", "app");
    let out = s.exec(&paused, "echo should-not-run").await?;
    assert_ne!(out.status.code(), Some(0));
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(
        text(&out.stderr).contains("is paused"),
        "{}",
        text(&out.stderr)
    );
    // Pausing an environment while the platform runs takes effect on the next connection.
    assert!(s
        .sim
        .set_environment_status(DEMO_PROJECT, "main", EnvStatus::Paused));
    let out = s.exec(&main_app(), "echo should-not-run").await?;
    assert!(
        text(&out.stderr).contains("is paused"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_of_another_user_is_refused() -> Result<()> {
    // Bob may reach the marketing site but not the storefront.
    let s = setup_with(SimOptions::default(), BOB_TOKEN).await?;
    let out = s
        .exec(&app_user("rjify4yjcwxaa", "main-bvxea6i", "web"), "echo ok")
        .await?;
    assert_eq!(
        text(&out.stdout).trim(),
        "ok",
        "control: {}",
        text(&out.stderr)
    );
    let out = s.exec(&main_app(), "echo should-not-run").await?;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_organization_refuses_a_certificate_without_mfa() -> Result<()> {
    let target = app_user(MFA_PROJECT, MFA_ENV_MACHINE, "api");
    let s = setup().await?;
    let out = s.exec(&target, "echo should-not-run").await?;
    let stderr = text(&out.stderr);
    // As the real gateway: ssh itself fails (255), and the refusal is on lines of its own.
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(
        stderr.lines().any(|l| l.trim() == "Error: Access denied"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.trim_end() == "Parameters: {\"amr\":[\"mfa\"]}"),
        "{stderr}"
    );
    // Forwards are refused the same way.
    let mut cmd = s.ssh(&target);
    cmd.arg("-W").arg("ledger.internal:5432");
    let out = run_async(cmd).await?;
    assert!(
        text(&out.stderr).contains("Access denied"),
        "{}",
        text(&out.stderr)
    );

    // A certificate issued to an MFA session carries has-mfa@platform.sh and is accepted.
    let s = setup_with(SimOptions::default(), ALICE_MFA_TOKEN).await?;
    let listing = run_ok(Command::new("ssh-keygen").arg("-Lf").arg(&s.key.cert))?;
    assert!(listing.contains("has-mfa@platform.sh"), "{listing}");
    let out = s.exec(&target, "echo ok").await?;
    assert_eq!(text(&out.stdout).trim(), "ok", "{}", text(&out.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_gateway_must_refuse() -> Result<()> {
    // The simulator's CA is one the test holds, so that the standard ssh-keygen can mint
    // certificates that are wrong in exactly one way each.
    let keys = tempfile::tempdir()?;
    let ca = ssh_keygen(keys.path(), "sim_ca")?;
    let rogue_ca = ssh_keygen(keys.path(), "rogue_ca")?;
    let options = SimOptions {
        ca_key: Some(PrivateKey::from_openssh(std::fs::read(&ca.private)?)?),
        ..SimOptions::default()
    };
    let s = setup_with(options, ALICE_TOKEN).await?;
    let principal = format!("platform-user:{ALICE_ID}");

    let try_key = |key: &KeyPair| {
        let mut cmd = ssh_command(
            &s.known_hosts,
            key,
            s.sim.info.ssh_port,
            &format!("{}@127.0.0.1", main_app()),
        );
        cmd.arg("echo accepted");
        run_async(cmd)
    };
    let mint = |name: &str, ca: &KeyPair, principals: &str, validity: &str| -> Result<KeyPair> {
        let key = ssh_keygen(s.dir.path(), name)?;
        sign_with_ssh_keygen(&ca.private, &key, ALICE_ID, principals, validity)?;
        Ok(key)
    };

    // Control: the right CA, principal and validity are accepted.
    let good = mint("good", &ca, &principal, "-5m:+1h")?;
    let out = try_key(&good).await?;
    assert_eq!(
        text(&out.stdout).trim(),
        "accepted",
        "control: {}",
        text(&out.stderr)
    );

    let cases = [
        ("wrong CA", mint("rogue", &rogue_ca, &principal, "-5m:+1h")?),
        (
            "expired",
            mint("expired", &ca, &principal, "20200101:20200102")?,
        ),
        ("not yet valid", mint("future", &ca, &principal, "+1d:+2d")?),
        (
            "wrong principal",
            mint("principal", &ca, "platform-user:someone-else", "-5m:+1h")?,
        ),
    ];
    for (what, key) in &cases {
        let out = try_key(key).await?;
        assert_eq!(out.status.code(), Some(255), "{what} was accepted");
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "{what}: {}",
            text(&out.stderr)
        );
    }

    // A plain key, with no certificate at all.
    let plain = ssh_keygen(s.dir.path(), "plain")?;
    let out = try_key(&plain).await?;
    assert_eq!(out.status.code(), Some(255), "a plain key was accepted");
    assert!(text(&out.stderr).contains("Permission denied"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_sshd_trusting_the_ca_accepts_the_certificate() -> Result<()> {
    let s = setup().await?;
    let principal = format!("platform-user:{ALICE_ID}");
    let sshd = Sshd::start(s.dir.path(), &s.sim.info.ca_public_key, &[&principal])?;
    let mut cmd = ssh_command(
        &sshd.known_hosts,
        &s.key,
        sshd.port,
        &format!("{}@127.0.0.1", current_user()),
    );
    cmd.arg("echo accepted-by-openssh");
    let out = run_async(cmd).await?;
    assert_eq!(
        text(&out.stdout).trim(),
        "accepted-by-openssh",
        "sshd refused: {}",
        text(&out.stderr)
    );
    Ok(())
}
