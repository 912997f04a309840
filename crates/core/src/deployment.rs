//! An environment's current deployment as the platform publishes it
//! (`GET /projects/{p}/environments/{e}/deployments/current`), read whole: the parts the typed
//! [`crate::api::Deployment`] leaves out (routes, each app's mounts) are read from it by
//! [`crate::routes`] and [`crate::mounts`].

use crate::access::{Access, AccessError};
use crate::api::{Api, ApiError, Environment, ProjectId};

/// The current deployment's JSON, or `None` when the environment has none (inactive, or never
/// deployed).
pub async fn current(
    access: &Access,
    project: &ProjectId,
    env: &Environment,
) -> Result<Option<serde_json::Value>, AccessError> {
    access.touch();
    if env.status == "inactive" {
        return Ok(None);
    }
    let session = access.session();
    let token = session.access_token().await?;
    let api = Api::new(session.http().clone(), access.profile().api_url.clone());
    let path = format!(
        "projects/{project}/environments/{}/deployments/current",
        env.id
    );
    match api.get::<serde_json::Value>(&token, &path).await {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
