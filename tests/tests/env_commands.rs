//! `environment:url`, `mount:list`, `mount:upload`/`mount:download`, `environment:scp` and
//! `environment:logs` on the real `tether` against tether-sim, through the system ssh, rsync
//! and scp: the route the API publishes, the fixture's mounts, a file tree that goes up and comes
//! back byte for byte, a log line appended while `--tail` follows, and bad input refused with
//! a clear error before any local file changes. One simulator and one user for the suite.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use tether_e2e::cli::{run_tether, succeeded, BrowserStub, User};
use tether_e2e::*;
use tether_sim::{SimHandle, SimOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

const SHOP: [&str; 6] = ["-p", DEMO_PROJECT, "-e", "main", "-A", "app"];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn with<'a>(command: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![command];
    v.extend_from_slice(&SHOP);
    v.extend_from_slice(rest);
    v
}

/// `tether ARGS` with more variables in its environment.
async fn run_env(user: &User, args: &[&str], vars: &[(&str, &str)]) -> Result<Output> {
    let mut cmd = user.tether(args)?;
    cmd.envs(vars.iter().copied());
    run_tether(cmd, args, None).await
}

async fn ok_env(user: &User, args: &[&str], vars: &[(&str, &str)]) -> Result<String> {
    let out = run_env(user, args, vars).await?;
    succeeded(args, &out)?;
    Ok(text(&out.stdout))
}

/// Fails unless `tether ARGS` fails with an error that says each of `says`.
async fn refused(user: &User, args: &[&str], says: &[&str]) -> Result<String> {
    let out = run_env(user, args, &[]).await?;
    let stderr = text(&out.stderr);
    ensure!(
        !out.status.success(),
        "tether {args:?} should fail: {stderr}"
    );
    for s in says {
        ensure!(stderr.contains(s), "tether {args:?}: no {s:?} in {stderr}");
    }
    Ok(stderr)
}

