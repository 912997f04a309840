//! What a person does after a tunnel, from the tray and the window alike: a SQL shell, the
//! app's log, the site, a database dump, a database client, and the service's connection in
//! the forms other tools take ("Copy as…"). Each is a few lines over tether-core: the
//! clients and their forms are [`tether_core::clients`], the dump's command is
//! [`tether_core::db::dump_command`] (what `tether db:dump` sends), the site is
//! [`tether_core::routes::primary_url`], and the production question is
//! [`tether_core::guard::question`].
//!
//! Whatever needs a service's port opens the app's tunnels first through the agent (the ones
//! already open are kept), so the command line sees them too.

use std::path::PathBuf;
use std::sync::Arc;

use tauri::AppHandle;
use tether_core::agent::{Reply, Request};
use tether_core::clients::{self, Client, Service};
use tether_core::guard::{self, Entry};
use tether_core::ssh::terminal::{self, TerminalSettings};
use tether_core::tunnel::{AppKey, TunnelState};

use crate::clipboard::Secrecy;
use crate::desktop::Desktop;
use crate::view::{CopyForm, IpcError, CONFIRM};

/// The terminal from the settings and `$TERMINAL`, as "Open terminal" finds it.
fn terminal_settings(desktop: &Desktop) -> TerminalSettings {
    TerminalSettings {
        configured: Some(desktop.settings().terminal).filter(|c| !c.trim().is_empty()),
        env_terminal: std::env::var("TERMINAL").ok(),
    }
}

