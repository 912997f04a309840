//! Database clients on this machine, and the forms each takes a tunnelled service in: the
//! URL, a terminal client's command line (credentials in its environment, never in its
//! arguments), a JDBC URL, environment-variable lines, and the command line of each desktop
//! client the app offers under "Open in…".
//!
//! What each client accepts, from its own documentation and tracker:
//! - DBeaver: `-con "driver=…|host=…|port=…|database=…|user=…|password=…|connect=true"`
//!   (DBeaver wiki, Command-Line; the same form ddev's `ddev dbeaver` uses);
//! - TablePlus: the connection URL as its one argument (`TablePlus.exe <URL>` on Windows,
//!   `open <URL>` on macOS, TablePlus-Windows #342, TablePlus #227); `postgresql://`, not the
//!   platform's `pgsql://`, which it cannot open (TablePlus #2855). The Linux alpha may refuse
//!   arguments (TablePlus-Linux #137): it is offered all the same, as its URL handler takes
//!   the same URL;
//! - Beekeeper Studio: the URL (`postgresql://`, `mysql://`, `redis://`) through its URL
//!   association or as a positional argument (beekeeper-studio #2002, #4573);
//! - RedisInsight: its deep link `redisinsight://databases/connect?redisUrl=…` (RedisInsight's
//!   URL-handling tests, #2873);
//! - pgAdmin 4: no connection from the command line at all (pgadmin4 #4791): it is started,
//!   and the app says what to enter;
//! - a terminal client: `psql`, `mysql` (`mariadb`) or `redis-cli`, with `PGPASSWORD`,
//!   `MYSQL_PWD` or `REDISCLI_AUTH` in its environment.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// A URL's user, password or path segment is encoded as PHP's `rawurlencode` (what `db:sql`
// puts in psql's URL), and a relationship's fields read as `db` reads them.
use crate::db::{
    field_text as text, rawurlencode as encode, ReadOnly, MYSQL_READ_ONLY_INIT,
    PG_READ_ONLY_OPTIONS,
};
use crate::ssh::url::shell_quote;

/// The kind of service a client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Postgres,
    MySql,
    Redis,
}

/// A service as reached through a tunnel: where, as whom, which database. `Debug` leaves the
/// password out.
#[derive(Clone, PartialEq, Eq)]
pub struct Service {
    pub kind: Kind,
    /// MariaDB rather than MySQL (its JDBC driver and DBeaver driver differ).
    pub mariadb: bool,
    /// The relationship's endpoint id (`database`, `database.1`).
    pub relationship: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// The database (the relationship's `path`), empty when none.
    pub database: String,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("kind", &self.kind)
            .field("relationship", &self.relationship)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A relationship's endpoint (its fields as the platform or a tunnel gives them: `scheme`,
    /// `type`, `host`, `port`, `username`, `password`, `path`), or `None` for a service no
    /// client here talks to.
    pub fn from_fields(relationship: &str, fields: &Map<String, Value>) -> Option<Service> {
        let scheme = text(fields, "scheme").to_ascii_lowercase();
        let kind_text = text(fields, "type").to_ascii_lowercase();
        let family = kind_text.split(':').next().unwrap_or_default();
        let (kind, mariadb) = match (scheme.as_str(), family) {
            ("pgsql" | "postgres" | "postgresql", _) | (_, "postgresql") => (Kind::Postgres, false),
            ("mysql", _) | (_, "mysql" | "mariadb" | "oracle-mysql") => {
                (Kind::MySql, family == "mariadb" || family == "mysql")
            }
            ("redis" | "valkey", _) | (_, "redis" | "redis-persistent" | "valkey") => {
                (Kind::Redis, false)
            }
            _ => return None,
        };
        let port = fields.get("port").and_then(|p| match p {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })?;
        Some(Service {
            kind,
            mariadb,
            relationship: relationship.to_string(),
            host: text(fields, "host"),
            port,
            username: text(fields, "username"),
            password: text(fields, "password"),
            database: text(fields, "path"),
        })
    }

    pub fn is_sql(&self) -> bool {
        self.kind != Kind::Redis
    }

