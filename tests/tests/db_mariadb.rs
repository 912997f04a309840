//! `db:sql` and `db:dump` on MariaDB as users run them: the real `tether` against tether-sim,
//! whose demo app's `database` relationship is here a `mariadb:10.11` service (scheme `mysql`,
//! port 3306) forwarded to a real MariaDB of the suite's. On the app (over ssh), the official
//! client's command text runs (`mariadb --no-auto-rehash --user=… --host=database.internal
//! --port=3306 main`) with the sim's stand-ins reaching the server; the production SQL shell
//! starts read-only (`SET SESSION TRANSACTION READ ONLY`) at a pipe and at a terminal, and
//! `--write` lifts it; after `tunnel:open` and the export of `PLATFORM_RELATIONSHIPS`, the same
//! commands run here through the tunnel, as its counters show. One sim and one MariaDB for the
//! whole suite (one test, in steps), to keep it fast.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Result};
use tether_e2e::cli::{workspace_binary, User};
use tether_e2e::db::*;
use tether_e2e::mariadb::MariaDb;
use tether_e2e::*;
use tether_sim::{Fixture, SimOptions};

/// The demo, with the storefront's `db` service a MariaDB (its `database` relationship then
/// names the `mysql` endpoint) on a `mariadb` backend.
fn fixture() -> Result<Fixture> {
    let demo = tether_sim::fixture::DEMO_FIXTURE;
    let toml = demo
        .replacen(
            "[backends]\n",
            "[backends]\nmariadb = \"127.0.0.1:3306\"\n",
            1,
        )
        .replacen(
            "name = \"db\"\n  type = \"postgresql:15\"\n  backend = \"postgresql\"",
            "name = \"db\"\n  type = \"mariadb:10.11\"\n  backend = \"mariadb\"",
            1,
        )
        .replacen("database = \"db:postgresql\"", "database = \"db:mysql\"", 1);
    ensure!(
        toml.matches("mariadb").count() == 3,
        "the demo fixture changed: the MariaDB edits did not all apply"
    );
    Ok(Fixture::from_toml(&toml)?)
}

const NAMES: &str = "SELECT GROUP_CONCAT(name ORDER BY id) AS names FROM items";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_commands_run_on_the_app_and_through_tunnels() -> Result<()> {
    // The sim's containers reach services through its stand-ins, links to this binary.
    workspace_binary("tether-sim")?;
    let maria = MariaDb::start()?;
    maria.query(
        "main",
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three'); \
         CREATE TABLE notes (id int PRIMARY KEY)",
    )?;
    let mut options = SimOptions::default();
    backend(&mut options, "mariadb", maria.port);
    let sim = tether_sim::Sim::start(fixture()?, options).await?;
    let user = User::new(&sim.info, false)?;
    let _stop = user.agent_stopper();
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;

    sql_on_the_app(&user).await?;
    dump_restores(&user, &maria).await?;
    production_shell_is_read_only(&user, &maria).await?;
    export_runs_through_the_tunnel(&user, &maria).await?;
    Ok(())
}

async fn sql_on_the_app(user: &User) -> Result<()> {
    let (scheme, _) = ok(
        user,
        &with(&STAGING, &["rel", "-P", "database.0.scheme"]),
        &[],
        None,
    )
    .await?;
    ensure!(scheme.trim() == "mysql", "{scheme}");
    let (out, _) = ok(
        user,
        &with(&STAGING, &["db:sql", "--raw", NAMES]),
        &[],
        None,
    )
    .await?;
    // `--batch --raw`, as the official client runs it: the column's name, then its value.
    ensure!(out.trim() == "names\none,two,three", "{out}");
    // The `sql` alias; without a terminal the client prints tab-separated rows; the server
    // is MariaDB.
    let (out, _) = ok(
        user,
        &with(
            &STAGING,
            &["sql", "SELECT COUNT(*) AS n, VERSION() AS v FROM items"],
        ),
        &[],
        None,
    )
    .await?;
    ensure!(
        out.starts_with("n\tv\n3\t") && out.contains("MariaDB"),
        "{out}"
    );
    failing_query_fails(user).await
}

/// Restores a dump (`gunzip` when `gzipped`) into a fresh database; its rows.
fn restore(maria: &MariaDb, file: &Path, database: &str, gzipped: bool) -> Result<String> {
    maria.query("main", &format!("CREATE DATABASE {database}"))?;
    let reader = if gzipped { "gunzip -c" } else { "cat" };
    let restore = run(Command::new("sh").arg("-c").arg(format!(
        "{reader} '{}' | mariadb --no-defaults --host=127.0.0.1 --port={} --user=main \
         --password=main {database}",
        file.display(),
        maria.port
    )))?;
    ensure!(
        restore.status.success(),
        "restore failed: {}",
        text(&restore.stderr)
    );
    maria.query(database, NAMES)
}