/// Starts `argv` in the user's terminal emulator with `env` added (a client's password, its
/// read-only option) and no token variable of Tether's.
fn spawn_in_terminal(
    settings: &TerminalSettings,
    argv: &[String],
    env: &[(String, String)],
    scrub: &[String],
) -> Result<(), IpcError> {
    let path = std::env::var_os("PATH");
    let launch = terminal::launch_for(settings, argv, |n| {
        terminal::find_on_path(path.as_deref(), n)
    })
    .map_err(|e| IpcError::of(&e))?;
    let mut cmd = std::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for var in scrub {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn().map_err(|e| {
        IpcError::other(format!("cannot start the terminal {}: {e}", launch.program))
    })?;
    // Reaped when it ends: the app runs for days.
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Starts a desktop program, detached, reaped when it ends.
fn spawn_detached(program: &std::path::Path, args: &[String]) -> Result<(), IpcError> {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| IpcError::other(format!("cannot start {}: {e}", program.display())))?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// The token variables a program started for the user must not inherit.
fn token_variables(desktop: &Desktop) -> Vec<String> {
    tether_core::access::TOKEN_VARIABLES
        .iter()
        .map(|v| v.to_string())
        .chain([desktop.access.profile().token_env_var.clone()])
        .collect()
}

/// Picks the service: the named relationship, else the first one `client` handles (SQL
/// databases first).
fn pick<'a>(
    services: &'a [Service],
    relationship: Option<&str>,
    client: Option<Client>,
    key: &AppKey,
) -> Result<&'a Service, IpcError> {
    if let Some(rel) = relationship.filter(|r| !r.is_empty()) {
        let found = services
            .iter()
            .find(|s| s.relationship == rel || s.relationship.split('.').next() == Some(rel))
            .ok_or_else(|| {
                IpcError::usage(format!(
                    "{} has no database relationship {rel:?} (it has: {})",
                    key.app,
                    services
                        .iter()
                        .map(|s| s.relationship.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        if let Some(c) = client.filter(|c| !c.handles(found.kind)) {
            return Err(IpcError::usage(format!(
                "{} cannot open {rel}: choose another client",
                c.title()
            )));
        }
        return Ok(found);
    }
    clients::preferred(services, client).ok_or_else(|| {
        IpcError::usage(match client {
            Some(c) => format!(
                "{} of {} has no service {} can open",
                key.app,
                key.environment,
                c.title()
            ),
            None => format!(
                "{} of {} has no PostgreSQL, MySQL/MariaDB or Redis relationship",
                key.app, key.environment
            ),
        })
    })
}

/// "1.2 MB", for the dump's progress (decimal units, as file managers show a file's size).
pub fn size(bytes: u64) -> String {
    tether_core::size::decimal(bytes as f64)
}

impl Desktop {
    /// The platform's record of an app's environment (from the catalog, cached).
    async fn environment_of(
        &self,
        key: &AppKey,
    ) -> Result<tether_core::api::Environment, IpcError> {
        self.access
            .catalog()
            .environment(&key.project, &key.environment)
            .await
            .map_err(|e| IpcError::of(&e))
    }

    /// What to ask before entering an app's environment this way, if anything (production,
    /// unless the project's guardrails are off).
    pub async fn production_question(
        &self,
        key: &AppKey,
        entry: Entry,
    ) -> Result<Option<String>, IpcError> {
        let env = self.environment_of(key).await?;
        Ok(guard::question(
            &self.settings(),
            key.project.as_str(),
            key.environment.as_str(),
            &env.kind,
            entry,
        ))
    }

    /// The window's way of asking: without the person's `confirmed` yes, a question is a
    /// [`CONFIRM`] error whose message is the question (the page asks it, then calls again).
    pub async fn check_production(
        &self,
        key: &AppKey,
        entry: Entry,
        confirmed: Option<bool>,
    ) -> Result<(), IpcError> {
        if confirmed == Some(true) {
            return Ok(());
        }
        match self.production_question(key, entry).await? {
            Some(question) => Err(IpcError {
                code: CONFIRM.into(),
                message: question,
            }),
            None => Ok(()),
        }
    }

    /// Whether the app has tunnels open now (then "Copy as…" opens nothing new).
    async fn has_open_tunnels(&self, key: &AppKey) -> bool {
        self.tunnel_infos()
            .await
            .is_ok_and(|t| t.iter().any(|t| t.app == *key && !t.state.is_down()))
    }

    /// What "Copy as…" asks first: opening tunnels to production, when none is open.
    pub async fn copy_entry(&self, key: &AppKey) -> Option<Entry> {
        (!self.has_open_tunnels(key).await).then_some(Entry::Tunnel)
    }

    /// Opens the app's tunnels (keeping those open) and reads its services through them.
    pub async fn tunnelled_services(
        self: &Arc<Self>,
        app: &AppHandle,
        key: &AppKey,
    ) -> Result<Vec<Service>, IpcError> {
        let opened = crate::commands::with_step_up(app, self, || self.open_tunnels(key)).await?;
        let infos = self.tunnel_infos().await?;
        let services: Vec<Service> = infos
            .iter()
            .filter(|t| {
                t.app == *key && matches!(t.state, TunnelState::Open | TunnelState::Opening)
            })
            .filter_map(|t| {
                let mut fields = t.fields.clone();
                if let Some(kind) = t
                    .service_type
                    .as_ref()
                    .filter(|_| !fields.contains_key("type"))
                {
                    fields.insert("type".into(), kind.clone().into());
                }
                Service::from_fields(&t.endpoint_id().to_string(), &fields)
            })
            .collect();
        if services.is_empty() && !opened.failed.is_empty() {
            let failed: Vec<String> = opened
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.relationship, f.message))
                .collect();
            return Err(IpcError::other(format!(
                "the tunnels of {} did not open: {}",
                key.app,
                failed.join("; ")
            )));
        }
        Ok(services)
    }

    /// Whether the SQL shell starts read-only: on production, unless the project's
    /// guardrails are off.
    async fn read_only_shell(&self, key: &AppKey) -> Result<bool, IpcError> {
        Ok(self
            .production_question(key, Entry::SqlShell)
            .await?
            .is_some())
    }

    /// A terminal with `psql`, `mysql` or `redis-cli` connected through the app's tunnel,
    /// read-only on production where the client can be.
    pub async fn sql_shell(
        self: &Arc<Self>,
        app: &AppHandle,
        key: &AppKey,
        relationship: Option<&str>,
    ) -> Result<(), IpcError> {
        let services = self.tunnelled_services(app, key).await?;
        let service = pick(&services, relationship, None, key)?.clone();
        self.terminal_client(key, &service).await
    }

    async fn terminal_client(
        self: &Arc<Self>,
        key: &AppKey,
        service: &Service,
    ) -> Result<(), IpcError> {
        let client = service.terminal_client(self.read_only_shell(key).await?);
        let path = std::env::var_os("PATH");
        if terminal::find_on_path(path.as_deref(), &client.program).is_none() {
            return Err(IpcError::usage(format!(
                "{} is not installed on this computer (not found on PATH): install its client \
                 (postgresql-client, mariadb-client or redis-tools), or use Open in… with another",
                client.program
            )));
        }
        let settings = terminal_settings(self);
        let scrub = token_variables(self);
        tauri::async_runtime::spawn_blocking(move || {
            spawn_in_terminal(&settings, &client.shell_argv(), &client.env, &scrub)
        })
        .await
        .map_err(|e| IpcError::other(e.to_string()))??;
        self.used(key).await;
        Ok(())
    }

    /// A terminal following the app's log over the session's ssh: what `tether logs app
    /// --tail` runs (the official `environment:logs`: its last 100 lines, then what is appended).
    pub async fn logs(self: &Arc<Self>, key: &AppKey) -> Result<(), IpcError> {
        let url = self.address(key).await?;
        let file = tether_core::transfer::log_file(&url, "app")
            .map_err(|e| IpcError::other(e.to_string()))?;
        let command = tether_core::transfer::log_command(&file, 100, true);
        self.request(&Request::Ready { new: false }).await?;
        let settings = terminal_settings(self);
        let path = std::env::var_os("PATH");
        let access = self.access.clone();
        tauri::async_runtime::spawn_blocking(move || {
            access
                .open_terminal(&url, Some(&command), &settings, path.as_deref())
                .map(|_| ())
                .map_err(|e| IpcError::of(&e))
        })
        .await
        .map_err(|e| IpcError::other(e.to_string()))??;
        self.used(key).await;
        Ok(())
    }

    /// The environment's primary URL in the browser (`$BROWSER`, else the system's opener).
    pub async fn open_site(&self, key: &AppKey) -> Result<String, IpcError> {
        let env = self.environment_of(key).await?;
        let url = tether_core::routes::primary_url(&self.access, &key.project, &env)
            .await
            .map_err(|e| IpcError::of(&e))?
            .ok_or_else(|| {
                IpcError::usage(format!(
                    "{} has no primary route: mark one `primary: true` in .platform/routes.yaml",
                    key.environment
                ))
            })?;
        let browser = std::env::var("BROWSER").ok();
        let (program, args) = tether_core::routes::browser_command(None, browser.as_deref(), &url)
            .ok_or_else(|| IpcError::usage("no browser to open the site with"))?;
        spawn_detached(std::path::Path::new(&program), &args)?;
        Ok(url)
    }

    /// The database clients found on this machine.
    pub fn database_clients() -> Vec<Client> {
        clients::detect(std::env::var_os("PATH").as_deref())
            .into_iter()
            .map(|f| f.client)
            .collect()
    }

    /// Opens a service in a database client, through the app's tunnel.
    pub async fn open_in(
        self: &Arc<Self>,
        app: &AppHandle,
        key: &AppKey,
        client: Client,
        relationship: Option<&str>,
    ) -> Result<(), IpcError> {
        let found = clients::detect(std::env::var_os("PATH").as_deref())
            .into_iter()
            .find(|f| f.client == client)
            .ok_or_else(|| {
                IpcError::usage(format!(
                    "{} is not installed on this computer (not found on PATH)",
                    client.title()
                ))
            })?;
        let services = self.tunnelled_services(app, key).await?;
        let service = pick(&services, relationship, Some(client), key)?.clone();
        match client {
            Client::Terminal => return self.terminal_client(key, &service).await,
            Client::PgAdmin => {
                spawn_detached(&found.program, &[])?;
                // pgAdmin takes no connection from its command line: the password goes on the
                // clipboard, the rest is said.
                if !service.password.is_empty() {
                    crate::notify::copy(
                        app,
                        service.password.clone(),
                        "database password",
                        Secrecy::Secret,
                    )
                    .await?;
                }
                crate::notify::show((
                    "Add the server in pgAdmin".to_string(),
                    format!(
                        "Host {}, port {}, user {}, database {}; the password is on the clipboard.",
                        service.host, service.port, service.username, service.database
                    ),
                ));
            }
            _ => {
                let name = format!(
                    "{} {} {}",
                    key.project, key.environment, service.relationship
                );
                spawn_detached(
                    &found.program,
                    &clients::desktop_args(client, &service, &name),
                )?;
            }
        }
        self.used(key).await;
        Ok(())
    }

    /// Puts a service's connection on the clipboard in one of the forms other tools take.
    pub async fn copy_as(
        self: &Arc<Self>,
        app: &AppHandle,
        key: &AppKey,
        form: CopyForm,
        relationship: Option<&str>,
    ) -> Result<(), IpcError> {
        let services = self.tunnelled_services(app, key).await?;
        let service = pick(&services, relationship, None, key)?;
        let rel = &service.relationship;
        let (text, label) = match form {
            CopyForm::Url => (service.url(), format!("{rel} URL")),
            CopyForm::Command => (
                service.command_line(),
                format!("{rel} {} command", service.terminal_client(false).program),
            ),
            CopyForm::Jdbc => (
                service.jdbc().ok_or_else(|| {
                    IpcError::usage(format!("{rel} is Redis, which has no JDBC URL"))
                })?,
                format!("{rel} JDBC URL"),
            ),
            CopyForm::Env => (service.env_lines(), format!("{rel} environment variables")),
        };
        let secrecy = if service.password.is_empty() {
            Secrecy::Plain
        } else {
            Secrecy::Secret
        };
        crate::notify::copy(app, text, &label, secrecy).await
    }

    /// The file name a dump is offered under: `db:dump`'s default.
    pub async fn dump_file_name(
        &self,
        key: &AppKey,
        relationship: Option<&str>,
    ) -> Result<String, IpcError> {
        let env = self.environment_of(key).await?;
        let db = self.remote_database(key, relationship).await?;
        let schema = (!db.path.is_empty()).then_some(db.path.as_str());
        Ok(tether_core::db::default_dump_file(
            Some(key.project.as_str()),
            Some(&env.machine_name),
            db.service.as_deref(),
            schema,
            &tether_core::db::DumpOptions::default(),
        ))
    }

    /// The database as the app sees it (where `pg_dump` runs).
    async fn remote_database(
        &self,
        key: &AppKey,
        relationship: Option<&str>,
    ) -> Result<tether_core::db::Database, IpcError> {
        let Reply::Relationships { endpoints, .. } =
            self.request(&Request::Relationships(key.clone())).await?
        else {
            return Err(IpcError::other("unexpected reply from the agent"));
        };
        let services: Vec<Service> = endpoints
            .iter()
            .filter_map(|e| Service::from_fields(&e.id, &e.fields))
            .filter(Service::is_sql)
            .collect();
        let chosen = pick(&services, relationship, None, key).map_err(|_| {
            IpcError::usage(format!(
                "{} of {} has no PostgreSQL or MySQL/MariaDB relationship to dump",
                key.app, key.environment
            ))
        })?;
        let fields = endpoints
            .iter()
            .find(|e| e.id == chosen.relationship)
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let text = |k: &str| tether_core::db::field_text(&fields, k);
        Ok(tether_core::db::Database {
            id: chosen.relationship.clone(),
            relationship: chosen
                .relationship
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string(),
            scheme: text("scheme"),
            username: chosen.username.clone(),
            password: chosen.password.clone(),
            host: chosen.host.clone(),
            port: chosen.port,
            path: chosen.database.clone(),
            service: Some(text("service")).filter(|s| !s.is_empty()),
            kind: Some(text("type")).filter(|s| !s.is_empty()),
            endpoint: Some(text("rel")).filter(|s| !s.is_empty()),
        })
    }

    /// Dumps a database of the app into `file`, running `pg_dump` (or `mysqldump`) on the
    /// environment over the session's ssh as `tether db:dump` does; gzipped on the server when
    /// the file's name ends in `.gz`. `progress` hears the bytes written so far. The file
    /// appears only once the dump succeeded.
    pub async fn dump(
        self: &Arc<Self>,
        key: &AppKey,
        relationship: Option<&str>,
        file: PathBuf,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<u64, IpcError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let db = self.remote_database(key, relationship).await?;
        let options = tether_core::db::DumpOptions {
            gzip: file.extension().is_some_and(|e| e == "gz"),
            pipefail: true,
            ..Default::default()
        };
        let schema = (!db.path.is_empty()).then_some(db.path.as_str());
        let command = tether_core::db::dump_command(&db, schema, &options);
        let url = self.address(key).await?;
        self.request(&Request::Ready { new: false }).await?;
        let argv = self.access.ssh_argv(&url, Some(&command), false, &[]);
        let mut cmd = tokio::process::Command::from(self.access.ssh_command(&argv));
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| IpcError::other(format!("cannot start ssh: {e}")))?;
        let partial = file.with_extension(match file.extension() {
            Some(e) => format!("{}.part", e.to_string_lossy()),
            None => "part".to_string(),
        });
        let result: Result<u64, IpcError> = async {
            let mut out = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| IpcError::usage(format!("cannot write {}: {e}", partial.display())))?;
            let mut stdout = child
                .stdout
                .take()
                .ok_or_else(|| IpcError::other("no ssh output"))?;
            let mut stderr = child
                .stderr
                .take()
                .ok_or_else(|| IpcError::other("no ssh errors"))?;
            let errors = tokio::spawn(async move {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text).await;
                text
            });
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            let mut told = std::time::Instant::now();
            loop {
                let n = stdout
                    .read(&mut buf)
                    .await
                    .map_err(|e| IpcError::other(format!("the dump stopped: {e}")))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).await.map_err(|e| {
                    IpcError::usage(format!("cannot write {}: {e}", partial.display()))
                })?;
                total += n as u64;
                if told.elapsed() >= std::time::Duration::from_millis(500) {
                    progress(total);
                    told = std::time::Instant::now();
                }
            }
            out.flush()
                .await
                .map_err(|e| IpcError::other(e.to_string()))?;
            let status = child
                .wait()
                .await
                .map_err(|e| IpcError::other(e.to_string()))?;
            let errors = errors.await.unwrap_or_default();
            if !status.success() {
                let said = errors.trim();
                return Err(IpcError::other(format!(
                    "the dump failed ({status}){}",
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                )));
            }
            progress(total);
            Ok(total)
        }
        .await;
        match result {
            Ok(total) => {
                tokio::fs::rename(&partial, &file).await.map_err(|e| {
                    IpcError::usage(format!("cannot write {}: {e}", file.display()))
                })?;
                self.used(key).await;
                Ok(total)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_person_reads_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_234_567), "1.2 MB");
        assert_eq!(size(5_000_000_000), "5.0 GB");
    }

    #[test]
    fn a_named_relationship_is_found_and_a_client_that_cannot_open_it_says_so() {
        let fields = |scheme: &str, port: u16| {
            let serde_json::Value::Object(m) = serde_json::json!({
                "scheme": scheme, "host": "127.0.0.1", "port": port, "username": "main",
                "password": "main", "path": "main"
            }) else {
                unreachable!()
            };
            m
        };
        let services = vec![
            Service::from_fields("rediscache", &fields("redis", 1)).unwrap(),
            Service::from_fields("database", &fields("pgsql", 2)).unwrap(),
        ];
        let key = AppKey::parse("p1/main/app").unwrap();
        assert_eq!(pick(&services, None, None, &key).unwrap().port, 2);
        assert_eq!(
            pick(&services, Some("rediscache"), None, &key)
                .unwrap()
                .port,
            1
        );
        let e = pick(&services, Some("rediscache"), Some(Client::Dbeaver), &key).unwrap_err();
        assert!(
            e.message.contains("DBeaver cannot open rediscache"),
            "{}",
            e.message
        );
        let e = pick(&services, Some("nope"), None, &key).unwrap_err();
        assert!(e.message.contains("rediscache, database"), "{}", e.message);
        assert_eq!(
            pick(&services, None, Some(Client::RedisInsight), &key)
                .unwrap()
                .port,
            1
        );
    }
}
