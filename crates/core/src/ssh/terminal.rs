//! Opening an SSH session in the user's own terminal emulator: a configured command first,
//! then `$TERMINAL`, then one found on the system, each with its own way of taking a command.

use std::path::{Path, PathBuf};

use super::url::shell_quote;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminalError {
    #[error(
        "no terminal emulator found (looked for {tried}). Set TERMINAL to your terminal's command, \
         or TETHER_TERMINAL to a command line in which {{}} stands for the ssh command"
    )]
    NotFound { tried: String },
    #[error("the configured terminal command {0:?} is empty")]
    EmptyConfigured(String),
    #[error("cannot start the terminal {program}: {message}")]
    Spawn { program: String, message: String },
}

/// How a terminal takes the command to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Convention {
    /// `term -e cmd args…`
    DashE,
    /// `term -- cmd args…`
    DashDash,
    /// `term -x cmd args…`
    DashX,
    /// `term cmd args…`
    Bare,
    /// `wezterm start -- cmd args…`
    WeztermStart,
    /// `wt new-tab cmd args…`
    NewTab,
    /// `powershell -NoExit -Command "cmd args"`
    PowerShell,
    /// `osascript -e 'tell application "X" to do script "cmd"'`
    AppleScript(&'static str),
}

const LINUX: &[(&str, Convention)] = &[
    ("x-terminal-emulator", Convention::DashE),
    ("gnome-terminal", Convention::DashDash),
    ("konsole", Convention::DashE),
    ("xfce4-terminal", Convention::DashX),
    ("kitty", Convention::Bare),
    ("alacritty", Convention::DashE),
    ("wezterm", Convention::WeztermStart),
    ("foot", Convention::Bare),
    ("xterm", Convention::DashE),
];

/// A terminal command line, ready to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
}

fn convention_for(program: &str) -> Convention {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    LINUX
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or(Convention::DashE)
}

fn build(program: &str, convention: Convention, argv: &[String]) -> Launch {
    let joined = || {
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (program, mut args): (String, Vec<String>) = match convention {
        Convention::DashE => (program.into(), vec!["-e".into()]),
        Convention::DashDash => (program.into(), vec!["--".into()]),
        Convention::DashX => (program.into(), vec!["-x".into()]),
        Convention::Bare => (program.into(), vec![]),
        Convention::WeztermStart => (program.into(), vec!["start".into(), "--".into()]),
        Convention::NewTab => (program.into(), vec!["new-tab".into()]),
        Convention::PowerShell => {
            return Launch {
                program: program.into(),
                args: vec!["-NoExit".into(), "-Command".into(), joined()],
            }
        }
        Convention::AppleScript(app) => {
            let script = joined().replace('\\', "\\\\").replace('"', "\\\"");
            return Launch {
                program: "osascript".into(),
                args: vec![
                    "-e".into(),
                    format!("tell application \"{app}\" to do script \"{script}\""),
                    "-e".into(),
                    format!("tell application \"{app}\" to activate"),
                ],
            };
        }
    };
    args.extend(argv.iter().cloned());
    Launch { program, args }
}

/// What decides the terminal, passed in by the shell.
#[derive(Debug, Clone, Default)]
pub struct TerminalSettings {
    /// A configured command line, where `{}` stands for the ssh command (appended if absent).
    pub configured: Option<String>,
    /// `$TERMINAL`.
    pub env_terminal: Option<String>,
}

/// Finds the terminal and builds the command line that runs `argv` (the ssh command) in it.
pub fn launch_for(
    settings: &TerminalSettings,
    argv: &[String],
    on_path: impl Fn(&str) -> Option<PathBuf>,
) -> Result<Launch, TerminalError> {
    if let Some(configured) = settings
        .configured
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        let words: Vec<String> = configured.split_whitespace().map(str::to_string).collect();
        let Some((program, rest)) = words.split_first() else {
            return Err(TerminalError::EmptyConfigured(configured.to_string()));
        };
        let mut args = Vec::new();
        let mut placed = false;
        for w in rest {
            if w == "{}" {
                args.extend(argv.iter().cloned());
                placed = true;
            } else {
                args.push(w.clone());
            }
        }
        if !placed {
            args.extend(argv.iter().cloned());
        }
        return Ok(Launch {
            program: program.clone(),
            args,
        });
    }
    if let Some(t) = settings
        .env_terminal
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(build(t.trim(), convention_for(t.trim()), argv));
    }
    if cfg!(target_os = "macos") {
        let iterm = Path::new("/Applications/iTerm.app").exists();
        return Ok(build(
            "osascript",
            Convention::AppleScript(if iterm { "iTerm" } else { "Terminal" }),
            argv,
        ));
    }
    if cfg!(target_os = "windows") {
        if on_path("wt").is_some() {
            return Ok(build("wt", Convention::NewTab, argv));
        }
        return Ok(build("powershell", Convention::PowerShell, argv));
    }
    for (name, convention) in LINUX {
        if let Some(path) = on_path(name) {
            return Ok(build(&path.display().to_string(), *convention, argv));
        }
    }
    Err(TerminalError::NotFound {
        tried: LINUX.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
    })
}

