//! An environment's public URLs (its routes), ordered as the official client orders them, and
//! the primary one, for `environment:url` and the desktop's "Open site".
//!
//! The routes come from the deployment (`routes`, keyed by URL) or, on an app container or
//! after an export, from a local `PLATFORM_ROUTES` (base64 JSON of the same map). The official
//! client's order (`legacy/src/Model/Route.php`, `sort`): the primary route first, then HTTPS
//! before HTTP, then shorter URLs; its comparison weighs those as 4, 2 and 1, which is this
//! order whenever it is consistent, so a stable sort by those three keys gives the same list.

use base64::Engine;
use serde::Serialize;

use crate::access::{Access, AccessError};
use crate::api::{Environment, ProjectId};

/// The variable with an app's routes on the platform (and after an export): base64 JSON.
pub const ROUTES_VARIABLE: &str = "PLATFORM_ROUTES";

#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("{ROUTES_VARIABLE} is set but is not base64-encoded JSON of routes ({0}): unset it to read the routes from the platform")]
    Variable(String),
    #[error("the environment {0} has no current deployment, so no routes: deploy it or choose another environment")]
    NoDeployment(String),
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// One route, by its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub url: String,
    pub primary: bool,
    /// `upstream` or `redirect`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The app or service behind an upstream route (`app:http`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Where a redirect route goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The route as the app's configuration writes it (`https://{default}/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_url: Option<String>,
}

impl Route {
    /// The app or service name behind an upstream route (`app` of `app:http`).
    pub fn upstream_name(&self) -> Option<&str> {
        self.upstream
            .as_deref()
            .map(|u| u.split_once(':').map_or(u, |(name, _)| name))
    }
}

fn text(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The routes of a `routes` map (the deployment's, or `PLATFORM_ROUTES` decoded), ordered:
/// primary first, then HTTPS, then shorter URLs.
pub fn from_map(routes: &serde_json::Value) -> Vec<Route> {
    let mut list: Vec<Route> = routes
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(url, r)| Route {
                    url: url.clone(),
                    primary: r.get("primary").and_then(|p| p.as_bool()).unwrap_or(false),
                    kind: text(r, "type").unwrap_or_else(|| "upstream".into()),
                    upstream: text(r, "upstream"),
                    to: text(r, "to"),
                    id: text(r, "id"),
                    original_url: text(r, "original_url"),
                })
                .collect()
        })
        .unwrap_or_default();
    list.sort_by_key(|r| (!r.primary, !r.url.starts_with("https:"), r.url.len()));
    list
}

/// The routes in a `PLATFORM_ROUTES` value. An empty map is an error, as in the official
/// client ("Failed to decode"), since the platform never sets one.
pub fn from_variable(value: &str) -> Result<Vec<Route>, RoutesError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| RoutesError::Variable(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| RoutesError::Variable(e.to_string()))?;
    if !json.is_object() || json.as_object().is_some_and(|m| m.is_empty()) {
        return Err(RoutesError::Variable("no routes in it".into()));
    }
    Ok(from_map(&json))
}

/// The primary route's URL: the route marked primary, if any (the official client's
/// `findPrimaryRouteUrl`; no route is promoted when none is marked).
pub fn primary(routes: &[Route]) -> Option<&Route> {
    routes.iter().find(|r| r.primary)
}

/// An environment's routes, from its current deployment, ordered as [`from_map`] orders them.
pub async fn environment_routes(
    access: &Access,
    project: &ProjectId,
    env: &Environment,
) -> Result<Vec<Route>, RoutesError> {
    let deployment = crate::deployment::current(access, project, env)
        .await?
        .ok_or_else(|| RoutesError::NoDeployment(env.id.to_string()))?;
    Ok(from_map(&deployment["routes"]))
}

/// An environment's primary URL (what "Open site" opens), or `None` when no route is primary.
pub async fn primary_url(
    access: &Access,
    project: &ProjectId,
    env: &Environment,
) -> Result<Option<String>, RoutesError> {
    let routes = environment_routes(access, project, env).await?;
    Ok(primary(&routes).map(|r| r.url.clone()))
}

