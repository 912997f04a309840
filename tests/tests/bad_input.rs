//! Bad input, each with a clear error and nothing half-written: sign-in callbacks that are
//! wrong, a platform that misbehaves (bad certificates, 500s, bodies that are not JSON), and
//! local files Tether must not break.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{PrivateKey, PublicKey};
use tether_core::auth::{LoginRequest, PendingLogin};
use tether_core::Profile;
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sim_profile(info: &tether_sim::ReadyInfo) -> Result<Profile> {
    Ok(Profile::from_toml(
        &info.profile_toml(),
        std::path::Path::new("sim.toml"),
    )?)
}

fn state_of(pending: &PendingLogin) -> String {
    pending
        .authorize_url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn callback(redirect: &str, query: &str) -> Result<reqwest::Response> {
    Ok(http().get(format!("{redirect}/{query}")).send().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_callbacks_that_must_be_refused() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let profile = sim_profile(&sim.info)?;

    // A callback whose state is not ours is refused with a page saying so, and ignored: the
    // sign-in keeps waiting for its own callback, which then succeeds.
    let pending = PendingLogin::start(&profile, &LoginRequest::default()).await?;
    let (redirect, state) = (pending.redirect_uri().to_string(), state_of(&pending));
    let waiting = tokio::spawn(pending.wait_for_code(Duration::from_secs(20)));
    let resp = callback(&redirect, "?code=stolen&state=forged").await?;
    assert_eq!(resp.status().as_u16(), 400);
    let page = resp.text().await?;
    assert!(page.contains("not the one Tether is waiting for"), "{page}");
    let resp = callback(&redirect, "?error=access_denied&state=forged").await?;
    assert_eq!(resp.status().as_u16(), 400);
    let resp = callback(&redirect, &format!("?code=mine&state={state}")).await?;
    assert_eq!(resp.status().as_u16(), 200);
    let code = waiting.await??;
    assert_eq!(code.code.expose(), "mine", "the forged code was not taken");

    // The user pressed Deny: the platform's error comes through.
    let pending = PendingLogin::start(&profile, &LoginRequest::default()).await?;
    let (redirect, state) = (pending.redirect_uri().to_string(), state_of(&pending));
    let waiting = tokio::spawn(pending.wait_for_code(Duration::from_secs(20)));
    // A stray request (a favicon) is ignored, not taken for the answer.
    assert_eq!(
        callback(&redirect, "favicon.ico").await?.status().as_u16(),
        404
    );
    callback(
        &redirect,
        &format!(
            "?error=access_denied&error_description=The+user+denied+the+request.&state={state}"
        ),
    )
    .await?;
    let err = waiting.await?.expect_err("a denied sign-in must fail");
    assert!(
        err.to_string().contains("access_denied") && err.to_string().contains("denied the request"),
        "{err}"
    );

    // One valid callback is accepted; the listener is gone for a second one.
    let pending = PendingLogin::start(&profile, &LoginRequest::default()).await?;
    let (redirect, state) = (pending.redirect_uri().to_string(), state_of(&pending));
    let waiting = tokio::spawn(pending.wait_for_code(Duration::from_secs(20)));
    let resp = callback(&redirect, &format!("?code=abc&state={state}")).await?;
    assert!(resp.text().await?.contains("Signed in"));
    let code = waiting.await??;
    assert_eq!(code.code.expose(), "abc");
    assert!(
        callback(&redirect, &format!("?code=again&state={state}"))
            .await
            .is_err(),
        "a second callback found a listener"
    );

    // Nobody comes back: the sign-in says it was abandoned.
    let pending = PendingLogin::start(&profile, &LoginRequest::default()).await?;
    let err = pending
        .wait_for_code(Duration::from_millis(300))
        .await
        .expect_err("must time out");
    assert!(err.to_string().contains("abandoned"), "{err}");
    Ok(())
}

/// What the misbehaving platform answers at `POST /ssh` and `GET /users/me`.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    CertForAnotherKey,
    CertFromAnotherCa,
    ExpiredCert,
    MalformedCert,
    ServerError,
    NotJson,
}

struct Fake {
    mode: Mutex<Misbehaviour>,
    ca: PrivateKey,
}

const USER_ID: &str = "u-0001";

fn access_token() -> String {
    let claims = serde_json::json!({
        "sub": USER_ID, "access_id": "acc-1", "jti": "jti-1", "amr": ["api_token"],
        "auth_time": 1, "scp": [], "grant": "api_token", "exp": 4_000_000_000u64,
    });
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn ed25519(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

fn certificate(fake: &Fake, key: &PublicKey, ca: &PrivateKey, valid: (u64, u64)) -> Result<String> {
    let claims = r#"{"auth_time":1,"amr":["api_token"],"grant":"api_token","scp":[]}"#;
    let mut b = Builder::new(vec![7u8; 32], key.key_data().clone(), valid.0, valid.1)?;
    b.cert_type(CertType::User)?
        .key_id(USER_ID)?
        .valid_principal("platform-user:u-0001")?
        .extension("access-id@platform.sh", "acc-1")?
        .extension("token-id@platform.sh", "jti-1")?
        .extension("token-claims@platform.sh", claims)?;
    let _ = fake;
    Ok(b.sign(ca)?.to_openssh()?)
}

async fn token() -> Response {
    Json(serde_json::json!({ "access_token": access_token(), "expires_in": 900, "token_type": "bearer" })).into_response()
}

async fn sign(State(fake): State<Arc<Fake>>, Json(body): Json<serde_json::Value>) -> Response {
    let mode = *fake.mode.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let posted = PublicKey::from_openssh(body["key"].as_str().unwrap_or_default());
    let Ok(posted) = posted else {
        return (StatusCode::BAD_REQUEST, "bad key").into_response();
    };
    let cert = match mode {
        Misbehaviour::CertForAnotherKey => certificate(
            &fake,
            ed25519(9).public_key(),
            &fake.ca,
            (now - 60, now + 3600),
        ),
        Misbehaviour::CertFromAnotherCa => {
            certificate(&fake, &posted, &ed25519(5), (now - 60, now + 3600))
        }
        Misbehaviour::ExpiredCert => {
            certificate(&fake, &posted, &fake.ca, (now - 7200, now - 3600))
        }
        Misbehaviour::MalformedCert => {
            Ok("ssh-ed25519-cert-v01@openssh.com AAAAnot-a-certificate".to_string())
        }
        Misbehaviour::ServerError => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"status":500,"message":"database on fire"})),
            )
                .into_response()
        }
        Misbehaviour::NotJson => {
            return (StatusCode::OK, "<html>maintenance</html>").into_response()
        }
    };
    match cert {
        Ok(c) => Json(serde_json::json!({ "certificate": c })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn me(State(fake): State<Arc<Fake>>) -> Response {
    match *fake.mode.lock().unwrap_or_else(|p| p.into_inner()) {
        Misbehaviour::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"status":500,"code":500,"title":"Internal Server Error","message":"database on fire"})),
        )
            .into_response(),
        Misbehaviour::NotJson => (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response(),
        _ => Json(serde_json::json!({ "id": USER_ID, "username": "u" })).into_response(),
    }
}

