//! An app's mounts (its writable directories), as the deployment or a local
//! `PLATFORM_APPLICATION` describes them, normalized as the official client normalizes them
//! (`legacy/src/Service/Mount.php`): paths without leading or trailing slashes, and every
//! definition in the structured form `{source, source_path}` (the old `shared:files/<path>`
//! string becomes a `local` mount).

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;

use crate::access::{Access, AccessError};
use crate::api::{Environment, ProjectId};

/// The variable with the app's configuration on the platform: base64 JSON.
pub const APPLICATION_VARIABLE: &str = "PLATFORM_APPLICATION";

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount not found: {given} (the mounts of {app} are: {})", list(.available))]
    NotFound {
        given: String,
        app: String,
        available: Vec<String>,
    },
    #[error("the mount definition of {path} is not one Tether can read: {definition}")]
    Definition { path: String, definition: String },
    #[error("{APPLICATION_VARIABLE} is set but is not base64-encoded JSON of an app's configuration ({0}): unset it to read the mounts from the platform")]
    Variable(String),
    #[error("the environment {0} has no current deployment, so no mounts: deploy it or choose another environment")]
    NoDeployment(String),
    #[error("the current deployment has no app or worker named {app} (it has: {})", list(.available))]
    NoApp { app: String, available: Vec<String> },
    #[error(transparent)]
    Access(#[from] AccessError),
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// One mount: its path relative to the app's directory, and where its files live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub path: String,
    /// `local`, `storage`, `service`, `tmp`, `instance`…
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    /// Any other field of the definition (`service` for a network mount), as given.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Mount {
    /// The definition as one line: `source: storage, source_path: web-uploads`.
    pub fn definition(&self) -> String {
        let mut parts = vec![format!("source: {}", self.source)];
        if let Some(p) = &self.source_path {
            parts.push(format!("source_path: {p}"));
        }
        for (k, v) in &self.other {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            parts.push(format!("{k}: {shown}"));
        }
        parts.join(", ")
    }
}

/// A mount path as the platform keys it: trimmed, without leading or trailing slashes.
pub fn normalize_path(path: &str) -> String {
    path.trim().trim_matches('/').to_string()
}

fn definition(path: &str, def: &serde_json::Value) -> Result<Mount, MountError> {
    let bad = || MountError::Definition {
        path: path.to_string(),
        definition: def.to_string(),
    };
    if let Some(s) = def.as_str() {
        if !s.contains("shared:files") {
            return Err(bad());
        }
        return Ok(Mount {
            path: path.to_string(),
            source: "local".into(),
            source_path: Some(normalize_path(&s.replace("shared:files", ""))),
            other: BTreeMap::new(),
        });
    }
    let obj = def.as_object().ok_or_else(bad)?;
    let source = obj
        .get("source")
        .and_then(|s| s.as_str())
        .ok_or_else(bad)?
        .to_string();
    let source_path = obj
        .get("source_path")
        .and_then(|s| s.as_str())
        .map(normalize_path);
    let other = obj
        .iter()
        .filter(|(k, _)| *k != "source" && *k != "source_path")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Mount {
        path: path.to_string(),
        source,
        source_path,
        other,
    })
}

/// The mounts of a `mounts` map (an app's configuration), normalized, by path.
pub fn from_map(mounts: &serde_json::Value) -> Result<Vec<Mount>, MountError> {
    let Some(map) = mounts.as_object() else {
        return Ok(Vec::new());
    };
    let mut list = map
        .iter()
        .map(|(path, def)| definition(&normalize_path(path), def))
        .collect::<Result<Vec<_>, _>>()?;
    list.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(list)
}

/// The mount a user named (`/web/uploads/` and `web/uploads` alike), or an error that lists
/// the mounts there are.
pub fn find<'a>(given: &str, app: &str, mounts: &'a [Mount]) -> Result<&'a Mount, MountError> {
    let wanted = normalize_path(given);
    mounts
        .iter()
        .find(|m| m.path == wanted)
        .ok_or_else(|| MountError::NotFound {
            given: given.to_string(),
            app: app.to_string(),
            available: mounts.iter().map(|m| m.path.clone()).collect(),
        })
}