    /// `user:password@` (either may be empty), encoded.
    fn userinfo(&self) -> String {
        match (self.username.is_empty(), self.password.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!("{}@", encode(&self.username)),
            (_, false) => format!("{}:{}@", encode(&self.username), encode(&self.password)),
        }
    }

    fn path(&self) -> String {
        if self.database.is_empty() {
            String::new()
        } else {
            format!("/{}", encode(&self.database))
        }
    }

    /// The URL every client here reads: `postgresql://` (libpq's, which TablePlus and
    /// Beekeeper take; never the platform's `pgsql://`), `mysql://`, `redis://`.
    pub fn url(&self) -> String {
        let scheme = match self.kind {
            Kind::Postgres => "postgresql",
            Kind::MySql => "mysql",
            Kind::Redis => "redis",
        };
        format!(
            "{scheme}://{}{}:{}{}",
            self.userinfo(),
            self.host,
            self.port,
            if self.kind == Kind::Redis {
                String::new()
            } else {
                self.path()
            }
        )
    }

    /// The JDBC URL, credentials as the drivers document them in the query
    /// (`jdbc:postgresql://host:port/db?user=…&password=…`, pgJDBC; `jdbc:mysql://…` for
    /// Connector/J, `jdbc:mariadb://…` for MariaDB's driver). Redis has no JDBC driver.
    pub fn jdbc(&self) -> Option<String> {
        let driver = match self.kind {
            Kind::Postgres => "postgresql",
            Kind::MySql if self.mariadb => "mariadb",
            Kind::MySql => "mysql",
            Kind::Redis => return None,
        };
        let mut query = Vec::new();
        if !self.username.is_empty() {
            query.push(format!("user={}", encode(&self.username)));
        }
        if !self.password.is_empty() {
            query.push(format!("password={}", encode(&self.password)));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        Some(format!(
            "jdbc:{driver}://{}:{}{}{query}",
            self.host,
            self.port,
            self.path()
        ))
    }

    /// The variable the service's client reads its password from (libpq's `PGPASSWORD`,
    /// `MYSQL_PWD`, redis-cli's `REDISCLI_AUTH`): the terminal client's environment and the
    /// export lines both set it.
    fn password_variable(&self) -> &'static str {
        match self.kind {
            Kind::Postgres => "PGPASSWORD",
            Kind::MySql => "MYSQL_PWD",
            Kind::Redis => "REDISCLI_AUTH",
        }
    }

    /// The terminal client: its name, its arguments (no secret among them) and its
    /// environment (the password, and read-only where the client has it). A MariaDB service
    /// uses `mysql`, which MariaDB's packages also install.
    pub fn terminal_client(&self, read_only: bool) -> TerminalClient {
        let mut env = Vec::new();
        if !self.password.is_empty() {
            env.push((self.password_variable().to_string(), self.password.clone()));
        }
        // psql's and redis-cli's way of saying where.
        let host_port = || {
            vec![
                "-h".to_string(),
                self.host.clone(),
                "-p".to_string(),
                self.port.to_string(),
            ]
        };
        let (program, args, read_only) = match self.kind {
            Kind::Postgres => {
                if read_only {
                    env.push(("PGOPTIONS".to_string(), PG_READ_ONLY_OPTIONS.to_string()));
                }
                let mut args = host_port();
                if !self.username.is_empty() {
                    args.extend(["-U".to_string(), self.username.clone()]);
                }
                if !self.database.is_empty() {
                    args.push(self.database.clone());
                }
                let mode = read_only.then_some(ReadOnly::POSTGRES);
                ("psql", args, mode)
            }
            Kind::MySql => {
                let mut args = vec![
                    "--no-auto-rehash".to_string(),
                    format!("--host={}", self.host),
                    format!("--port={}", self.port),
                ];
                if !self.username.is_empty() {
                    args.push(format!("--user={}", self.username));
                }
                if read_only {
                    args.push(format!("--init-command={MYSQL_READ_ONLY_INIT}"));
                }
                if !self.database.is_empty() {
                    args.push(self.database.clone());
                }
                let mode = read_only.then_some(ReadOnly::MYSQL);
                ("mysql", args, mode)
            }
            Kind::Redis => {
                let args = host_port();
                let mode = read_only.then_some(ReadOnly::Unsupported);
                ("redis-cli", args, mode)
            }
        };
        TerminalClient {
            program: program.to_string(),
            args,
            env,
            read_only,
        }
    }

