//! The database commands' decisions (`db:sql`, `db:dump`, `environment:relationships`), read
//! from the official client's source, `legacy/src/`:
//! - which relationship: `Service/Relationships.php`, `chooseService` ([`choose`]);
//! - the client's command text: `getDbCommandArgs`, `mariaDbCommandWithFallback` and
//!   `Command/Db/DbSqlCommand.php` / `DbDumpCommand.php` ([`sql_command`], [`dump_command`]),
//!   quoted with `Util/OsUtil.php`'s `escapePosixShellArg` ([`escape`]): Tether sends the
//!   official client's text byte for byte, so whatever runs it (the app's shell over SSH, or a
//!   local shell after `export PLATFORM_RELATIONSHIPS=…`) sees what it would see;
//! - the dump's default file name: `DbDumpCommand::getDefaultFilename` ([`default_dump_file`]);
//! - whether to run locally: `Model/Host/LocalHost.php`, `conflictsWithCommandLineOptions`,
//!   with `Relationships::hasLocalEnvVar` ([`runs_locally`]).
//!
//! Tether's additions, each said where it is: a production SQL shell starts read-only where
//! the client can ([`ReadOnly`]), and `db:sql -r <redis relationship>` runs `redis-cli` as the
//! official `service:redis-cli` builds it (`Command/Service/ValkeyCliCommandBase.php`).

use serde_json::Value;

use crate::tunnel::{Endpoint, Relationships, RelationshipsError};

/// What the app's shell runs to print its relationships, between markers so that whatever its
/// login scripts print around them is ignored (the official client's `Service/RemoteEnvVars.php`,
/// `getEnvVar`), and how the value is taken from between them: the tunnels' own.
pub use crate::tunnel::{between_markers, READ_RELATIONSHIPS};

/// A `PLATFORM_RELATIONSHIPS` value as it came (the JSON object) and decoded. Empty is none.
pub fn read_value(value: &[u8]) -> Result<(Value, Relationships), RelationshipsError> {
    let Some(parsed) = Relationships::json(value)? else {
        return Ok((Value::Object(Default::default()), Relationships::default()));
    };
    let decoded = Relationships::from_json(&parsed)?;
    // PHP encodes an empty map as an empty list.
    let parsed = match parsed {
        Value::Array(a) if a.is_empty() => Value::Object(Default::default()),
        other => other,
    };
    Ok((parsed, decoded))
}

/// The schemes `db:sql` and `db:dump` choose among, as `chooseDatabase`.
pub const DATABASE_SCHEMES: [&str; 2] = ["mysql", "pgsql"];
/// What `db:sql` also runs when `-r` names it: `redis-cli`.
pub const REDIS_SCHEME: &str = "redis";

/// `OsUtil::escapePosixShellArg`: bare when only `[a-zA-Z0-9_.@%:-]`, else single-quoted.
pub fn escape(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'%' | b':' | b'-')
        });
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// PHP's `rawurlencode` (RFC 3986 unreserved characters kept): also what [`crate::clients`]
/// encodes a URL's user, password and path with.
pub(crate) fn rawurlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why no database could be chosen; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no relationships found matching scheme(s): {}. The app has: {}", .schemes.join(", "), none_if_empty(.available))]
    NoMatching {
        schemes: Vec<String>,
        available: Vec<String>,
    },
    #[error("relationship not found: {name}. Use -r with one of: {}", none_if_empty(.choices))]
    NotFound { name: String, choices: Vec<String> },
    #[error("relationship {name} is a {scheme} service, not a database this command can use ({}). Use -r with one of: {}", .wanted.join(", "), none_if_empty(.choices))]
    WrongKind {
        name: String,
        scheme: String,
        wanted: Vec<String>,
        choices: Vec<String>,
    },
    #[error("more than one relationship found. Use the --relationship (-r) option to specify one: {}", .choices.join(", "))]
    Ambiguous { choices: Vec<String> },
}