async fn fake_platform(ca: PrivateKey) -> Result<(Arc<Fake>, SocketAddr)> {
    let fake = Arc::new(Fake {
        mode: Mutex::new(Misbehaviour::ServerError),
        ca,
    });
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .route("/ssh", post(sign))
        .route("/users/me", get(me))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((fake, addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_platform_gets_clear_errors_and_no_files() -> Result<()> {
    let ca = ed25519(1);
    let (fake, addr) = fake_platform(ca.clone()).await?;
    let user = User::new(&demo_sim(SimOptions::default()).await?.info, false)?;
    std::fs::write(
        &user.profile,
        format!(
            "name = \"misbehaving\"\ntitle = \"Misbehaving platform\"\napi_url = \"http://{addr}\"\n\
             auth_url = \"http://{addr}\"\nclient_id = \"tether\"\ntoken_env_var = \"MISBEHAVING_TOKEN\"\n\
             ssh_host_patterns = [\"*.misbehaving.test\"]\nssh_ca_keys = [\"{}\"]\n",
            ca.public_key().to_openssh()?
        ),
    )?;
    let session_dir = user.home().join(".local/share/tether/sessions/misbehaving");
    let cases = [
        (Misbehaviour::CertForAnotherKey, "it is for another key"),
        (
            Misbehaviour::CertFromAnotherCa,
            "not the platform's certificate authority",
        ),
        (Misbehaviour::ExpiredCert, "expires too soon"),
        (Misbehaviour::MalformedCert, "not an OpenSSH certificate"),
        (Misbehaviour::ServerError, "HTTP 500"),
        (Misbehaviour::NotJson, "not JSON"),
    ];
    for (mode, expected) in cases {
        *fake.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        let mut cmd = user.tether(&["ssh-cert:load"])?;
        cmd.env("MISBEHAVING_TOKEN", "token-for-automation");
        let out = run_async(cmd).await?;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode:?}: {stderr}");
        assert!(stderr.contains(expected), "{mode:?}: {stderr}");
        assert!(
            !session_dir.join("id_ed25519-cert.pub").exists(),
            "{mode:?} left a certificate"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&session_dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".tmp"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "{mode:?} left temporary files: {leftovers:?}"
        );
    }

    // The API's 500s and non-JSON answers are explained, not dumped.
    for (mode, expected) in [
        (Misbehaviour::ServerError, "HTTP 500"),
        (Misbehaviour::NotJson, "not JSON; try again later"),
    ] {
        *fake.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        let mut cmd = user.tether(&["auth:info"])?;
        cmd.env("MISBEHAVING_TOKEN", "token-for-automation");
        let out = run_async(cmd).await?;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{mode:?}: {stderr}");
        assert!(!stderr.contains("<html>"), "{stderr}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_tether_must_not_break() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;

    // A symlinked ~/.ssh/config with CRLF lines: edited at its target, every line kept.
    let ssh_dir = user.home().join(".ssh");
    std::fs::create_dir_all(&ssh_dir)?;
    let dotfiles = user.home().join("dotfiles");
    std::fs::create_dir_all(&dotfiles)?;
    let original =
        "Host github.com\r\n    User git\r\n\r\nMatch all\r\n  ServerAliveInterval 30\r\n";
    std::fs::write(dotfiles.join("ssh_config"), original)?;
    std::os::unix::fs::symlink(dotfiles.join("ssh_config"), user.ssh_config())?;
    user.ok(&["config:ssh", "--write"], None).await?;
    assert!(std::fs::symlink_metadata(user.ssh_config())?
        .file_type()
        .is_symlink());
    let edited = std::fs::read_to_string(dotfiles.join("ssh_config"))?;
    assert!(edited.ends_with(original), "{edited:?}");
    assert!(edited.contains("Include "), "{edited:?}");
    user.ok(&["config:ssh", "--remove"], None).await?;
    assert_eq!(
        std::fs::read_to_string(dotfiles.join("ssh_config"))?,
        original
    );

    // A half-written block from some other edit is refused, and the file is left alone.
    let broken = "# BEGIN: Tether certificate configuration\nHost *.tether.test\n";
    std::fs::write(dotfiles.join("ssh_config"), broken)?;
    let out = user.run(&["config:ssh", "--write"], None).await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("fix or delete the Tether block by hand"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dotfiles.join("ssh_config"))?,
        broken
    );

    // A data directory that cannot be written: a clear error and nothing half-written.
    // (Root ignores file modes, so as root the directory is one the kernel refuses to create.)
    let unwritable = if is_root() {
        std::path::PathBuf::from("/proc/tether-cannot-write-here")
    } else {
        let d = user.home().join("read-only");
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o500))?;
        d.join("tether")
    };
    let mut cmd = user.tether(&["ssh-cert:load"])?;
    cmd.env("TETHER_DATA_DIR", &unwritable)
        .env("TETHER_SIM_TOKEN", ALICE_TOKEN);
    let out = run_async(cmd).await?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write") && stderr.contains(&unwritable.display().to_string()),
        "{stderr}"
    );
    assert!(!unwritable.join("sessions").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_file_that_would_inject_ssh_options_is_refused_by_name() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    let good = sim.info.profile_toml();
    let hostname_line = good
        .lines()
        .find(|l| l.starts_with("hostname = "))
        .unwrap_or_default()
        .to_string();
    let pwned = user.home().join("pwned");
    let proxy = format!("ProxyCommand sh -c 'touch {}'", pwned.display());
    for (field, from, to) in [
        (
            "title",
            "title = \"Local platform (tether-sim)\"".to_string(),
            format!("title = \"Local platform\\n{proxy}\""),
        ),
        (
            "ssh.hostname",
            hostname_line.clone(),
            format!("hostname = \"127.0.0.1\\n  {proxy}\""),
        ),
        (
            "ssh_host_patterns[0]",
            "ssh_host_patterns = [\"*.tether.test\"]".to_string(),
            format!("ssh_host_patterns = [\"*.tether.test\\n  {proxy}\"]"),
        ),
        (
            "name",
            "name = \"tether-sim\"".to_string(),
            "name = \"../../escaped\"".to_string(),
        ),
    ] {
        let crafted = good.replacen(&from, &to, 1);
        assert_ne!(crafted, good, "{field}: {from:?} is not in the profile");
        std::fs::write(&user.profile, &crafted)?;
        for args in [
            vec!["config:ssh", "--write"],
            vec!["ssh-cert:load"],
            vec!["ssh", "-p", DEMO_PROJECT, "-e", "main", "--", "true"],
        ] {
            let mut cmd = user.tether(&args)?;
            cmd.env("TETHER_SIM_TOKEN", ALICE_TOKEN);
            let out = run_async(cmd).await?;
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{field} {args:?}: accepted");
            assert!(
                stderr.contains(&format!("the field {field} ")),
                "{field} {args:?}: {stderr}"
            );
            assert!(
                !user.ssh_config().exists(),
                "{field} {args:?}: ~/.ssh/config written"
            );
            assert!(
                !user.home().join(".local/share/tether/ssh").exists(),
                "{field} {args:?}: a session SSH config was written"
            );
            assert!(
                !pwned.exists(),
                "{field} {args:?}: the injected command ran"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_could_steer_a_url_or_a_path_are_refused_at_the_command_line() -> Result<()> {
    let sim = demo_sim(SimOptions::default()).await?;
    let user = User::new(&sim.info, false)?;
    user.ok(&["auth:api-token-login"], Some(ALICE_TOKEN))
        .await?;
    for (flag, value, what) in [
        ("-p", "../../users/me", "project id"),
        ("-e", "main/../x", "environment id"),
        ("-A", "app%2F..", "app name"),
    ] {
        let mut args = vec!["ssh", "--pipe", flag, value];
        if flag != "-p" {
            args.extend(["-p", "jyu7waly36ncj"]);
        }
        let out = user.run(&args, None).await?;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!("{what} {value:?} is not valid")),
            "{}",
            text(&out.stderr)
        );
    }
    Ok(())
}
