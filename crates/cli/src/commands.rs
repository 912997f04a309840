//! The commands: build the core context from the environment, call core, render.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use tether_core::api::{Api, ApiError};
use tether_core::auth::store::STORE_ENV;
use tether_core::auth::{AuthError, LoginRequest, PendingLogin, Session, TokenStore};
use tether_core::catalog::CatalogError;
use tether_core::cert::{CertError, CertFiles, CertInfo, CertKeeper, RenewalPolicy};
use tether_core::openssh::{self, Edit, SshFiles};
use tether_core::{Paths, Profile, Sensitive, SystemClock};

use crate::output::{self, print, progress};
use crate::{Cli, Command, Format, Method};

/// What every command needs, built once from the environment at the edge.
pub struct Ctx {
    pub format: Format,
    pub profile: Profile,
    pub paths: Paths,
    pub session: Session,
    pub api: Api,
}

/// A remote command's exit status, passed on as tether's own.
#[derive(Debug)]
pub struct RemoteExit(pub u8);

impl std::fmt::Display for RemoteExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the remote command exited with status {}", self.0)
    }
}

impl std::error::Error for RemoteExit {}

pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home_dir() -> Result<PathBuf> {
    env_nonempty("HOME")
        .map(PathBuf::from)
        .or_else(dirs::home_dir)
        .context("cannot find your home directory: set HOME")
}

/// The platform's standard data directory, or `TETHER_DATA_DIR`.
fn data_dir(home: &std::path::Path) -> PathBuf {
    if let Some(d) = env_nonempty("TETHER_DATA_DIR") {
        return PathBuf::from(d);
    }
    if cfg!(target_os = "linux") {
        if let Some(x) = env_nonempty("XDG_DATA_HOME") {
            return PathBuf::from(x).join("tether");
        }
        return home.join(".local/share/tether");
    }
    dirs::data_dir()
        .map(|d| d.join("tether"))
        .unwrap_or_else(|| home.join(".tether"))
}

fn store_for(profile: &Profile, paths: &Paths) -> Result<TokenStore> {
    match env_nonempty(STORE_ENV).as_deref() {
        None | Some("keyring") => Ok(TokenStore::keyring(&profile.name)),
        Some("file") => Ok(TokenStore::File {
            path: paths.session_dir(profile).join("tokens.json"),
        }),
        Some(other) => {
            bail!("{STORE_ENV}={other:?} is not a token store: use keyring (the default) or file")
        }
    }
}

fn context(cli: &Cli) -> Result<Ctx> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let profile = Profile::select(&cli.profile, &cwd)?;
    let home = home_dir()?;
    let paths = Paths::under_home(&home, Some(data_dir(&home)));
    let store = store_for(&profile, &paths)?;
    let env_token = env_nonempty(&profile.token_env_var)
        .or_else(|| env_nonempty("TETHER_TOKEN"))
        .map(|t| Sensitive::new(t.trim().to_string()));
    let http = reqwest::Client::builder()
        .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot set up HTTP")?;
    let session = Session::new(
        profile.clone(),
        store,
        paths.clone(),
        Arc::new(SystemClock),
        http.clone(),
        env_token,
    );
    let api = Api::new(http, profile.api_url.clone());
    Ok(Ctx {
        format: cli.format,
        profile,
        paths,
        session,
        api,
    })
}

fn auth_code(e: &AuthError) -> u8 {
    match e {
        AuthError::NotSignedIn | AuthError::SessionEnded(_) | AuthError::BadApiToken(_) => 3,
        AuthError::Network { .. } => 5,
        _ => 1,
    }
}

fn api_code(e: &ApiError) -> Option<u8> {
    match e {
        ApiError::StepUp(_) => Some(4),
        ApiError::Unauthorized(_) => Some(3),
        ApiError::Network { .. } => Some(5),
        _ => None,
    }
}

/// The exit code for an error (see the command's help): the first cause that means
/// something to a script decides.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(RemoteExit(code)) = e.downcast_ref::<RemoteExit>() {
        return *code;
    }
    e.chain()
        .find_map(|cause| {
            if let Some(a) = cause.downcast_ref::<AuthError>() {
                return Some(auth_code(a));
            }
            if let Some(a) = cause.downcast_ref::<ApiError>() {
                return api_code(a);
            }
            match cause.downcast_ref::<CertError>() {
                Some(CertError::Auth(a)) => return Some(auth_code(a)),
                Some(CertError::StepUp(_)) => return Some(4),
                Some(CertError::Inactive(_)) => return Some(3),
                Some(CertError::Network { .. }) => return Some(5),
                _ => {}
            }
            match cause.downcast_ref::<CatalogError>() {
                Some(CatalogError::Auth(a)) => Some(auth_code(a)),
                Some(CatalogError::Api(a)) => api_code(a),
                _ => None,
            }
        })
        .unwrap_or(1)
}