/// The app's name and mounts in a `PLATFORM_APPLICATION` value.
pub fn from_application_variable(value: &str) -> Result<(String, Vec<Mount>), MountError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| MountError::Variable(e.to_string()))?;
    let config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| MountError::Variable(e.to_string()))?;
    let name = config["name"]
        .as_str()
        .ok_or_else(|| MountError::Variable("it has no app name".into()))?
        .to_string();
    Ok((name, from_map(&config["mounts"])?))
}

/// Whether an app name is a worker's (`app--worker`), as the official client tells them apart.
pub fn is_worker(app: &str) -> bool {
    app.contains("--")
}

/// The mounts of one app or worker of a deployment's JSON.
pub fn of_app(deployment: &serde_json::Value, app: &str) -> Result<Vec<Mount>, MountError> {
    for key in ["webapps", "workers"] {
        if let Some(config) = deployment[key].get(app) {
            return from_map(&config["mounts"]);
        }
    }
    let available = ["webapps", "workers"]
        .iter()
        .filter_map(|k| deployment[*k].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    Err(MountError::NoApp {
        app: app.to_string(),
        available,
    })
}

/// The mounts of an app (or worker) of an environment's current deployment.
pub async fn app_mounts(
    access: &Access,
    project: &ProjectId,
    env: &Environment,
    app: &str,
) -> Result<Vec<Mount>, MountError> {
    let deployment = crate::deployment::current(access, project, env)
        .await?
        .ok_or_else(|| MountError::NoDeployment(env.id.to_string()))?;
    of_app(&deployment, app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_definitions_are_normalized() {
        let mounts = from_map(&json!({
            "/web/uploads/": { "source": "storage", "source_path": "/uploads/" },
            "var/cache": "shared:files/cache",
            "tmp": { "source": "service", "service": "files", "source_path": "t" },
        }))
        .unwrap();
        let paths: Vec<&str> = mounts.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["tmp", "var/cache", "web/uploads"]);
        assert_eq!(mounts[1].source, "local");
        assert_eq!(mounts[1].source_path.as_deref(), Some("cache"));
        assert_eq!(mounts[2].source_path.as_deref(), Some("uploads"));
        assert_eq!(
            mounts[0].definition(),
            "source: service, source_path: t, service: files"
        );
    }

    #[test]
    fn a_definition_without_a_source_is_refused() {
        for bad in [
            json!({ "x": { "source_path": "a" } }),
            json!({ "x": "files" }),
        ] {
            let err = from_map(&bad).unwrap_err();
            assert!(err.to_string().contains("mount definition of x"), "{err}");
        }
    }

    #[test]
    fn a_mount_is_found_by_any_spelling_of_its_path_else_the_list_is_given() {
        let mounts = from_map(&json!({ "web/uploads": { "source": "local" } })).unwrap();
        assert_eq!(
            find("/web/uploads/", "app", &mounts).unwrap().path,
            "web/uploads"
        );
        let err = find("web", "app", &mounts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mount not found: web (the mounts of app are: web/uploads)"
        );
    }

    #[test]
    fn apps_and_workers_of_a_deployment() {
        let d = json!({
            "webapps": { "app": { "mounts": { "/a": { "source": "local" } } } },
            "workers": { "app--queue": { "mounts": {} } },
        });
        assert_eq!(of_app(&d, "app").unwrap()[0].path, "a");
        assert!(of_app(&d, "app--queue").unwrap().is_empty());
        let err = of_app(&d, "web").unwrap_err();
        assert!(err.to_string().contains("app, app--queue"), "{err}");
        assert!(is_worker("app--queue") && !is_worker("app"));
    }

    #[test]
    fn the_application_variable_gives_the_name_and_mounts() {
        let v = base64::engine::general_purpose::STANDARD
            .encode(json!({ "name": "app", "mounts": { "x": { "source": "local" } } }).to_string());
        let (name, mounts) = from_application_variable(&v).unwrap();
        assert_eq!((name.as_str(), mounts.len()), ("app", 1));
        assert!(from_application_variable("!!").is_err());
    }
}
