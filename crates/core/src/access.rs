//! One call per user intent, for every shell: sign in, be ready to connect, find the address
//! of an app, build the system `ssh` command, decide what to do after a refusal, open a
//! terminal, sign out of one profile or all. The CLI and the desktop app compose nothing of
//! their own: they parse input, call these, and render the value or the [`Problem`].
//!
//! [`Problem`]: crate::problem::Problem

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{Api, ApiError, EnvironmentId, ProjectId, StepUp, User};
use crate::auth::{AuthCode, AuthError, LoginRequest, PendingLogin, Session, TokenStore};
use crate::catalog::{Catalog, CatalogError};
use crate::cert::{CertError, CertInfo, CertKeeper, RenewalPolicy};
use crate::context::{Clock, Paths};
use crate::openssh::{self, Edit, OpensshError, RefreshHook, SshFiles};
use crate::problem::{Classify, Problem};
use crate::profile::Profile;
use crate::secret::Sensitive;
use crate::ssh::command::{
    refusal, remedy, split_ssh_options, ssh_args, ssh_options_variable, Remedy, SSH_FAILED,
};
use crate::ssh::resolve::all_urls;
use crate::ssh::terminal::{self, Launch, TerminalError, TerminalSettings};
use crate::ssh::{Selection, SshUrl};

/// How long listings are reused before the platform is asked again.
const CATALOG_TTL: Duration = Duration::from_secs(60);

/// The variables that carry API tokens. They are removed from the environment of every
/// process Tether starts (`ssh`, terminals), which have no use for them.
pub const TOKEN_VARIABLES: [&str; 3] = ["PLATFORMSH_CLI_TOKEN", "UPSUN_CLI_TOKEN", "TETHER_TOKEN"];

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Openssh(#[from] OpensshError),
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error("an API token is set in the environment ({0}); it takes precedence over a browser sign-in: unset it first")]
    EnvTokenSet(String),
    #[error("cannot start {program}: {message}")]
    Spawn { program: String, message: String },
    #[cfg(unix)]
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
}

impl AccessError {
    /// The stronger authentication the platform asked for, when that is the problem.
    pub fn step_up(&self) -> Option<StepUp> {
        match self {
            AccessError::Api(ApiError::StepUp(s))
            | AccessError::Catalog(CatalogError::Api(ApiError::StepUp(s)))
            | AccessError::Cert(CertError::StepUp(s)) => Some(s.clone()),
            #[cfg(unix)]
            AccessError::Agent(crate::agent::AgentError::Remote { step_up, .. }) => step_up.clone(),
            _ => None,
        }
    }
}

impl Classify for AccessError {
    fn problem(&self) -> Problem {
        match self {
            AccessError::Auth(e) => e.problem(),
            AccessError::Api(e) => e.problem(),
            AccessError::Cert(e) => e.problem(),
            AccessError::Catalog(e) => e.problem(),
            AccessError::Openssh(e) => e.problem(),
            AccessError::Terminal(e) => e.problem(),
            AccessError::EnvTokenSet(_) => Problem::Usage,
            AccessError::Spawn { .. } => Problem::Other,
            #[cfg(unix)]
            AccessError::Agent(e) => e.problem(),
        }
    }
}

/// What a shell passes in to act for one profile.
pub struct Surroundings {
    pub profile: Profile,
    pub paths: Paths,
    pub store: StoreKind,
    pub clock: Arc<dyn Clock>,
    pub http: reqwest::Client,
    /// An API token from the environment, which wins over anything stored.
    pub env_token: Option<Sensitive<String>>,
    /// Renewal and inactivity.
    pub policy: RenewalPolicy,
    /// Whether to hand session work (certificates, sign-out) to a running agent. False in
    /// the agent itself.
    pub use_agent: bool,
    /// The command the session's SSH config runs before each plain `ssh` to renew the
    /// certificate (the `tether` executable and its profile argument).
    pub refresh_hook: Option<RefreshHook>,
}