fn none_if_empty(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// A chosen service endpoint, with what the commands read from it. `Debug` leaves the
/// password out.
#[derive(Clone)]
pub struct Database {
    /// `database`, or `database.1` when the relationship has several endpoints.
    pub id: String,
    pub relationship: String,
    pub scheme: String,
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    /// The relationship's `path` (the default schema), empty when none.
    pub path: String,
    /// The relationship's `service` (the service's name).
    pub service: Option<String>,
    /// The relationship's `type` (`postgresql:15`, `mariadb:10.6`…).
    pub kind: Option<String>,
    /// The relationship's `rel`: the service endpoint it uses.
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("id", &self.id)
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// A relationship's field as text (a number as its digits), empty when absent.
pub fn field_text(fields: &serde_json::Map<String, Value>, key: &str) -> String {
    match fields.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl Database {
    pub fn from_endpoint(e: &Endpoint, id: String) -> Database {
        let f = e.fields();
        Database {
            id,
            relationship: e.relationship().to_string(),
            scheme: e.scheme().unwrap_or_default().to_string(),
            username: field_text(f, "username"),
            password: field_text(f, "password"),
            host: e.host().to_string(),
            port: e.port().get(),
            path: field_text(f, "path"),
            service: e.service().map(str::to_string),
            kind: e.service_type().map(str::to_string),
            endpoint: f.get("rel").and_then(Value::as_str).map(str::to_string),
        }
    }

    /// `Relationships::isMariaDB`: the `type` starts with `mariadb:` or `mysql:`.
    pub fn is_mariadb(&self) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|t| t.starts_with("mariadb:") || t.starts_with("mysql:"))
    }

    /// `Relationships::isOracleDB`.
    pub fn is_oracle(&self) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|t| t.starts_with("oracle-mysql:"))
    }

    pub fn is_postgres(&self) -> bool {
        self.scheme == "pgsql"
    }

    pub fn is_redis(&self) -> bool {
        self.scheme == REDIS_SCHEME
    }

    /// The label a choice shows, as `chooseService`: `id (user)` on loopback or without a
    /// host, `id (user@host)` otherwise.
    pub fn label(&self) -> String {
        match (self.username.is_empty(), self.host.as_str()) {
            (false, "" | "127.0.0.1") => format!("{} ({})", self.id, self.username),
            (false, host) => format!("{} ({}@{host})", self.id, self.username),
            (true, _) => self.id.clone(),
        }
    }
}

/// What [`choose`] found: one database, or several for a person to pick from.
#[derive(Debug)]
pub enum Choice {
    One(Box<Database>),
    Ask(Vec<Database>),
}

/// `chooseService`: the endpoints of relationships with one of `schemes`; `-r` (a name, or
/// `name.N`; a trailing `.0` of a single endpoint is dropped) picks one, else the only one.
/// `named_schemes` are also accepted when `-r` names them (`db:sql` runs `redis-cli` on a
/// Redis relationship named so). A relationship that exists but has another scheme gets its
/// own error rather than the official "not found".
pub fn choose(
    relationships: &Relationships,
    requested: Option<&str>,
    schemes: &[&str],
    named_schemes: &[&str],
) -> Result<Choice, DbError> {
    let mut all = Vec::new();
    for rel in relationships.iter() {
        let many = rel.endpoints().len() > 1;
        for e in rel.endpoints() {
            let id = if many {
                format!("{}.{}", rel.name(), e.index())
            } else {
                rel.name().to_string()
            };
            all.push(Database::from_endpoint(e, id));
        }
    }
    let matching: Vec<Database> = all
        .iter()
        .filter(|d| schemes.contains(&d.scheme.as_str()))
        .cloned()
        .collect();
    let ids = |v: &[Database]| v.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    let Some(name) = requested.filter(|r| !r.is_empty()) else {
        return match matching.len() {
            0 => Err(DbError::NoMatching {
                schemes: schemes.iter().map(|s| s.to_string()).collect(),
                available: all
                    .iter()
                    .map(|d| format!("{} ({})", d.id, d.scheme))
                    .collect(),
            }),
            1 => Ok(Choice::One(Box::new(matching[0].clone()))),
            _ => Ok(Choice::Ask(matching)),
        };
    };
    let name = match name.strip_suffix(".0") {
        Some(base) if all.iter().any(|d| d.id == base) => base,
        _ => name,
    };
    let accepted = |d: &&Database| {
        schemes.contains(&d.scheme.as_str()) || named_schemes.contains(&d.scheme.as_str())
    };
    match all.iter().find(|d| d.id == name) {
        Some(d) if accepted(&d) => Ok(Choice::One(Box::new(d.clone()))),
        Some(d) => Err(DbError::WrongKind {
            name: name.to_string(),
            scheme: d.scheme.clone(),
            wanted: schemes
                .iter()
                .chain(named_schemes)
                .map(|s| s.to_string())
                .collect(),
            choices: ids(&matching),
        }),
        None => Err(DbError::NotFound {
            name: name.to_string(),
            choices: all.iter().filter(accepted).map(|d| d.id.clone()).collect(),
        }),
    }
}

/// The schema a command uses: `--schema` when given (empty: none), else the relationship's
/// path. The official client also offers the deployed service's schemas
/// (`getServiceSchemas`); Tether uses the path, which is the default it proposes.
pub fn schema<'a>(db: &'a Database, given: Option<&'a str>) -> Option<&'a str> {
    match given {
        Some(s) => Some(s),
        None if db.path.is_empty() => None,
        None => Some(&db.path),
    }
}

