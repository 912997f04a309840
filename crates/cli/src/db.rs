//! `environment:relationships`, `db:sql` and `db:dump`: the official client's commands
//! (`legacy/src/Command/Environment/EnvironmentRelationshipsCommand.php`,
//! `legacy/src/Command/Db/DbSqlCommand.php`, `DbDumpCommand.php`). Like the official client
//! they run the database client on the app over SSH (the session's `ssh`, as `tether ssh`),
//! except when `PLATFORM_RELATIONSHIPS` is set here and no `-p`/`-e`/`-A` names something
//! else: then the client runs on this machine with those relationships, so after
//! `export PLATFORM_RELATIONSHIPS="$(tether tunnel:info --encode)"` it goes through the
//! tunnels. The command text is core's ([`tether_core::db`]), byte for byte the official one.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tether_core::agent::{self, AgentClient, Reply, Request};
use tether_core::api::{Environment, ProjectId};
use tether_core::db::{self, Choice, Database, DumpOptions, ReadOnly, SchemaPick};
use tether_core::guard::{Entry, EnvironmentType};
use tether_core::select::EnvironmentRef;
use tether_core::size;
use tether_core::ssh::{Selection, SshUrl};
use tether_core::tunnel::Relationships;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browse::{address, choose, choose_environment, choose_project, named_app};
use crate::context::{env_nonempty, Ctx};
use crate::output::{print, progress};
use crate::ssh::RemoteExit;
use crate::tunnel::{AppFlags, UsageError};

/// `environment:relationships`.
#[derive(clap::Args, Debug)]
pub struct RelationshipsArgs {
    /// The environment (as -e).
    #[arg(
        id = "environment_arg",
        value_name = "ENVIRONMENT",
        conflicts_with = "environment"
    )]
    pub environment: Option<EnvironmentRef>,
    #[command(flatten)]
    pub app: AppFlags,
    /// The relationship property to view, by dot path such as `database.0.port`.
    #[arg(short = 'P', long)]
    pub property: Option<String>,
    /// Accepted for compatibility: Tether reads the relationships afresh every time.
    #[arg(long)]
    pub refresh: bool,
}

/// `db:sql`.
#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// An SQL statement to execute (none: an interactive shell, or statements from stdin).
    pub query: Option<String>,
    #[command(flatten)]
    pub app: AppFlags,
    /// The service relationship to use (`database`, `name.N`); a Redis one runs `redis-cli`.
    #[arg(short = 'r', long = "relationship", value_name = "REL")]
    pub relationship: Option<String>,
    /// Produce raw, non-tabular output.
    #[arg(long)]
    pub raw: bool,
    /// The schema to use; default the deployed service's (asked when several) or the
    /// relationship's path (usually `main`); `''` for none.
    #[arg(long)]
    pub schema: Option<String>,
    /// On production, start the SQL shell writable (it starts read-only).
    #[arg(long)]
    pub write: bool,
    /// Do not ask before opening a SQL shell on production.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// `db:dump`.
#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    #[command(flatten)]
    pub app: AppFlags,
    /// The service relationship to use.
    #[arg(short = 'r', long = "relationship", value_name = "REL")]
    pub relationship: Option<String>,
    /// The schema to dump; default the deployed service's (asked when several) or the
    /// relationship's path (usually `main`).
    #[arg(long)]
    pub schema: Option<String>,
    /// A custom filename for the dump.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A custom directory for the dump.
    #[arg(short = 'd', long, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Add a timestamp (UTC) to the dump filename.
    #[arg(short = 't', long)]
    pub timestamp: bool,
    /// Compress the dump using gzip (on the server, as the official client).
    #[arg(short = 'z', long)]
    pub gzip: bool,
    /// Output to STDOUT instead of a file.
    #[arg(short = 'o', long, conflicts_with_all = ["file", "directory"])]
    pub stdout: bool,
    /// Table(s) to include (repeatable).
    #[arg(long, value_name = "TABLE")]
    pub table: Vec<String>,
    /// Table(s) to exclude (repeatable).
    #[arg(long, value_name = "TABLE")]
    pub exclude_table: Vec<String>,
    /// Dump only schemas, no data.
    #[arg(long)]
    pub schema_only: bool,
    /// The character set encoding for the dump.
    #[arg(long)]
    pub charset: Option<String>,
    /// Do not ask before dumping a production database, nor before overwriting the file.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Where the client runs, as the official client's `getHostFromSelection` decides.