/// Looks a program up on `PATH`.
pub fn find_on_path(path_var: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Starts the terminal, detached from the caller's standard streams.
pub fn spawn(launch: &Launch) -> Result<std::process::Child, TerminalError> {
    std::process::Command::new(&launch.program)
        .args(&launch.args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| TerminalError::Spawn {
            program: launch.program.clone(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv() -> Vec<String> {
        vec!["ssh".into(), "--".into(), "u@h".into()]
    }

    fn only(names: &'static [&'static str]) -> impl Fn(&str) -> Option<PathBuf> {
        move |n| {
            names
                .contains(&n)
                .then(|| PathBuf::from(format!("/usr/bin/{n}")))
        }
    }

    #[test]
    fn each_terminal_gets_its_own_convention() {
        let s = TerminalSettings::default();
        let l = launch_for(&s, &argv(), only(&["gnome-terminal"])).unwrap();
        assert_eq!(l.args, ["--", "ssh", "--", "u@h"]);
        let l = launch_for(&s, &argv(), only(&["kitty", "xterm"])).unwrap();
        assert_eq!(
            (l.program.as_str(), l.args.as_slice()),
            ("/usr/bin/kitty", &argv()[..])
        );
        let l = launch_for(&s, &argv(), only(&["xfce4-terminal"])).unwrap();
        assert_eq!(l.args[0], "-x");
        let l = launch_for(&s, &argv(), only(&["wezterm"])).unwrap();
        assert_eq!(&l.args[..2], ["start", "--"]);
        let l = launch_for(&s, &argv(), only(&["xterm"])).unwrap();
        assert_eq!(l.args, ["-e", "ssh", "--", "u@h"]);
        // x-terminal-emulator wins over what it points to.
        let l = launch_for(&s, &argv(), only(&["x-terminal-emulator", "xterm"])).unwrap();
        assert_eq!(l.program, "/usr/bin/x-terminal-emulator");
    }

    #[test]
    fn configured_then_terminal_env_then_detected() {
        let s = TerminalSettings {
            configured: Some("myterm --hold {} --title x".into()),
            env_terminal: Some("xterm".into()),
        };
        let l = launch_for(&s, &argv(), only(&["kitty"])).unwrap();
        assert_eq!(l.program, "myterm");
        assert_eq!(l.args, ["--hold", "ssh", "--", "u@h", "--title", "x"]);
        let s = TerminalSettings {
            configured: None,
            env_terminal: Some("/opt/bin/alacritty".into()),
        };
        assert_eq!(
            launch_for(&s, &argv(), only(&["kitty"])).unwrap().args[0],
            "-e"
        );
    }

    #[test]
    fn no_terminal_says_how_to_configure_one() {
        let err = launch_for(&TerminalSettings::default(), &argv(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TERMINAL") && err.contains("xterm"), "{err}");
    }
}