/// `Relationships::getServiceSchemas` over the current deployment's JSON, filtered as
/// `DbSqlCommand` filters them by the endpoint's privileges: the service's `schemas`, else its
/// `databases`, else `main` for PostgreSQL, MariaDB, MySQL and Oracle MySQL, else none. Empty
/// when the deployment has no service of the relationship's `service` name.
pub fn service_schemas(deployment: &Value, db: &Database) -> Vec<String> {
    let Some(service) = db
        .service
        .as_deref()
        .and_then(|name| deployment.get("services")?.get(name))
    else {
        return Vec::new();
    };
    let config = service.get("configuration");
    let list = |key: &str| -> Option<Vec<String>> {
        let items: Vec<String> = config?
            .get(key)?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        (!items.is_empty()).then_some(items)
    };
    let kind = service.get("type").and_then(Value::as_str).unwrap_or("");
    let mut schemas = list("schemas")
        .or_else(|| list("databases"))
        .unwrap_or_else(|| {
            let known = ["postgresql:", "mariadb:", "mysql:", "oracle-mysql:"];
            if known.iter().any(|k| kind.starts_with(k)) {
                vec!["main".to_string()]
            } else {
                Vec::new()
            }
        });
    let endpoint = db.endpoint.as_deref().unwrap_or("");
    if let Some(privileges) = config.and_then(|c| {
        c.get("endpoints")?
            .get(endpoint)?
            .get("privileges")?
            .as_object()
    }) {
        schemas.retain(|s| privileges.contains_key(s));
    }
    schemas
}

/// Which schema, when `--schema` was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaPick {
    /// This one (`None`: no schema).
    Use(Option<String>),
    /// A person picks among these (`None` in `options` is "(none)"); `default` without one.
    Ask {
        options: Vec<Option<String>>,
        default: Option<String>,
    },
}

/// `DbSqlCommand`'s choice: the relationship's path when the service does not list it, else
/// the only schema, else a choice among the schemas and "(none)", the path by default.
pub fn sql_schema(db: &Database, schemas: &[String]) -> SchemaPick {
    if !db.path.is_empty() && !schemas.contains(&db.path) {
        return SchemaPick::Use(Some(db.path.clone()));
    }
    if let [only] = schemas {
        return SchemaPick::Use(Some(only.clone()));
    }
    let mut options: Vec<Option<String>> = schemas.iter().cloned().map(Some).collect();
    options.push(None);
    let default = (!db.path.is_empty()).then(|| db.path.clone());
    SchemaPick::Ask { options, default }
}

/// `DbDumpCommand`'s choice: the path when the service does not list it, else a choice among
/// the schemas (the path by default; the only one without asking). `Use(None)` means the
/// `--schema` is required.
pub fn dump_schema(db: &Database, schemas: &[String]) -> SchemaPick {
    let schemas: Vec<String> = if !db.path.is_empty() && !schemas.contains(&db.path) {
        vec![db.path.clone()]
    } else {
        schemas.to_vec()
    };
    match schemas.as_slice() {
        [] => SchemaPick::Use(None),
        [only] => SchemaPick::Use(Some(only.clone())),
        many => SchemaPick::Ask {
            options: many.iter().cloned().map(Some).collect(),
            default: (!db.path.is_empty()).then(|| db.path.clone()),
        },
    }
}

/// `getDbCommandArgs`: the connection arguments of `command` (psql, pg_dump, mysql,
/// mysqldump, mariadb, mariadb-dump). `schema` `None` or empty selects none.
pub fn command_args(command: &str, db: &Database, schema: Option<&str>) -> String {
    let schema = schema.unwrap_or("");
    match command {
        "psql" | "pg_dump" => {
            let mut url = format!(
                "postgresql://{}:{}@{}:{}",
                db.username, db.password, db.host, db.port
            );
            if !schema.is_empty() {
                url.push('/');
                url.push_str(&rawurlencode(schema));
            }
            escape(&url)
        }
        _ => {
            let mut args = format!(
                "--user={} --password={} --host={} --port={}",
                escape(&db.username),
                escape(&db.password),
                escape(&db.host),
                db.port
            );
            if !schema.is_empty() {
                args.push(' ');
                args.push_str(&escape(schema));
            }
            args
        }
    }
}

/// `mariaDbCommandWithFallback`: MariaDB's own command names when the server has them.
fn with_fallback(command: &str) -> String {
    match command {
        "mariadb" => r#"cmd="$(command -v mariadb || echo -n mysql)"; "$cmd""#.into(),
        "mariadb-dump" => r#"cmd="$(command -v mariadb-dump || echo -n mysqldump)"; "$cmd""#.into(),
        other => other.into(),
    }
}