pub async fn run(cli: Cli) -> Result<()> {
    if let Command::ProfileInfo = cli.command {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let profile = Profile::select(&cli.profile, &cwd)?;
        print(cli.format, &profile, || profile_text(&profile));
        return Ok(());
    }
    let ctx = context(&cli)?;
    match cli.command {
        Command::Login {
            method,
            max_age,
            browser,
            no_browser,
            timeout,
        } => {
            let amr = match method {
                Some(Method::Mfa) => vec!["mfa".to_string()],
                Some(Method::Sso) => vec!["sso".to_string()],
                None => Vec::new(),
            };
            login(
                &ctx,
                LoginRequest { amr, max_age },
                browser,
                no_browser,
                Duration::from_secs(timeout),
            )
            .await
        }
        Command::ApiTokenLogin => api_token_login(&ctx).await,
        Command::AuthInfo { property } => auth_info(&ctx, property.as_deref()).await,
        Command::Logout { all } => logout(&ctx, all).await,
        Command::SshCertInfo => cert_info(&ctx),
        Command::SshCertLoad { new } => cert_load(&ctx, new).await.map(|_| ()),
        Command::ConfigSsh { write, remove } => config_ssh(&ctx, write, remove),
        Command::ProfileInfo => Ok(()),
        Command::Projects => crate::browse::projects(&ctx).await,
        Command::Environments { project } => crate::browse::environments(&ctx, project).await,
        Command::Apps {
            project,
            environment,
        } => crate::browse::apps(&ctx, project, environment).await,
        Command::Ssh {
            project,
            environment,
            app,
            instance,
            worker,
            pipe,
            all,
            terminal,
            command,
        } => {
            crate::browse::ssh(
                &ctx,
                crate::browse::SshRequest {
                    project,
                    environment,
                    selection: tether_core::ssh::Selection {
                        app,
                        instance,
                        worker,
                    },
                    pipe,
                    all,
                    terminal,
                    command,
                },
            )
            .await
        }
    }
}

fn profile_text(profile: &Profile) -> String {
    let mut t = format!(
        "{} ({})\n  API:         {}\n  Sign-in:     {}\n  SSH hosts:   {}\n  Token var:   {}",
        profile.title,
        profile.name,
        profile.api_url,
        profile.auth_url,
        profile.ssh_host_patterns.join(" "),
        profile.token_env_var
    );
    if let Some(ssh) = &profile.ssh {
        t.push_str(&format!("\n  Gateway:     {}:{}", ssh.hostname, ssh.port));
    }
    t
}

fn has_display() -> bool {
    if cfg!(target_os = "linux") {
        env_nonempty("DISPLAY").is_some() || env_nonempty("WAYLAND_DISPLAY").is_some()
    } else {
        true
    }
}

