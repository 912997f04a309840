//! The packages `make package` builds (scripts/package.sh), checked and used as a person would:
//! lintian on the .deb and the .rpm's file list, then, on this machine, an install of the
//! previous package, a user signed in with a tunnel open and the app in the tray, an upgrade
//! to this one that keeps the session and the tunnel's port, the installed files checked where
//! they landed (desktop entry, manual pages, AppStream metainfo, completions), and a removal
//! that takes every installed file, leaves the user's data and leaves plain ssh working.
//!
//! They need the packages and they install into the system (as root), so a plain `cargo test`
//! skips them; scripts/test.sh (`make test`, CI) builds the packages and runs them with
//! `--ignored`. The previous package is this one with a lower version (`0.1.0~previous`): the
//! same binaries, so the test is of the upgrade itself (dpkg replacing the files under a running
//! app and agent, the user's data left alone), without building an older commit, which would
//! double CI's build time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use tether_e2e::cli::User;
use tether_e2e::desktop::Desktop;
use tether_e2e::{demo_sim, openssh, ALICE_TOKEN, DEMO_PROJECT, DEMO_REDIS};
use tether_sim::SimOptions;

/// The Debian package's name, and where it puts the commands.
const PACKAGE: &str = "tether";
const TETHER: &str = "/usr/bin/tether";
const DESKTOP: &str = "/usr/bin/tether-desktop";

/// What both packages install, beyond the two commands (`(deb, rpm)` where they differ).
const CONTENTS: &[(&str, &str)] = &[
    ("/usr/bin/tether", ""),
    ("/usr/bin/tether-desktop", ""),
    ("/usr/share/applications/Tether.desktop", ""),
    ("/usr/share/metainfo/sh.tether.desktop.metainfo.xml", ""),
    ("/usr/share/man/man1/tether.1.gz", ""),
    ("/usr/share/man/man1/tether-desktop.1.gz", ""),
    ("/usr/share/bash-completion/completions/tether", ""),
    (
        "/usr/share/zsh/vendor-completions/_tether",
        "/usr/share/zsh/site-functions/_tether",
    ),
    ("/usr/share/fish/vendor_completions.d/tether.fish", ""),
    ("/usr/share/doc/tether/copyright", ""),
    ("/usr/share/doc/tether/changelog.gz", ""),
];