/// How a production SQL shell starts read-only (Tether's addition), where the client can: the
/// same for `db:sql` over SSH and the desktop's terminal client ([`crate::clients`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOnly {
    /// Read-only, and the statement that leaves it.
    Yes { leave: &'static str },
    /// The client has no read-only mode (`redis-cli`).
    Unsupported,
}

impl ReadOnly {
    /// PostgreSQL, started with [`PG_READ_ONLY_OPTIONS`] in `PGOPTIONS`.
    pub const POSTGRES: ReadOnly = ReadOnly::Yes {
        leave: "SET default_transaction_read_only = off;",
    };
    /// MySQL and MariaDB, started with `--init-command=`[`MYSQL_READ_ONLY_INIT`].
    pub const MYSQL: ReadOnly = ReadOnly::Yes {
        leave: "SET SESSION TRANSACTION READ WRITE;",
    };
}

/// `PGOPTIONS` for a read-only PostgreSQL session.
pub const PG_READ_ONLY_OPTIONS: &str = "-c default_transaction_read_only=on";
/// `--init-command` for a read-only MySQL or MariaDB session.
pub const MYSQL_READ_ONLY_INIT: &str = "SET SESSION TRANSACTION READ ONLY";

/// What [`sql_command`] builds: the command text and, when asked, whether it is read-only.
#[derive(Debug, Clone)]
pub struct SqlCommand {
    pub text: String,
    pub read_only: Option<ReadOnly>,
}

/// `DbSqlCommand::execute`'s command: `psql URL [-t] [-c QUERY]`, or `mysql --no-auto-rehash
/// ARGS [--batch --raw] [--execute QUERY]` (MariaDB's names with a fallback); `redis-cli -h
/// HOST -p PORT [QUERY]` for Redis (`service:redis-cli`'s form, one argument as it is).
/// `read_only` starts the session read-only (PostgreSQL: `PGOPTIONS` with
/// `default_transaction_read_only=on`; MySQL/MariaDB: `--init-command` `SET SESSION
/// TRANSACTION READ ONLY`; Redis cannot).
pub fn sql_command(
    db: &Database,
    schema: Option<&str>,
    query: Option<&str>,
    raw: bool,
    read_only: bool,
) -> SqlCommand {
    let query = query.filter(|q| !q.is_empty());
    if db.is_redis() {
        let mut text = format!("redis-cli -h {} -p {}", escape(&db.host), db.port);
        if let Some(q) = query {
            text.push(' ');
            text.push_str(q);
        }
        return SqlCommand {
            text,
            read_only: read_only.then_some(ReadOnly::Unsupported),
        };
    }
    if db.is_postgres() {
        let mut text = format!("psql {}", command_args("psql", db, schema));
        if let Some(q) = query {
            if raw {
                text.push_str(" -t");
            }
            text.push_str(" -c ");
            text.push_str(&escape(q));
        }
        if read_only {
            text = format!("PGOPTIONS={} {text}", escape(PG_READ_ONLY_OPTIONS));
        }
        return SqlCommand {
            text,
            read_only: read_only.then_some(ReadOnly::POSTGRES),
        };
    }
    let name = if db.is_mariadb() { "mariadb" } else { "mysql" };
    let mut text = format!("{} --no-auto-rehash ", with_fallback(name));
    if read_only {
        text.push_str(&format!("--init-command={} ", escape(MYSQL_READ_ONLY_INIT)));
    }
    text.push_str(&command_args(name, db, schema));
    if let Some(q) = query {
        if raw {
            text.push_str(" --batch --raw");
        }
        text.push_str(" --execute ");
        text.push_str(&escape(q));
    }
    SqlCommand {
        text,
        read_only: read_only.then_some(ReadOnly::MYSQL),
    }
}

/// `db:dump`'s choices that shape the command and the file name.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    pub schema_only: bool,
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub charset: Option<String>,
    pub verbose: bool,
    /// Compress on the server (`| gzip --stdout`), as the official client does.
    pub gzip: bool,
    /// The server's shell knows `set -o pipefail` (the official client asks it with `set -o`).
    pub pipefail: bool,
    /// The service's `max_allowed_packet` in MB, when known (MySQL).
    pub max_allowed_packet: Option<u64>,
}

