//! What the user can reach, browsed through the API and cached briefly: projects,
//! environments, deployments; and the resolution of a choice to an [`SshUrl`] with errors that
//! list what exists.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::api::{Api, ApiError, Deployment, Environment, EnvironmentId, Project, ProjectId, User};
use crate::auth::{AuthError, Session};
use crate::ssh::{resolve, ResolveError, Selection, SshUrl};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

struct Cached<T> {
    at: u64,
    value: T,
}

#[derive(Default)]
struct Cache {
    user: Option<Cached<User>>,
    projects: Option<Cached<Vec<Project>>>,
    environments: HashMap<ProjectId, Cached<Vec<Environment>>>,
    deployments: HashMap<(ProjectId, EnvironmentId), Cached<Option<Deployment>>>,
}

pub struct Catalog {
    session: Session,
    api: Api,
    ttl: Duration,
    cache: Mutex<Cache>,
}

impl Catalog {
    pub fn new(session: Session, api: Api, ttl: Duration) -> Catalog {
        Catalog {
            session,
            api,
            ttl,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Forgets everything, so the next answers come from the platform.
    pub async fn refresh(&self) {
        *self.cache.lock().await = Cache::default();
    }

    fn fresh<T>(&self, c: &Cached<T>) -> bool {
        self.now().saturating_sub(c.at) < self.ttl.as_secs()
    }

    fn now(&self) -> u64 {
        self.session.clock().unix()
    }

    pub async fn user(&self) -> Result<User, CatalogError> {
        if let Some(c) = self
            .cache
            .lock()
            .await
            .user
            .as_ref()
            .filter(|c| self.fresh(c))
        {
            return Ok(c.value.clone());
        }
        let token = self.session.access_token().await?;
        let user = self.api.me(&token).await?;
        self.cache.lock().await.user = Some(Cached {
            at: self.now(),
            value: user.clone(),
        });
        Ok(user)
    }

    pub async fn projects(&self) -> Result<Vec<Project>, CatalogError> {
        if let Some(c) = self
            .cache
            .lock()
            .await
            .projects
            .as_ref()
            .filter(|c| self.fresh(c))
        {
            return Ok(c.value.clone());
        }
        let user = self.user().await?;
        let token = self.session.access_token().await?;
        let projects = self.api.projects(&token, &user.id).await?;
        self.cache.lock().await.projects = Some(Cached {
            at: self.now(),
            value: projects.clone(),
        });
        Ok(projects)
    }

    /// A project by id, or an error that lists the user's projects.
    pub async fn project(&self, id: &ProjectId) -> Result<Project, CatalogError> {
        let projects = self.projects().await?;
        projects
            .iter()
            .find(|p| p.id == *id)
            .cloned()
            .ok_or_else(|| {
                ResolveError::ProjectNotFound {
                    id: id.to_string(),
                    available: projects
                        .iter()
                        .map(|p| format!("{} ({})", p.id, p.title))
                        .collect(),
                }
                .into()
            })
    }

    /// The project's default environment (what `-e .` means), from its own record: the
    /// listing does not carry it. `None` when the platform does not say.
    pub async fn default_branch(&self, id: &ProjectId) -> Result<Option<String>, CatalogError> {
        self.project(id).await?;
        let token = self.session.access_token().await?;
        Ok(self.api.project(&token, id).await?.default_branch)
    }

    pub async fn environments(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<Environment>, CatalogError> {
        if let Some(c) = self
            .cache
            .lock()
            .await
            .environments
            .get(project)
            .filter(|c| self.fresh(c))
        {
            return Ok(c.value.clone());
        }
        self.project(project).await?;
        let token = self.session.access_token().await?;
        let envs = self.api.environments(&token, project).await?;
        self.cache.lock().await.environments.insert(
            project.clone(),
            Cached {
                at: self.now(),
                value: envs.clone(),
            },
        );
        Ok(envs)
    }

    /// An environment by id or machine name, or an error that lists them.
    pub async fn environment(
        &self,
        project: &ProjectId,
        id: &EnvironmentId,
    ) -> Result<Environment, CatalogError> {
        let envs = self.environments(project).await?;
        envs.iter()
            .find(|e| e.id == *id || e.machine_name == id.as_str())
            .cloned()
            .ok_or_else(|| {
                ResolveError::EnvironmentNotFound {
                    project: project.to_string(),
                    id: id.to_string(),
                    available: envs.iter().map(|e| e.id.to_string()).collect(),
                }
                .into()
            })
    }

    pub async fn deployment(
        &self,
        project: &ProjectId,
        env: &Environment,
    ) -> Result<Option<Deployment>, CatalogError> {
        let key = (project.clone(), env.id.clone());
        if let Some(c) = self
            .cache
            .lock()
            .await
            .deployments
            .get(&key)
            .filter(|c| self.fresh(c))
        {
            return Ok(c.value.clone());
        }
        if env.status == "inactive" {
            return Ok(None);
        }
        let token = self.session.access_token().await?;
        let d = self.api.deployment(&token, project, &env.id).await?;
        self.cache.lock().await.deployments.insert(
            key,
            Cached {
                at: self.now(),
                value: d.clone(),
            },
        );
        Ok(d)
    }

    /// The SSH URL of a choice.
    pub async fn resolve(
        &self,
        project: &ProjectId,
        env: &EnvironmentId,
        selection: &Selection,
    ) -> Result<SshUrl, CatalogError> {
        let environment = self.environment(project, env).await?;
        resolve::check_running(&environment)?;
        let deployment = self.deployment(project, &environment).await?;
        Ok(resolve(
            &environment,
            deployment.as_ref(),
            selection,
            &self.session.profile,
        )?)
    }
}