/// The icon sizes installed in the hicolor theme.
const ICON_SIZES: &[&str] = &[
    "16x16", "24x24", "32x32", "48x48", "64x64", "128x128", "256x256", "512x512",
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The .deb and .rpm scripts/package.sh made (it lists them in target/package/packages).
struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

fn packages() -> Result<Packages> {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/package/packages");
    let listed = std::fs::read_to_string(&list).with_context(|| {
        format!(
            "{} is missing: build the packages first (scripts/package.sh)",
            list.display()
        )
    })?;
    let find = |suffix: &str| {
        listed
            .lines()
            .find(|l| l.ends_with(suffix))
            .map(PathBuf::from)
            .with_context(|| format!("no {suffix} in {}", list.display()))
    };
    Ok(Packages {
        deb: find(".deb")?,
        rpm: find(".rpm")?,
    })
}

/// Runs `cmd` to its end, feeding `stdin`; fails, with what it printed, unless it succeeds.
fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}: is it installed? (make test installs it)"))?;
    if let Some(mut pipe) = child.stdin.take() {
        use std::io::Write;
        pipe.write_all(stdin.unwrap_or_default().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

fn ok(program: &str, args: &[&str]) -> Result<String> {
    run(Command::new(program).args(args), None)
}

/// The version of the installed package, if it is installed.
fn installed_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", PACKAGE])
        .output()
        .ok()?;
    let status = text(&out.stdout);
    status
        .strip_prefix("install ok installed ")
        .map(str::to_string)
}

/// Removes the package when dropped, whatever the test did before failing: the machine keeps
/// nothing of the test.
struct Installation;

impl Drop for Installation {
    fn drop(&mut self) {
        if installed_version().is_some() {
            let _ = Command::new("dpkg")
                .args(["-r", PACKAGE])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// `tether ARGS` as installed, run as `user`.
fn installed(user: &User, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = Command::new(TETHER);
    cmd.args(args);
    user.environment(&mut cmd);
    run(&mut cmd, stdin)
}

/// `tether tunnel:open` of the demo app's Redis (its port is remembered across the upgrade), as
/// installed; returns its local port.
fn open_redis(user: &User) -> Result<String> {
    installed(user, &[&["tunnel:open"][..], &DEMO_REDIS].concat(), None)?;
    let port = installed(user, &["tunnel:info", "-P", "rediscache.0.port"], None)?;
    Ok(port.trim().to_string())
}

/// The `Match exec` line of the user's session config: what plain ssh runs first.
fn hook_line(user: &User) -> Result<String> {
    let config = user
        .home()
        .join(".local/share/tether/ssh/tether-sim.config");
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("no session config at {}", config.display()))?;
    text.lines()
        .find(|l| l.starts_with("Match "))
        .map(str::to_string)
        .with_context(|| format!("no Match line in {text}"))
}

/// This .deb with a lower version: what a user had before upgrading to it.
fn previous_of(deb: &Path, dir: &Path) -> Result<(PathBuf, String)> {
    let tree = dir.join("previous");
    let tree_arg = tree.to_str().context("temporary path")?;
    let deb_arg = deb.to_str().context("package path")?;
    ok("dpkg-deb", &["-R", deb_arg, tree_arg])?;
    let control = tree.join("DEBIAN/control");
    let fields = std::fs::read_to_string(&control)?;
    let version = fields
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .context("no Version in the .deb's control file")?;
    let previous = format!("{version}~previous");
    std::fs::write(
        &control,
        fields.replace(
            &format!("Version: {version}\n"),
            &format!("Version: {previous}\n"),
        ),
    )?;
    let out = dir.join("previous.deb");
    let out_arg = out.to_str().context("temporary path")?;
    ok(
        "dpkg-deb",
        &["--root-owner-group", "-Zgzip", "-b", tree_arg, out_arg],
    )?;
    Ok((out, previous))
}

#[test]
#[ignore = "needs the packages from scripts/package.sh: scripts/test.sh runs it"]
fn lintian_finds_no_error_in_the_deb() -> Result<()> {
    let deb = packages()?.deb;
    // lintian leaves a cache of its own in TMPDIR: one that goes with the test.
    let tmp = tempfile::tempdir()?;
    let out = Command::new("lintian")
        .env("TMPDIR", tmp.path())
        .args([
            "--fail-on",
            "error",
            "--tag-display-limit",
            "0",
            "--allow-root",
        ])
        .arg(&deb)
        .output()
        .context("cannot run lintian (make test installs it)")?;
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    // Warnings are allowed, and shown in the test's output.
    println!("lintian {}:\n{report}", deb.display());
    ensure!(
        out.status.success() && !report.lines().any(|l| l.starts_with("E: ")),
        "lintian reports errors on {}:\n{report}",
        deb.display()
    );
    Ok(())
}

#[test]
#[ignore = "needs the packages from scripts/package.sh: scripts/test.sh runs it"]
fn both_packages_hold_the_commands_entry_icons_pages_and_completions() -> Result<()> {
    let p = packages()?;
    let rpm_arg = p.rpm.to_str().context("package path")?;
    let deb_arg = p.deb.to_str().context("package path")?;
    let rpm: Vec<String> = ok("rpm", &["-qpl", rpm_arg])?
        .lines()
        .map(str::to_string)
        .collect();
    let deb: Vec<String> = ok("dpkg-deb", &["-c", deb_arg])?
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| format!("/{}", p.trim_start_matches("./")))
        .collect();
    let icons: Vec<String> = ICON_SIZES
        .iter()
        .map(|s| format!("/usr/share/icons/hicolor/{s}/apps/tether-desktop.png"))
        .collect();
    for (deb_path, rpm_path) in CONTENTS {
        let rpm_path = if rpm_path.is_empty() {
            deb_path
        } else {
            rpm_path
        };
        ensure!(
            deb.iter().any(|p| p == deb_path),
            "the .deb has no {deb_path}: {deb:#?}"
        );
        ensure!(
            rpm.iter().any(|p| p == rpm_path),
            "the .rpm has no {rpm_path}: {rpm:#?}"
        );
    }
    for icon in &icons {
        ensure!(deb.contains(icon), "the .deb has no {icon}: {deb:#?}");
        ensure!(rpm.contains(icon), "the .rpm has no {icon}: {rpm:#?}");
    }

    // What the app needs at run time, named by each: WebKitGTK, the tray's library, OpenSSH.
    let depends = ok("dpkg-deb", &["-f", deb_arg, "Depends"])?;
    for wanted in [
        "libwebkit2gtk-4.1-0",
        "libayatana-appindicator3-1",
        "openssh-client",
    ] {
        ensure!(
            depends.contains(wanted),
            "the .deb does not depend on {wanted}: {depends}"
        );
    }
    let requires = ok("rpm", &["-qp", "--requires", rpm_arg])?;
    for wanted in [
        "libwebkit2gtk-4.1.so.0()(64bit)",
        "libayatana-appindicator3.so.1()(64bit)",
        "openssh-clients",
    ] {
        ensure!(
            requires.contains(wanted),
            "the .rpm does not require {wanted}: {requires}"
        );
    }
    // The commands are executable in both.
    let modes = ok(
        "rpm",
        &[
            "-qp",
            "--qf",
            "[%{FILEMODES:perms} %{FILENAMES}\n]",
            rpm_arg,
        ],
    )?;
    for command in [TETHER, DESKTOP] {
        ensure!(
            modes.lines().any(|l| l == format!("-rwxr-xr-x {command}")),
            "{command} is not 0755 in the .rpm: {modes}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the packages from scripts/package.sh and root: scripts/test.sh runs it"]
async fn an_install_upgrade_and_removal_keep_the_users_session_and_leave_nothing() -> Result<()> {
    ensure!(
        ok("id", &["-u"])?.trim() == "0",
        "installs packages: run as root (CI and scripts/test.sh do)"
    );
    if let Some(v) = installed_version() {
        bail!("{PACKAGE} {v} is already installed here: this test installs and removes its own (dpkg -r {PACKAGE} first)");
    }
    let p = packages()?;
    let scratch = tempfile::tempdir()?;
    let (previous, previous_version) = previous_of(&p.deb, scratch.path())?;
    let _installation = Installation;
    ok("dpkg", &["-i", previous.to_str().context("path")?])?;
    ensure!(installed_version().as_deref() == Some(previous_version.as_str()));

    // A user of the previous package: signed in, ssh wired, a tunnel open (kept by an agent of
    // the installed tether), the app in the tray.
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let _agent = user.agent_stopper();
    installed(&user, &["auth:api-token-login"], Some(ALICE_TOKEN))?;
    installed(&user, &["config:ssh", "--write"], None)?;
    installed(&user, &["ssh-cert:load"], None)?;
    let hook = hook_line(&user)?;
    ensure!(
        hook.contains(&format!("test -x '{TETHER}' && exec '{TETHER}' ")),
        "the hook runs the installed tether, and tolerates its absence: {hook}"
    );
    let port = open_redis(&user)?;
    let before = Desktop::start().await?;
    let old_app = before.launch_program_for(Path::new(DESKTOP), &user, &["--hidden"])?;
    let old_item = before.tray_item().await?;

    // The upgrade, under the running app and agent.
    ok("dpkg", &["-i", p.deb.to_str().context("path")?])?;
    let version = installed_version().context("not installed after the upgrade")?;
    ensure!(version != previous_version, "still {version}");
    let said = ok(TETHER, &["--version"])?;
    ensure!(
        said.starts_with(&format!("tether {version} (")) && said.trim_end().ends_with(')'),
        "tether --version from /usr/bin: {said}"
    );
    // The app from before goes on (its binary replaced under it) until it is quit.
    before
        .watcher
        .wait_for_menu_entry(&old_item, "Sign out", Duration::from_secs(20))
        .await
        .context("the app started before the upgrade")?;
    drop(old_app);
    drop(before);

    // The session and the tunnel's port are kept.
    let who = installed(&user, &["auth:info", "-P", "username"], None)?;
    ensure!(
        who.trim() == "alice",
        "signed in as {who:?} after the upgrade"
    );
    installed(&user, &["ssh-cert:info"], None)?;
    installed(&user, &["agent:stop"], None)?;
    ensure!(
        open_redis(&user)? == port,
        "the tunnel's port changed across the upgrade"
    );
    ensure!(
        hook_line(&user)? == hook,
        "the hook line changed: {}",
        hook_line(&user)?
    );

    // The upgraded app starts on a desktop and registers its tray, signed in.
    let after = Desktop::start().await?;
    let app = after.launch_program_for(Path::new(DESKTOP), &user, &["--hidden"])?;
    let item = after.tray_item().await?;
    after
        .watcher
        .wait_for_menu_entry(&item, "Sign out", Duration::from_secs(30))
        .await?;
    drop(app);
    drop(after);
    installed(&user, &["agent:stop"], None)?;

    // What the package installed, checked where it landed.
    ok(
        "desktop-file-validate",
        &["/usr/share/applications/Tether.desktop"],
    )?;
    ok(
        "appstreamcli",
        &[
            "validate",
            "--no-net",
            "/usr/share/metainfo/sh.tether.desktop.metainfo.xml",
        ],
    )?;
    for (page, wanted) in [("tether", "tether ssh"), ("tether-desktop", "--hidden")] {
        let file = format!("/usr/share/man/man1/{page}.1.gz");
        let rendered = ok("man", &["-l", &file])?;
        ensure!(rendered.contains(wanted), "man -l {file}:\n{rendered}");
    }
    let completion = ok(
        "bash",
        &[
            "-c",
            ". /usr/share/bash-completion/completions/tether && complete -p tether",
        ],
    )?;
    ensure!(
        completion.contains("tether"),
        "bash completion: {completion}"
    );

    // Removal: every file the package installed goes, the user's data stays, plain ssh works.
    let files: Vec<PathBuf> = ok("dpkg", &["-L", PACKAGE])?
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    ensure!(files.len() > 10, "dpkg -L lists {files:?}");
    ok("dpkg", &["-r", PACKAGE])?;
    ensure!(
        installed_version().is_none(),
        "still installed after dpkg -r"
    );
    let left: Vec<&PathBuf> = files.iter().filter(|p| p.exists()).collect();
    ensure!(left.is_empty(), "dpkg -r left {left:?}");
    let data = user.home().join(".local/share/tether");
    for kept in [
        "sessions/tether-sim/id_ed25519",
        "tunnels/tether-sim.ports.json",
    ] {
        ensure!(
            data.join(kept).exists(),
            "removing the package removed {kept}"
        );
    }
    let host = format!("{DEMO_PROJECT}-main-7rqtwti--app@ssh.eu-3.tether.test");
    let (_, said) = openssh::settings(&user, &host)?;
    ensure!(said.is_empty(), "plain ssh after the removal said {said:?}");
    Ok(())
}
