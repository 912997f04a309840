//! Production guardrails at a terminal, through the real `tether` on a terminal of its own:
//! a shell on a production environment is asked about first (default no), a tunnel too
//! (default yes, as the official client's `tunnel:open`), `-y` answers, and
//! `config:production-guard --off` stops the questions for one project only.

use anyhow::{ensure, Result};
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;

const SHELL_QUESTION: &str = "Are you sure you want to open a terminal on it?";
const TUNNEL_QUESTION: &str = "Are you sure you want to open tunnels to it?";
/// The end of tether-sim's welcome banner: the shell is there (what is typed after it waits in
/// the terminal until the shell reads it).
const PROMPT: &str = "The app's files are in the home directory.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_asks_first_at_a_terminal_and_the_project_switch_stops_it() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let _stop = user.agent_stopper();
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    let main = ["-p", DEMO_PROJECT, "-e", "main", "-A", "app"];
    let staging = ["-p", DEMO_PROJECT, "-e", "staging", "-A", "app"];

    // Listings mark production.
    let list = user.ok(&["environments", "-p", DEMO_PROJECT], None).await?;
    let line = |id: &str| list.lines().find(|l| l.starts_with(id)).unwrap_or_default();
    ensure!(
        line("main").starts_with("main [PRODUCTION]") && !line("staging").contains("PRODUCTION"),
        "{list}"
    );

    // A shell on production: asked, and an empty answer is no.
    let (status, shown) = user
        .at_a_terminal(&[&["ssh"][..], &main].concat(), &[(SHELL_QUESTION, "\n")])
        .await?;
    ensure!(!status.success(), "an empty answer went ahead: {shown}");
    ensure!(
        shown.contains(&format!(
            "main is the PRODUCTION environment of project {DEMO_PROJECT}"
        )) && shown.contains("[y/N]"),
        "the question: {shown}"
    );
    ensure!(
        shown.contains("nothing done") && !shown.contains(PROMPT),
        "{shown}"
    );

    // Yes: the shell opens.
    let (status, shown) = user
        .at_a_terminal(
            &[&["ssh"][..], &main].concat(),
            &[
                (SHELL_QUESTION, "y\n"),
                (PROMPT, "echo guarded-$((6*7))\nexit\n"),
            ],
        )
        .await?;
    ensure!(status.success(), "{shown}");
    ensure!(shown.contains("guarded-42"), "the shell ran: {shown}");

    // Not production: no question.
    let (status, shown) = user
        .at_a_terminal(&[&["ssh"][..], &staging].concat(), &[(PROMPT, "exit\n")])
        .await?;
    ensure!(status.success() && !shown.contains("PRODUCTION"), "{shown}");

    // A tunnel on production: asked, default yes; "n" opens nothing.
    let open = [&["tunnel:open"][..], &main, &["-r", "database"]].concat();
    let (status, shown) = user
        .at_a_terminal(&open, &[(TUNNEL_QUESTION, "n\n")])
        .await?;
    ensure!(!status.success() && shown.contains("[Y/n]"), "{shown}");
    let list = user.ok(&["tunnel:list", "--format", "json"], None).await?;
    ensure!(
        list.trim() == "[]" || list.trim().is_empty(),
        "nothing opened: {list}"
    );

    // The project's switch off: neither asks; another project's production would still.
    let out = user
        .ok(
            &["config:production-guard", "-p", DEMO_PROJECT, "--off"],
            None,
        )
        .await?;
    ensure!(out.contains("does not ask"), "{out}");
    let (status, shown) = user
        .at_a_terminal(&[&["ssh"][..], &main].concat(), &[(PROMPT, "exit\n")])
        .await?;
    ensure!(status.success() && !shown.contains("PRODUCTION"), "{shown}");
    let (status, shown) = user.at_a_terminal(&open, &[]).await?;
    ensure!(status.success() && !shown.contains("PRODUCTION"), "{shown}");
    let out = user
        .ok(
            &[
                "config:production-guard",
                "-p",
                DEMO_PROJECT,
                "--format",
                "json",
            ],
            None,
        )
        .await?;
    ensure!(out.contains("\"asks_before_production\": false"), "{out}");

    // On again: asked again, and -y answers it.
    user.ok(
        &["config:production-guard", "-p", DEMO_PROJECT, "--on"],
        None,
    )
    .await?;
    let (status, shown) = user
        .at_a_terminal(
            &[&["ssh"][..], &main, &["-y"]].concat(),
            &[(PROMPT, "exit\n")],
        )
        .await?;
    ensure!(
        status.success() && !shown.contains("PRODUCTION"),
        "-y: {shown}"
    );
    user.ok(&["agent:stop"], None).await?;
    Ok(())
}
