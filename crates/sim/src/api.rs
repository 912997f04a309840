//! The platform API: the user, the projects the user can reach (extended access and project
//! refs), environments with their `pf:ssh:*` links, and the current deployment. Access control
//! is per user; projects of MFA-enforcing organizations answer RFC 9470 step-up errors to tokens
//! without MFA; every error is JSON with `status`, `code`, `title` and `message`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::fixture::{Environment, Fixture, Project};
use crate::model;
use crate::state::{Claims, State, TokenError};

/// An API error in the platform's JSON shape.
pub struct ApiError {
    status: StatusCode,
    message: String,
    www_authenticate: Option<String>,
    /// Boxed: with serde_json's `preserve_order` a map is large, and errors travel in every
    /// handler's `Result`.
    extra: Box<Map<String, Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            www_authenticate: None,
            extra: Box::default(),
        }
    }

    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, message);
        e.www_authenticate = Some("Bearer error=\"invalid_token\"".to_string());
        e
    }

    /// RFC 9470: the token's authentication is not strong enough for this resource.
    fn mfa_required() -> Self {
        let message = "Multi-factor authentication (MFA) is required.";
        let mut e = Self::new(StatusCode::FORBIDDEN, message);
        e.www_authenticate = Some(format!(
            "Bearer error=\"insufficient_user_authentication\", error_description=\"{message}\", amr=\"mfa\""
        ));
        e.extra
            .insert("error".into(), json!("insufficient_user_authentication"));
        e.extra.insert("amr".into(), json!(["mfa"]));
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "status": self.status.as_u16(),
            "code": self.status.as_u16(),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        if let Some(obj) = body.as_object_mut() {
            obj.extend(*self.extra);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(v) = self.www_authenticate.and_then(|v| v.parse().ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// The bearer token of a request, checked.
pub fn authenticate(state: &State, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| ApiError::unauthorized("An access token is required: log in first."))?;
    state
        .verify_access_token(token.trim())
        .map_err(|e| match e {
            TokenError::Expired => ApiError::unauthorized("The access token has expired."),
            TokenError::Revoked => ApiError::unauthorized("The session was revoked: log in again."),
            TokenError::Invalid => ApiError::unauthorized("The access token is not valid."),
        })
}

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/users/me", get(me))
        .route("/users/{id}/extended-access", get(extended_access))
        .route("/ref/projects", get(ref_projects))
        .route("/projects/{project}", get(project))
        .route("/projects/{project}/environments", get(environments))
        .route("/projects/{project}/environments/{env}", get(environment))
        .route(
            "/projects/{project}/environments/{env}/deployments/current",
            get(current_deployment),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "No such API resource.") })
        .with_state(state)
}

type ApiResult = Result<Json<Value>, ApiError>;

async fn me(AxState(state): AxState<Arc<State>>, headers: HeaderMap) -> ApiResult {
    let claims = authenticate(&state, &headers)?;
    let user = state
        .user(&claims.sub)
        .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
    Ok(Json(json!({
        "id": user.id,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "mfa_enabled": user.totp_secret.is_some(),
        "sso_enabled": false,
        "email_verified": true,
        "_links": { "self": { "href": format!("{}/users/me", state.api_url) } },
    })))
}

fn member_projects<'a>(fixture: &'a Fixture, user_id: &str) -> Vec<&'a Project> {
    let Some(user) = fixture.user_by_id(user_id) else {
        return Vec::new();
    };
    fixture
        .projects
        .iter()
        .filter(|p| p.members.contains(&user.username))
        .collect()
}

fn organization_id(fixture: &Fixture, project: &Project) -> String {
    fixture
        .organization(&project.organization)
        .map(|o| o.id.clone())
        .unwrap_or_default()
}

async fn extended_access(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let claims = authenticate(&state, &headers)?;
    if id != claims.sub && id != "me" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You can only list your own access.",
        ));
    }
    let kind = q.get("filter[resource_type]").map(String::as_str);
    if kind.is_some_and(|k| k != "project") {
        return Ok(Json(json!({ "items": [], "_links": {} })));
    }
    let fixture = state.fixture();
    let projects = member_projects(&fixture, &claims.sub);
    let items: Vec<Value> = projects
        .iter()
        .map(|p| {
            json!({
                "user_id": claims.sub,
                "resource_id": p.id,
                "resource_type": "project",
                "organization_id": organization_id(&fixture, p),
                "permissions": ["admin"],
                "granted_at": "2024-01-15T09:00:00+00:00",
                "updated_at": "2024-01-15T09:00:00+00:00",
            })
        })
        .collect();
    let mut links = json!({ "self": { "href": format!("{}/users/{}/extended-access", state.api_url, claims.sub) } });
    if !projects.is_empty() {
        let ids: Vec<&str> = projects.iter().map(|p| p.id.as_str()).collect();
        links["ref:projects:0"] = json!({ "href": format!("/ref/projects?in={}", ids.join(",")) });
    }
    Ok(Json(json!({ "items": items, "_links": links })))
}

async fn ref_projects(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let claims = authenticate(&state, &headers)?;
    let fixture = state.fixture();
    let allowed = member_projects(&fixture, &claims.sub);
    let mut out = Map::new();
    for id in q.get("in").map(String::as_str).unwrap_or("").split(',') {
        if let Some(p) = allowed.iter().find(|p| p.id == id) {
            out.insert(
                p.id.clone(),
                json!({
                    "id": p.id,
                    "region": p.region,
                    "title": p.title,
                    "status": "active",
                    "organization_id": organization_id(&fixture, p),
                }),
            );
        }
    }
    Ok(Json(Value::Object(out)))
}