/// Opens a URL in the user's browser; false when no opener could be started.
fn open_browser(url: &str) -> bool {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(target_os = "windows") {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

pub async fn login(
    ctx: &Ctx,
    request: LoginRequest,
    browser: bool,
    no_browser: bool,
    timeout: Duration,
) -> Result<()> {
    if ctx.session.uses_env_token() {
        bail!(
            "an API token is set in {} or TETHER_TOKEN; it takes precedence over a browser sign-in. Unset it first",
            ctx.profile.token_env_var
        );
    }
    let pending = PendingLogin::start(&ctx.profile, &request).await?;
    let url = pending.authorize_url().to_string();
    let opened = (browser || (!no_browser && has_display())) && open_browser(&url);
    if opened {
        progress(
            ctx.format,
            &format!(
                "Opened the sign-in page in your browser. If it did not open, visit:\n  {url}"
            ),
        );
    } else {
        // The URL is the one thing a person must see, whatever the format.
        eprintln!(
            "Open this URL in a browser to sign in to {}:\n  {url}",
            ctx.profile.title
        );
    }
    progress(
        ctx.format,
        &format!("Waiting for the browser (up to {} s)…", timeout.as_secs()),
    );
    let code = pending.wait_for_code(timeout).await?;
    let tokens = ctx.session.complete_login(code).await?;
    let user = ctx.api.me(&tokens.access).await?;
    progress(
        ctx.format,
        &format!("Signed in as {} on {}.", user.username, ctx.profile.title),
    );
    let info = cert_load(ctx, false).await?;
    offer_ssh_config(ctx)?;
    print(
        ctx.format,
        &json!({ "user": user, "certificate": info, "ssh_config": openssh::block_installed(&ctx.paths) }),
        String::new,
    );
    Ok(())
}

/// Asks (on a terminal) to add the block to ~/.ssh/config, or says how to.
fn offer_ssh_config(ctx: &Ctx) -> Result<()> {
    if openssh::block_installed(&ctx.paths) {
        return Ok(());
    }
    let config = ctx.paths.ssh_config();
    if std::io::stdin().is_terminal() && ctx.format == Format::Text {
        eprint!(
            "Add Tether's block to {} so that plain ssh, scp, rsync and git use your certificate? [Y/n] ",
            config.display()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim().to_lowercase().as_str(), "" | "y" | "yes") {
            return write_block(ctx);
        }
    }
    progress(
        ctx.format,
        &format!(
            "To use plain ssh with this session, run: tether config:ssh --write (edits {})",
            config.display()
        ),
    );
    Ok(())
}

fn write_block(ctx: &Ctx) -> Result<()> {
    let files = SshFiles::new(&ctx.paths, &ctx.profile);
    match openssh::install_block(&ctx.paths, &files, &ctx.profile.ssh_host_patterns)? {
        Edit::Unchanged => progress(
            ctx.format,
            "~/.ssh/config already includes Tether's configuration.",
        ),
        Edit::Written { path, backup } => progress(
            ctx.format,
            &format!(
                "Added Tether's block to {}{}.",
                path.display(),
                backup
                    .map(|b| format!(" (backup: {})", b.display()))
                    .unwrap_or_default()
            ),
        ),
    }
    Ok(())
}

async fn api_token_login(ctx: &Ctx) -> Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("API token: ");
        let _ = std::io::stderr().flush();
    }
    let mut token = String::new();
    stdin
        .lock()
        .read_line(&mut token)
        .context("cannot read the API token from standard input")?;
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("no API token on standard input: pipe it in, e.g. `tether auth:api-token-login < token-file`");
    }
    let tokens = ctx
        .session
        .login_with_api_token(Sensitive::new(token))
        .await?;
    let user = ctx.api.me(&tokens.access).await?;
    progress(
        ctx.format,
        &format!(
            "Signed in as {} on {} with an API token (stored in {}).",
            user.username,
            ctx.profile.title,
            ctx.session.store.describe()
        ),
    );
    print(ctx.format, &json!({ "user": user }), String::new);
    Ok(())
}

async fn auth_info(ctx: &Ctx, property: Option<&str>) -> Result<()> {
    let token = ctx.session.access_token().await?;
    let user = ctx.api.me(&token).await?;
    let value = serde_json::to_value(&user)?;
    if let Some(p) = property {
        let v = value
            .get(p)
            .ok_or_else(|| anyhow!("no property {p:?}; try one of: {}", keys(&value)))?;
        match (ctx.format, v) {
            (Format::Text, serde_json::Value::String(s)) => println!("{s}"),
            (Format::Text, other) => println!("{other}"),
            (Format::Json, other) => println!("{other}"),
        }
        return Ok(());
    }
    print(ctx.format, &value, || {
        format!(
            "Signed in to {} as {} ({} {}, {})\n  id:  {}\n  MFA: {}",
            ctx.profile.title,
            user.username,
            user.first_name,
            user.last_name,
            user.email,
            user.id,
            if user.mfa_enabled {
                "enabled"
            } else {
                "not enabled"
            }
        )
    });
    Ok(())
}

