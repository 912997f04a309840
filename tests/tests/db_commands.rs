//! `environment:relationships`, `db:sql` and `db:dump` as users run them: the real `tether`
//! against tether-sim, whose app containers run the official client's command text
//! (`psql 'postgresql://main:main@database.internal:5432/main' …`) with the sim's stand-ins
//! reaching a real PostgreSQL and Redis; then the export workflow, where the same commands
//! run here through `tether tunnel:open`'s tunnels, as their counters show; the production
//! SQL shell that starts read-only; and bad inputs. One sim, one PostgreSQL and one Redis for
//! the whole suite (one test, in steps), to keep it fast.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;
use tether_e2e::cli::{workspace_binary, User};
use tether_e2e::db::*;
use tether_e2e::*;
use tether_sim::SimOptions;

/// A query straight to the test's PostgreSQL, not through Tether.
fn psql(port: u16, database: &str, sql: &str) -> Result<String> {
    Ok(
        run_ok(psql_command(port, database).args(["-v", "ON_ERROR_STOP=1", "-tAc", sql]))?
            .trim()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_commands_run_on_the_app_and_through_tunnels() -> Result<()> {
    // The sim's containers reach services through its stand-ins, links to this binary.
    workspace_binary("tether-sim")?;
    let postgres = Postgres::start()?;
    let redis = Redis::start()?;
    psql(
        postgres.port,
        "main",
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )?;
    let mut options = SimOptions::default();
    backend(&mut options, "postgresql", postgres.port);
    backend(&mut options, "redis", redis.port);
    let sim = demo_sim(options).await?;
    let user = User::new(&sim.info, false)?;
    let _stop = user.agent_stopper();
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;

    relationships(&user).await?;
    sql_on_the_app(&user).await?;
    dump_restores(&user, postgres.port).await?;
    production_shell_is_read_only(&user, postgres.port).await?;
    at_a_terminal(&user, postgres.port).await?;
    export_runs_through_the_tunnel(&user, postgres.port).await?;
    bad_inputs(&user).await?;
    Ok(())
}

async fn relationships(user: &User) -> Result<()> {
    let (port, _) = ok(
        user,
        &with(
            &STAGING,
            &["environment:relationships", "-P", "database.0.port"],
        ),
        &[],
        None,
    )
    .await?;
    ensure!(port.trim() == "5432", "{port}");
    let (host, _) = ok(
        user,
        &with(&STAGING, &["rel", "-P", "database.0.host"]),
        &[],
        None,
    )
    .await?;
    ensure!(host.trim() == "database.internal", "{host}");
    // The environment as an argument, as the official client takes it; a URL for each.
    let (all, _) = ok(
        user,
        &[
            "relationships",
            "staging",
            "-p",
            DEMO_PROJECT,
            "-A",
            "app",
            "--format",
            "json",
        ],
        &[],
        None,
    )
    .await?;
    let all: Value = serde_json::from_str(&all)?;
    ensure!(
        all["database"][0]["url"] == "postgresql://main:main@database.internal:5432/main",
        "{all}"
    );
    ensure!(all["rediscache"][0]["scheme"] == "redis", "{all}");
    Ok(())
}

async fn sql_on_the_app(user: &User) -> Result<()> {
    let (out, _) = ok(
        user,
        &with(
            &STAGING,
            &[
                "db:sql",
                "--raw",
                "SELECT string_agg(name, ',' ORDER BY id) FROM items",
            ],
        ),
        &[],
        None,
    )
    .await?;
    ensure!(out.trim() == "one,two,three", "{out}");
    // Tabular output, the `sql` alias, and -r with the official `.0` form.
    let (out, _) = ok(
        user,
        &with(
            &STAGING,
            &["sql", "-r", "database.0", "SELECT count(*) AS n FROM items"],
        ),
        &[],
        None,
    )
    .await?;
    ensure!(
        out.contains(" n ") && out.contains("3") && out.contains("(1 row)"),
        "{out}"
    );
    // Redis, named with -r: redis-cli on the app.
    let (out, _) = ok(
        user,
        &with(
            &STAGING,
            &["db:sql", "-r", "rediscache", "SET tether db-sql"],
        ),
        &[],
        None,
    )
    .await?;
    ensure!(out.trim() == "OK", "{out}");
    let (out, _) = ok(
        user,
        &with(&STAGING, &["db:sql", "-r", "rediscache", "GET tether"]),
        &[],
        None,
    )
    .await?;
    ensure!(out.trim() == "db-sql", "{out}");
    failing_query_fails(user).await
}

async fn dump_restores(user: &User, pg: u16) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = gzipped_dump(user, dir.path()).await?;
    let file_arg = file.display();
    psql(pg, "main", "CREATE DATABASE restored")?;
    let restore = run(Command::new("sh").arg("-c").arg(format!(
        "gunzip -c '{file_arg}' | psql -v ON_ERROR_STOP=1 -q postgresql://main:main@127.0.0.1:{pg}/restored"
    )))?;
    ensure!(
        restore.status.success(),
        "restore failed: {}",
        text(&restore.stderr)
    );
    ensure!(
        psql(
            pg,
            "restored",
            "SELECT string_agg(name, ',' ORDER BY id) FROM items"
        )? == "one,two,three"
    );

    // The default file name, as the official client builds it, in the current directory;
    // only the tables asked for.
    let out = tether(
        user,
        &with(&STAGING, &["db:dump", "--table", "items", "--schema-only"]),
        &[],
        None,
        Some(dir.path()),
    )
    .await?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let name =
        format!("{DEMO_PROJECT}--staging-kqi3yda--postgresql15--main--items--schema--dump.sql");
    let plain = std::fs::read_to_string(dir.path().join(&name)).with_context(|| {
        format!(
            "no {name} in {:?}",
            std::fs::read_dir(dir.path()).map(|d| d.collect::<Vec<_>>())
        )
    })?;
    ensure!(plain.contains("CREATE TABLE public.items"), "{plain}");
    ensure!(
        !plain.contains("'three'") && !plain.contains("COPY"),
        "{plain}"
    );

    // --timestamp goes before the extension.
    let stamped = dir.path().join("stamped.sql");
    ok(
        user,
        &with(
            &STAGING,
            &["db:dump", "-t", "-f", &stamped.to_string_lossy()],
        ),
        &[],
        None,
    )
    .await?;
    let names: Vec<String> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("stamped--"))
        .collect();
    ensure!(
        names.len() == 1
            && names[0].ends_with("-UTC.sql")
            && names[0].len() == "stamped--20261207-174400-UTC.sql".len(),
        "{names:?}"
    );

    // --stdout.
    let (out, _) = ok(user, &with(&STAGING, &["db:dump", "-o"]), &[], None).await?;
    ensure!(
        out.contains("COPY public.items") && out.contains("three"),
        "{out}"
    );
    Ok(())
}