/// The current deployment as the API publishes it.
async fn deployment(sim: &SimHandle) -> Result<Value> {
    let token = api_token_login(&sim.info, ALICE_TOKEN).await?;
    Ok(http()
        .get(format!(
            "{}/projects/{DEMO_PROJECT}/environments/main/deployments/current",
            sim.info.api_url
        ))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// `tether mount:download` on the shop's app into `target`, with `options`; fails unless it
/// succeeds.
async fn download_to(user: &User, target: &Path, options: &[&str]) -> Result<String> {
    let target = target.to_str().context("a target path that is not UTF-8")?;
    user.ok(
        &with("mount:download", &[options, &["--target", target]].concat()),
        None,
    )
    .await
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// Everything under `dir` (paths and bytes), to show that a refused command changed nothing.
fn snapshot(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    tree(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_mounts_scp_and_logs_against_the_simulator() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::signed_in(&sim.info, ALICE_TOKEN).await?;
    let work = tempfile::tempdir()?;
    urls(&sim, &user, work.path())
        .await
        .context("environment:url")?;
    mount_list(&user).await.context("mount:list")?;
    mount_round_trip(&sim, &user, work.path())
        .await
        .context("mount:upload and mount:download")?;
    at_a_terminal(&user, work.path())
        .await
        .context("mount:download at a terminal")?;
    scp(&sim, &user, work.path())
        .await
        .context("environment:scp")?;
    logs(&sim, &user).await.context("environment:logs")?;
    bad_input(&user, work.path()).await.context("bad input")?;
    Ok(())
}

async fn urls(sim: &SimHandle, user: &User, dir: &Path) -> Result<()> {
    let routes = deployment(sim).await?["routes"].clone();
    let route = routes
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .context("the deployment has no route")?;
    let env = ["-p", DEMO_PROJECT, "-e", "main"];
    let piped = user
        .ok(&[&["url"][..], &env, &["--pipe"]].concat(), None)
        .await?;
    assert_eq!(
        piped,
        format!("{route}\n"),
        "exactly the route the API publishes"
    );
    let primary = user
        .ok(
            &[&["environment:url"][..], &env, &["--primary", "--pipe"]].concat(),
            None,
        )
        .await?;
    assert_eq!(primary, format!("{route}\n"));

    // No display: the URL is printed, no browser started.
    let stub = BrowserStub::new(dir, "browser")?;
    let printed = ok_env(
        user,
        &[&["url"][..], &env].concat(),
        &[("BROWSER", stub.path())],
    )
    .await?;
    assert_eq!(printed, format!("{route}\n"));
    assert!(stub.opened().is_empty(), "no display, no browser");

    // A display: $BROWSER opens it (and it is printed, as the official client does).
    let display = [("BROWSER", stub.path()), ("DISPLAY", ":93")];
    let printed = ok_env(
        user,
        &[&["url"][..], &env, &["--primary"]].concat(),
        &display,
    )
    .await?;
    assert_eq!(printed, format!("{route}\n"));
    assert_eq!(
        stub.opened(),
        [route.as_str()],
        "$BROWSER got the primary URL"
    );
    // --browser COMMAND wins over $BROWSER; --browser 0 opens nothing.
    let chosen = BrowserStub::new(dir, "chosen")?;
    ok_env(
        user,
        &[&["url"][..], &env, &["--browser", chosen.path()]].concat(),
        &display,
    )
    .await?;
    assert_eq!(chosen.opened(), [route.as_str()]);
    assert_eq!(
        stub.opened().len(),
        1,
        "$BROWSER was not used with --browser"
    );
    let printed = ok_env(
        user,
        &[&["url"][..], &env, &["--browser", "0"]].concat(),
        &display,
    )
    .await?;
    assert_eq!(printed, format!("{route}\n"));
    assert_eq!((stub.opened().len(), chosen.opened().len()), (1, 1));
    let out = run_env(
        user,
        &[&["url"][..], &env, &["--browser", "no-such-browser-here"]].concat(),
        &display,
    )
    .await?;
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("Command not found: no-such-browser-here"));
    assert_eq!(text(&out.stdout), format!("{route}\n"));

    // A local PLATFORM_ROUTES (an app container, an export) is read without the platform,
    // primary first, then HTTPS, then shorter; unless the flags name another project.
    let local = json!({
        "http://www.shop.example/": { "type": "redirect", "to": "https://www.shop.example/" },
        "https://shop.example/": { "type": "redirect", "to": "https://www.shop.example/" },
        "https://www.shop.example/": { "type": "upstream", "upstream": "app:http", "primary": true },
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(local.to_string());
    let vars = [
        ("PLATFORM_ROUTES", encoded.as_str()),
        ("PLATFORM_PROJECT", DEMO_PROJECT),
    ];
    let listed = ok_env(user, &["url", "--pipe"], &vars).await?;
    assert_eq!(
        listed,
        "https://www.shop.example/\nhttps://shop.example/\nhttp://www.shop.example/\n"
    );
    let other = ok_env(
        user,
        &["url", "-p", "rjify4yjcwxaa", "-e", "main", "--pipe"],
        &vars,
    )
    .await?;
    assert!(
        other.contains("rjify4yjcwxaa"),
        "another project's routes come from the API: {other}"
    );
    let out = run_env(
        user,
        &["url", "--pipe"],
        &[("PLATFORM_ROUTES", "bm90IGpzb24=")],
    )
    .await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("PLATFORM_ROUTES"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

async fn mount_list(user: &User) -> Result<()> {
    let out = run_env(user, &with("mount:list", &[]), &[]).await?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for mount in ["web/uploads", "var/cache"] {
        assert!(table.contains(mount), "{table}");
    }
    assert!(table.contains("source: storage"), "{table}");
    assert!(
        text(&out.stderr).contains("environment main [PRODUCTION], app app"),
        "production is marked: {}",
        text(&out.stderr)
    );
    let paths = user.ok(&with("mounts", &["--paths"]), None).await?;
    assert_eq!(paths, "var/cache\nweb/uploads\n");
    let json: Value = serde_json::from_str(
        &user
            .ok(
                &with("mount:list", &["--format", "json", "--refresh"]),
                None,
            )
            .await?,
    )?;
    assert_eq!(json[1]["path"], "web/uploads");
    assert_eq!(json[1]["source"], "storage");
    // The worker has the app's mounts; staging is not production.
    let staging = run_env(
        user,
        &[
            "mount:list",
            "-p",
            DEMO_PROJECT,
            "-e",
            "staging",
            "-A",
            "app",
            "--worker",
            "queue",
        ],
        &[],
    )
    .await?;
    assert!(staging.status.success(), "{}", text(&staging.stderr));
    assert!(
        text(&staging.stderr).contains("environment staging, worker app--queue"),
        "{}",
        text(&staging.stderr)
    );
    // A local PLATFORM_APPLICATION stands for the app.
    let app = json!({ "name": "app", "mounts": { "/private/": { "source": "local", "source_path": "private" } } });
    let encoded = base64::engine::general_purpose::STANDARD.encode(app.to_string());
    let local = ok_env(
        user,
        &["mount:list", "--paths"],
        &[("PLATFORM_APPLICATION", encoded.as_str())],
    )
    .await?;
    assert_eq!(local, "private\n");
    Ok(())
}

/// The directory of the app's files in the simulator (the app without an instance).
fn app_dir(sim: &SimHandle) -> PathBuf {
    sim.scratch_dir()
        .join(DEMO_PROJECT)
        .join("main")
        .join("app")
}

async fn mount_round_trip(sim: &SimHandle, user: &User, dir: &Path) -> Result<()> {
    // On the platform a mount exists before anything is uploaded to it.
    user.ok(
        &with("ssh", &["--", "mkdir -p web/uploads var/cache"]),
        None,
    )
    .await?;
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("nested/deeper"))?;
    std::fs::write(src.join("top.txt"), "at the top\n")?;
    std::fs::write(src.join("name with spaces.txt"), "spaced out\n")?;
    let binary: Vec<u8> = (0..=255u8)
        .cycle()
        .take(300_000)
        .map(|b| b ^ 0x5a)
        .collect();
    std::fs::write(src.join("nested/deeper/blob.bin"), &binary)?;
    std::fs::write(src.join("nested/skip.log"), "left out\n")?;
    let sent = tree(&src)?;

    let out = run_env(
        user,
        &with(
            "mount:upload",
            &[
                "-m",
                "web/uploads",
                "--source",
                src.to_str().unwrap_or_default(),
            ],
        ),
        &[],
    )
    .await?;
    ensure!(out.status.success(), "upload: {}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("to the remote mount web/uploads of environment main [PRODUCTION], app app"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        tree(&app_dir(sim).join("web/uploads"))?,
        sent,
        "the mount holds what was uploaded, in the app's directory"
    );

    let target = dir.join("downloaded/new dir");
    let out = run_env(
        user,
        &with(
            "mount:download",
            &[
                "-m",
                "/web/uploads/",
                "--target",
                target.to_str().unwrap_or_default(),
            ],
        ),
        &[],
    )
    .await?;
    ensure!(out.status.success(), "download: {}", text(&out.stderr));
    assert_eq!(tree(&target)?, sent, "the tree came back byte for byte");

    // --exclude, then --delete.
    let filtered = dir.join("filtered");
    download_to(
        user,
        &filtered,
        &["-m", "web/uploads", "--exclude", "*.log"],
    )
    .await?;
    let got = tree(&filtered)?;
    assert!(!got.contains_key("nested/skip.log") && got.contains_key("nested/deeper/blob.bin"));
    std::fs::write(filtered.join("extra.txt"), "not in the mount")?;
    download_to(user, &filtered, &["-m", "web/uploads", "--delete", "-y"]).await?;
    assert_eq!(
        tree(&filtered)?,
        sent,
        "--delete removed what the mount lacks"
    );

    // --all: each mount in a directory of its own.
    let all = dir.join("all");
    download_to(user, &all, &["--all"]).await?;
    assert_eq!(tree(&all.join("web/uploads"))?, sent);
    assert!(all.join("var/cache").is_dir());
    // --source-path: each in a directory named after the mount's source path.
    let by_source = dir.join("by-source");
    download_to(user, &by_source, &["-a", "--source-path"]).await?;
    assert_eq!(tree(&by_source.join("web-uploads"))?, sent);
    // Includes come before excludes (rsync's first matching rule wins): only the .bin.
    let only_bin = dir.join("only-bin");
    download_to(
        user,
        &only_bin,
        &[
            "-m",
            "web/uploads",
            "--include",
            "*/",
            "--include",
            "*.bin",
            "--exclude",
            "*",
        ],
    )
    .await?;
    let got: Vec<String> = tree(&only_bin)?.into_keys().collect();
    assert_eq!(got, ["nested/deeper/blob.bin"]);
    Ok(())
}

/// At a terminal: the mount is chosen from a list (or all of them), the target directory is
/// asked for when not given, the copy is confirmed first (a "no" copies nothing and makes no
/// directory), and rsync shows the transfer's progress.
async fn at_a_terminal(user: &User, dir: &Path) -> Result<()> {
    let declined = dir.join("declined");
    let d = declined.to_str().unwrap_or_default();
    let (status, shown) = user
        .at_a_terminal(
            &with("mount:download", &["--target", d]),
            &[("Number (1-3): ", "2\n"), ("continue? [Y/n]", "n\n")],
        )
        .await?;
    ensure!(!status.success(), "a no went ahead: {shown}");
    ensure!(
        shown.contains("[2] web/uploads: storage")
            && shown.contains("[3] All mounts")
            && shown.contains("nothing downloaded"),
        "{shown}"
    );
    ensure!(!declined.exists(), "a declined download made its directory");
    // No --target: asked for, as the official client asks.
    let chosen = dir.join("chosen");
    let shown = answered(
        user,
        "mount:download",
        ("Number (1-3): ", "2"),
        ("Target directory: ", &chosen),
    )
    .await?;
    ensure!(
        shown.contains("Downloading files from the remote mount web/uploads of environment main [PRODUCTION], app app"),
        "{shown}"
    );
    // rsync's whole-transfer progress (--info=progress2): the bytes, 100%, the rate.
    ensure!(
        shown.contains("100%") && shown.contains("/s"),
        "no progress shown: {shown}"
    );
    ensure!(tree(&chosen)?.contains_key("nested/deeper/blob.bin"));
    // All mounts, each into a directory named after its path under the target given.
    let all = dir.join("all");
    let shown = answered(
        user,
        "mount:download",
        ("Number (1-3): ", "3"),
        ("Target directory [.]: ", &all),
    )
    .await?;
    ensure!(
        tree(&all)?.contains_key("web/uploads/nested/deeper/blob.bin"),
        "{shown}"
    );
    // An upload without --source: the source directory is asked for too.
    let source = dir.join("asked source");
    std::fs::create_dir_all(&source)?;
    std::fs::write(source.join("asked.txt"), b"uploaded from a question\n")?;
    let shown = answered(
        user,
        "mount:upload",
        ("Number (1-2): ", "2"),
        ("Source directory: ", &source),
    )
    .await?;
    let back = dir.join("asked back");
    download_to(user, &back, &["-m", "web/uploads"]).await?;
    ensure!(
        tree(&back)?.get("asked.txt").map(Vec::as_slice)
            == Some(&b"uploaded from a question\n"[..]),
        "the asked-for source did not arrive: {shown}"
    );
    Ok(())
}

/// `tether COMMAND` on the shop's app at a terminal, answering its mount list with `mount`'s
/// number, its directory question with `directory`'s path, and its confirmation with the
/// default (yes); fails unless it succeeds, and returns what the terminal showed.
async fn answered(
    user: &User,
    command: &str,
    mount: (&str, &str),
    directory: (&str, &Path),
) -> Result<String> {
    let number = format!("{}\n", mount.1);
    let path = format!("{}\n", directory.1.display());
    let (status, shown) = user
        .at_a_terminal(
            &with(command, &[]),
            &[
                (mount.0, &number),
                (directory.0, &path),
                ("continue? [Y/n]", "\n"),
            ],
        )
        .await?;
    ensure!(status.success(), "{shown}");
    Ok(shown)
}

async fn scp(sim: &SimHandle, user: &User, dir: &Path) -> Result<()> {
    let local = dir.join("to send.txt");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &bytes)?;
    let out = run_env(
        user,
        &with(
            "scp",
            &[
                local.to_str().unwrap_or_default(),
                "remote:var/cache/sent.bin",
            ],
        ),
        &[],
    )
    .await?;
    ensure!(out.status.success(), "scp up: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read(app_dir(sim).join("var/cache/sent.bin"))?,
        bytes
    );
    let back = dir.join("came back.bin");
    user.ok(
        &with(
            "environment:scp",
            &[
                "remote:var/cache/sent.bin",
                back.to_str().unwrap_or_default(),
            ],
        ),
        None,
    )
    .await?;
    assert_eq!(
        std::fs::read(&back)?,
        bytes,
        "the file came back byte for byte"
    );
    // -r copies a directory.
    let copied = dir.join("copied");
    user.ok(
        &with(
            "scp",
            &[
                "-r",
                "remote:web/uploads",
                copied.to_str().unwrap_or_default(),
            ],
        ),
        None,
    )
    .await?;
    assert_eq!(tree(&copied)?, tree(&app_dir(sim).join("web/uploads"))?);
    Ok(())
}

async fn logs(sim: &SimHandle, user: &User) -> Result<()> {
    let log = app_dir(sim).join("var/log/app.log");
    ensure!(
        log.exists(),
        "the simulator gives the app a log ({})",
        log.display()
    );
    let whole = std::fs::read_to_string(&log)?;
    let last: Vec<&str> = whole
        .lines()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let out = run_env(user, &with("log", &["app", "--lines", "2"]), &[]).await?;
    ensure!(out.status.success(), "logs: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{}\n", last.join("\n")));
    assert!(
        text(&out.stderr).contains("/var/log/app.log")
            && text(&out.stderr).contains("[PRODUCTION]"),
        "{}",
        text(&out.stderr)
    );
    let five = user
        .ok(
            &with("environment:logs", &["access.log", "--lines", "5"]),
            None,
        )
        .await?;
    let access = std::fs::read_to_string(app_dir(sim).join("var/log/access.log"))?;
    let expected: Vec<&str> = access.lines().collect();
    let expected = &expected[expected.len().saturating_sub(5)..];
    assert_eq!(five.lines().collect::<Vec<_>>(), expected);

    // --tail follows the file until the test ends it.
    let mut cmd = user.tether(&with("logs", &["app", "--tail", "--lines", "1"]))?;
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("no first line from --tail")??
        .context("--tail ended")?;
    assert_eq!(Some(first.as_str()), whole.lines().last());
    let marker = format!("appended by the test at {:?}", Instant::now());
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log)?;
        writeln!(f, "{marker}")?;
    }
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            if line == marker {
                return Ok::<bool, anyhow::Error>(true);
            }
        }
        Ok(false)
    })
    .await
    .context("the appended line did not show within 20 s")??;
    assert!(seen, "--tail ended before the appended line");
    // Ctrl+C at a terminal signals the whole group: the same here.
    run_ok(std::process::Command::new("kill").args(["-INT", "--", &format!("-{pid}")]))?;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .context("tether logs --tail did not end after the interrupt")??;
    assert!(!status.success() || status.code() == Some(0));
    Ok(())
}

