//! What the platform derives from the fixture: SSH hosts and usernames, the relationship
//! endpoints an app sees in `PLATFORM_RELATIONSHIPS`, and the reverse lookup from an SSH
//! username to the app container it names. Shared by the API and the gateway so that the links
//! the API publishes are exactly what the gateway accepts.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::fixture::{App, Environment, Fixture, Project, Service};

/// The SSH host of a project: one per region.
pub fn ssh_host(fixture: &Fixture, project: &Project) -> String {
    format!("ssh.{}.{}", project.region, fixture.ssh_domain)
}

/// The SSH username of an app container: `<project>-<env machine name>--<app>[--<suffix>]`,
/// where the suffix is a worker name or an instance number.
pub fn ssh_user(project: &Project, env: &Environment, app: &str, suffix: Option<&str>) -> String {
    match suffix {
        Some(s) => format!("{}-{}--{app}--{s}", project.id, env.machine_name),
        None => format!("{}-{}--{app}", project.id, env.machine_name),
    }
}

/// The environment's current commit: fixed by the fixture or derived, stable per environment.
pub fn head_commit(project: &Project, env: &Environment) -> String {
    env.head_commit.clone().unwrap_or_else(|| {
        let digest = Sha256::digest(format!("{}/{}", project.id, env.id));
        hex(&digest[..20])
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an SSH username names.
#[derive(Debug, Clone)]
pub struct Container<'a> {
    pub project: &'a Project,
    pub env: &'a Environment,
    pub app: &'a App,
    pub worker: Option<&'a str>,
    pub instance: Option<u32>,
}

impl Container<'_> {
    /// The name the platform gives the container's application (`app` or `app--worker`).
    pub fn application_name(&self) -> String {
        match self.worker {
            Some(w) => format!("{}--{w}", self.app.name),
            None => self.app.name.clone(),
        }
    }
}

/// Resolves `<project>-<machine name>--<app>[--<worker>|--<instance>]`.
pub fn resolve_user<'a>(fixture: &'a Fixture, username: &str) -> Option<Container<'a>> {
    let (project_id, rest) = username.split_once('-')?;
    let project = fixture.project(project_id)?;
    let (machine_name, rest) = rest.split_once("--")?;
    let env = project
        .environments
        .iter()
        .find(|e| e.machine_name == machine_name)?;
    let (app_name, suffix) = match rest.split_once("--") {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let app = project.apps.iter().find(|a| a.name == app_name)?;
    let (worker, instance) = match suffix {
        None => (None, None),
        Some(s) if s.chars().all(|c| c.is_ascii_digit()) => {
            let i: u32 = s.parse().ok()?;
            if app.instances < 2 || i >= app.instances {
                return None;
            }
            (None, Some(i))
        }
        Some(s) => (
            Some(app.workers.iter().find(|w| w.as_str() == s)?.as_str()),
            None,
        ),
    };
    Some(Container {
        project,
        env,
        app,
        worker,
        instance,
    })
}

/// The `pf:ssh:*` links of an environment: none when it is not running.
pub fn ssh_links(fixture: &Fixture, project: &Project, env: &Environment) -> Map<String, Value> {
    let mut links = Map::new();
    if !env.status.is_running() {
        return links;
    }
    let host = ssh_host(fixture, project);
    let href = |user: String| json!({ "href": format!("ssh://{user}@{host}") });
    for app in &project.apps {
        links.insert(
            format!("pf:ssh:{}", app.name),
            href(ssh_user(project, env, &app.name, None)),
        );
        if app.instances > 1 {
            for i in 0..app.instances {
                links.insert(
                    format!("pf:ssh:{}:{i}", app.name),
                    href(ssh_user(project, env, &app.name, Some(&i.to_string()))),
                );
            }
        }
        for w in &app.workers {
            links.insert(
                format!("pf:ssh:{}--{w}", app.name),
                href(ssh_user(project, env, &app.name, Some(w))),
            );
        }
    }
    links
}

/// Default port and URL scheme of a service type (`postgresql:15` → 5432, `pgsql`).
fn service_port_scheme(kind: &str) -> (u16, &'static str) {
    match kind.split(':').next().unwrap_or_default() {
        "postgresql" => (5432, "pgsql"),
        "mysql" | "mariadb" | "oracle-mysql" => (3306, "mysql"),
        "redis" | "redis-persistent" | "valkey" => (6379, "redis"),
        "memcached" => (11211, "memcached"),
        "mongodb" => (27017, "mongodb"),
        "solr" => (8080, "solr"),
        "elasticsearch" | "opensearch" => (9200, "http"),
        "rabbitmq" => (5672, "amqp"),
        _ => (8080, "http"),
    }
}