async fn dump_restores(user: &User, maria: &MariaDb) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = gzipped_dump(user, dir.path()).await?;
    let rows = restore(maria, &file, "restored", true)?;
    ensure!(rows == "one,two,three", "restored: {rows}");
    // --schema-only: the table, none of its rows.
    let (out, _) = ok(
        user,
        &with(&STAGING, &["db:dump", "-o", "--schema-only"]),
        &[],
        None,
    )
    .await?;
    ensure!(
        out.contains("CREATE TABLE `items`") && !out.contains("'three'"),
        "{out}"
    );
    // --table and --exclude-table: mariadb-dump's table arguments and --ignore-table.
    let (only, _) = ok(
        user,
        &with(&STAGING, &["db:dump", "-o", "--table", "notes"]),
        &[],
        None,
    )
    .await?;
    ensure!(
        only.contains("CREATE TABLE `notes`") && !only.contains("CREATE TABLE `items`"),
        "{only}"
    );
    let (but, _) = ok(
        user,
        &with(&STAGING, &["db:dump", "-o", "--exclude-table", "notes"]),
        &[],
        None,
    )
    .await?;
    ensure!(
        but.contains("CREATE TABLE `items`") && !but.contains("CREATE TABLE `notes`"),
        "{but}"
    );
    Ok(())
}

async fn production_shell_is_read_only(user: &User, maria: &MariaDb) -> Result<()> {
    let count = || maria.query("main", "SELECT COUNT(*) FROM items");
    // No query: a SQL shell (statements from a pipe here), read-only on production.
    let out = tether(
        user,
        &with(&PRODUCTION, &["db:sql", "-y"]),
        &[],
        Some("INSERT INTO items VALUES (4, 'four');\n"),
        None,
    )
    .await?;
    let said = text(&out.stderr);
    ensure!(
        said.contains("the SQL shell is read-only")
            && said.contains("SET SESSION TRANSACTION READ WRITE;")
            && said.contains("--write"),
        "{said}"
    );
    ensure!(said.contains("READ ONLY transaction"), "{said}");
    ensure!(count()? == "3", "the write went through");
    // The way out it names works, and so does --write.
    ok(
        user,
        &with(&PRODUCTION, &["db:sql", "-y"]),
        &[],
        Some("SET SESSION TRANSACTION READ WRITE;\nINSERT INTO items VALUES (4, 'four');\n"),
    )
    .await?;
    ensure!(count()? == "4", "the way out did not allow the write");
    let (_, said) = ok(
        user,
        &with(&PRODUCTION, &["db:sql", "-y", "--write"]),
        &[],
        Some("INSERT INTO items VALUES (5, 'five');\n"),
    )
    .await?;
    ensure!(!said.contains("read-only"), "{said}");
    ensure!(count()? == "5", "--write did not allow the write");
    // At a terminal: the client's own prompt on the app's terminal (ssh's RequestTTY), the
    // write typed there refused.
    let (status, shown) = user
        .at_a_terminal(
            &with(&PRODUCTION, &["db:sql", "-y"]),
            &[
                ("MariaDB [main]>", "INSERT INTO items VALUES (6, 'six');\n"),
                ("READ ONLY transaction", "exit\n"),
            ],
        )
        .await?;
    ensure!(status.success(), "{status}: {shown}");
    ensure!(shown.contains("the SQL shell is read-only"), "{shown}");
    ensure!(count()? == "5", "the typed write went through");
    Ok(())
}

async fn export_runs_through_the_tunnel(user: &User, maria: &MariaDb) -> Result<()> {
    let encoded = production_tunnel_export(user).await?;
    let export = [("PLATFORM_RELATIONSHIPS", encoded.as_str())];
    let before = database_counters(user).await?;
    let (out, _) = ok(user, &["db:sql", "--raw", NAMES], &export, None).await?;
    ensure!(out.trim() == "names\none,two,three,four,five", "{out}");
    let after = database_counters(user).await?;
    ensure!(
        after["connections"].as_u64() > before["connections"].as_u64()
            && after["bytes_received"].as_u64() > before["bytes_received"].as_u64(),
        "the query did not go through the tunnel: {before} then {after}"
    );
    // The tunnel's environment is production: its SQL shell starts read-only here too.
    let out = tether(
        user,
        &["db:sql", "-y"],
        &export,
        Some("INSERT INTO items VALUES (7, 'seven');\n"),
        None,
    )
    .await?;
    let said = text(&out.stderr);
    ensure!(said.contains("READ ONLY transaction"), "{said}");
    ensure!(maria.query("main", "SELECT COUNT(*) FROM items")? == "5");
    // A dump through the tunnel restores.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tunnel.sql");
    ok(
        user,
        &["db:dump", "-f", &file.to_string_lossy()],
        &export,
        None,
    )
    .await?;
    let rows = restore(maria, &file, "through_tunnel", false)?;
    ensure!(rows == "one,two,three,four,five", "restored: {rows}");
    let dumped = database_counters(user).await?;
    ensure!(
        dumped["connections"].as_u64() > after["connections"].as_u64(),
        "the dump did not go through the tunnel: {after} then {dumped}"
    );
    ok(user, &["tunnel:close", "--all", "-y"], &[], None).await?;
    Ok(())
}