    /// The terminal client as one line to paste in a shell: the password as a variable before
    /// the command (`PGPASSWORD='…' psql -h … -p … -U … db`), not in its arguments.
    pub fn command_line(&self) -> String {
        let client = self.terminal_client(false);
        let mut words: Vec<String> = client
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        words.push(client.program.clone());
        words.extend(client.args.iter().map(|a| shell_quote(a)));
        words.join(" ")
    }

    /// `export` lines for a shell: the client's own variables, which its tools read with no
    /// argument (libpq's `PGHOST`… for `psql` and `pg_dump`; `MYSQL_HOST`, `MYSQL_TCP_PORT`,
    /// `MYSQL_PWD` for `mysql`; `REDISCLI_AUTH` for `redis-cli`), then the URL in the
    /// variable frameworks read (`DATABASE_URL`, `REDIS_URL`).
    pub fn env_lines(&self) -> String {
        let mut vars: Vec<(&str, String)> = Vec::new();
        match self.kind {
            Kind::Postgres => {
                vars.push(("PGHOST", self.host.clone()));
                vars.push(("PGPORT", self.port.to_string()));
                if !self.username.is_empty() {
                    vars.push(("PGUSER", self.username.clone()));
                }
                if !self.password.is_empty() {
                    vars.push((self.password_variable(), self.password.clone()));
                }
                if !self.database.is_empty() {
                    vars.push(("PGDATABASE", self.database.clone()));
                }
                vars.push(("DATABASE_URL", self.url()));
            }
            Kind::MySql => {
                vars.push(("MYSQL_HOST", self.host.clone()));
                vars.push(("MYSQL_TCP_PORT", self.port.to_string()));
                if !self.password.is_empty() {
                    vars.push((self.password_variable(), self.password.clone()));
                }
                vars.push(("DATABASE_URL", self.url()));
            }
            Kind::Redis => {
                if !self.password.is_empty() {
                    vars.push((self.password_variable(), self.password.clone()));
                }
                vars.push(("REDIS_URL", self.url()));
            }
        }
        vars.iter()
            .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
            .collect()
    }
}

/// A terminal client ready to run: `program args…` with `env` added.
#[derive(Clone, PartialEq, Eq)]
pub struct TerminalClient {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Asked for read-only: whether it is.
    pub read_only: Option<ReadOnly>,
}

impl std::fmt::Debug for TerminalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalClient")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TerminalClient {
    /// What the terminal shows before the client starts: read-only, and how to leave it.
    pub fn notice(&self) -> Option<String> {
        match &self.read_only {
            Some(ReadOnly::Yes { leave }) => Some(format!(
                "This is PRODUCTION: the session starts read-only.\nTo change data, run: {leave}"
            )),
            Some(ReadOnly::Unsupported) => Some(format!(
                "This is PRODUCTION, and {} has no read-only mode: every command you type runs.",
                self.program
            )),
            None => None,
        }
    }

    /// `sh -c '…'` that prints the notice, then runs the client in its place (for a terminal
    /// emulator, which runs one command).
    pub fn shell_argv(&self) -> Vec<String> {
        let mut script = String::new();
        if let Some(notice) = self.notice() {
            script.push_str(&format!("printf '%s\\n\\n' {}; ", shell_quote(&notice)));
        }
        script.push_str("exec ");
        script.push_str(
            &std::iter::once(&self.program)
                .chain(&self.args)
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
        vec!["sh".to_string(), "-c".to_string(), script]
    }
}

/// A database client the app can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "snake_case")]
pub enum Client {
    Dbeaver,
    TablePlus,
    BeekeeperStudio,
    PgAdmin,
    RedisInsight,
    /// `psql`, `mysql` or `redis-cli` in a terminal.
    Terminal,
}