async fn bad_input(user: &User, dir: &Path) -> Result<()> {
    let before = snapshot(dir)?;
    let target = dir.join("never made");
    let t = target.to_str().unwrap_or_default();
    refused(
        user,
        &with("mount:download", &["-m", "nope", "--target", t]),
        &["mount not found: nope", "var/cache, web/uploads"],
    )
    .await?;
    refused(
        user,
        &with("mount:download", &["--target", t]),
        &["choose a mount with -m/--mount: var/cache, web/uploads"],
    )
    .await?;
    refused(
        user,
        &with("mount:download", &["-m", "web/uploads"]),
        &["--target"],
    )
    .await?;
    let a_file = dir.join("to send.txt");
    refused(
        user,
        &with(
            "mount:download",
            &[
                "-m",
                "web/uploads",
                "--target",
                a_file.to_str().unwrap_or_default(),
            ],
        ),
        &["is not a directory"],
    )
    .await?;
    refused(
        user,
        &with(
            "mount:upload",
            &[
                "-m",
                "nope",
                "--source",
                dir.join("src").to_str().unwrap_or_default(),
            ],
        ),
        &["mount not found: nope"],
    )
    .await?;
    refused(
        user,
        &with("mount:upload", &["-m", "web/uploads", "--source", t]),
        &["is not a directory"],
    )
    .await?;
    let copy_to = dir.join("scp-target.txt");
    refused(
        user,
        &with(
            "scp",
            &[
                a_file.to_str().unwrap_or_default(),
                copy_to.to_str().unwrap_or_default(),
            ],
        ),
        &["\"remote:\" prefix"],
    )
    .await?;
    refused(user, &with("scp", &[]), &["no files given"]).await?;
    refused(
        user,
        &with("logs", &[]),
        &["no log type given", "tether logs app"],
    )
    .await?;
    refused(
        user,
        &with("logs", &["../../etc/passwd"]),
        &["is not a name"],
    )
    .await?;
    // A type the app has no file for: tail says so, and tether fails with it.
    let stderr = refused(user, &with("logs", &["nosuchlog"]), &["nosuchlog.log"]).await?;
    assert!(stderr.to_lowercase().contains("no such file"), "{stderr}");
    refused(
        user,
        &["mount:list", "-p", DEMO_PROJECT, "-e", "main", "-A", "nope"],
        &["no app \"nope\"", "app"],
    )
    .await?;
    assert_eq!(
        snapshot(dir)?,
        before,
        "refused commands changed no local file"
    );
    assert!(!target.exists());
    Ok(())
}