/// `DbDumpCommand::execute`'s command (`pg_dump --no-owner --if-exists --clean --blobs …`, or
/// `mysqldump --single-transaction …`), gzipped on the server with `-z`.
pub fn dump_command(db: &Database, schema: Option<&str>, o: &DumpOptions) -> String {
    let mut cmd;
    if db.is_postgres() {
        cmd = format!(
            "pg_dump --no-owner --if-exists --clean --blobs {}",
            command_args("pg_dump", db, schema)
        );
        if o.schema_only {
            cmd.push_str(" --schema-only");
        }
        for t in &o.tables {
            cmd.push(' ');
            cmd.push_str(&escape(&format!("--table={t}")));
        }
        for t in &o.exclude_tables {
            cmd.push(' ');
            cmd.push_str(&escape(&format!("--exclude-table={t}")));
        }
        if let Some(c) = &o.charset {
            cmd.push(' ');
            cmd.push_str(&escape(&format!("--encoding={c}")));
        }
    } else {
        let name = if db.is_mariadb() {
            "mariadb-dump"
        } else {
            "mysqldump"
        };
        cmd = format!(
            "{} --single-transaction {}",
            with_fallback(name),
            command_args(name, db, schema)
        );
        if o.schema_only {
            cmd.push_str(" --no-data");
        }
        if db.is_oracle() {
            cmd.push_str(" --no-tablespaces");
        }
        for t in &o.exclude_tables {
            cmd.push(' ');
            cmd.push_str(&escape(&format!("--ignore-table={}.{t}", db.path)));
        }
        if !o.tables.is_empty() {
            cmd.push_str(" --tables ");
            cmd.push_str(
                &o.tables
                    .iter()
                    .map(|t| escape(t))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        if let Some(mb) = o.max_allowed_packet {
            cmd.push_str(&format!(" --max_allowed_packet={mb}MB"));
        }
        if let Some(c) = &o.charset {
            cmd.push(' ');
            cmd.push_str(&escape(&format!("--default-character-set={c}")));
        }
    }
    if o.verbose {
        cmd.push_str(" --verbose");
    }
    if o.gzip {
        cmd.push_str(" | gzip --stdout");
        if o.pipefail {
            cmd = format!("set -o pipefail; {cmd}");
        }
    }
    cmd
}

/// `getDefaultFilename`: `PROJECT--ENV--SERVICE--SCHEMA[--TABLES][--excl-TABLES][--schema]
/// --dump.sql[.gz]`, `db` for a missing project.
#[allow(clippy::too_many_arguments)]
pub fn default_dump_file(
    project: Option<&str>,
    environment_machine_name: Option<&str>,
    service: Option<&str>,
    schema: Option<&str>,
    o: &DumpOptions,
) -> String {
    let mut name = project
        .filter(|p| !p.is_empty())
        .unwrap_or("db")
        .to_string();
    if let Some(e) = environment_machine_name.filter(|e| !e.is_empty()) {
        name.push_str("--");
        name.push_str(e);
    }
    if let Some(s) = service {
        name.push_str("--");
        name.push_str(s);
    }
    if let Some(s) = schema {
        name.push_str("--");
        name.push_str(s);
    }
    if !o.tables.is_empty() {
        name.push_str("--");
        name.push_str(&o.tables.join(","));
    }
    if !o.exclude_tables.is_empty() {
        name.push_str("--excl-");
        name.push_str(&o.exclude_tables.join(","));
    }
    if o.schema_only {
        name.push_str("--schema");
    }
    name.push_str("--dump.sql");
    if o.gzip {
        name.push_str(".gz");
    }
    name
}

/// `db:dump --timestamp`, as `DbDumpCommand::execute`: `--STAMP` inserted before the first dot
/// of the file's base name (`abc--main--dump.sql` → `abc--main--dump--STAMP.sql`), or appended
/// when it has none (or starts with it); unchanged when the path holds it already.
pub fn with_timestamp(path: &str, stamp: &str) -> String {
    if path.contains(stamp) {
        return path.to_string();
    }
    let base_start = path.rfind('/').map_or(0, |i| i + 1);
    let (prefix, base) = path.split_at(base_start);
    match base.find('.') {
        Some(dot) if dot > 0 => format!("{prefix}{}--{stamp}{}", &base[..dot], &base[dot..]),
        _ => format!("{prefix}{base}--{stamp}"),
    }
}

/// `LocalHost::conflictsWithCommandLineOptions` with `hasLocalEnvVar`: run locally when
/// `PLATFORM_RELATIONSHIPS` is set and no `-p`/`-e`/`-A` differs from `PLATFORM_PROJECT`,
/// `PLATFORM_BRANCH`, `PLATFORM_APPLICATION_NAME`. `env` reads a variable (empty as unset).
pub fn runs_locally(
    env: impl Fn(&str) -> Option<String>,
    project: Option<&str>,
    environment: Option<&str>,
    app: Option<&str>,
) -> bool {
    if env("PLATFORM_RELATIONSHIPS").is_none_or(|v| v.is_empty()) {
        return false;
    }
    [
        ("PLATFORM_PROJECT", project),
        ("PLATFORM_BRANCH", environment),
        ("PLATFORM_APPLICATION_NAME", app),
    ]
    .iter()
    .all(|(var, given)| match given {
        None => true,
        Some(g) => env(var).as_deref() == Some(*g),
    })
}

/// `environment:relationships`: the relationships as the platform gave them, each endpoint
/// with a `url` (built as `Relationships::buildUrl`) where it has none.
pub fn relationships_with_urls(value: &Value, decoded: &Relationships) -> Value {
    let mut out = value.clone();
    if let Some(map) = out.as_object_mut() {
        for (name, entries) in map.iter_mut() {
            let Ok(rel) = decoded.get(name) else { continue };
            let items: Vec<(usize, &mut Value)> = match entries {
                Value::Array(a) => a.iter_mut().enumerate().collect(),
                Value::Object(o) => o
                    .iter_mut()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                    .collect(),
                _ => continue,
            };
            for (index, entry) in items {
                let Some(obj) = entry.as_object_mut() else {
                    continue;
                };
                if obj.contains_key("url") {
                    continue;
                }
                if let Ok(e) = rel.endpoint(index) {
                    obj.insert("url".into(), Value::String(e.url().expose().clone()));
                }
            }
        }
    }
    out
}

/// One value by dot path (`database.0.port`); numbers index lists. `None` when absent.
pub fn property<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(o) => o.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    fn rels(v: Value) -> Relationships {
        let encoded = base64::engine::general_purpose::STANDARD.encode(v.to_string());
        let (raw, decoded) = read_value(encoded.as_bytes()).unwrap();
        assert_eq!(raw, v);
        decoded
    }

    #[test]
    fn the_value_is_read_between_the_markers() {
        let out = b"login chatter\n_BEGIN_ENV_VAR_e30=_END_ENV_VAR_bye";
        assert_eq!(between_markers(out), Some(&b"e30="[..]));
        assert_eq!(between_markers(b"_BEGIN_ENV_VAR_e30="), None);
        assert!(read_value(b"").unwrap().1.is_empty());
        assert!(read_value(b"not base64!").is_err());
    }

    fn demo() -> Relationships {
        rels(json!({
            "database": [{"scheme": "pgsql", "host": "database.internal", "port": 5432,
                          "username": "main", "password": "main", "path": "main",
                          "service": "db", "type": "postgresql:15"}],
            "mariadb": [{"scheme": "mysql", "host": "mariadb.internal", "port": 3306,
                         "username": "user", "password": "p'w", "path": "main",
                         "service": "mdb", "type": "mariadb:10.6"}],
            "oracle": [{"scheme": "mysql", "host": "oracle.internal", "port": 3306,
                        "username": "user", "password": "", "path": "main",
                        "service": "omysql", "type": "oracle-mysql:8.0"}],
            "rediscache": [{"scheme": "redis", "host": "rediscache.internal", "port": 6379,
                            "service": "cache", "type": "redis:7.0"}],
        }))
    }

    fn pick(r: &Relationships, name: &str) -> Database {
        match choose(r, Some(name), &DATABASE_SCHEMES, &[REDIS_SCHEME]).unwrap() {
            Choice::One(d) => *d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoting_is_the_official_clients() {
        assert_eq!(escape("main"), "main");
        assert_eq!(escape("user@host:5432"), "user@host:5432");
        assert_eq!(escape("SELECT 1"), "'SELECT 1'");
        assert_eq!(escape("it's"), r"'it'\''s'");
        assert_eq!(escape(""), "''");
    }

    #[test]
    fn postgres_commands_are_the_official_clients() {
        let r = demo();
        let db = pick(&r, "database");
        let sql = sql_command(&db, schema(&db, None), Some("SELECT 1"), true, false);
        assert_eq!(
            sql.text,
            "psql 'postgresql://main:main@database.internal:5432/main' -t -c 'SELECT 1'"
        );
        let shell = sql_command(&db, schema(&db, Some("")), None, false, false);
        assert_eq!(
            shell.text,
            "psql 'postgresql://main:main@database.internal:5432'"
        );
        let ro = sql_command(&db, schema(&db, None), None, false, true);
        assert_eq!(
            ro.text,
            "PGOPTIONS='-c default_transaction_read_only=on' psql 'postgresql://main:main@database.internal:5432/main'"
        );
        assert!(matches!(ro.read_only, Some(ReadOnly::Yes { .. })));
        let o = DumpOptions {
            schema_only: true,
            tables: vec!["users".into()],
            exclude_tables: vec!["log s".into()],
            gzip: true,
            pipefail: true,
            ..DumpOptions::default()
        };
        assert_eq!(
            dump_command(&db, schema(&db, None), &o),
            "set -o pipefail; pg_dump --no-owner --if-exists --clean --blobs \
             'postgresql://main:main@database.internal:5432/main' --schema-only '--table=users' \
             '--exclude-table=log s' | gzip --stdout"
        );
    }

    #[test]
    fn mysql_and_mariadb_commands_are_the_official_clients() {
        let r = demo();
        let maria = pick(&r, "mariadb");
        assert_eq!(
            sql_command(
                &maria,
                schema(&maria, None),
                Some("SHOW TABLES"),
                true,
                false
            )
            .text,
            r#"cmd="$(command -v mariadb || echo -n mysql)"; "$cmd" --no-auto-rehash --user=user --password='p'\''w' --host=mariadb.internal --port=3306 main --batch --raw --execute 'SHOW TABLES'"#
        );
        assert_eq!(
            sql_command(&maria, schema(&maria, None), None, false, true).text,
            r#"cmd="$(command -v mariadb || echo -n mysql)"; "$cmd" --no-auto-rehash --init-command='SET SESSION TRANSACTION READ ONLY' --user=user --password='p'\''w' --host=mariadb.internal --port=3306 main"#
        );
        let oracle = pick(&r, "oracle");
        assert_eq!(
            sql_command(&oracle, None, None, false, false).text,
            "mysql --no-auto-rehash --user=user --password='' --host=oracle.internal --port=3306"
        );
        let o = DumpOptions {
            tables: vec!["a".into(), "b".into()],
            exclude_tables: vec!["c".into()],
            max_allowed_packet: Some(64),
            charset: Some("utf8mb4".into()),
            ..DumpOptions::default()
        };
        assert_eq!(
            dump_command(&oracle, schema(&oracle, None), &o),
            "mysqldump --single-transaction --user=user --password='' --host=oracle.internal \
             --port=3306 main --no-tablespaces '--ignore-table=main.c' --tables a b \
             --max_allowed_packet=64MB '--default-character-set=utf8mb4'"
        );
        assert_eq!(
            dump_command(
                &maria,
                schema(&maria, None),
                &DumpOptions {
                    gzip: true,
                    ..Default::default()
                }
            ),
            r#"cmd="$(command -v mariadb-dump || echo -n mysqldump)"; "$cmd" --single-transaction --user=user --password='p'\''w' --host=mariadb.internal --port=3306 main | gzip --stdout"#
        );
    }

    #[test]
    fn redis_runs_redis_cli_and_cannot_be_read_only() {
        let r = demo();
        let redis = pick(&r, "rediscache");
        let c = sql_command(&redis, None, Some("GET k"), false, true);
        assert_eq!(c.text, "redis-cli -h rediscache.internal -p 6379 GET k");
        assert_eq!(c.read_only, Some(ReadOnly::Unsupported));
    }

    #[test]
    fn choosing_follows_choose_service() {
        let r = demo();
        // Several databases and nobody named one: ask.
        match choose(&r, None, &DATABASE_SCHEMES, &[]).unwrap() {
            Choice::Ask(v) => assert_eq!(v.len(), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(pick(&r, "database.0").id, "database");
        let e = choose(&r, Some("nope"), &DATABASE_SCHEMES, &[]).unwrap_err();
        assert!(
            e.to_string().contains("relationship not found: nope"),
            "{e}"
        );
        assert!(e.to_string().contains("database, mariadb, oracle"), "{e}");
        let e = choose(&r, Some("rediscache"), &DATABASE_SCHEMES, &[]).unwrap_err();
        assert!(
            e.to_string().contains("is a redis service, not a database"),
            "{e}"
        );
        let only_redis =
            rels(json!({"cache": [{"scheme": "redis", "host": "c.internal", "port": 6379}]}));
        let e = choose(&only_redis, None, &DATABASE_SCHEMES, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no relationships found matching scheme(s): mysql, pgsql. The app has: cache (redis)"
        );
        // Two endpoints of one relationship are told apart by index.
        let two = rels(json!({"db": [
            {"scheme": "pgsql", "host": "a.internal", "port": 5432, "username": "u"},
            {"scheme": "pgsql", "host": "127.0.0.1", "port": 5433, "username": "u"}]}));
        match choose(&two, None, &DATABASE_SCHEMES, &[]).unwrap() {
            Choice::Ask(v) => assert_eq!(
                v.iter().map(Database::label).collect::<Vec<_>>(),
                ["db.0 (u@a.internal)", "db.1 (u)"]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schemas_come_from_the_deployed_service_as_the_official_client_reads_them() {
        let r = rels(json!({
            "database": [{"scheme": "pgsql", "host": "database.internal", "port": 5432,
                          "username": "main", "password": "main", "path": "main",
                          "service": "db", "rel": "admin", "type": "postgresql:15"}],
            "reports": [{"scheme": "pgsql", "host": "reports.internal", "port": 5432,
                         "username": "r", "password": "r", "path": "",
                         "service": "db", "rel": "reporter", "type": "postgresql:15"}],
        }));
        let deployment = json!({"services": {"db": {"type": "postgresql:15", "configuration": {
            "databases": ["main", "legacy", "stats"],
            "endpoints": {"admin": {"privileges": {"main": "admin", "legacy": "ro"}},
                          "reporter": {"privileges": {"stats": "ro"}}}}}}});
        let admin = pick(&r, "database");
        let schemas = service_schemas(&deployment, &admin);
        assert_eq!(schemas, ["main", "legacy"]);
        assert_eq!(
            sql_schema(&admin, &schemas),
            SchemaPick::Ask {
                options: vec![Some("main".into()), Some("legacy".into()), None],
                default: Some("main".into())
            }
        );
        let reporter = pick(&r, "reports");
        let schemas = service_schemas(&deployment, &reporter);
        assert_eq!(schemas, ["stats"]);
        assert_eq!(
            sql_schema(&reporter, &schemas),
            SchemaPick::Use(Some("stats".into()))
        );
        assert_eq!(
            dump_schema(&reporter, &schemas),
            SchemaPick::Use(Some("stats".into()))
        );
        // A path the service does not list wins; no service, no schema list.
        let plain = json!({"services": {"db": {"type": "postgresql:15"}}});
        assert_eq!(service_schemas(&plain, &admin), ["main"]);
        assert!(service_schemas(&json!({}), &admin).is_empty());
        assert_eq!(
            sql_schema(&admin, &[]),
            SchemaPick::Use(Some("main".into()))
        );
        assert_eq!(dump_schema(&reporter, &[]), SchemaPick::Use(None));
    }

    #[test]
    fn the_default_dump_file_is_named_as_the_official_client_names_it() {
        let o = DumpOptions::default();
        assert_eq!(
            default_dump_file(Some("abc"), Some("main-xyz"), Some("db"), Some("main"), &o),
            "abc--main-xyz--db--main--dump.sql"
        );
        let o = DumpOptions {
            tables: vec!["a".into(), "b".into()],
            exclude_tables: vec!["c".into()],
            schema_only: true,
            gzip: true,
            ..DumpOptions::default()
        };
        assert_eq!(
            default_dump_file(None, None, Some("db"), None, &o),
            "db--db--a,b--excl-c--schema--dump.sql.gz"
        );
    }

    #[test]
    fn timestamps_go_before_the_first_dot_of_the_base_name() {
        let stamp = "20261207-174400-UTC";
        assert_eq!(
            with_timestamp("/d.x/abc--main--db--main--dump.sql.gz", stamp),
            "/d.x/abc--main--db--main--dump--20261207-174400-UTC.sql.gz"
        );
        assert_eq!(with_timestamp("dump", stamp), "dump--20261207-174400-UTC");
        assert_eq!(
            with_timestamp(".hidden", stamp),
            ".hidden--20261207-174400-UTC"
        );
        let once = with_timestamp("a.sql", stamp);
        assert_eq!(with_timestamp(&once, stamp), once);
    }

    #[test]
    fn local_runs_unless_a_flag_names_something_else() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!runs_locally(env(&[]), None, None, None));
        let set = env(&[
            ("PLATFORM_RELATIONSHIPS", "e30="),
            ("PLATFORM_PROJECT", "abc"),
        ]);
        assert!(runs_locally(set, None, None, None));
        assert!(runs_locally(set, Some("abc"), None, None));
        assert!(!runs_locally(set, Some("other"), None, None));
        assert!(!runs_locally(set, None, Some("main"), None));
    }

    #[test]
    fn relationships_get_urls_and_properties() {
        let v = json!({"database": [{"scheme": "pgsql", "host": "database.internal",
            "port": 5432, "username": "main", "password": "main", "path": "main"}]});
        let shown = relationships_with_urls(&v, &rels(v.clone()));
        assert_eq!(
            property(&shown, "database.0.url").unwrap(),
            "postgresql://main:main@database.internal:5432/main"
        );
        assert_eq!(property(&shown, "database.0.port").unwrap(), 5432);
        assert!(property(&shown, "database.1").is_none());
    }
}