/// The project, if the caller may see it with the authentication it has.
fn accessible_project<'a>(
    fixture: &'a Fixture,
    claims: &Claims,
    project_id: &str,
) -> Result<&'a Project, ApiError> {
    let project = member_projects(fixture, &claims.sub)
        .into_iter()
        .find(|p| p.id == project_id)
        .ok_or_else(|| ApiError::not_found("Project"))?;
    let mfa_required = fixture
        .organization(&project.organization)
        .is_some_and(|o| o.mfa_required);
    if mfa_required && !claims.has_mfa() {
        return Err(ApiError::mfa_required());
    }
    Ok(project)
}

async fn project(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult {
    let claims = authenticate(&state, &headers)?;
    let fixture = state.fixture();
    let p = accessible_project(&fixture, &claims, &project_id)?;
    Ok(Json(json!({
        "id": p.id,
        "title": p.title,
        "region": p.region,
        "organization_id": organization_id(&fixture, p),
        "default_branch": "main",
        "status": { "code": "provisioned", "message": "ok" },
        "_links": { "self": { "href": format!("{}/projects/{}", state.api_url, p.id) } },
    })))
}

fn environment_json(state: &State, fixture: &Fixture, p: &Project, e: &Environment) -> Value {
    let mut links = model::ssh_links(fixture, p, e);
    links.insert(
        "self".into(),
        json!({ "href": format!("{}/projects/{}/environments/{}", state.api_url, p.id, e.id) }),
    );
    let mut record = json!({
        "id": e.id,
        "name": e.id,
        "machine_name": e.machine_name,
        "title": e.id,
        "project": p.id,
        "status": e.status.as_str(),
        "type": e.kind,
        "head_commit": model::head_commit(p, e),
        "is_main": e.kind == crate::fixture::EnvType::Production,
        "has_deployment": e.status != crate::fixture::EnvStatus::Inactive,
        "_links": links,
    });
    if e.api_filler > 0 {
        record["_filler"] = Value::String(" ".repeat(e.api_filler));
    }
    record
}

async fn environments(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path(project_id): Path<String>,
) -> ApiResult {
    let claims = authenticate(&state, &headers)?;
    let fixture = state.fixture();
    let p = accessible_project(&fixture, &claims, &project_id)?;
    let list: Vec<Value> = p
        .environments
        .iter()
        .map(|e| environment_json(&state, &fixture, p, e))
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn environment(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path((project_id, env_id)): Path<(String, String)>,
) -> ApiResult {
    let claims = authenticate(&state, &headers)?;
    let fixture = state.fixture();
    let p = accessible_project(&fixture, &claims, &project_id)?;
    let e = p
        .environments
        .iter()
        .find(|e| e.id == env_id)
        .ok_or_else(|| ApiError::not_found("Environment"))?;
    Ok(Json(environment_json(&state, &fixture, p, e)))
}

async fn current_deployment(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Path((project_id, env_id)): Path<(String, String)>,
) -> ApiResult {
    let claims = authenticate(&state, &headers)?;
    let fixture = state.fixture();
    let p = accessible_project(&fixture, &claims, &project_id)?;
    let e = p
        .environments
        .iter()
        .find(|e| e.id == env_id)
        .ok_or_else(|| ApiError::not_found("Environment"))?;
    if e.status == crate::fixture::EnvStatus::Inactive {
        return Err(ApiError::not_found(
            "Current deployment (the environment is inactive)",
        ));
    }
    let mut webapps = Map::new();
    let mut workers = Map::new();
    for app in &p.apps {
        let mounts: Map<String, Value> = app
            .mounts
            .iter()
            .map(|m| {
                (
                    format!("/{}", m.trim_start_matches('/')),
                    json!({ "source": "storage", "source_path": m.replace('/', "-") }),
                )
            })
            .collect();
        let relationships: Map<String, Value> = app
            .relationships
            .iter()
            .map(|(rel, target)| {
                let (service, endpoint) = target.split_once(':').unwrap_or((target, target));
                (
                    rel.clone(),
                    json!({ "service": service, "endpoint": endpoint }),
                )
            })
            .collect();
        webapps.insert(
            app.name.clone(),
            json!({
                "name": app.name,
                "type": app.kind,
                "size": app.size,
                "instance_count": app.instances,
                "mounts": mounts,
                "relationships": relationships,
            }),
        );
        for w in &app.workers {
            let name = format!("{}--{w}", app.name);
            workers.insert(
                name.clone(),
                json!({ "name": name, "type": app.kind, "size": app.size, "mounts": mounts,
                        "relationships": relationships, "worker": { "commands": { "start": format!("./{w}.sh") } } }),
            );
        }
    }
    let services: Map<String, Value> = p
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                json!({ "type": s.kind, "size": "AUTO", "disk": 1024 }),
            )
        })
        .collect();
    let upstream = p
        .apps
        .first()
        .map(|a| format!("{}:http", a.name))
        .unwrap_or_default();
    let route = format!(
        "https://{}-{}.{}.{}/",
        e.machine_name, p.id, p.region, fixture.ssh_domain
    );
    Ok(Json(json!({
        "id": "current",
        "environment_info": { "machine_name": e.machine_name, "head_commit": model::head_commit(p, e) },
        "webapps": webapps,
        "services": services,
        "workers": workers,
        "routes": { route: { "type": "upstream", "upstream": upstream, "primary": true } },
    })))
}