/// Every client, with the programs that are it (first found wins).
pub const CLIENTS: [(Client, &str, &[&str]); 6] = [
    (Client::Dbeaver, "DBeaver", &["dbeaver", "dbeaver-ce"]),
    (Client::TablePlus, "TablePlus", &["tableplus"]),
    (
        Client::BeekeeperStudio,
        "Beekeeper Studio",
        &["beekeeper-studio"],
    ),
    (Client::PgAdmin, "pgAdmin", &["pgadmin4"]),
    (
        Client::RedisInsight,
        "RedisInsight",
        &["redisinsight", "redis-insight"],
    ),
    (
        Client::Terminal,
        "Terminal",
        &["psql", "mysql", "redis-cli"],
    ),
];

impl Client {
    pub fn title(self) -> &'static str {
        CLIENTS
            .iter()
            .find(|(c, ..)| *c == self)
            .map_or("", |(_, t, _)| t)
    }

    /// The id used in menus and IPC (`dbeaver`, `table_plus`…).
    pub fn id(self) -> &'static str {
        match self {
            Client::Dbeaver => "dbeaver",
            Client::TablePlus => "table_plus",
            Client::BeekeeperStudio => "beekeeper_studio",
            Client::PgAdmin => "pg_admin",
            Client::RedisInsight => "redis_insight",
            Client::Terminal => "terminal",
        }
    }

    pub fn parse(id: &str) -> Option<Client> {
        CLIENTS.iter().map(|(c, ..)| *c).find(|c| c.id() == id)
    }

    /// Whether it talks to this kind of service.
    pub fn handles(self, kind: Kind) -> bool {
        match self {
            Client::Dbeaver | Client::PgAdmin if kind == Kind::Redis => false,
            Client::PgAdmin => kind == Kind::Postgres,
            Client::RedisInsight => kind == Kind::Redis,
            _ => true,
        }
    }

    /// The label in menus for this service: "TablePlus", "Terminal (psql)".
    pub fn label_for(self, service: Option<&Service>) -> String {
        match (self, service) {
            (Client::Terminal, Some(s)) => {
                format!("Terminal ({})", s.terminal_client(false).program)
            }
            (Client::Terminal, None) => "Terminal (psql, mysql, redis-cli)".to_string(),
            (c, _) => c.title().to_string(),
        }
    }
}

/// A client found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub client: Client,
    /// The desktop client's program; for [`Client::Terminal`], the first terminal client
    /// found (each service uses its own).
    pub program: PathBuf,
}

/// The clients found on `PATH`, in [`CLIENTS`]' order.
pub fn detect(path_var: Option<&std::ffi::OsStr>) -> Vec<Found> {
    CLIENTS
        .iter()
        .filter_map(|(client, _, programs)| {
            programs
                .iter()
                .find_map(|p| crate::ssh::terminal::find_on_path(path_var, p))
                .map(|program| Found {
                    client: *client,
                    program,
                })
        })
        .collect()
}

/// The arguments a desktop client is started with for a service (not for
/// [`Client::Terminal`], which runs in a terminal emulator: [`Service::terminal_client`]).
pub fn desktop_args(client: Client, service: &Service, name: &str) -> Vec<String> {
    match client {
        Client::Dbeaver => {
            let driver = match service.kind {
                Kind::Postgres => "postgresql",
                Kind::MySql if service.mariadb => "mariadb",
                Kind::MySql | Kind::Redis => "mysql",
            };
            let clean = |s: &str| s.replace('|', "");
            let mut spec = vec![
                format!("name={}", clean(name)),
                format!("driver={driver}"),
                format!("host={}", service.host),
                format!("port={}", service.port),
            ];
            if !service.database.is_empty() {
                spec.push(format!("database={}", clean(&service.database)));
            }
            if !service.username.is_empty() {
                spec.push(format!("user={}", clean(&service.username)));
            }
            if !service.password.is_empty() {
                spec.push(format!("password={}", clean(&service.password)));
            }
            spec.extend(["connect=true".to_string(), "openConsole=true".to_string()]);
            vec!["-con".to_string(), spec.join("|")]
        }
        Client::TablePlus | Client::BeekeeperStudio => vec![service.url()],
        Client::RedisInsight => vec![format!(
            "redisinsight://databases/connect?redisUrl={}&databaseAlias={}",
            encode(&service.url()),
            encode(name)
        )],
        Client::PgAdmin | Client::Terminal => Vec::new(),
    }
}

