//! What the database suites (`db_commands`, `db_mariadb`) share: `tether` run as a user with
//! none of the platform's own variables (so that a test decides whether a local
//! `PLATFORM_RELATIONSHIPS` applies), the demo app's selections, and the database tunnel's
//! counters.

use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cli::{run_tether, succeeded, User};
use crate::DEMO_PROJECT;

/// The demo app on staging and on production (`main`).
pub const STAGING: [&str; 6] = ["-p", DEMO_PROJECT, "-e", "staging", "-A", "app"];
pub const PRODUCTION: [&str; 6] = ["-p", DEMO_PROJECT, "-e", "main", "-A", "app"];

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `tether ARGS` as `user` with extra variables (and none of the platform's own),
/// `stdin` fed then closed, in `cwd`.
pub async fn tether(
    user: &User,
    args: &[&str],
    vars: &[(&str, &str)],
    stdin: Option<&str>,
    cwd: Option<&Path>,
) -> Result<Output> {
    let mut cmd = user.tether(args)?;
    for v in [
        "PLATFORM_RELATIONSHIPS",
        "PLATFORM_PROJECT",
        "PLATFORM_BRANCH",
        "PLATFORM_ENVIRONMENT",
        "PLATFORM_APPLICATION_NAME",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    run_tether(cmd, args, stdin).await
}

/// The same, failing unless it succeeds; returns stdout and stderr.
pub async fn ok(
    user: &User,
    args: &[&str],
    vars: &[(&str, &str)],
    stdin: Option<&str>,
) -> Result<(String, String)> {
    let out = tether(user, args, vars, stdin, None).await?;
    succeeded(args, &out)?;
    Ok((text(&out.stdout), text(&out.stderr)))
}

/// `COMMAND BASE… REST…` from `[COMMAND, REST…]`: the selection after the command name.
pub fn with<'a>(base: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    [&command[..1], base, &command[1..]].concat()
}

/// The database tunnel's counters from `tunnel:list --format json`.
pub async fn database_counters(user: &User) -> Result<Value> {
    let (out, _) = ok(user, &["tunnel:list", "--format", "json"], &[], None).await?;
    let tunnels: Value = serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
    tunnels
        .as_array()
        .and_then(|t| t.iter().find(|t| t["relationship"] == "database"))
        .map(|t| t["counters"].clone())
        .with_context(|| format!("no database tunnel: {tunnels}"))
}

/// `db:dump -z -f DIR/items.sql.gz` on the staging app: checks that it says so and that the
/// file is gzip; returns the file.
pub async fn gzipped_dump(user: &User, dir: &Path) -> Result<std::path::PathBuf> {
    let file = dir.join("items.sql.gz");
    let file_arg = file.to_string_lossy().into_owned();
    let (_, said) = ok(
        user,
        &with(&STAGING, &["db:dump", "-z", "-f", &file_arg]),
        &[],
        None,
    )
    .await?;
    anyhow::ensure!(
        said.contains(&format!("Creating gzipped SQL dump file: {file_arg}")),
        "{said}"
    );
    let bytes = std::fs::read(&file)?;
    anyhow::ensure!(
        bytes.starts_with(&[0x1f, 0x8b]),
        "the dump is not gzip: {:?}",
        &bytes[..bytes.len().min(16)]
    );
    Ok(file)
}

/// A query's own failure is the command's exit status, with the client's message.
pub async fn failing_query_fails(user: &User) -> Result<()> {
    let out = tether(
        user,
        &with(&STAGING, &["db:sql", "SELECT * FROM no_such_table"]),
        &[],
        None,
        None,
    )
    .await?;
    anyhow::ensure!(!out.status.success(), "a failing query succeeded");
    anyhow::ensure!(
        text(&out.stderr).contains("no_such_table"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

/// Opens the production app's `database` tunnel and returns its `PLATFORM_RELATIONSHIPS`
/// value, as `tunnel:info --encode` prints it for the export.
pub async fn production_tunnel_export(user: &User) -> Result<String> {
    ok(
        user,
        &with(&PRODUCTION, &["tunnel:open", "-y", "-r", "database"]),
        &[],
        None,
    )
    .await?;
    let (encoded, _) = ok(user, &["tunnel:info", "--encode"], &[], None).await?;
    Ok(encoded.trim().to_string())
}
