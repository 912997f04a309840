//! The app container a session's processes run in, as the platform sets it up: a scratch
//! directory per app instance as its home, the platform's environment variables, the welcome
//! banner, and the shell and sftp server of this machine.

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

pub(super) fn welcome(c: &Container<'_>) -> String {
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