fn keys(v: &serde_json::Value) -> String {
    v.as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

async fn logout(ctx: &Ctx, all: bool) -> Result<()> {
    let report = ctx.session.logout().await?;
    openssh::remove_session_files(&SshFiles::new(&ctx.paths, &ctx.profile));
    if let Some(e) = &report.revoke_error {
        progress(
            ctx.format,
            &format!("Could not revoke the session at the platform ({e}); it was deleted here."),
        );
    }
    if all {
        // Other profiles' sessions: the built-in ones are revoked too; custom ones are deleted.
        let sessions = ctx.paths.data_dir.join("sessions");
        if let Ok(entries) = std::fs::read_dir(&sessions) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let profile = Profile::builtins().into_iter().find(|p| p.name == name);
                if let Some(p) = profile {
                    let other = Session::new(
                        p.clone(),
                        store_for(&p, &ctx.paths)?,
                        ctx.paths.clone(),
                        Arc::new(SystemClock),
                        ctx.session.http().clone(),
                        None,
                    );
                    other.logout().await?;
                    openssh::remove_session_files(&SshFiles::new(&ctx.paths, &p));
                } else {
                    let store = TokenStore::keyring(&name);
                    let _ = store.delete("session").await;
                    let _ = store.delete("api-token").await;
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(ctx.paths.data_dir.join("ssh"));
        openssh::remove_block(&ctx.paths)?;
    }
    progress(
        ctx.format,
        &format!(
            "Signed out of {}{}.",
            ctx.profile.title,
            if all { " and every other profile" } else { "" }
        ),
    );
    print(
        ctx.format,
        &json!({ "signed_out": true, "revoked": report.revoked }),
        String::new,
    );
    Ok(())
}

fn cert_info(ctx: &Ctx) -> Result<()> {
    let files = CertFiles::new(ctx.session.session_dir());
    let cert = files.read_certificate().ok_or_else(|| {
        anyhow!(
            "no SSH certificate is loaded for {}: run `tether ssh-cert:load`",
            ctx.profile.title
        )
    })?;
    let info = CertInfo::of(&cert, &files.certificate());
    print(ctx.format, &info, || cert_text(&info));
    Ok(())
}

fn cert_text(info: &CertInfo) -> String {
    format!(
        "Certificate {}\n  key id:      {}\n  principals:  {}\n  valid until: {}\n  MFA:         {}\n  extensions:  {}\n  key:         {}",
        info.path.display(),
        info.key_id,
        info.principals.join(", "),
        output::when(info.valid_before),
        if info.has_mfa { "yes" } else { "no" },
        info.extensions.join(", "),
        info.fingerprint
    )
}

async fn cert_load(ctx: &Ctx, new: bool) -> Result<CertInfo> {
    let keeper = CertKeeper::new(ctx.session.clone(), RenewalPolicy::default());
    progress(ctx.format, "Loading an SSH certificate…");
    let ensured = keeper.ensure(new).await?;
    let files = SshFiles::new(&ctx.paths, &ctx.profile);
    openssh::write_session_files(&ctx.profile, keeper.files(), &files, None)?;
    let info = CertInfo::of(&ensured.cert, &keeper.files().certificate());
    progress(
        ctx.format,
        &format!(
            "{} certificate, valid until {}{}.",
            if ensured.renewed { "New" } else { "Current" },
            output::when(info.valid_before),
            if info.has_mfa { ", with MFA" } else { "" }
        ),
    );
    Ok(info)
}

fn config_ssh(ctx: &Ctx, write: bool, remove: bool) -> Result<()> {
    if write {
        return write_block(ctx);
    }
    if remove {
        match openssh::remove_block(&ctx.paths)? {
            Edit::Unchanged => progress(ctx.format, "~/.ssh/config has no Tether block."),
            Edit::Written { path, .. } => progress(
                ctx.format,
                &format!("Removed Tether's block from {}.", path.display()),
            ),
        }
        return Ok(());
    }
    let files = SshFiles::new(&ctx.paths, &ctx.profile);
    let installed = openssh::block_installed(&ctx.paths);
    let block = openssh::block(
        &ctx.profile.ssh_host_patterns.iter().cloned().collect(),
        &files,
    );
    print(
        ctx.format,
        &json!({ "installed": installed, "config": ctx.paths.ssh_config(), "block": block, "session_config": files.config }),
        || {
            format!(
                "{} {} Tether's block:\n\n{block}\nSession configuration: {}{}",
                ctx.paths.ssh_config().display(),
                if installed {
                    "includes"
                } else {
                    "does not include"
                },
                files.config.display(),
                if installed {
                    ""
                } else {
                    "\nAdd it with: tether config:ssh --write"
                }
            )
        },
    );
    Ok(())
}