/// The first service of `services` a client handles, SQL databases before Redis (what "SQL
/// shell" and "Copy as…" use when no relationship is named).
pub fn preferred(services: &[Service], client: Option<Client>) -> Option<&Service> {
    let fits = |s: &&Service| client.is_none_or(|c| c.handles(s.kind));
    services
        .iter()
        .filter(fits)
        .find(|s| s.is_sql())
        .or_else(|| services.iter().find(fits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(fields: Value) -> Service {
        let Value::Object(map) = fields else { panic!() };
        Service::from_fields("database", &map).expect("a service")
    }

    fn pg() -> Service {
        service(
            json!({"scheme": "pgsql", "type": "postgresql:15", "host": "127.0.0.1",
            "port": 30000, "username": "main", "password": "p@ss word", "path": "main"}),
        )
    }

    #[test]
    fn urls_use_the_forms_clients_read_not_the_platforms() {
        assert_eq!(
            pg().url(),
            "postgresql://main:p%40ss%20word@127.0.0.1:30000/main"
        );
        let my = service(
            json!({"scheme": "mysql", "type": "mariadb:10.6", "host": "127.0.0.1",
            "port": "30001", "username": "user", "password": "", "path": "main"}),
        );
        assert_eq!(my.url(), "mysql://user@127.0.0.1:30001/main");
        let redis = service(
            json!({"scheme": "redis", "type": "redis:7.0", "host": "127.0.0.1",
            "port": 30002}),
        );
        assert_eq!(redis.url(), "redis://127.0.0.1:30002");
        assert!(!format!("{:?}", pg()).contains("ss word"));
        let Value::Object(solr) = json!({"scheme": "solr", "host": "h", "port": 1}) else {
            panic!()
        };
        assert_eq!(Service::from_fields("solr", &solr), None);
    }

    #[test]
    fn jdbc_urls_carry_credentials_as_the_drivers_document() {
        assert_eq!(
            pg().jdbc().unwrap(),
            "jdbc:postgresql://127.0.0.1:30000/main?user=main&password=p%40ss%20word"
        );
        let maria = service(
            json!({"scheme": "mysql", "type": "mariadb:10.6", "host": "h",
            "port": 3306, "username": "u", "password": "x", "path": "d"}),
        );
        assert_eq!(
            maria.jdbc().unwrap(),
            "jdbc:mariadb://h:3306/d?user=u&password=x"
        );
        let oracle = service(
            json!({"scheme": "mysql", "type": "oracle-mysql:8.0", "host": "h",
            "port": 3306, "username": "u", "password": "x", "path": "d"}),
        );
        assert_eq!(
            oracle.jdbc().unwrap(),
            "jdbc:mysql://h:3306/d?user=u&password=x"
        );
        let redis = service(json!({"scheme": "redis", "host": "h", "port": 1}));
        assert_eq!(redis.jdbc(), None);
    }

    #[test]
    fn terminal_clients_take_the_password_from_the_environment() {
        let c = pg().terminal_client(false);
        assert_eq!(c.program, "psql");
        assert_eq!(
            c.args,
            ["-h", "127.0.0.1", "-p", "30000", "-U", "main", "main"]
        );
        assert_eq!(c.env, [("PGPASSWORD".to_string(), "p@ss word".to_string())]);
        assert!(c.args.iter().all(|a| !a.contains("ss word")));
        assert_eq!(c.notice(), None);
        assert_eq!(
            pg().command_line(),
            "PGPASSWORD='p@ss word' psql -h 127.0.0.1 -p 30000 -U main main"
        );
        let my = service(json!({"scheme": "mysql", "type": "mysql:8.0", "host": "h",
            "port": 3306, "username": "u", "password": "x", "path": "d"}));
        assert_eq!(
            my.command_line(),
            "MYSQL_PWD=x mysql --no-auto-rehash --host=h --port=3306 --user=u d"
        );
    }

    #[test]
    fn production_sessions_start_read_only_where_the_client_can_and_say_so() {
        let c = pg().terminal_client(true);
        assert!(c.env.contains(&(
            "PGOPTIONS".into(),
            "-c default_transaction_read_only=on".into()
        )));
        let notice = c.notice().unwrap();
        assert!(
            notice.contains("read-only")
                && notice.contains("SET default_transaction_read_only = off;")
        );
        let argv = c.shell_argv();
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert!(argv[2].contains("exec psql -h 127.0.0.1"), "{}", argv[2]);
        assert!(argv[2].contains("read-only"), "{}", argv[2]);
        let my = service(json!({"scheme": "mysql", "host": "h", "port": 3306, "username": "u"}));
        let c = my.terminal_client(true);
        assert!(c
            .args
            .contains(&"--init-command=SET SESSION TRANSACTION READ ONLY".into()));
        let redis = service(json!({"scheme": "redis", "host": "h", "port": 1, "password": "s"}));
        let c = redis.terminal_client(true);
        assert_eq!(c.read_only, Some(ReadOnly::Unsupported));
        assert!(c.notice().unwrap().contains("no read-only mode"));
        assert_eq!(c.env, [("REDISCLI_AUTH".to_string(), "s".to_string())]);
    }

    #[test]
    fn environment_lines_set_the_clients_variables_and_the_url() {
        assert_eq!(
            pg().env_lines(),
            "export PGHOST=127.0.0.1\nexport PGPORT=30000\nexport PGUSER=main\n\
             export PGPASSWORD='p@ss word'\nexport PGDATABASE=main\n\
             export DATABASE_URL=postgresql://main:p%40ss%20word@127.0.0.1:30000/main\n"
        );
        let redis = service(json!({"scheme": "redis", "host": "127.0.0.1", "port": 1}));
        assert_eq!(redis.env_lines(), "export REDIS_URL=redis://127.0.0.1:1\n");
    }

    #[test]
    fn each_desktop_client_gets_the_form_it_accepts() {
        let pg = pg();
        assert_eq!(
            desktop_args(Client::Dbeaver, &pg, "Storefront main database"),
            [
                "-con",
                "name=Storefront main database|driver=postgresql|host=127.0.0.1|port=30000|\
                 database=main|user=main|password=p@ss word|connect=true|openConsole=true"
            ]
        );
        assert_eq!(desktop_args(Client::TablePlus, &pg, "x"), [pg.url()]);
        assert_eq!(desktop_args(Client::BeekeeperStudio, &pg, "x"), [pg.url()]);
        assert!(desktop_args(Client::PgAdmin, &pg, "x").is_empty());
        let redis = service(json!({"scheme": "redis", "host": "127.0.0.1", "port": 7}));
        assert_eq!(
            desktop_args(Client::RedisInsight, &redis, "cache"),
            ["redisinsight://databases/connect?redisUrl=redis%3A%2F%2F127.0.0.1%3A7&databaseAlias=cache"]
        );
        assert!(!Client::Dbeaver.handles(Kind::Redis));
        assert!(Client::PgAdmin.handles(Kind::Postgres) && !Client::PgAdmin.handles(Kind::MySql));
        assert!(
            Client::RedisInsight.handles(Kind::Redis)
                && !Client::RedisInsight.handles(Kind::Postgres)
        );
        for (c, ..) in CLIENTS {
            assert_eq!(Client::parse(c.id()), Some(c));
        }
        assert_eq!(Client::Terminal.label_for(Some(&pg)), "Terminal (psql)");
    }

    #[test]
    fn sql_databases_come_before_redis_and_clients_are_found_on_path() {
        let redis = service(json!({"scheme": "redis", "host": "h", "port": 1}));
        let both = vec![redis.clone(), pg()];
        assert_eq!(preferred(&both, None), Some(&both[1]));
        assert_eq!(preferred(&both, Some(Client::RedisInsight)), Some(&both[0]));
        assert_eq!(
            preferred(std::slice::from_ref(&redis), Some(Client::Dbeaver)),
            None
        );
        let dir = tempfile::tempdir().unwrap();
        for name in ["dbeaver-ce", "redis-cli"] {
            std::fs::write(dir.path().join(name), "#!/bin/sh\n").unwrap();
        }
        let found = detect(Some(dir.path().as_os_str()));
        assert_eq!(
            found.iter().map(|f| f.client).collect::<Vec<_>>(),
            [Client::Dbeaver, Client::Terminal]
        );
        assert_eq!(found[0].program, dir.path().join("dbeaver-ce"));
    }
}
