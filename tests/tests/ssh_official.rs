//! `tether ssh` as the official client's `ssh`, against tether-sim: refusals are diagnosed
//! only when ssh itself failed and a remote command is never run twice; the command as plain
//! words; `-o` and the profile's `*_SSH_OPTIONS`; choosing the project, environment and app
//! from a console URL, the `PLATFORM_*` variables, the git repository and `-e .`; and the
//! official aliases and `login --method` values.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{bail, Result};
use tether_e2e::cli::{ssh_args, User};
use tether_e2e::*;
use tether_sim::SimOptions;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const SITE: [&str; 6] = ["-p", "rjify4yjcwxaa", "-e", "main", "-A", "web"];
const MFA_API: [&str; 6] = ["-p", MFA_PROJECT, "-e", "main", "-A", "api"];

/// The gateway's refusal, printed by a remote command of its own accord.
const REFUSAL_TEXT: &str = "printf 'Hello Jane Doe, you successfully authenticated, but ...\\nError: Access denied\\nParameters: {\"amr\":[\"mfa\"]}\\n' >&2";

/// Runs `tether ARGS` in `dir` with these extra variables.
async fn run_in(user: &User, dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Result<Output> {
    let mut cmd: Command = user.tether(args)?;
    cmd.current_dir(dir);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run_async(cmd).await
}

fn ok(out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "failed ({}): {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    Ok(text(&out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_command_that_prints_the_refusal_runs_once_and_keeps_its_status() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let command = format!("echo ran >> ran.txt; {REFUSAL_TEXT}; exit 3");
    let out = user.run(&ssh_args(&SITE, &[&command]), None).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Error: Access denied"));
    assert!(
        !text(&out.stderr).contains("Multi-factor authentication"),
        "a remote command's output is not a refusal: {}",
        text(&out.stderr)
    );
    let ran = user.ok(&ssh_args(&SITE, &["cat ran.txt"]), None).await?;
    assert_eq!(ran, "ran\n", "the command ran exactly once");

    // Even when its status is ssh's own failure and the certificate meets the demand, the
    // certificate is refreshed and the user is told to try again: nothing runs a second time.
    let user = User::signed_in(&sim.info, ALICE_MFA_TOKEN).await?;
    let command = format!("echo again >> again.txt; {REFUSAL_TEXT}; exit 255");
    let out = user.run(&ssh_args(&SITE, &[&command]), None).await?;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("run the command again"),
        "{}",
        text(&out.stderr)
    );
    let ran = user.ok(&ssh_args(&SITE, &["cat again.txt"]), None).await?;
    assert_eq!(ran, "again\n", "the command ran exactly once");
    Ok(())
}

