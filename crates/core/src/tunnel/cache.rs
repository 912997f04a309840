//! An app's relationships, read over its tunnel connection once per deployment: the cache is
//! keyed as the official client keys it (`legacy/src/Model/Host/RemoteHost.php`,
//! `getCacheKey`: the SSH URL and the environment's head commit), so a redeploy, which gives a
//! new head commit, makes the next read ask the app again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use russh::client;

use super::error::TunnelError;
use super::forward::WAIT_FOR_LINK;
use super::link::{Link, LinkState};
use super::model::AppKey;
use super::Relationships;
use crate::access::{Access, AccessError};
use crate::ssh::connect::Client;
use crate::ssh::SshUrl;

/// How long reading the relationships may take.
const RELATIONSHIPS_TIMEOUT: Duration = Duration::from_secs(30);

/// One deployment of one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    url: SshUrl,
    head: String,
}

/// The relationships of the deployments read so far, the latest one per app.
#[derive(Default)]
pub(super) struct RelationshipsCache(Mutex<HashMap<CacheKey, Relationships>>);

impl RelationshipsCache {
    pub(super) fn get(&self, key: &CacheKey) -> Option<Relationships> {
        self.0.lock().ok()?.get(key).cloned()
    }

    pub(super) fn put(&self, key: CacheKey, relationships: Relationships) {
        if let Ok(mut cache) = self.0.lock() {
            // Older deployments of this app are of no more use.
            cache.retain(|k, _| k.url != key.url);
            cache.insert(key, relationships);
        }
    }
}

/// The key of `app`'s current deployment; `None` when the environment has no head commit,
/// and there is no telling a redeploy apart: then the relationships are read every time.
pub(super) async fn deployment(
    access: &Access,
    app: &AppKey,
    url: &SshUrl,
) -> Result<Option<CacheKey>, TunnelError> {
    // The head commit must be the platform's current one, not one the catalog kept for
    // a minute: a redeploy in that minute would go unnoticed. The SSH read it can save
    // costs more than the API call.
    access.catalog().refresh().await;
    let env = access
        .catalog()
        .environment(&app.project, &app.environment)
        .await
        .map_err(AccessError::from)?;
    Ok(env.head_commit.clone().map(|head| CacheKey {
        url: url.clone(),
        head,
    }))
}

/// Reads `app`'s relationships over its connection, waiting for it (up to
/// [`WAIT_FOR_LINK`]) while it is being made.
pub(super) async fn read(
    access: &Access,
    app: &AppKey,
    link: &Link,
) -> Result<Relationships, TunnelError> {
    let carrier = tokio::time::timeout(WAIT_FOR_LINK, link.up())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| match link.state() {
            LinkState::NeedsSignIn { reason } => TunnelError::NeedsSignIn {
                app: app.clone(),
                reason,
            },
            state => TunnelError::Unreachable {
                app: app.clone(),
                reason: state.why_down(),
            },
        })?;
    // A connection that looks up may have gone silent: ask before waiting on a command.
    if !carrier.probe().await {
        link.lost(&carrier);
        return Err(TunnelError::Unreachable {
            app: app.clone(),
            reason: "the gateway stopped answering".into(),
        });
    }
    let output = run_on(&carrier.handle, READ_RELATIONSHIPS)
        .await
        .map_err(|message| refused(access, app, message))?;
    let value = between_markers(&output).ok_or_else(|| TunnelError::Read {
        app: app.clone(),
        message: "the app's answer has no relationships between the markers (its login \
                  scripts may have exited early, or its shell is not POSIX): check that \
                  `echo -n` works in the app's shell, and report it if it does"
            .into(),
    })?;
    Ok(Relationships::decode(value)?)
}

/// Why reading the relationships failed: the gateway's refusal when it wants a stronger
/// sign-in (an MFA-enforcing organization), as the step-up it names.
fn refused(access: &Access, app: &AppKey, message: String) -> TunnelError {
    match access.after_refusal(&message, false) {
        crate::access::AfterRefusal::SignIn(step_up) => TunnelError::StepUp {
            app: app.clone(),
            step_up: Box::new(step_up),
            message,
        },
        _ => TunnelError::Read {
            app: app.clone(),
            message,
        },
    }
}

/// Where the value starts and ends in the app's answer, and the command that prints it so:
/// the official client's (`legacy/src/Service/RemoteEnvVars.php`, `getEnvVar`), so that
/// whatever the app's login scripts print around it is ignored.
const BEGIN_MARKER: &str = "_BEGIN_ENV_VAR_";
const END_MARKER: &str = "_END_ENV_VAR_";
pub const READ_RELATIONSHIPS: &str =
    "echo -n '_BEGIN_ENV_VAR_'\"$PLATFORM_RELATIONSHIPS\"'_END_ENV_VAR_'";

/// The text between the first begin marker and the first end marker after it; `None` when
/// either is missing.
pub fn between_markers(output: &[u8]) -> Option<&[u8]> {
    let find = |hay: &[u8], needle: &str| {
        hay.windows(needle.len())
            .position(|w| w == needle.as_bytes())
    };
    let start = find(output, BEGIN_MARKER)? + BEGIN_MARKER.len();
    let rest = &output[start..];
    let end = find(rest, END_MARKER)?;
    Some(&rest[..end])
}

/// Runs a command on an open connection: its standard output, or why it failed (the
/// refusal's text when the gateway refused it).
pub(super) async fn run_on(
    handle: &client::Handle<Client>,
    command: &str,
) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(
        RELATIONSHIPS_TIMEOUT,
        crate::ssh::exec::run_on(handle, command),
    )
    .await
    {
        Err(_) => Err(format!(
            "no answer within {} s",
            RELATIONSHIPS_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.status == Some(0) => Ok(out.stdout),
        Ok(Ok(out)) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationships_are_read_between_the_markers_whatever_login_scripts_print_around_them() {
        // The official client's command and extraction: legacy/src/Service/RemoteEnvVars.php
        // (`getEnvVar`, then `StringUtil::between`).
        assert_eq!(
            READ_RELATIONSHIPS,
            r#"echo -n '_BEGIN_ENV_VAR_'"$PLATFORM_RELATIONSHIPS"'_END_ENV_VAR_'"#
        );
        for (output, value) in [
            (&b"_BEGIN_ENV_VAR_e30=_END_ENV_VAR_"[..], Some(&b"e30="[..])),
            (
                b"Welcome!\nnvm: using node 20\n_BEGIN_ENV_VAR_e30=_END_ENV_VAR_bye\n",
                Some(b"e30="),
            ),
            (b"_BEGIN_ENV_VAR__END_ENV_VAR_", Some(b"")),
            (
                b"_END_ENV_VAR__BEGIN_ENV_VAR_abc_END_ENV_VAR_",
                Some(b"abc"),
            ),
            (b"e30=\n", None),
            (b"_BEGIN_ENV_VAR_e30=", None),
            (b"", None),
        ] {
            assert_eq!(between_markers(output), value, "{output:?}");
        }
    }
}