enum Host {
    /// Here, with the relationships of `PLATFORM_RELATIONSHIPS`.
    Local,
    /// On the app, over SSH.
    Remote {
        project: ProjectId,
        env: Box<Environment>,
        url: SshUrl,
    },
}

async fn select_host(ctx: &Ctx, flags: &AppFlags) -> Result<Host> {
    let project = flags.project.as_ref().map(|p| p.project.to_string());
    let environment = flags.environment.as_ref().map(|e| e.to_string());
    let app = flags.app.as_ref().map(|a| a.to_string());
    if db::runs_locally(
        env_nonempty,
        project.as_deref(),
        environment.as_deref(),
        app.as_deref(),
    ) {
        tracing::info!("running locally with PLATFORM_RELATIONSHIPS");
        return Ok(Host::Local);
    }
    let chosen = choose_project(ctx, flags.project.as_ref()).await?;
    let env = choose_environment(ctx, &chosen, flags.environment.as_ref()).await?;
    let selection = Selection {
        app: named_app(&chosen, flags.app.as_ref())?,
        instance: None,
        worker: None,
    };
    let url = address(ctx, &chosen.project, &env, selection).await?;
    Ok(Host::Remote {
        project: chosen.project,
        env: Box::new(env),
        url,
    })
}

/// The options for ssh: those of the profile's `*_SSH_OPTIONS` variable, then ours.
fn ssh_options(ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    let mut options = env_nonempty(&ctx.access.ssh_options_variable())
        .map(|v| ctx.access.ssh_options_from(&v))
        .unwrap_or_default();
    options.extend(extra.iter().map(|s| s.to_string()));
    options
}

impl Host {
    /// A process that runs `command` (shell text) there: `sh -c` here, or `ssh … COMMAND`.
    async fn command(
        &self,
        ctx: &Ctx,
        command: &str,
        options: &[&str],
    ) -> Result<tokio::process::Command> {
        match self {
            Host::Local => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(command);
                Ok(c)
            }
            Host::Remote { url, .. } => {
                let ready = ctx.access.ready(false).await?;
                if ready.renewed {
                    progress(ctx.format, "Loaded a new SSH certificate.");
                }
                let argv =
                    ctx.access
                        .ssh_argv(url, Some(command), false, &ssh_options(ctx, options));
                Ok(tokio::process::Command::from(ctx.access.ssh_command(&argv)))
            }
        }
    }

    /// Runs `command` there and returns its standard output (`RemoteEnvVars::getEnvVar`'s
    /// way of asking).
    async fn output(&self, ctx: &Ctx, command: &str) -> Result<Vec<u8>> {
        let out = self
            .command(ctx, command, &[])
            .await?
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run ssh: is OpenSSH installed?")?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            bail!(
                "`{command}` failed on {} ({}): {}",
                self.label(),
                out.status,
                stderr.trim()
            );
        }
        Ok(out.stdout)
    }

    fn label(&self) -> String {
        match self {
            Host::Local => "this machine".into(),
            Host::Remote { url, .. } => url.to_string(),
        }
    }

    /// The relationships as the platform gave them (JSON) and decoded.
    async fn relationships(&self, ctx: &Ctx) -> Result<(Value, Relationships)> {
        let value = match self {
            Host::Local => env_nonempty("PLATFORM_RELATIONSHIPS")
                .unwrap_or_default()
                .into_bytes(),
            Host::Remote { .. } => {
                let out = self.output(ctx, db::READ_RELATIONSHIPS).await?;
                db::between_markers(&out)
                    .ok_or_else(|| {
                        anyhow!(
                            "the app's answer has no relationships between the markers: check \
                             that `echo -n` works in the app's shell (its login scripts may exit \
                             early)"
                        )
                    })?
                    .to_vec()
            }
        };
        let read = db::read_value(&value);
        match self {
            Host::Local => read.context(
                "PLATFORM_RELATIONSHIPS is set here but unusable: set it again with `export \
                 PLATFORM_RELATIONSHIPS=\"$(tether tunnel:info --encode)\"`, or unset it to run \
                 on the environment",
            ),
            Host::Remote { .. } => Ok(read?),
        }
    }

    /// The environment the command acts on, when known: the selected one, or here the one
    /// whose open tunnel listens at the database's port (after the export of `tunnel:info`).
    async fn environment(&self, ctx: &Ctx, db: &Database) -> Option<(ProjectId, Environment)> {
        match self {
            Host::Remote { project, env, .. } => Some((project.clone(), (**env).clone())),
            Host::Local => {
                let loopback = db
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return None;
                }
                let socket = agent::socket_path(ctx.access.paths(), ctx.profile());
                let mut client = AgentClient::connect(&socket).await.ok()??;
                let Ok(Reply::Tunnels { tunnels }) = client.request(&Request::TunnelList).await
                else {
                    return None;
                };
                let tunnel = tunnels.into_iter().find(|t| t.local.port() == db.port)?;
                let env = ctx
                    .access
                    .catalog()
                    .environment(&tunnel.app.project, &tunnel.app.environment)
                    .await
                    .ok()?;
                Some((tunnel.app.project, env))
            }
        }
    }
}