/// Whether a browser can be shown: on Linux and the BSDs a `DISPLAY` other than `none` (the
/// official client's `hasDisplay`) or a Wayland display; macOS and Windows always have one.
pub fn has_display(display: Option<&str>, wayland_display: Option<&str>) -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    display.is_some_and(|d| !d.is_empty() && d != "none")
        || wayland_display.is_some_and(|d| !d.is_empty())
}

/// The command line that opens a URL: the `--browser` command given (its first word the
/// program, as the official client runs it, the URL last); else `$BROWSER` (its first
/// `:`-separated command, `%s` standing for the URL), as desktop programs read it; else the
/// system's opener (`xdg-open`, `open`). `None` when `--browser 0` says not to open.
pub fn browser_command(
    option: Option<&str>,
    browser_var: Option<&str>,
    url: &str,
) -> Option<(String, Vec<String>)> {
    if option == Some("0") {
        return None;
    }
    let words = |command: &str, placeholder: bool| -> Option<(String, Vec<String>)> {
        let mut words = command.split_whitespace().map(str::to_string);
        let program = words.next()?;
        let mut args: Vec<String> = words.collect();
        if placeholder && args.iter().any(|a| a.contains("%s")) {
            for a in &mut args {
                *a = a.replace("%s", url);
            }
        } else {
            args.push(url.to_string());
        }
        Some((program, args))
    };
    if let Some(given) = option.filter(|o| !o.trim().is_empty()) {
        return words(given, false);
    }
    if let Some(first) = browser_var.and_then(|b| b.split(':').find(|c| !c.trim().is_empty())) {
        return words(first, true);
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    Some((opener.to_string(), vec![url.to_string()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn primary_first_then_https_then_shorter() {
        let routes = json!({
            "http://www.example.com/": { "type": "redirect", "to": "https://www.example.com/" },
            "https://example.com/": { "type": "redirect", "to": "https://www.example.com/" },
            "https://www.example.com/": { "type": "upstream", "upstream": "app:http", "primary": true },
            "https://api.example.com/": { "type": "upstream", "upstream": "api:http" },
            "http://a.co/": { "type": "upstream", "upstream": "app:http" },
        });
        let urls: Vec<String> = from_map(&routes).into_iter().map(|r| r.url).collect();
        assert_eq!(
            urls,
            [
                "https://www.example.com/",
                "https://example.com/",
                "https://api.example.com/",
                "http://a.co/",
                "http://www.example.com/",
            ]
        );
        let list = from_map(&routes);
        let p = primary(&list).expect("primary");
        assert_eq!(p.upstream_name(), Some("app"));
    }

    #[test]
    fn no_route_is_promoted_when_none_is_primary() {
        let list = from_map(&json!({ "https://a.example/": { "type": "upstream" } }));
        assert_eq!(list.len(), 1);
        assert!(primary(&list).is_none());
    }

    #[test]
    fn the_variable_is_base64_json_and_nothing_else() {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(json!({ "https://x.example/": { "primary": true } }).to_string());
        assert_eq!(
            from_variable(&encoded).unwrap()[0].url,
            "https://x.example/"
        );
        for bad in ["not base64!", "e30=" /* {} */, "W10=" /* [] */] {
            let err = from_variable(bad).unwrap_err();
            assert!(err.to_string().contains("PLATFORM_ROUTES"), "{err}");
        }
    }

    #[test]
    fn browser_option_then_variable_then_opener() {
        let url = "https://x.example/";
        assert_eq!(browser_command(Some("0"), Some("firefox"), url), None);
        assert_eq!(
            browser_command(Some("firefox --new-window"), Some("chromium"), url),
            Some((
                "firefox".into(),
                vec!["--new-window".into(), url.to_string()]
            ))
        );
        assert_eq!(
            browser_command(None, Some(":lynx -dump %s:w3m"), url),
            Some(("lynx".into(), vec!["-dump".into(), url.to_string()]))
        );
        let (program, args) = browser_command(None, None, url).unwrap();
        assert!(program == "xdg-open" || program == "open");
        assert_eq!(args, [url]);
    }

    #[test]
    fn a_display_named_none_is_no_display() {
        if cfg!(any(target_os = "macos", target_os = "windows")) {
            return;
        }
        assert!(has_display(Some(":0"), None));
        assert!(!has_display(Some("none"), None));
        assert!(!has_display(None, None));
        assert!(has_display(None, Some("wayland-0")));
    }
}
