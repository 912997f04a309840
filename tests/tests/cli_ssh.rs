//! `tether ssh` and browsing against tether-sim: exact URLs, commands and exit statuses,
//! instances and workers, an interactive session in tmux, the user's terminal (a recording
//! one and a real xterm), and the MFA step-up.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tether_e2e::cli::{ssh_args, User};
use tether_e2e::*;
use tether_sim::SimOptions;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const SHOP: [&str; 4] = ["-p", "jyu7waly36ncj", "-e", "main"];
const SITE: [&str; 6] = ["-p", "rjify4yjcwxaa", "-e", "main", "-A", "web"];

/// The `href` of a link, straight from the API.
async fn api_link(
    sim: &tether_sim::SimHandle,
    project: &str,
    env: &str,
    link: &str,
) -> Result<String> {
    let token = api_token_login(&sim.info, ALICE_TOKEN).await?;
    let env: Value = http()
        .get(format!(
            "{}/projects/{project}/environments/{env}",
            sim.info.api_url
        ))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    Ok(env["_links"][link]["href"]
        .as_str()
        .context("no such link")?
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_commands_exit_statuses_instances_and_workers() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;

    let linked = api_link(&sim, "rjify4yjcwxaa", "main", "pf:ssh:web").await?;
    let piped = user.ok(&ssh_args(&SITE, &["--pipe"]), None).await?;
    assert_eq!(
        piped,
        format!("{}\n", linked.trim_start_matches("ssh://")),
        "exactly the URL the API links"
    );
    let linked = api_link(&sim, "jyu7waly36ncj", "main", "pf:ssh:app:1").await?;
    let piped = user
        .ok(&ssh_args(&SHOP, &["-A", "app", "-I", "1", "--pipe"]), None)
        .await?;
    assert_eq!(piped.trim(), linked.trim_start_matches("ssh://"));

    let out = user
        .ok(
            &ssh_args(&SITE, &["--", "echo $PLATFORM_APPLICATION_NAME"]),
            None,
        )
        .await?;
    assert_eq!(out.trim(), "web");
    let out = user
        .run(&ssh_args(&SITE, &["--", "echo bye; exit 3"]), None)
        .await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "bye");
    assert!(
        !text(&out.stderr).contains("tether:"),
        "a remote status is not a tether error"
    );
    let out = user
        .ok(
            &ssh_args(&SHOP, &["-A", "app", "-I", "1", "--", "basename \"$PWD\""]),
            None,
        )
        .await?;
    assert_eq!(out.trim(), "app.1");
    let out = user
        .ok(
            &ssh_args(
                &SHOP,
                &[
                    "-A",
                    "app",
                    "--worker",
                    "queue",
                    "--",
                    "echo $PLATFORM_APPLICATION_NAME",
                ],
            ),
            None,
        )
        .await?;
    assert_eq!(out.trim(), "app--queue");
    // Several arguments are quoted for the remote shell, one by one.
    let out = user
        .ok(
            &ssh_args(&SITE, &["--", "printf", "%s|", "a b", "it's", "$HOME"]),
            None,
        )
        .await?;
    assert_eq!(out, "a b|it's|$HOME|");

    // --all lists every address; browsing commands answer JSON for scripts.
    let all: Value = serde_json::from_str(
        &user
            .ok(
                &[
                    "--format",
                    "json",
                    "ssh",
                    "-p",
                    "jyu7waly36ncj",
                    "-e",
                    "main",
                    "--all",
                ],
                None,
            )
            .await?,
    )?;
    assert_eq!(
        all["app--queue"],
        "jyu7waly36ncj-main-7rqtwti--app--queue@ssh.eu-3.tether.test"
    );
    assert_eq!(all.as_object().map(|o| o.len()), Some(5));
    let projects: Value =
        serde_json::from_str(&user.ok(&["--format", "json", "projects"], None).await?)?;
    assert_eq!(projects.as_array().map(Vec::len), Some(3));
    let envs: Value = serde_json::from_str(
        &user
            .ok(
                &["--format", "json", "environments", "-p", "jyu7waly36ncj"],
                None,
            )
            .await?,
    )?;
    assert_eq!(envs[2]["status"], "paused");
    let apps: Value = serde_json::from_str(
        &user
            .ok(
                &[
                    "--format",
                    "json",
                    "apps",
                    "-p",
                    "jyu7waly36ncj",
                    "-e",
                    "main",
                ],
                None,
            )
            .await?,
    )?;
    assert_eq!(apps[0]["instances"], 3);
    assert_eq!(apps[1]["kind"], "worker");

    // Wrong choices say what exists, and what to do.
    for (extra, expected) in [
        (vec!["-A", "nope", "--pipe"], "its apps: app"),
        (
            vec!["-A", "app", "--worker", "nope", "--pipe"],
            "its workers: queue",
        ),
        (
            vec!["-A", "app", "-I", "7", "--pipe"],
            "its instances: 0, 1, 2",
        ),
    ] {
        let out = user.run(&ssh_args(&SHOP, &extra), None).await?;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(expected),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
    let out = user
        .run(
            &[
                "ssh",
                "-p",
                "jyu7waly36ncj",
                "-e",
                "feature-search",
                "-A",
                "app",
                "--pipe",
            ],
            None,
        )
        .await?;
    assert!(
        text(&out.stderr).contains("is paused") && text(&out.stderr).contains("resume"),
        "{}",
        text(&out.stderr)
    );
    let out = user
        .run(
            &["ssh", "-p", "jyu7waly36ncj", "-e", "old-checkout", "--pipe"],
            None,
        )
        .await?;
    assert!(
        text(&out.stderr).contains("is inactive"),
        "{}",
        text(&out.stderr)
    );
    let out = user
        .run(
            &["ssh", "-p", "jyu7waly36ncj", "-e", "nope", "--pipe"],
            None,
        )
        .await?;
    assert!(
        text(&out.stderr).contains("its environments: main, staging"),
        "{}",
        text(&out.stderr)
    );
    let out = user.run(&["ssh", "-e", "main", "--pipe"], None).await?;
    assert!(
        text(&out.stderr).contains("choose a project with -p"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_several_instances_is_reached_through_its_own_link() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    // The issue's command: it used to fail with "app app has several instances".
    let out = user.run(&ssh_args(&SHOP, &["--", "true"]), None).await?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let linked = api_link(&sim, DEMO_PROJECT, "main", "pf:ssh:app").await?;
    let piped = user.ok(&ssh_args(&SHOP, &["--pipe"]), None).await?;
    assert_eq!(piped.trim(), linked.trim_start_matches("ssh://"));
    let piped = user
        .ok(&ssh_args(&SHOP, &["-A", "app", "--pipe"]), None)
        .await?;
    assert_eq!(piped.trim(), linked.trim_start_matches("ssh://"));
    // It lands on that container, not on a numbered instance.
    let out = user
        .ok(&ssh_args(&SHOP, &["--", "basename \"$PWD\""]), None)
        .await?;
    assert_eq!(out.trim(), "app");
    // The remote exit status comes through the same way.
    let out = user.run(&ssh_args(&SHOP, &["--", "exit 4"]), None).await?;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    // --instance still picks one, and an unknown one lists those that exist.
    let out = user
        .ok(
            &ssh_args(&SHOP, &["-I", "2", "--", "basename \"$PWD\""]),
            None,
        )
        .await?;
    assert_eq!(out.trim(), "app.2");
    let out = user
        .run(&ssh_args(&SHOP, &["-I", "3", "--pipe"]), None)
        .await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("app app has no instance \"3\"; its instances: 0, 1, 2"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_address_outside_the_profiles_hosts_is_refused() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    // The profile now says the platform's gateways are elsewhere than the API's links.
    let profile = std::fs::read_to_string(&user.profile)?;
    let moved = profile.replace(
        "ssh_host_patterns = [\"*.tether.test\"]",
        "ssh_host_patterns = [\"*.gateways.test\", \"ssh.??.tether.example\"]",
    );
    assert_ne!(moved, profile);
    std::fs::write(&user.profile, moved)?;
    for extra in [vec!["--pipe"], vec!["--all"], vec!["--", "true"]] {
        let out = user.run(&ssh_args(&SHOP, &extra), None).await?;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(
                "the platform gave an SSH address on host ssh.eu-3.tether.test, which is not one \
                 of Local platform (tether-sim)'s SSH hosts (*.gateways.test, ssh.??.tether.example)"
            ),
            "{extra:?}: {stderr}"
        );
        assert!(
            text(&out.stdout).is_empty(),
            "{extra:?}: printed an address"
        );
    }
    Ok(())
}

/// A private tmux server running one command in a 120×40 window; killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, line: &str) -> Result<Tmux> {
        let t = Tmux {
            socket: format!("tether-{name}-{}", std::process::id()),
        };
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "40",
            line,
        ])?;
        Ok(t)
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new("tmux")
                .args(["-L", &self.socket, "-f", "/dev/null"])
                .args(args),
        )
    }

    /// Types `keys` and presses Enter.
    fn type_line(&self, keys: &str) -> Result<()> {
        self.run(&["send-keys", "-t", "t", keys, "Enter"])
            .map(|_| ())
    }

    async fn wait_for(&self, needle: &str) -> Result<String> {
        let start = Instant::now();
        loop {
            let screen = self.run(&["capture-pane", "-p", "-t", "t"])?;
            if screen.contains(needle) {
                return Ok(screen);
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("{needle:?} never appeared on the screen:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_session_in_a_terminal() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let term = Tmux::start("session", &typed_line(&user.tether(&ssh_args(&SITE, &[]))?))?;
    // main is production: asked first (tests/tests/production_guard.rs has the rest).
    term.wait_for("Are you sure you want to open a terminal on it? [y/N]")
        .await?;
    term.type_line("y")?;
    let screen = term.wait_for("web@web.0").await?;
    assert!(screen.contains("Welcome to Platform.sh"), "{screen}");
    assert!(
        screen.contains("environment main (main-bvxea6i) of project Marketing site"),
        "{screen}"
    );
    term.type_line("echo marker-$PLATFORM_PROJECT-$((6*7))")?;
    term.wait_for("marker-rjify4yjcwxaa-42").await?;
    term.type_line("exit")?;
    Ok(())
}

/// The same command line a person would type, with the command's environment.
fn typed_line(cmd: &Command) -> String {
    let mut line = String::from("env");
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            line.push_str(&format!(
                " {}={}",
                k.to_string_lossy(),
                shell_words(&v.to_string_lossy())
            ));
        }
    }
    line.push_str(&format!(
        " {}",
        shell_words(&cmd.get_program().to_string_lossy())
    ));
    for a in cmd.get_args() {
        line.push_str(&format!(" {}", shell_words(&a.to_string_lossy())));
    }
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_choices_are_asked_for_at_a_terminal() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let result_file = user.home().join("chosen.txt");
    let line = format!(
        "{} > {}; sleep 30",
        typed_line(&user.tether(&["ssh", "--pipe"])?),
        shell_words(&result_file.display().to_string())
    );
    let term = Tmux::start("choose", &line)?;
    let screen = term.wait_for("Choose a project:").await?;
    assert!(
        screen.contains("[3] Storefront (jyu7waly36ncj, eu-3)"),
        "{screen}"
    );
    term.type_line("3")?;
    let screen = term.wait_for("Choose an environment:").await?;
    assert!(
        screen.contains("[3] feature-search (paused, development)"),
        "{screen}"
    );
    term.type_line("1")?;
    // One app: no question. Three instances: no question either, the app's own link is used,
    // as the official client does.
    let start = Instant::now();
    while !std::fs::read_to_string(&result_file).is_ok_and(|s| s.ends_with('\n')) {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("no address was printed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&result_file)?,
        "jyu7waly36ncj-main-7rqtwti--app@ssh.eu-3.tether.test\n"
    );
    Ok(())
}

fn shell_words(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_terminal_recording_and_real() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;

    // A recording terminal: it keeps its argv, then runs the command it was given.
    let record = user.home().join("record-terminal");
    let argv_file = user.home().join("argv.txt");
    let out_file = user.home().join("session.txt");
    std::fs::write(
        &record,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{argv}'\n[ \"$1\" = -e ] && shift\n\
             printf 'echo started-$PLATFORM_APPLICATION_NAME\\nexit\\n' | \"$@\" > '{out}' 2>&1\n",
            argv = argv_file.display(),
            out = out_file.display()
        ),
    )?;
    std::fs::set_permissions(&record, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let mut cmd = user.tether(&ssh_args(&SITE, &["--terminal"]))?;
    cmd.env("TERMINAL", &record);
    let out = run_async(cmd).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = Instant::now();
    while !std::fs::read_to_string(&out_file).is_ok_and(|s| s.contains("started-")) {
        if start.elapsed() > Duration::from_secs(20) {
            bail!(
                "the recorded session did not start: {:?}",
                std::fs::read_to_string(&out_file)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let argv = std::fs::read_to_string(&argv_file)?;
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv[..2], ["-e", "ssh"], "{argv:?}");
    assert_eq!(
        argv[argv.len() - 2..],
        [
            "--",
            "rjify4yjcwxaa-main-bvxea6i--web@ssh.eu-3.tether.test"
                .replace("eu-3", "us-2")
                .as_str()
        ]
    );
    assert!(std::fs::read_to_string(&out_file)?.contains("started-web"));

    // A real xterm on a private display: type into the session and see its effect on the app.
    // X resources keep the window open if ssh ends, and log what the session showed, so a
    // failure can say what happened inside the terminal.
    let desktop = tether_e2e::desktop::Desktop::start().await?;
    let xterm_log = user.home().join("xterm.log");
    let resources = user.home().join("xterm.resources");
    std::fs::write(
        &resources,
        format!(
            "XTerm*hold: true\nXTerm*logging: true\nXTerm*logFile: {}\n",
            xterm_log.display()
        ),
    )?;
    // xterm is started through a stand-in of the same name first on PATH that keeps what xterm
    // said and how it ended: when xterm itself fails (it once exited at once in a fresh CI
    // machine, saying nothing the test could see), the failure says why.
    let real_xterm = run_ok(Command::new("sh").args(["-c", "command -v xterm"]))?;
    let bin = user.home().join("bin");
    std::fs::create_dir_all(&bin)?;
    let xterm_said = user.home().join("xterm.stderr");
    std::fs::write(
        bin.join("xterm"),
        format!(
            "#!/bin/sh\n'{real}' \"$@\" 2>>'{said}'\necho \"xterm ended: $?\" >>'{said}'\n",
            real = real_xterm.trim(),
            said = xterm_said.display()
        ),
    )?;
    std::fs::set_permissions(
        bin.join("xterm"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let xterm_ended =
        || std::fs::read_to_string(&xterm_said).is_ok_and(|said| said.contains("xterm ended:"));
    let diagnosis = |launched: &std::process::Output| {
        let procs = run(Command::new("pgrep").args(["-a", "xterm"]))
            .map(|o| text(&o.stdout))
            .unwrap_or_default();
        format!(
            "display {}; tether said: {}; xterm processes: {}; xterm said: {:?}; the terminal \
             showed: {:?}",
            desktop.display,
            text(&launched.stderr).trim(),
            procs.trim(),
            std::fs::read_to_string(&xterm_said).unwrap_or_default(),
            std::fs::read_to_string(&xterm_log).unwrap_or_default()
        )
    };
    // An xterm that ended before its window appeared is started once more (the first
    // failure is printed): what is tested is what Tether starts, not xterm's own start.
    let mut attempt = 0;
    let (window, launched) = loop {
        attempt += 1;
        let mut cmd = user.tether(&ssh_args(&SITE, &["--terminal"]))?;
        cmd.env("TERMINAL", "xterm")
            .env("PATH", &path)
            .env("DISPLAY", &desktop.display)
            .env("XENVIRONMENT", &resources);
        let launched = run_async(cmd).await?;
        assert!(launched.status.success(), "{}", text(&launched.stderr));
        let start = Instant::now();
        let window = loop {
            let found = run(Command::new("xdotool")
                .args(["search", "--class", "xterm"])
                .env("DISPLAY", &desktop.display))?;
            if let Some(id) = text(&found.stdout).lines().next().map(str::to_string) {
                break Some(id);
            }
            if xterm_ended() || start.elapsed() > Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        match window {
            Some(window) => break (window, launched),
            None if attempt == 1 && xterm_ended() => {
                eprintln!(
                    "xterm ended before its window appeared; once more ({})",
                    diagnosis(&launched)
                );
                std::fs::remove_file(&xterm_said)?;
            }
            None => bail!("no xterm window appeared ({})", diagnosis(&launched)),
        }
    };
    let diagnosis = || diagnosis(&launched);
    // Type only once the app's shell shows its prompt.
    let start = Instant::now();
    while !std::fs::read_to_string(&xterm_log).is_ok_and(|l| l.contains("web@web.0")) {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the session in xterm showed no prompt ({})", diagnosis());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(dir) = std::env::var_os("TETHER_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        run_ok(
            Command::new("import")
                .args(["-window", "root"])
                .arg(dir.join("xterm-session.png"))
                .env("DISPLAY", &desktop.display),
        )?;
    }
    let xdo = |a: &[&str]| {
        run_ok(
            Command::new("xdotool")
                .args(a)
                .env("DISPLAY", &desktop.display),
        )
    };
    xdo(&["windowfocus", "--sync", &window])?;
    xdo(&["type", "--delay", "15", "touch opened-in-xterm; exit"])?;
    xdo(&["key", "Return"])?;
    let marker = sim
        .scratch_dir()
        .join("rjify4yjcwxaa/main/web/opened-in-xterm");
    let start = Instant::now();
    while !marker.exists() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!(
                "typing into the xterm did not reach the app ({})",
                diagnosis()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_step_up_then_connect() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let browser = tether_e2e::webdriver::Chromium::start().await?;
    let out = user
        .browser_login(&browser.driver, "carol", CAROL_PASSWORD, None, &[])
        .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let target = [
        "ssh",
        "-p",
        MFA_PROJECT,
        "-e",
        "main",
        "-A",
        "api",
        "--",
        "echo in",
    ];
    let out = user.run(&target, None).await?;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Multi-factor authentication (MFA) is required"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("tether login --method mfa"),
        "{}",
        text(&out.stderr)
    );
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
    let out = user.run(&target, None).await?;
    assert_eq!(text(&out.stdout).trim(), "in", "{}", text(&out.stderr));
    browser.driver.quit().await?;
    Ok(())
}