/// The schema when `--schema` was not given, as the official client picks it: from the
/// deployed service's schemas (on the environment), else the relationship's path; a person
/// at a terminal picks among several, else the default.
async fn pick_schema(
    ctx: &Ctx,
    host: &Host,
    database: &Database,
    dump: bool,
) -> Result<Option<String>> {
    let schemas = match host {
        Host::Remote { project, env, .. } => {
            match tether_core::deployment::current(&ctx.access, project, env).await {
                Ok(Some(deployment)) => db::service_schemas(&deployment, database),
                Ok(None) => Vec::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the deployment's schemas");
                    Vec::new()
                }
            }
        }
        Host::Local => Vec::new(),
    };
    let pick = if dump {
        db::dump_schema(database, &schemas)
    } else {
        db::sql_schema(database, &schemas)
    };
    match pick {
        SchemaPick::Use(s) => Ok(s),
        SchemaPick::Ask { options, default } => {
            let labelled: Vec<(String, Option<String>)> = options
                .iter()
                .map(|o| {
                    let name = o.clone().unwrap_or_else(|| "(none)".into());
                    let label = if *o == default {
                        format!("{name} (default)")
                    } else {
                        name
                    };
                    (label, o.clone())
                })
                .collect();
            Ok(choose("a schema", &labelled)?.unwrap_or(default))
        }
    }
}

/// The database `-r` names, or the only one, or the one the person picks.
fn choose_database(
    rels: &Relationships,
    requested: Option<&str>,
    named: &[&str],
) -> Result<Database> {
    match db::choose(rels, requested, &db::DATABASE_SCHEMES, named)? {
        Choice::One(d) => Ok(*d),
        Choice::Ask(options) => {
            let labelled: Vec<(String, Database)> =
                options.iter().map(|d| (d.label(), d.clone())).collect();
            match choose("a relationship", &labelled)? {
                Some(d) => Ok(d),
                None => Err(db::DbError::Ambiguous {
                    choices: options.iter().map(|d| d.id.clone()).collect(),
                }
                .into()),
            }
        }
    }
}

pub async fn relationships(ctx: &Ctx, mut args: RelationshipsArgs) -> Result<()> {
    if args.app.environment.is_none() {
        args.app.environment = args.environment.take();
    }
    let host = select_host(ctx, &args.app).await?;
    let (raw, decoded) = host.relationships(ctx).await?;
    let shown = db::relationships_with_urls(&raw, &decoded);
    match args.property {
        Some(path) => match db::property(&shown, &path) {
            Some(v) => crate::output::property(ctx.format, v),
            None => bail!(UsageError(format!(
                "property not found: {path}. The relationships are: {} (a path such as \
                 database.0.port)",
                crate::output::keys(&shown)
            ))),
        },
        None => print(ctx.format, &shown, || {
            serde_json::to_string_pretty(&shown).unwrap_or_default()
        }),
    }
    Ok(())
}

pub async fn sql(ctx: &Ctx, args: SqlArgs) -> Result<()> {
    let host = select_host(ctx, &args.app).await?;
    let (_, rels) = host.relationships(ctx).await?;
    let database = choose_database(&rels, args.relationship.as_deref(), &[db::REDIS_SCHEME])?;
    let env = host.environment(ctx, &database).await;
    if let Some((project, env)) = &env {
        crate::guard::confirm_in(ctx, project, env, Entry::SqlShell, args.yes)?;
    }
    let production = env
        .as_ref()
        .is_some_and(|(_, e)| EnvironmentType::from_api(&e.kind).is_production());
    let query = args.query.as_deref().filter(|q| !q.is_empty());
    let read_only = production && query.is_none() && !args.write;
    let schema = match args.schema.clone() {
        Some(given) => Some(given),
        None => pick_schema(ctx, &host, &database, false).await?,
    };
    let command = db::sql_command(&database, schema.as_deref(), query, args.raw, read_only);
    match &command.read_only {
        Some(ReadOnly::Yes { leave }) => progress(
            ctx.format,
            &format!(
                "This is production: the SQL shell is read-only. To write, run `{leave}` in it, \
                 or start it with --write."
            ),
        ),
        Some(ReadOnly::Unsupported) => progress(
            ctx.format,
            "This is production, and Redis has no read-only mode: this session can change data.",
        ),
        None => {}
    }
    // Tabular output when the input is a terminal, as the official client asks ssh for one.
    let tty = !args.raw && std::io::stdin().is_terminal();
    let options: &[&str] = if tty { &["RequestTTY yes"] } else { &[] };
    let status = host
        .command(ctx, &command.text, options)
        .await?
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .await
        .context("cannot run the database client")?;
    exit_status(status)
}

