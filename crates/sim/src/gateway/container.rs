//! The app container a session's processes run in, as the platform sets it up: a scratch
//! directory per app instance as its home, the platform's environment variables, the welcome
//! banner and what the app's login scripts print, and the shell and sftp server of this
//! machine.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::model::{self, Container};

pub(super) fn shell() -> &'static str {
    if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// The system's sftp server, which speaks the protocol for `sftp` and modern `scp`.
pub(super) fn sftp_server() -> Option<&'static str> {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

pub(super) fn scratch_dir(root: &Path, c: &Container<'_>) -> PathBuf {
    let mut name = c.application_name();
    if let Some(i) = c.instance {
        name.push_str(&format!(".{i}"));
    }
    root.join(&c.project.id).join(&c.env.id).join(name)
}

/// What makes the platform's view for a container's commands (see [`crate::shim`]): its
/// `/var/log` files, created when missing, and the variables its stand-ins read, with their
/// directory first on the `PATH`. Service addresses (`<rel>.internal`, the endpoint's `ip`
/// and `hostname`, each with its port) map to the service's backend. Nothing when the
/// `tether-sim` binary cannot be found (the log files are still made).
pub(super) fn platform_view(
    c: &Container<'_>,
    dir: &Path,
    scratch_root: &Path,
    backends: &std::collections::BTreeMap<String, std::net::SocketAddr>,
) -> Vec<(String, String)> {
    let logs = match crate::shim::prepare_logs(dir) {
        Ok(logs) => logs,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the container's var/log");
            dir.join("var").join("log")
        }
    };
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let Some(shims) = crate::shim::install(scratch_root, &path) else {
        return Vec::new();
    };
    let mut services = Vec::new();
    for e in model::endpoints(c.project, c.env, c.app) {
        let Some(backend) = backends.get(&e.service.backend) else {
            continue;
        };
        for host in [&e.host, &e.ip, &e.hostname] {
            services.push((host.clone(), e.port, *backend));
        }
    }
    vec![
        ("PATH".to_string(), format!("{}:{path}", shims.display())),
        (
            crate::shim::SERVICES_VAR.to_string(),
            crate::shim::services_value(&services),
        ),
        (
            crate::shim::LOG_DIR_VAR.to_string(),
            logs.display().to_string(),
        ),
        (
            crate::shim::SHIM_DIR_VAR.to_string(),
            shims.display().to_string(),
        ),
    ]
}

/// The environment an app's processes see, as on the platform.
pub(super) fn container_env(c: &Container<'_>, dir: &Path) -> Vec<(String, String)> {
    let relationships = c.app.relationships_variable.clone().unwrap_or_else(|| {
        STANDARD.encode(model::relationships_json(c.project, c.env, c.app).to_string())
    });
    let mut env = vec![
        ("HOME".to_string(), dir.display().to_string()),
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("SHELL".to_string(), shell().to_string()),
        (
            "PS1".to_string(),
            format!(
                "web@{}.{}:\\w$ ",
                c.application_name(),
                c.instance.unwrap_or(0)
            ),
        ),
        (
            "PLATFORM_APPLICATION_NAME".to_string(),
            c.application_name(),
        ),
        ("PLATFORM_APP_DIR".to_string(), dir.display().to_string()),
        (
            "PLATFORM_ENVIRONMENT".to_string(),
            c.env.machine_name.clone(),
        ),
        ("PLATFORM_BRANCH".to_string(), c.env.id.clone()),
        (
            "PLATFORM_ENVIRONMENT_TYPE".to_string(),
            format!("{:?}", c.env.kind).to_lowercase(),
        ),
        ("PLATFORM_PROJECT".to_string(), c.project.id.clone()),
        (
            "PLATFORM_TREE_ID".to_string(),
            model::head_commit(c.project, c.env),
        ),
        ("PLATFORM_RELATIONSHIPS".to_string(), relationships),
        ("PLATFORM_SMTP_HOST".to_string(), String::new()),
        ("TETHER_SIM".to_string(), "1".to_string()),
    ];
    if let Some(w) = c.worker {
        env.push(("PLATFORM_WORKER".to_string(), w.to_string()));
    }
    if let Ok(lang) = std::env::var("LANG") {
        env.push(("LANG".to_string(), lang));
    }
    env
}

fn welcome(c: &Container<'_>) -> String {
    let instance = c
        .instance
        .map(|i| format!(", instance {i}"))
        .unwrap_or_default();
    format!(
        "\r\n   ___ _      _    __                    \r\n  | _ \\ |__ _| |_ / _|___ _ _ _ __    ___ _ _ \r\n  |  _/ / _` |  _|  _/ _ \\ '_| '  \\ _(_-< ' \\\r\n  |_| |_\\__,_|\\__|_| \\___/_| |_|_|_(_)__/_||_|\r\n\r\n \
         Welcome to Platform.sh (simulated by tether-sim, a development tool).\r\n\r\n \
         This is environment {env} ({machine}) of project {title} ({project}), app {app}{instance}.\r\n \
         The app's files are in the home directory.\r\n\r\n",
        env = c.env.id,
        machine = c.env.machine_name,
        title = c.project.title,
        project = c.project.id,
        app = c.application_name(),
    )
}

/// What a session prints besides its program's own output: before it, the welcome banner
/// (shells only) and what the app's login scripts print (the fixture's `login_output`); after
/// it, what they print on exit (`exit_output`). On the real platform the login shell that runs
/// a command sources `.environment` and the like first, so their output comes before the
/// command's on the same stdout, and an `EXIT` trap's after it; clients that read a command's
/// answer have to find it within that. The sftp subsystem gets none of it, so that `sftp`
/// against the simulator keeps working.
#[derive(Debug, Default)]
pub(super) struct Chatter {
    pub(super) before: Vec<u8>,
    pub(super) after: Vec<u8>,
}

impl Chatter {
    /// For a shell (`shell`) or a command, on a terminal (`terminal`, where a line feed
    /// reaches the client as CR LF, as the terminal's output processing makes it) or not.
    pub(super) fn new(c: &Container<'_>, shell: bool, terminal: bool) -> Chatter {
        let text = |s: &str| {
            if terminal {
                s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
            } else {
                s.as_bytes().to_vec()
            }
        };
        let mut before = Vec::new();
        if shell {
            before.extend(welcome(c).into_bytes());
        }
        if let Some(login) = &c.app.login_output {
            before.extend(text(login));
        }
        Chatter {
            before,
            after: c.app.exit_output.as_deref().map(text).unwrap_or_default(),
        }
    }
}