/// Where tokens are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The OS keyring (Secret Service, Keychain, Credential Manager): the default. A user who
    /// chose the file store (in the app, where no keyring is reachable) gets that instead.
    Keyring,
    /// A 0600 file in the session directory, for machines without a keyring (opt-in).
    File,
}

impl StoreKind {
    fn store(self, paths: &Paths, profile_name: &str) -> TokenStore {
        let file = paths
            .data_dir
            .join("sessions")
            .join(profile_name)
            .join("tokens.json");
        match self {
            StoreKind::Keyring => {
                TokenStore::keyring_unless_chosen(profile_name, file, &paths.data_dir)
            }
            StoreKind::File => TokenStore::File { path: file },
        }
    }
}

/// A usable certificate and the SSH files that wire it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub certificate: CertInfo,
    /// Whether a new certificate was just issued.
    pub renewed: bool,
    /// The session's OpenSSH configuration file.
    pub ssh_config: PathBuf,
}

/// What to do after `ssh` was refused by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterRefusal {
    /// The session already satisfies the demand; the certificate predates it. Load a new
    /// certificate ([`Access::ready`] with `new`); then an interactive session may reconnect
    /// once, while a remote command is never run again by Tether: the user is told to.
    NewCertificate,
    /// The user must sign in again as this step-up says, then try again.
    SignIn(StepUp),
    /// Nothing Tether can do: pass the failure on.
    GiveUp,
}

/// Which sessions to sign out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutScope {
    /// The current profile only.
    Profile,
    /// Every profile with a session on this machine, and Tether's block in `~/.ssh/config`.
    All,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOutReport {
    /// Profiles signed out, by name.
    pub profiles: Vec<String>,
    /// Whether the platform revoked the current profile's session.
    pub revoked: bool,
    /// Why revocation failed, when it did (the session is deleted here anyway).
    pub revoke_error: Option<String>,
    /// Whether Tether's block was removed from `~/.ssh/config`.
    pub removed_block: bool,
}

/// The check the `Match exec` refresh hook makes before every plain `ssh`: records activity,
/// and says whether the stored certificate is still usable for a while, reading two small
/// files and no keyring, network or token. When it says no, the caller does the full
/// [`Access::ready`].
pub fn certificate_is_fresh(paths: &Paths, profile: &Profile, now: u64) -> bool {
    let dir = paths.session_dir(profile);
    let fresh = stored_certificate_is_fresh(&dir, now);
    // A stale certificate leaves the touch to the full path, which first checks the
    // inactivity limit.
    if fresh {
        crate::activity::touch(&dir, now);
    }
    fresh
}

fn stored_certificate_is_fresh(dir: &std::path::Path, now: u64) -> bool {
    if crate::auth::ended_locally(dir) {
        return false;
    }
    let files = crate::cert::CertFiles::new(dir.to_path_buf());
    // The private key ssh will offer, not the `.pub` beside it: while a new key is written,
    // the three files change one after the other, and only the pair read as one says what
    // ssh would present.
    let Ok(Some((_, cert))) = files.read_pair() else {
        return false;
    };
    cert.valid_after() <= now
        && cert.valid_before()
            > now
                + crate::cert::usable_margin(
                    RenewalPolicy::default().margin.as_secs(),
                    &cert,
                    files.received_at(),
                )
}

/// Who keeps a session: renews its certificate, applies its inactivity limit, signs it out.
enum SessionKeeper {
    /// The profile's agent, running in another process.
    #[cfg(unix)]
    Agent(crate::agent::AgentClient),
    /// This process (no agent runs, or this is the agent).
    Here,
}

/// A user's access to one profile's platform.
pub struct Access {
    profile: Profile,
    paths: Paths,
    session: Session,
    api: Api,
    catalog: Catalog,
    keeper: CertKeeper,
    ssh_files: SshFiles,
    store_kind: StoreKind,
    use_agent: bool,
    refresh_hook: Option<RefreshHook>,
}