fn exit_status(status: std::process::ExitStatus) -> Result<()> {
    match status.code() {
        Some(0) => Ok(()),
        Some(c) => Err(RemoteExit(u8::try_from(c).unwrap_or(1)).into()),
        None => Err(RemoteExit(255).into()),
    }
}

pub async fn dump(ctx: &Ctx, args: DumpArgs) -> Result<()> {
    let host = select_host(ctx, &args.app).await?;
    let (_, rels) = host.relationships(ctx).await?;
    let database = choose_database(&rels, args.relationship.as_deref(), &[])?;
    let env = host.environment(ctx, &database).await;
    if let Some((project, env)) = &env {
        crate::guard::confirm_in(ctx, project, env, Entry::Dump, args.yes)?;
    }
    let schema = match args.schema.clone().filter(|s| !s.is_empty()) {
        Some(given) => Some(given),
        None => pick_schema(ctx, &host, &database, true).await?,
    };
    let Some(schema) = schema else {
        bail!(UsageError(
            "the --schema is required: this relationship names no default schema".into()
        ));
    };
    let schema = schema.as_str();
    let mut options = DumpOptions {
        schema_only: args.schema_only,
        tables: args.table.clone(),
        exclude_tables: args.exclude_table.clone(),
        charset: args.charset.clone(),
        gzip: args.gzip,
        ..DumpOptions::default()
    };
    let file = if args.stdout {
        None
    } else {
        Some(dump_file(ctx, &args, &host, &database, schema, &options)?)
    };
    if let Some(file) = &file {
        progress(
            ctx.format,
            &format!(
                "Creating {} file: {}",
                if args.gzip {
                    "gzipped SQL dump"
                } else {
                    "SQL dump"
                },
                file.display()
            ),
        );
    }
    let mut ssh_extra: Vec<&str> = Vec::new();
    if args.gzip {
        // As the official client: ask the shell whether it knows pipefail.
        let set = host.output(ctx, "set -o").await.unwrap_or_default();
        options.pipefail = String::from_utf8_lossy(&set)
            .to_ascii_lowercase()
            .contains("pipefail");
    } else if matches!(host, Host::Remote { .. }) {
        ssh_extra.push("Compression yes");
    }
    let command = db::dump_command(&database, Some(schema), &options);
    let mut child = host
        .command(ctx, &command, &ssh_extra)
        .await?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run the dump")?;
    let mut from = child.stdout.take().context("no stdout")?;
    let started = Instant::now();
    let copied = match &file {
        Some(path) => {
            let mut out = tokio::fs::File::create(path)
                .await
                .with_context(|| format!("cannot write {}", path.display()))?;
            let n = copy_with_progress(&mut from, &mut out, true).await?;
            out.flush().await?;
            n
        }
        // No bar over a dump that goes to the same terminal.
        None => {
            let bar = !std::io::stdout().is_terminal();
            let mut out = tokio::io::stdout();
            let n = copy_with_progress(&mut from, &mut out, bar).await?;
            out.flush().await?;
            n
        }
    };
    let status = child.wait().await?;
    if status.success() {
        tracing::info!(
            bytes = copied,
            secs = started.elapsed().as_secs_f64(),
            "dump done"
        );
    }
    exit_status(status)
}

