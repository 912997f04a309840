//! The command's own reference, generated from its clap definition so that it never drifts
//! from the parser: shell completions (`tether completion <shell>`, for people who install
//! from source, and the packages' completion files) and the manual page (`tether man`, hidden,
//! which the packages install as tether(1)).

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::Cli;

/// Prints the completion script for `shell`.
pub fn completion(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "tether", &mut out);
    print(&out)
}

/// Prints tether(1) in roff.
pub fn man_page() -> ExitCode {
    match render_man_page() {
        Ok(page) => print(&page),
        Err(e) => {
            eprintln!("tether: cannot render the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the environment changes, for the ENVIRONMENT section.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("TETHER_PROFILE", "The platform, as --profile."),
    (
        "TETHER_INACTIVITY_LIMIT",
        "The inactivity limit, as --inactivity-limit.",
    ),
    (
        "PLATFORMSH_CLI_TOKEN, UPSUN_CLI_TOKEN, TETHER_TOKEN",
        "An API token to sign in with (automation); it wins over a stored session.",
    ),
    (
        "TETHER_TOKEN_STORE",
        "file keeps tokens in a 0600 file instead of the OS keyring.",
    ),
    (
        "TETHER_DATA_DIR",
        "Where sessions, tunnels' ports and logs are kept (default ~/.local/share/tether).",
    ),
    (
        "TETHER_TERMINAL",
        "The terminal for ssh --terminal: a command line where {} stands for the ssh command.",
    ),
    (
        "PLATFORMSH_CLI_SSH_OPTIONS, UPSUN_CLI_SSH_OPTIONS",
        "Options for ssh, one per line, before those of -o.",
    ),
    (
        "TETHER_LOG",
        "A log filter such as tether_core=debug (logs go to stderr).",
    ),
];

/// One page: the global options, then every command with its synopsis and options (clap_mangen
/// would otherwise point to a page per command, which the packages do not ship), then the exit
/// status, environment and files.
fn render_man_page() -> std::io::Result<Vec<u8>> {
    let cli = Cli::command();
    let man = Man::new(cli.clone())
        .title("TETHER")
        .section("1")
        .manual("User Commands")
        .source(format!("Tether {}", crate::VERSION));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;

    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("tether {}", sub.get_name());
        let mut heading = Roff::new();
        heading.control("SS", [name.as_str()]);
        let aliases: Vec<&str> = sub.get_all_aliases().collect();
        if !aliases.is_empty() {
            heading.text([roman(format!("Also: {}.", aliases.join(", ")))]);
        }
        heading.to_writer(&mut out)?;
        let page = Man::new(sub.clone().bin_name(&name).disable_help_flag(true));
        let mut body = Vec::new();
        page.render_synopsis_section(&mut body)?;
        page.render_description_section(&mut body)?;
        page.render_options_section(&mut body)?;
        out.extend_from_slice(&within_section(&body));
    }

    let mut tail = Roff::new();
    tail.control("SH", ["EXIT STATUS"]);
    if let Some(text) = cli.get_after_help() {
        tail.text([roman(text.to_string())]);
    }
    tail.text([roman(
        "tether ssh passes the remote command's status on.".to_string(),
    )]);
    tail.control("SH", ["ENVIRONMENT"]);
    for (name, what) in ENVIRONMENT {
        tail.control("TP", []);
        tail.text([bold(*name)]);
        tail.text([roman(*what)]);
    }
    tail.control("SH", ["FILES"]);
    tail.control("TP", []);
    tail.text([roman("~/.local/share/tether/")]);
    tail.text([roman(
        "Sessions (key and certificate, 0600), the SSH configuration that Tether's block in \
         ~/.ssh/config includes, tunnels' remembered ports, the agent's log.",
    )]);
    tail.control("SH", ["SEE ALSO"]);
    tail.text([
        bold("tether-desktop"),
        roman("(1), "),
        bold("ssh"),
        roman("(1), "),
        bold("ssh_config"),
        roman("(5)"),
    ]);
    tail.to_writer(&mut out)?;
    Ok(out)
}

/// A command's sections as paragraphs of its `.SS` entry: the `.SH` headings go, so that
/// the page keeps one heading per topic.
fn within_section(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with(".SH ") {
            out.push_str(".PP\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

fn print(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: cannot write: {e}");
            ExitCode::FAILURE
        }
    }
}
