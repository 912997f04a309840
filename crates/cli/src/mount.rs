//! `mount:list`, `mount:download` and `mount:upload`: an app's mounts, and copying their files
//! with rsync through the session's ssh, as the official client does
//! (`legacy/src/Command/Mount/Mount{List,Download,Upload}Command.php`). The mounts and the rsync
//! command line are core's (`tether_core::{mounts, transfer}`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::json;
use tether_core::escape::Shown;
use tether_core::mounts::{self, Mount, APPLICATION_VARIABLE};
use tether_core::transfer::{self, RsyncOptions, Sync, Verbosity};

use crate::context::{env_nonempty, Ctx};
use crate::environment::{
    container, local_variables_apply, run_tool, ssh_options, Container, ContainerFlags,
};
use crate::output::{print, progress};
use crate::session::{ask, confirm};
use crate::Format;

#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub container: ContainerFlags,
    /// Only the mount paths, one per line.
    #[arg(long)]
    pub paths: bool,
    /// Ask the platform again rather than reuse what was read in the last minute.
    #[arg(long)]
    pub refresh: bool,
}

/// What both copies take.
#[derive(clap::Args, Debug, Clone)]
pub struct CopyFlags {
    #[command(flatten)]
    pub container: ContainerFlags,
    /// The mount (its path in the app, such as web/uploads).
    #[arg(short = 'm', long, value_name = "PATH")]
    pub mount: Option<String>,
    /// Delete files at the destination that the source does not have.
    #[arg(long)]
    pub delete: bool,
    /// Leave out files that match (rsync pattern; repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Do not leave out files that match (rsync pattern; repeatable; before the excludes).
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Ask the platform again rather than reuse what was read in the last minute.
    #[arg(long)]
    pub refresh: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub copy: CopyFlags,
    /// Download every mount (each into TARGET/<mount path>).
    #[arg(short = 'a', long, conflicts_with = "mount")]
    pub all: bool,
    /// The local directory to download into (made when missing; asked for at a terminal).
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// With --all: name each mount's directory after its source path, not its mount path.
    #[arg(long, requires = "all")]
    pub source_path: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct UploadArgs {
    #[command(flatten)]
    pub copy: CopyFlags,
    /// The local directory whose contents go into the mount (asked for at a terminal).
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
}

/// `mount:list`: the app's mounts, from a local `PLATFORM_APPLICATION` when it stands for the
/// app the flags name, else from the current deployment.
pub async fn list(ctx: &Ctx, args: ListArgs) -> Result<()> {
    let local = env_nonempty(APPLICATION_VARIABLE)
        .filter(|_| args.container.worker.is_none() && args.container.instance.is_none())
        .filter(|_| local_variables_apply(&args.container.app));
    let (heading, mounts) = match local {
        Some(value) => {
            tracing::debug!("reading mounts from {APPLICATION_VARIABLE}");
            let (name, mounts) = mounts::from_application_variable(&value)?;
            let kind = if mounts::is_worker(&name) {
                "worker"
            } else {
                "app"
            };
            (format!("{kind} {name}"), mounts)
        }
        None => {
            if args.refresh {
                ctx.access.catalog().refresh().await;
            }
            let c = container(ctx, &args.container).await?;
            let mounts = mounts::app_mounts(&ctx.access, &c.project, &c.env, &c.name).await?;
            (c.label(), mounts)
        }
    };
    if mounts.is_empty() {
        progress(ctx.format, &format!("No mounts found on {heading}."));
        if ctx.format == Format::Json {
            println!("[]");
        }
        return Ok(());
    }
    if args.paths {
        let paths: Vec<&str> = mounts.iter().map(|m| m.path.as_str()).collect();
        print(ctx.format, &paths, || paths.join("\n"));
        return Ok(());
    }
    progress(ctx.format, &format!("Mounts on {heading}:"));
    print(ctx.format, &mounts, || table(&mounts));
    Ok(())
}

fn table(mounts: &[Mount]) -> String {
    let width = mounts
        .iter()
        .map(|m| m.path.len())
        .max()
        .unwrap_or(0)
        .max("MOUNT PATH".len());
    let mut t = format!("{:<width$}  DEFINITION", "MOUNT PATH");
    for m in mounts {
        t.push_str(&format!(
            "\n{:<width$}  {}",
            Shown(&m.path),
            Shown(&m.definition())
        ));
    }
    t
}

/// The mount `-m` names, or one chosen at the terminal (where `offer_all` adds "All mounts",
/// as the official `mount:download` does: `None` is that choice); an error listing them
/// otherwise.
fn chosen_mount(
    given: Option<&str>,
    app: &str,
    list: &[Mount],
    verb: &str,
    offer_all: bool,
) -> Result<Option<String>> {
    if let Some(m) = given {
        return Ok(Some(mounts::find(m, app, list)?.path.clone()));
    }
    let mut options: Vec<(String, Option<String>)> = list
        .iter()
        .map(|m| {
            let label = if m.source == "local" {
                m.path.clone()
            } else {
                format!("{}: {}", m.path, m.source)
            };
            (label, Some(m.path.clone()))
        })
        .collect();
    if offer_all && list.len() > 1 {
        options.push(("All mounts".to_string(), None));
    }
    match crate::browse::choose(&format!("a mount to {verb}"), &options)? {
        Some(m) => Ok(m),
        None => bail!(
            "choose a mount with -m/--mount: {}",
            list.iter()
                .map(|m| m.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The container a copy names and its mounts (refreshed first with `--refresh`); an error
/// when it has none, as there is nothing to copy from or to.
async fn container_mounts(ctx: &Ctx, copy: &CopyFlags) -> Result<(Container, Vec<Mount>)> {
    if copy.refresh {
        ctx.access.catalog().refresh().await;
    }
    let c = container(ctx, &copy.container).await?;
    let list = mounts::app_mounts(&ctx.access, &c.project, &c.env, &c.name).await?;
    if list.is_empty() {
        bail!("no mounts found on {} ({})", c.label(), c.url);
    }
    Ok((c, list))
}

/// Asks before a copy, at a terminal and without `-y`; elsewhere the copy goes ahead, as the
/// official client's confirmation defaults to yes when nobody can answer.
fn go_ahead(ctx: &Ctx, question: &str, yes: bool) -> Result<bool> {
    if yes || !std::io::stdin().is_terminal() {
        progress(ctx.format, question);
        return Ok(true);
    }
    confirm(
        &format!("{question}\nAre you sure you want to continue?"),
        true,
    )
}

/// The directory an option names; without it, asked at a terminal ("Target directory
/// [web/uploads]:", as the official client asks), offering `default` when there is one; an
/// error naming the option otherwise.
fn directory(
    given: Option<PathBuf>,
    question: &str,
    default: Option<PathBuf>,
    option: &str,
) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let missing = || {
        anyhow::anyhow!(
            "the {} must be given with {option} DIR",
            question.to_lowercase()
        )
    };
    if !std::io::stdin().is_terminal() {
        return Err(missing());
    }
    let answer = match &default {
        Some(d) => ask(&format!("{question} [{}]: ", shown(d)))?,
        None => ask(&format!("{question}: "))?,
    };
    match answer.as_str() {
        "" => default.ok_or_else(missing),
        a => Ok(PathBuf::from(a)),
    }
}

/// Where a mount's files are here by default: the directory of the mount's path under the
/// current directory, when there is one (run from the app's checkout, `web/uploads` is there).
/// The path comes from the platform: one that would leave the current directory (`..`) is
/// never offered.
fn local_mount_dir(mount: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(mount.trim_matches('/'));
    let inside = dir
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    (inside && dir.is_dir()).then_some(dir)
}

fn rsync_options(ctx: &Ctx, copy: &CopyFlags) -> RsyncOptions {
    RsyncOptions {
        delete: copy.delete,
        include: copy.include.clone(),
        exclude: copy.exclude.clone(),
        verbosity: if ctx.format == Format::Json {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        },
        progress: ctx.format == Format::Text && std::io::stdout().is_terminal(),
    }
}

fn shown(path: &Path) -> String {
    Shown(&path.display().to_string()).to_string()
}

/// `mount:download`: rsync from a mount (or all of them) into a local directory.
pub async fn download(ctx: &Ctx, args: DownloadArgs) -> Result<()> {
    let copy = &args.copy;
    let (c, list) = container_mounts(ctx, copy).await?;
    let chosen = if args.all {
        None
    } else {
        chosen_mount(copy.mount.as_deref(), &c.name, &list, "download from", true)?
    };
    let all = chosen.is_none();
    let default = match &chosen {
        Some(mount) => local_mount_dir(mount),
        None => Some(PathBuf::from(".")),
    };
    let target = directory(args.target.clone(), "Target directory", default, "--target")?;
    if target.exists() && !target.is_dir() {
        bail!(
            "the target {} is not a directory: choose a directory with --target",
            shown(&target)
        );
    }
    // Each mount and where it goes, all checked before anything is written.
    let plan: Vec<(String, PathBuf)> = if all {
        list.iter()
            .map(|m| {
                let sub = match (&m.source_path, args.source_path) {
                    (Some(p), true) => p.clone(),
                    (None, true) => {
                        progress(
                            ctx.format,
                            &format!("No source path defined for mount {}", m.path),
                        );
                        m.path.clone()
                    }
                    _ => m.path.clone(),
                };
                (m.path.clone(), target.join(sub))
            })
            .collect()
    } else {
        vec![(chosen.unwrap_or_default(), target.clone())]
    };
    let what = if all {
        "all remote mounts".to_string()
    } else {
        format!("the remote mount {}", plan[0].0)
    };
    let mut question = format!(
        "Downloading files from {what} of {} to {}",
        c.label(),
        shown(&target)
    );
    if !target.exists() {
        question.push_str(" (a new directory)");
    }
    if !go_ahead(ctx, &question, copy.yes)? {
        bail!("nothing downloaded");
    }
    let options = rsync_options(ctx, copy);
    let ssh = ssh_options(ctx, &c.url);
    for (mount, local) in &plan {
        std::fs::create_dir_all(local)
            .map_err(|e| anyhow::anyhow!("cannot make the directory {}: {e}", shown(local)))?;
        if all {
            progress(
                ctx.format,
                &format!("Downloading files from {mount} to {}", shown(local)),
            );
        }
        let argv = transfer::rsync_args(&ssh, &c.url, &Sync::Down { mount, local }, &options);
        run_tool(ctx, "rsync", &argv).await?;
    }
    if ctx.format == Format::Json {
        let done: Vec<_> = plan
            .iter()
            .map(|(m, l)| json!({ "mount": m, "target": l }))
            .collect();
        print(ctx.format, &done, String::new);
    }
    Ok(())
}

/// `mount:upload`: rsync a local directory's contents into a mount.
pub async fn upload(ctx: &Ctx, args: UploadArgs) -> Result<()> {
    let copy = &args.copy;
    let (c, list) = container_mounts(ctx, copy).await?;
    let mount = chosen_mount(copy.mount.as_deref(), &c.name, &list, "upload to", false)?
        .unwrap_or_default();
    let source = directory(
        args.source.clone(),
        "Source directory",
        local_mount_dir(&mount),
        "--source",
    )?;
    if !source.is_dir() {
        bail!(
            "the source {} is not a directory: give the directory whose files go into the mount",
            shown(&source)
        );
    }
    let question = format!(
        "Uploading files from {} to the remote mount {mount} of {}",
        shown(&source),
        c.label()
    );
    if !go_ahead(ctx, &question, copy.yes)? {
        bail!("nothing uploaded");
    }
    let argv = transfer::rsync_args(
        &ssh_options(ctx, &c.url),
        &c.url,
        &Sync::Up {
            local: &source,
            mount: &mount,
        },
        &rsync_options(ctx, copy),
    );
    run_tool(ctx, "rsync", &argv).await?;
    if ctx.format == Format::Json {
        print(
            ctx.format,
            &json!({ "mount": mount, "source": source }),
            String::new,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::local_mount_dir;
    use std::path::PathBuf;

    /// Tests run in the crate's directory, which has `src`.
    #[test]
    fn a_mount_path_is_offered_only_inside_the_current_directory() {
        assert_eq!(local_mount_dir("/src/"), Some(PathBuf::from("src")));
        assert_eq!(local_mount_dir("no/such/mount"), None);
        // They exist, but outside: a platform's mount path never leads the user there.
        for hostile in ["../cli/src", "src/../..", "/.."] {
            assert_eq!(local_mount_dir(hostile), None, "{hostile}");
        }
    }
}