async fn production_shell_is_read_only(user: &User, pg: u16) -> Result<()> {
    // No query: a SQL shell (statements from a pipe here), read-only on production.
    let out = tether(
        user,
        &with(&PRODUCTION, &["db:sql"]),
        &[],
        Some("CREATE TABLE written (x int);\n"),
        None,
    )
    .await?;
    let said = text(&out.stderr);
    ensure!(
        said.contains("read-only")
            && said.contains("SET default_transaction_read_only = off;")
            && said.contains("--write"),
        "{said}"
    );
    ensure!(
        said.contains("cannot execute CREATE TABLE in a read-only transaction"),
        "{said}"
    );
    ensure!(
        psql(pg, "main", "SELECT to_regclass('written') IS NULL")? == "t",
        "the write went through"
    );
    // The way out it names works, and so does --write.
    ok(
        user,
        &with(&PRODUCTION, &["db:sql"]),
        &[],
        Some("SET default_transaction_read_only = off;\nCREATE TABLE written (x int);\n"),
    )
    .await?;
    ensure!(psql(pg, "main", "SELECT to_regclass('written') IS NOT NULL")? == "t");
    let (_, said) = ok(
        user,
        &with(&PRODUCTION, &["db:sql", "--write"]),
        &[],
        Some("CREATE TABLE written_too (x int);\n"),
    )
    .await?;
    ensure!(!said.contains("read-only"), "{said}");
    ensure!(psql(pg, "main", "SELECT to_regclass('written_too') IS NOT NULL")? == "t");
    // Not production: writable.
    let (_, said) = ok(
        user,
        &with(&STAGING, &["db:sql"]),
        &[],
        Some("CREATE TABLE staging_written (x int);\n"),
    )
    .await?;
    ensure!(!said.contains("read-only"), "{said}");
    ensure!(
        psql(
            pg,
            "main",
            "SELECT to_regclass('staging_written') IS NOT NULL"
        )? == "t"
    );
    // Redis cannot be read-only: it says so.
    let (out, said) = ok(
        user,
        &with(&PRODUCTION, &["db:sql", "-r", "rediscache"]),
        &[],
        Some("PING\n"),
    )
    .await?;
    ensure!(said.contains("Redis has no read-only mode"), "{said}");
    ensure!(out.contains("PONG"), "{out}");
    Ok(())
}

