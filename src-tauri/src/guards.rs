//! The projects whose production environment asks before it is entered, for the per-project
//! switches in Settings ([`tether_core::guard`]; the switches save
//! `DesktopSettings::production_unguarded` with the rest of the settings).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tauri::State;
use tether_core::guard::{environment_label, EnvironmentType};
use ts_rs::TS;

use crate::desktop::Desktop;
use crate::view::{IpcError, ProjectView};

/// A project with at least one production environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ProductionProject {
    pub id: String,
    pub title: String,
    /// Its production environments, labelled as everywhere (`Main [PRODUCTION]`).
    pub environments: Vec<String>,
    /// Whether entering them asks first (the project is not in `production_unguarded`).
    pub guarded: bool,
}

/// The catalog's projects that have a production environment, in its order.
pub fn production_projects(
    projects: &[ProjectView],
    settings: &tether_core::settings::DesktopSettings,
) -> Vec<ProductionProject> {
    projects
        .iter()
        .filter_map(|p| {
            let environments: Vec<String> = p
                .environments
                .iter()
                .filter(|e| EnvironmentType::from_api(&e.kind).is_production())
                .map(|e| environment_label(&e.title, &e.kind))
                .collect();
            (!environments.is_empty()).then(|| ProductionProject {
                id: p.id.clone(),
                title: p.title.clone(),
                environments,
                guarded: settings.guards_production(&p.id),
            })
        })
        .collect()
}

/// The projects Settings offers a production switch for (the catalog as last loaded).
#[tauri::command]
pub async fn production_projects_view(
    desktop: State<'_, Arc<Desktop>>,
) -> Result<Vec<ProductionProject>, IpcError> {
    let projects = desktop.catalog(false).await?;
    Ok(production_projects(&projects, &desktop.settings()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::EnvironmentView;

    fn project(id: &str, kinds: &[&str]) -> ProjectView {
        ProjectView {
            id: id.into(),
            title: id.to_uppercase(),
            region: "eu".into(),
            environments: kinds
                .iter()
                .enumerate()
                .map(|(i, k)| EnvironmentView {
                    id: format!("e{i}"),
                    title: format!("E{i}"),
                    status: "active".into(),
                    kind: (*k).into(),
                    apps: Vec::new(),
                })
                .collect(),
            problem: None,
        }
    }

    #[test]
    fn only_projects_with_production_are_offered_with_their_switch() {
        let projects = [
            project("a", &["production", "development"]),
            project("b", &["staging"]),
            project("c", &["production"]),
        ];
        let mut settings = tether_core::settings::DesktopSettings::default();
        settings.set_guards_production("c", false);
        let offered = production_projects(&projects, &settings);
        assert_eq!(offered.len(), 2);
        assert_eq!(offered[0].environments, ["E0 [PRODUCTION]"]);
        assert!(offered[0].guarded);
        assert_eq!(offered[1].id, "c");
        assert!(!offered[1].guarded);
    }
}