/// A directory with an `ssh` that sends tether's connection to `target` instead of the
/// address tether chose: it stands in for an environment whose API answers a session without
/// MFA while its SSH gateway demands MFA (tether-sim's API already refuses such a session, so
/// tether would never get as far as ssh).
fn redirecting_ssh(dir: &Path, target: &str) -> Result<String> {
    let real = run_ok(Command::new("sh").args(["-c", "command -v ssh"]))?;
    let script = format!(
        "#!/bin/bash\nargs=(); state=0\nfor a in \"$@\"; do\n  if [ $state = 1 ]; then args+=('{target}'); state=2; continue; fi\n  if [ $state = 0 ] && [ \"$a\" = -- ]; then state=1; fi\n  args+=(\"$a\")\ndone\nexec {} \"${{args[@]}}\"\n",
        real.trim()
    );
    let path = dir.join("ssh");
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_two_line_refusal_gives_the_mfa_remedy() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let with_mfa = User::signed_in(&sim.info, ALICE_MFA_TOKEN).await?;
    let target = with_mfa.ok(&ssh_args(&MFA_API, &["--pipe"]), None).await?;
    let target = target.trim();

    // The plain ssh client fails by itself (255) on the gateway's refusal, which holds both
    // lines, as against the real gateway.
    let without = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    without.ok(&["ssh-cert:load"], None).await?;
    without.ok(&["config:ssh", "--write"], None).await?;
    let mut plain = without.ssh(target);
    plain.arg("true");
    let out = run_async(plain).await?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.trim() == "Error: Access denied"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.trim() == "Parameters: {\"amr\":[\"mfa\"]}"),
        "{stderr}"
    );

    // tether ssh with a certificate without MFA, refused by that gateway: the MFA remedy.
    let shim = tempfile::tempdir()?;
    let path = redirecting_ssh(shim.path(), target)?;
    let mut cmd = without.tether(&ssh_args(&SITE, &["echo ran >> ran.txt"]))?;
    cmd.env("PATH", &path);
    let out = run_async(cmd).await?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("Error: Access denied"), "{stderr}");
    assert!(
        stderr.contains("Multi-factor authentication (MFA) is required. Sign in again with MFA."),
        "{stderr}"
    );
    assert!(stderr.contains("--method mfa"), "{stderr}");
    // Nothing ran.
    let out = with_mfa
        .run(&ssh_args(&MFA_API, &["cat ran.txt"]), None)
        .await?;
    assert!(!out.status.success());

    // With an MFA session the same environment is reached.
    let out = with_mfa
        .ok(&ssh_args(&MFA_API, &["echo", "in"]), None)
        .await?;
    assert_eq!(out, "in\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_as_plain_words_and_ssh_options() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let out = user.ok(&ssh_args(&SITE, &["ls", "-la", "/"]), None).await?;
    assert!(out.contains(".."), "{out}");
    // `--` still works, and the words after it are the command's, dashes included.
    let out = user
        .ok(
            &ssh_args(&SITE, &["--", "printf", "%s|", "-n", "a b"]),
            None,
        )
        .await?;
    assert_eq!(out, "-n|a b|");
    let out = user
        .ok(&ssh_args(&SITE, &["printf", "%s|", "-x", "it's"]), None)
        .await?;
    assert_eq!(out, "-x|it's|");

    // -o (repeatable) and the profile's variable, one option per line, reach ssh: the gateway
    // passes LC_* variables on, as sshd does.
    let mut cmd = user.tether(&ssh_args(
        &SITE,
        &[
            "-o",
            "SetEnv LC_TETHER_A=from-flag",
            "--option",
            "ConnectTimeout=20",
            "echo $LC_TETHER_A/$LC_TETHER_B",
        ],
    ))?;
    cmd.env(
        "TETHER_SIM_SSH_OPTIONS",
        "SendEnv LC_TETHER_B\n\nConnectTimeout 30",
    )
    .env("LC_TETHER_B", "from-env");
    let out = ok(run_async(cmd).await?)?;
    assert_eq!(out.trim(), "from-flag/from-env");
    // A bad option is ssh's own failure, which passes on as 255.
    let out = user
        .run(&ssh_args(&SITE, &["-o", "NoSuchOption yes", "true"]), None)
        .await?;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_environment_and_app_are_chosen_as_the_official_client_does() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let main = user.ok(&ssh_args(&SITE, &["--pipe"]), None).await?;
    let preview = user
        .ok(
            &ssh_args(
                &["-p", "rjify4yjcwxaa", "-e", "preview", "-A", "web"],
                &["--pipe"],
            ),
            None,
        )
        .await?;
    assert_ne!(main, preview);
    let elsewhere = tempfile::tempdir()?;
    let at = elsewhere.path();

    // A console URL names the project and the environment.
    let out = run_in(
        &user,
        at,
        &[],
        &[
            "ssh",
            "-p",
            "https://console.upsun.com/acme/rjify4yjcwxaa/preview",
            "-A",
            "web",
            "--pipe",
        ],
    )
    .await?;
    assert_eq!(ok(out)?, preview);

    // The variables the platform sets in its containers.
    let vars = [
        ("PLATFORM_PROJECT", "rjify4yjcwxaa"),
        ("PLATFORM_BRANCH", "preview"),
        ("PLATFORM_APPLICATION_NAME", "web"),
    ];
    let out = run_in(&user, at, &vars, &["ssh", "--pipe"]).await?;
    assert_eq!(ok(out)?, preview);
    // Flags win over them.
    let out = run_in(&user, at, &vars, &["ssh", "-e", "main", "--pipe"]).await?;
    assert_eq!(ok(out)?, main);

    // `-e .` is the project's default environment.
    let out = run_in(
        &user,
        at,
        &[],
        &[
            "ssh",
            "-p",
            "rjify4yjcwxaa",
            "-e",
            ".",
            "-A",
            "web",
            "--pipe",
        ],
    )
    .await?;
    assert_eq!(ok(out)?, main);

    // A repository with the platform's remote names the project; its branch the environment.
    let repo = tempfile::tempdir()?;
    let git = |args: &[&str]| -> Result<String> {
        run_ok(
            Command::new("git")
                .args(args)
                .current_dir(repo.path())
                .env("GIT_CONFIG_GLOBAL", "/dev/null"),
        )
    };
    git(&["init", "-q", "-b", "preview"])?;
    git(&[
        "remote",
        "add",
        "platform",
        "rjify4yjcwxaa@git.us-2.platform.sh:rjify4yjcwxaa.git",
    ])?;
    let out = run_in(&user, repo.path(), &[], &["ssh", "--pipe"]).await?;
    assert_eq!(
        ok(out)?,
        preview,
        "the only app of the branch's environment"
    );
    // A branch that is no environment is not taken for one.
    git(&["checkout", "-q", "-b", "no-such-env"])?;
    let out = run_in(&user, repo.path(), &[], &["ssh", "--pipe"]).await?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("-e"), "{}", text(&out.stderr));
    let out = run_in(&user, repo.path(), &[], &["ssh", "-e", ".", "--pipe"]).await?;
    assert_eq!(ok(out)?, main);

    // Something in -p that names no project is a usage error that says what to give.
    let out = run_in(
        &user,
        at,
        &[],
        &["ssh", "-p", "https://example.com/x", "--pipe"],
    )
    .await?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("console URL"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_aliases_and_login_methods() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let direct = user.ok(&ssh_args(&SITE, &["--pipe"]), None).await?;
    let mut alias = vec!["environment:ssh"];
    alias.extend_from_slice(&SITE);
    alias.push("--pipe");
    assert_eq!(user.ok(&alias, None).await?, direct);
    assert_eq!(
        user.ok(
            &[
                "environment:ssh",
                "-p",
                "rjify4yjcwxaa",
                "-e",
                "main",
                "-A",
                "web",
                "echo",
                "hi"
            ],
            None
        )
        .await?,
        "hi\n"
    );

    user.ok(&["tunnel:list", "-a"], None).await?;

    // login --method takes the official values, repeated or comma-separated.
    for bad in ["sso", "pwd", "sso:"] {
        let out = user
            .run(
                &["auth:browser-login", "--method", bad, "--no-browser"],
                None,
            )
            .await?;
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
    }
    let fresh = User::new(&sim.info, false)?;
    let mut login = fresh.tether(&[
        "auth:browser-login",
        "--no-browser",
        "--method",
        "mfa",
        "--method",
        "sso:acme",
        "--max-age",
        "60",
        "--timeout",
        "1",
    ])?;
    login.stdin(std::process::Stdio::null());
    let out = run_async(login).await?;
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let url = printed
        .split_whitespace()
        .find(|w| w.contains("/oauth2/authorize"))
        .unwrap_or_default();
    let parsed = url::Url::parse(url)?;
    let params: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert!(
        params.contains(&("amr".into(), "mfa sso:acme".into())),
        "{params:?}"
    );
    assert!(
        params.contains(&("max_age".into(), "60".into())),
        "{params:?}"
    );

    // auth:logout -a signs out of every profile.
    user.ok(&["auth:logout", "-a"], None).await?;
    let out = user.run(&["auth:info"], None).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    Ok(())
}