/// `tether ARGS` on a terminal (util-linux `script`), typing `input`; what the terminal showed.
async fn on_a_terminal(user: &User, args: &[&str], input: &str) -> Result<String> {
    let inner = user.tether(args)?;
    let line = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    user.environment(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("cannot run script (util-linux)")?;
    let mut pipe = child.stdin.take().context("stdin")?;
    use tokio::io::AsyncWriteExt;
    pipe.write_all(input.as_bytes()).await?;
    let out = tokio::time::timeout(Duration::from_secs(60), async {
        // Typed input is read as the program asks; the end of it closes the terminal.
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(pipe);
        child.wait_with_output().await
    })
    .await
    .map_err(|_| anyhow!("tether {args:?} on a terminal did not finish in 60 s"))??;
    Ok(format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// At a terminal: the dump's progress bar (bytes and rate), and an interactive SQL shell on
/// production (psql on the app's terminal, through ssh's RequestTTY) that refuses a write.
async fn at_a_terminal(user: &User, pg: u16) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tty.sql");
    let file_arg = file.to_string_lossy().into_owned();
    let shown = on_a_terminal(user, &with(&STAGING, &["db:dump", "-f", &file_arg]), "").await?;
    ensure!(
        shown.contains("[====================]") && shown.contains("B/s  done"),
        "no progress bar at the terminal:\n{shown}"
    );
    // The last state of the bar, for the log (`--nocapture`).
    if let Some(last) = shown.rsplit('\r').find(|l| l.contains("done")) {
        println!("db:dump at a terminal: {}", last.trim());
    }
    ensure!(std::fs::read_to_string(&file)?.contains("COPY public.items"));
    let shown = on_a_terminal(
        user,
        &with(&PRODUCTION, &["db:sql", "-y"]),
        "CREATE TABLE typed (x int);\n\\q\n",
    )
    .await?;
    ensure!(
        shown.contains("the SQL shell is read-only")
            && shown.contains("cannot execute CREATE TABLE in a read-only transaction"),
        "{shown}"
    );
    // psql's own prompt: a real terminal session on the app.
    ensure!(
        shown.contains("main=>") || shown.contains("main=#"),
        "{shown}"
    );
    ensure!(psql(pg, "main", "SELECT to_regclass('typed') IS NULL")? == "t");
    // Without -y, production asks first; no answers no.
    let shown = on_a_terminal(user, &with(&PRODUCTION, &["db:sql"]), "n\n").await?;
    ensure!(
        shown.contains("PRODUCTION environment") && shown.contains("nothing done"),
        "{shown}"
    );
    Ok(())
}

async fn export_runs_through_the_tunnel(user: &User, pg: u16) -> Result<()> {
    let encoded = production_tunnel_export(user).await?;
    let export = [("PLATFORM_RELATIONSHIPS", encoded.as_str())];
    let before = database_counters(user).await?;

    let (out, _) = ok(
        user,
        &["db:sql", "--raw", "SELECT count(*) FROM items"],
        &export,
        None,
    )
    .await?;
    ensure!(out.trim() == "3", "{out}");
    let after = database_counters(user).await?;
    ensure!(
        after["connections"].as_u64() > before["connections"].as_u64()
            && after["bytes_received"].as_u64() > before["bytes_received"].as_u64(),
        "the query did not go through the tunnel: {before} then {after}"
    );
    // The relationships are the export's (the tunnel's local port), read here.
    let (port, _) = ok(user, &["rel", "-P", "database.0.host"], &export, None).await?;
    ensure!(port.trim() == "127.0.0.1", "{port}");
    // The tunnel's environment is production: its SQL shell starts read-only here too.
    let out = tether(
        user,
        &["db:sql"],
        &export,
        Some("CREATE TABLE through_tunnel (x int);\n"),
        None,
    )
    .await?;
    let said = text(&out.stderr);
    ensure!(said.contains("read-only transaction"), "{said}");
    ensure!(psql(pg, "main", "SELECT to_regclass('through_tunnel') IS NULL")? == "t");
    // A dump through the tunnel.
    let (dump, _) = ok(user, &["db:dump", "-o"], &export, None).await?;
    ensure!(dump.contains("COPY public.items"), "{dump}");
    let dumped = database_counters(user).await?;
    ensure!(
        dumped["connections"].as_u64() > after["connections"].as_u64(),
        "{after} then {dumped}"
    );
    // A flag naming another environment than the export's: on the app, not the tunnel.
    let (out, _) = ok(
        user,
        &with(&STAGING, &["db:sql", "--raw", "SELECT 40 + 2"]),
        &export,
        None,
    )
    .await?;
    ensure!(out.trim() == "42", "{out}");
    let remote = database_counters(user).await?;
    ensure!(
        remote["connections"] == dumped["connections"],
        "-e staging went through the tunnel: {dumped} then {remote}"
    );
    ok(user, &["tunnel:close", "--all", "-y"], &[], None).await?;
    Ok(())
}

async fn bad_inputs(user: &User) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir_arg = dir.path().to_string_lossy().into_owned();
    /// Arguments, variables, what the error says.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 6] = [
        (
            with(&STAGING, &["db:dump", "-f", &dir_arg]),
            vec![],
            "is a directory",
        ),
        (
            with(&STAGING, &["db:sql", "-r", "nope", "SELECT 1"]),
            vec![],
            "relationship not found: nope. Use -r with one of: database, rediscache",
        ),
        (
            with(&STAGING, &["db:dump", "-r", "rediscache", "-o"]),
            vec![],
            "relationship rediscache is a redis service, not a database",
        ),
        (
            with(&STAGING, &["rel", "-P", "database.9.port"]),
            vec![],
            "property not found: database.9.port",
        ),
        (
            vec!["db:sql", "SELECT 1"],
            vec![("PLATFORM_RELATIONSHIPS", "not base64!")],
            "PLATFORM_RELATIONSHIPS is set here but unusable",
        ),
        (
            vec!["db:sql", "SELECT 1"],
            vec![("PLATFORM_RELATIONSHIPS", "e30=")],
            "no relationships found matching scheme(s): mysql, pgsql",
        ),
    ];
    for (args, vars, wanted) in cases {
        let out = tether(user, &args, &vars, None, None).await?;
        let said = text(&out.stderr);
        ensure!(
            out.status.code() == Some(1) || out.status.code() == Some(2),
            "{args:?}: {:?} {said}",
            out.status
        );
        ensure!(
            said.contains(wanted),
            "{args:?} did not say {wanted:?}:\n{said}"
        );
    }
    Ok(())
}