/// One relationship endpoint as the app sees it, and where the gateway forwards it.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    pub relationship: String,
    pub service: &'a Service,
    pub json: Value,
    pub host: String,
    pub ip: String,
    pub hostname: String,
    pub port: u16,
}

/// The endpoints of an app's relationships in one environment, in the reference's shape.
pub fn endpoints<'a>(project: &'a Project, env: &Environment, app: &App) -> Vec<Endpoint<'a>> {
    let mut out = Vec::new();
    for (index, (rel, target)) in app.relationships.iter().enumerate() {
        let (service_name, endpoint_name) = target.split_once(':').unwrap_or((target, target));
        let Some(service) = project.services.iter().find(|s| s.name == service_name) else {
            continue;
        };
        let (port, scheme) = service_port_scheme(&service.kind);
        let service_id = service.kind.replace([':', '.'], "");
        let digest = Sha256::digest(format!("{}/{}/{}", project.id, env.id, service.name));
        let hostname = format!(
            "{}.{}.service._.{}.platformsh.site",
            &hex(&digest[..13]),
            service.name,
            project.region
        );
        let ip = format!("169.254.{}.{}", digest[14], (index as u8).wrapping_add(2));
        let host = format!("{rel}.internal");
        let query = if scheme == "pgsql" || scheme == "mysql" {
            json!({ "is_master": true })
        } else {
            json!({})
        };
        let json = json!({
            "username": service.username,
            "scheme": scheme,
            "service": service_id,
            "fragment": null,
            "ip": ip,
            "hostname": hostname,
            "port": port,
            "cluster": format!("{}-{}", project.id, env.machine_name),
            "host": host,
            "rel": endpoint_name,
            "path": service.path,
            "query": query,
            "password": service.password,
            "type": service.kind,
            "public": false,
            "host_mapped": false,
        });
        out.push(Endpoint {
            relationship: rel.clone(),
            service,
            json,
            host,
            ip,
            hostname,
            port,
        });
    }
    out
}

/// The decoded `PLATFORM_RELATIONSHIPS` object of an app.
pub fn relationships_json(project: &Project, env: &Environment, app: &App) -> Value {
    let mut map = Map::new();
    for e in endpoints(project, env, app) {
        map.insert(e.relationship.clone(), Value::Array(vec![e.json]));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_link_resolves_back_to_its_container() {
        let f = Fixture::demo().unwrap();
        let mut seen = 0;
        for p in &f.projects {
            for e in &p.environments {
                for (rel, link) in ssh_links(&f, p, e) {
                    let href = link["href"].as_str().unwrap();
                    let user = href
                        .strip_prefix("ssh://")
                        .unwrap()
                        .split('@')
                        .next()
                        .unwrap();
                    let c = resolve_user(&f, user).unwrap_or_else(|| panic!("{rel} {href}"));
                    assert_eq!(c.project.id, p.id);
                    assert_eq!(c.env.id, e.id);
                    seen += 1;
                }
            }
        }
        assert!(seen > 10);
    }

    #[test]
    fn usernames_that_name_nothing_resolve_to_nothing() {
        let f = Fixture::demo().unwrap();
        for bad in [
            "jyu7waly36ncj-main-7rqtwti--nope",
            "jyu7waly36ncj-main-7rqtwti--app--9",
            "jyu7waly36ncj-main-7rqtwti--app--nope",
            "nope-main-7rqtwti--app",
            "jyu7waly36ncj-nope--app",
            "",
        ] {
            assert!(resolve_user(&f, bad).is_none(), "{bad}");
        }
        let c = resolve_user(&f, "jyu7waly36ncj-main-7rqtwti--app--queue").unwrap();
        assert_eq!(c.application_name(), "app--queue");
        let c = resolve_user(&f, "jyu7waly36ncj-main-7rqtwti--app--2").unwrap();
        assert_eq!(c.instance, Some(2));
    }

    #[test]
    fn relationships_have_the_reference_shape() {
        let f = Fixture::demo().unwrap();
        let p = f.project("jyu7waly36ncj").unwrap();
        let rels = relationships_json(p, &p.environments[0], &p.apps[0]);
        let db = &rels["database"][0];
        assert_eq!(db["scheme"], "pgsql");
        assert_eq!(db["host"], "database.internal");
        assert_eq!(db["port"], 5432);
        assert_eq!(db["query"]["is_master"], true);
        assert_eq!(db["type"], "postgresql:15");
        assert_eq!(db["service"], "postgresql15");
        assert_eq!(rels["rediscache"][0]["scheme"], "redis");
    }
}