/// The dump's file, as `DbDumpCommand` names and checks it: `-f` (not a directory), else the
/// default name in the current directory; `-d` moves it; absolute; an existing file is
/// overwritten only after a yes (`-y`, or no terminal: the official question's default).
fn dump_file(
    ctx: &Ctx,
    args: &DumpArgs,
    host: &Host,
    database: &Database,
    schema: &str,
    options: &DumpOptions,
) -> Result<PathBuf> {
    let mut file = match &args.file {
        Some(f) => {
            if f.is_dir() {
                bail!(UsageError(format!(
                    "the file name is a directory: {}. Use the --directory option to specify a \
                     directory",
                    f.display()
                )));
            }
            if !args.gzip && f.to_string_lossy().to_ascii_lowercase().ends_with(".gz") {
                progress(
                    ctx.format,
                    "Warning: the filename ends with \".gz\", but the dump will be plain-text.\nUse --gzip to create a compressed dump.\n",
                );
            }
            f.clone()
        }
        None => {
            let (project, machine) = match host {
                Host::Remote { project, env, .. } => {
                    (Some(project.to_string()), Some(env.machine_name.clone()))
                }
                Host::Local => (
                    env_nonempty("PLATFORM_PROJECT"),
                    env_nonempty("PLATFORM_ENVIRONMENT"),
                ),
            };
            PathBuf::from(db::default_dump_file(
                project.as_deref(),
                machine.as_deref(),
                database.service.as_deref(),
                Some(schema),
                options,
            ))
        }
    };
    if let Some(dir) = &args.directory {
        if !dir.is_dir() {
            bail!(UsageError(format!(
                "directory not found: {}",
                dir.display()
            )));
        }
        let name = file.file_name().map(PathBuf::from).unwrap_or_default();
        file = dir.join(name);
    }
    if args.timestamp {
        // `Ymd-His-T`, the zone being UTC here.
        let stamp: String = crate::output::utc(crate::output::now())
            .replace(['-', ':'], "")
            .replace(' ', "-");
        file = PathBuf::from(db::with_timestamp(&file.to_string_lossy(), &stamp));
    }
    let file = std::path::absolute(&file)
        .with_context(|| format!("cannot make {} absolute", file.display()))?;
    if file.exists() && !args.yes && std::io::stdin().is_terminal() && !overwrite(&file)? {
        bail!(UsageError(format!(
            "nothing done: {} exists (-f names another file, -y overwrites)",
            file.display()
        )));
    }
    Ok(file)
}

fn overwrite(file: &Path) -> Result<bool> {
    let mut err = std::io::stderr();
    write!(err, "File exists: {}. Overwrite? [Y/n] ", file.display())?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "" | "y" | "yes"
    ))
}

/// Copies the dump, showing at a terminal (stderr, when `bar`) the bytes so far and the rate.
async fn copy_with_progress(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    bar: bool,
) -> Result<u64> {
    let show = bar && std::io::stderr().is_terminal();
    // The rate counts from the first byte, not from the connection's setup.
    let mut started: Option<Instant> = None;
    let mut last = Instant::now() - Duration::from_secs(1);
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let first = *started.get_or_insert_with(Instant::now);
        to.write_all(&buf[..n]).await?;
        total += n as u64;
        if show && last.elapsed() >= Duration::from_millis(200) {
            last = Instant::now();
            eprint!("\r{}", progress_line(total, first.elapsed(), false));
        }
    }
    if show {
        let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
        eprintln!("\r{}", progress_line(total, elapsed, true));
    }
    Ok(total)
}

/// `[=====>      ] 12.3 MiB  4.1 MiB/s`: the size is not known ahead, so the bar runs
/// back and forth while the dump goes, and is full when done.
fn progress_line(bytes: u64, elapsed: Duration, done: bool) -> String {
    const WIDTH: usize = 20;
    let bar = if done {
        "=".repeat(WIDTH)
    } else {
        let tick = (elapsed.as_millis() / 200) as usize % (2 * WIDTH - 2);
        let pos = if tick < WIDTH {
            tick
        } else {
            2 * WIDTH - 2 - tick
        };
        let mut s = vec![' '; WIDTH];
        s[pos] = '>';
        for c in s.iter_mut().take(pos) {
            *c = '=';
        }
        s.into_iter().collect()
    };
    let secs = elapsed.as_secs_f64().max(0.001);
    format!(
        "[{bar}] {}  {}/s{}   ",
        size::binary(bytes as f64),
        size::binary(bytes as f64 / secs),
        if done { "  done" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_bytes_and_rate() {
        let line = progress_line(3 * 1024 * 1024, Duration::from_secs(2), true);
        assert!(line.contains("[====================]"), "{line}");
        assert!(line.contains("3.0 MiB  1.5 MiB/s"), "{line}");
        let line = progress_line(512, Duration::from_millis(400), false);
        assert!(line.starts_with("[==>"), "{line}");
        assert!(line.contains("512 B"), "{line}");
    }
}