impl Access {
    pub fn new(s: Surroundings) -> Access {
        let session = Session::new(
            s.profile.clone(),
            s.store.store(&s.paths, &s.profile.name),
            s.paths.clone(),
            s.clock,
            s.http.clone(),
            s.env_token,
        );
        let api = Api::new(s.http, s.profile.api_url.clone());
        let catalog = Catalog::new(session.clone(), api.clone(), CATALOG_TTL);
        let keeper = CertKeeper::new(session.clone(), s.policy);
        let ssh_files = SshFiles::new(&s.paths, &s.profile);
        Access {
            profile: s.profile,
            paths: s.paths,
            session,
            api,
            catalog,
            keeper,
            ssh_files,
            store_kind: s.store,
            use_agent: s.use_agent,
            refresh_hook: s.refresh_hook,
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn ssh_files(&self) -> &SshFiles {
        &self.ssh_files
    }

    /// The session's certificate keeper: its policy, events and activity record.
    pub fn keeper(&self) -> &CertKeeper {
        &self.keeper
    }

    /// Records that the user is using the session (the keeper ends idle sessions).
    pub fn touch(&self) {
        self.keeper.touch();
    }

    /// Who keeps the session, and so answers for it: the profile's running agent, when there
    /// is one and this process is not it, or this process. Every session decision (ready,
    /// sign-out, a new sign-in) asks this once and goes to that keeper.
    async fn keeper_of_session(&self) -> Result<SessionKeeper, AccessError> {
        #[cfg(unix)]
        if self.use_agent {
            let socket = crate::agent::socket_path(&self.paths, &self.profile);
            if let Some(agent) = crate::agent::AgentClient::connect(&socket).await? {
                return Ok(SessionKeeper::Agent(agent));
            }
        }
        Ok(SessionKeeper::Here)
    }

    /// After a sign-in: a running agent keeps the new session (and records its limit with
    /// it); without one, this process's limit becomes the session's.
    async fn keep_new_session(&self) {
        match self.keeper_of_session().await {
            #[cfg(unix)]
            Ok(SessionKeeper::Agent(mut agent)) => {
                if let Err(e) = agent.request(&crate::agent::Request::SignedIn).await {
                    tracing::warn!(error = %e, "the agent did not take the new session");
                }
            }
            Ok(SessionKeeper::Here) => self.keeper.record_inactivity_limit(),
            Err(e) => {
                tracing::warn!(error = %e, "the agent did not take the new session");
                self.keeper.record_inactivity_limit();
            }
        }
    }

    /// Starts a browser sign-in: the page to show and the listener that waits for it.
    pub async fn begin_sign_in(&self, request: &LoginRequest) -> Result<PendingLogin, AccessError> {
        if self.session.uses_env_token() {
            return Err(AccessError::EnvTokenSet(self.token_variables()));
        }
        Ok(PendingLogin::start(&self.profile, request).await?)
    }

    /// Finishes a browser sign-in: stores the tokens and makes the session ready to connect.
    /// When the token store refuses them, the sign-in is held for
    /// [`Access::keep_held_sign_in`] and the store's error returned.
    pub async fn finish_sign_in(&self, code: AuthCode) -> Result<(User, Ready), AccessError> {
        let tokens = self.session.complete_login(code).await?;
        self.signed_in(tokens).await
    }

    /// Stores the sign-in the token store refused (once the keyring is unlocked, or the user
    /// chose the file store), and makes the session ready to connect as a sign-in does.
    pub async fn keep_held_sign_in(&self) -> Result<(User, Ready), AccessError> {
        let tokens = self.session.store_held().await?;
        self.signed_in(tokens).await
    }

    /// After a sign-in's tokens are stored: the session is in use, its keeper takes it, and
    /// it is made ready to connect.
    async fn signed_in(&self, tokens: crate::auth::Tokens) -> Result<(User, Ready), AccessError> {
        self.touch();
        self.keep_new_session().await;
        let user = self.api.me(&tokens.access).await?;
        let ready = self.ready(false).await?;
        Ok((user, ready))
    }

    /// Signs in with an API token (automation), remembers it for renewals, and tries to be
    /// ready to connect: the sign-in stands even when no certificate could be loaded (the
    /// second result says why).
    pub async fn sign_in_with_api_token(
        &self,
        token: Sensitive<String>,
    ) -> Result<(User, Result<Ready, AccessError>), AccessError> {
        let tokens = self.session.login_with_api_token(token).await?;
        self.touch();
        self.keep_new_session().await;
        let user = self.api.me(&tokens.access).await?;
        Ok((user, self.ready(false).await))
    }

    /// Who is signed in (asks the platform, so a revoked session shows as one).
    pub async fn user(&self) -> Result<User, AccessError> {
        self.touch();
        Ok(self.catalog.user().await?)
    }

    fn token_variables(&self) -> String {
        format!("{} or TETHER_TOKEN", self.profile.token_env_var)
    }

    /// Be ready to connect: a usable certificate (a new one with `new`) and the session's
    /// OpenSSH files written, by the session's keeper.
    pub async fn ready(&self, new: bool) -> Result<Ready, AccessError> {
        match self.keeper_of_session().await? {
            #[cfg(unix)]
            SessionKeeper::Agent(mut agent) => Ok(agent.ready(new).await?),
            SessionKeeper::Here => self.ready_here(new).await,
        }
    }

    /// [`Access::ready`] in this process, as the session's keeper: the inactivity limit is
    /// checked before this use is recorded (the policy is the keeper's, the same one its
    /// renewal loop applies).
    pub(crate) async fn ready_here(&self, new: bool) -> Result<Ready, AccessError> {
        if self.keeper.end_if_idle().await.is_some() {
            return Err(CertError::Inactive(self.keeper.inactivity_limit()).into());
        }
        self.touch();
        let ensured = self.keeper.ensure(new).await?;
        openssh::write_session_files(
            &self.profile,
            self.keeper.files(),
            &self.ssh_files,
            self.refresh_hook.as_ref(),
        )?;
        Ok(Ready {
            certificate: CertInfo::of(&ensured.cert, &self.keeper.files().certificate()),
            renewed: ensured.renewed,
            ssh_config: self.ssh_files.config.clone(),
        })
    }

    /// The loaded certificate, without asking for one.
    pub fn certificate(&self) -> Option<CertInfo> {
        let files = self.keeper.files();
        files
            .read_certificate()
            .map(|c| CertInfo::of(&c, &files.certificate()))
    }

    /// The SSH address of an app, instance or worker.
    pub async fn address(
        &self,
        project: &ProjectId,
        environment: &EnvironmentId,
        selection: &Selection,
    ) -> Result<SshUrl, AccessError> {
        self.touch();
        Ok(self
            .catalog
            .resolve(project, environment, selection)
            .await?)
    }

    /// Every SSH address of an environment, by link name.
    pub async fn addresses(
        &self,
        project: &ProjectId,
        environment: &EnvironmentId,
    ) -> Result<Vec<(String, SshUrl)>, AccessError> {
        self.touch();
        let env = self.catalog.environment(project, environment).await?;
        Ok(all_urls(&env, &self.profile).map_err(CatalogError::from)?)
    }

    /// The arguments of the system `ssh` for an address (without the program name): the
    /// session's certificate, identity and known hosts as options, so the user's own
    /// configuration, agent and escapes apply whether or not `~/.ssh/config` includes Tether.
    /// `options` are the user's own, in `ssh_config` form (`-o`, the `*_SSH_OPTIONS` variable).
    pub fn ssh_argv(
        &self,
        url: &SshUrl,
        command: Option<&str>,
        tty: bool,
        options: &[String],
    ) -> Vec<String> {
        ssh_args(
            &self.profile,
            self.keeper.files(),
            &self.ssh_files,
            url,
            command,
            tty,
            options,
        )
    }

    /// The system `ssh` with these arguments, without the token variables in its environment.
    pub fn ssh_command(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(argv);
        self.scrub(&mut cmd);
        cmd
    }

    fn scrub(&self, cmd: &mut Command) {
        for var in TOKEN_VARIABLES
            .iter()
            .copied()
            .chain([self.profile.token_env_var.as_str()])
        {
            cmd.env_remove(var);
        }
    }

    /// What to do after the gateway refused a connection with this text (ssh's stderr, or a
    /// refused channel's message). `retried` says whether this is already the second attempt:
    /// then the refusal stands.
    pub fn after_refusal(&self, stderr: &str, retried: bool) -> AfterRefusal {
        let Some(refused) = refusal(stderr).filter(|_| !retried) else {
            return AfterRefusal::GiveUp;
        };
        match remedy(&refused, &self.certificate_amr()) {
            Remedy::NewCertificate => AfterRefusal::NewCertificate,
            Remedy::SignIn(r) => AfterRefusal::SignIn(StepUp::for_amr(r.amr, r.max_age)),
        }
    }

    /// What to do after the system `ssh` ended with this status and stderr. Only ssh's own
    /// failure (255) is diagnosed: a remote command's status and output are its own, whatever
    /// they say (`legacy/src/Service/SshDiagnostics.php` in the official client).
    pub fn after_ssh(&self, status: u8, stderr: &str, retried: bool) -> AfterRefusal {
        if status != SSH_FAILED {
            return AfterRefusal::GiveUp;
        }
        self.after_refusal(stderr, retried)
    }

    /// The authentication methods the loaded certificate stands for: the `amr` of its
    /// `token-claims@platform.sh`, and `mfa` when it has `has-mfa@platform.sh`.
    fn certificate_amr(&self) -> Vec<String> {
        let Some(cert) = self.keeper.files().read_certificate() else {
            return Vec::new();
        };
        let extensions = cert.extensions();
        let mut amr: Vec<String> = extensions
            .get("token-claims@platform.sh")
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .and_then(|c| {
                c["amr"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        if extensions.contains_key("has-mfa@platform.sh") && !amr.iter().any(|a| a == "mfa") {
            amr.push("mfa".to_string());
        }
        amr
    }

    /// The environment variable with the user's extra ssh options for this profile
    /// (`PLATFORMSH_CLI_SSH_OPTIONS`, `UPSUN_CLI_SSH_OPTIONS`).
    pub fn ssh_options_variable(&self) -> String {
        ssh_options_variable(&self.profile)
    }

    /// The options in that variable's value, one per line.
    pub fn ssh_options_from(&self, value: &str) -> Vec<String> {
        split_ssh_options(value)
    }

    /// Whether a sign-in could help with a step-up here: not with an API token from the
    /// environment, which a browser sign-in cannot replace.
    pub fn can_sign_in(&self) -> bool {
        !self.session.uses_env_token()
    }

    /// Opens `ssh` to an address in the user's terminal emulator; returns what was started.
    pub fn open_terminal(
        &self,
        url: &SshUrl,
        command: Option<&str>,
        settings: &TerminalSettings,
        path_var: Option<&std::ffi::OsStr>,
    ) -> Result<Launch, AccessError> {
        self.touch();
        let mut argv = vec!["ssh".to_string()];
        argv.extend(self.ssh_argv(url, command, command.is_some(), &[]));
        let launch =
            terminal::launch_for(settings, &argv, |n| terminal::find_on_path(path_var, n))?;
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.scrub(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| AccessError::Spawn {
            program: launch.program.clone(),
            message: e.to_string(),
        })?;
        // Reaped when it ends, so a long-running shell (the tray app) leaves no zombies.
        std::thread::spawn(move || child.wait());
        Ok(launch)
    }

    /// Whether `~/.ssh/config` includes Tether's block.
    pub fn ssh_config_installed(&self) -> bool {
        openssh::block_installed(&self.paths)
    }

    /// The block Tether adds to `~/.ssh/config`.
    pub fn ssh_config_block(&self) -> String {
        openssh::block(
            &self.profile.ssh_host_patterns.iter().cloned().collect(),
            &self.ssh_files,
        )
    }

    /// Adds (or updates) Tether's block in `~/.ssh/config`.
    pub fn install_ssh_config(&self) -> Result<Edit, AccessError> {
        Ok(openssh::install_block(
            &self.paths,
            &self.ssh_files,
            &self.profile.ssh_host_patterns,
        )?)
    }

    /// Removes Tether's block from `~/.ssh/config`.
    pub fn remove_ssh_config(&self) -> Result<Edit, AccessError> {
        Ok(openssh::remove_block(&self.paths)?)
    }

    /// Signs out: revokes the session at the platform (best effort) and deletes its tokens,
    /// key, certificate and SSH files; with [`SignOutScope::All`], every other profile's too
    /// and Tether's block in `~/.ssh/config`.
    /// The session's keeper does it (a running agent also closes the session's tunnels).
    pub async fn sign_out(&self, scope: SignOutScope) -> Result<SignOutReport, AccessError> {
        match self.keeper_of_session().await? {
            #[cfg(unix)]
            SessionKeeper::Agent(mut agent) => {
                Ok(agent.sign_out(scope == SignOutScope::All).await?)
            }
            SessionKeeper::Here => self.sign_out_here(scope).await,
        }
    }

    /// [`Access::sign_out`] in this process, as the session's keeper.
    pub(crate) async fn sign_out_here(
        &self,
        scope: SignOutScope,
    ) -> Result<SignOutReport, AccessError> {
        let mut report = SignOutReport::default();
        let own = self.session.logout().await?;
        openssh::remove_session_files(&self.ssh_files);
        report.profiles.push(self.profile.name.clone());
        report.revoked = own.revoked;
        report.revoke_error = own.revoke_error;
        if scope == SignOutScope::Profile {
            return Ok(report);
        }
        let sessions = self.paths.data_dir.join("sessions");
        let names: Vec<String> = std::fs::read_dir(&sessions)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| *n != self.profile.name)
                    .collect()
            })
            .unwrap_or_default();
        for name in names {
            // Built-in platforms are revoked too; other profiles' files are only deleted.
            let profile = Profile::builtins().into_iter().find(|p| p.name == name);
            match profile {
                Some(p) => {
                    let other = Session::new(
                        p.clone(),
                        self.store_kind.store(&self.paths, &p.name),
                        self.paths.clone(),
                        self.session.clock().clone(),
                        self.session.http().clone(),
                        None,
                    );
                    other.logout().await?;
                    openssh::remove_session_files(&SshFiles::new(&self.paths, &p));
                }
                None => {
                    crate::auth::forget(&self.store_kind.store(&self.paths, &name)).await?;
                    let _ = std::fs::remove_dir_all(sessions.join(&name));
                }
            }
            report.profiles.push(name);
        }
        let _ = std::fs::remove_dir_all(&self.ssh_files.include_dir);
        report.removed_block = matches!(openssh::remove_block(&self.paths)?, Edit::Written { .. });
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::private::Ed25519Keypair;
    use ssh_key::{LineEnding, PrivateKey};

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn write_key(dir: &std::path::Path, key: &PrivateKey) {
        let text = key.to_openssh(LineEnding::LF).expect("openssh");
        std::fs::write(dir.join("id_ed25519"), text.as_bytes()).expect("key");
    }

    #[test]
    fn the_hook_judges_the_key_ssh_offers_not_the_public_file_beside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (key(1), key(2));
        let ca = key(9);
        let mut builder = ssh_key::certificate::Builder::new(
            vec![0; 16],
            old.public_key().key_data().clone(),
            0,
            u64::MAX,
        )
        .expect("builder");
        builder.valid_principal("tether").expect("principal");
        let cert = builder.sign(&ca).expect("sign");
        write_key(dir.path(), &old);
        let public = old.public_key().to_openssh().expect("public");
        std::fs::write(dir.path().join("id_ed25519.pub"), public).expect("pub");
        let cert_text = cert.to_openssh().expect("cert");
        std::fs::write(dir.path().join("id_ed25519-cert.pub"), cert_text).expect("cert");
        assert!(stored_certificate_is_fresh(dir.path(), 1_000));
        // A renewal with a new key has written the private key and nothing else yet: the
        // `.pub` still matches the certificate, but ssh would offer the new key with the old
        // certificate, which the gateway refuses. The hook must not call that fresh.
        write_key(dir.path(), &new);
        assert!(!stored_certificate_is_fresh(dir.path(), 1_000));
    }
}
