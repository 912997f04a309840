//! An API that serves hostile or odd data: SSH links that try to smuggle options or shell code
//! into `ssh`, links with the wrong scheme, environments without links, and a huge environment
//! list. Nothing may be executed, and every error names the bad value. Also: listings are
//! cached briefly and refreshed on demand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tether_core::catalog::Catalog;
use tether_e2e::cli::User;
use tether_e2e::*;
use tether_sim::SimOptions;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const HUGE: usize = 3000;

struct Fake {
    /// Marker path that hostile links try to create.
    pwned: String,
    environment_lists: AtomicUsize,
}

impl Fake {
    /// (app, link, the value the error must name).
    fn hostile(&self) -> Vec<(&'static str, String, String)> {
        let p = &self.pwned;
        let host = "ssh.eu.example.test";
        let user_case = |name, user: String| (name, format!("ssh://{user}@{host}"), user);
        vec![
            user_case("dash-user", format!("-oProxyCommand=touch${{IFS}}{p}")),
            (
                "dash-host",
                "ssh://user@-oProxyCommand=x".to_string(),
                "-oProxyCommand=x".to_string(),
            ),
            user_case("space", "us er".to_string()),
            user_case("quote", "us\"er".to_string()),
            user_case("single-quote", "us'er".to_string()),
            user_case("semicolon", format!("a;touch {p}")),
            user_case("subshell", format!("$(touch {p})")),
            (
                "newline",
                format!("ssh://user@{host}\nProxyCommand touch {p}"),
                format!("{host}\nProxyCommand touch {p}"),
            ),
            (
                "two-ats",
                format!("ssh://a@b@{host}"),
                format!("ssh://a@b@{host}"),
            ),
            (
                "scheme",
                format!("https://user@{host}"),
                format!("https://user@{host}"),
            ),
        ]
    }
}

fn access_token() -> String {
    use base64::Engine;
    let claims = json!({ "sub": "u1", "access_id": "a", "jti": "j", "amr": ["api_token"], "exp": 4_000_000_000u64 });
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn environments(State(fake): State<Arc<Fake>>) -> Json<Value> {
    fake.environment_lists.fetch_add(1, Ordering::SeqCst);
    let mut links = serde_json::Map::new();
    links.insert(
        "pf:ssh:ok".into(),
        json!({ "href": "ssh://p1-main-abc--ok@ssh.eu.example.test" }),
    );
    for (name, href, _) in fake.hostile() {
        links.insert(format!("pf:ssh:{name}"), json!({ "href": href }));
    }
    let mut envs = vec![
        json!({ "id": "main", "machine_name": "main-abc", "status": "active", "type": "production", "_links": links }),
        json!({ "id": "bare", "machine_name": "bare-abc", "status": "active", "type": "development" }),
    ];
    for i in 0..HUGE {
        envs.push(json!({
            "id": format!("env-{i}"), "machine_name": format!("env-{i}-xyz"), "status": "active", "type": "development",
            "_links": { "pf:ssh:ok": { "href": format!("ssh://p1-env-{i}-xyz--ok@ssh.eu.example.test") } },
        }));
    }
    Json(Value::Array(envs))
}

async fn deployment(
    State(fake): State<Arc<Fake>>,
    Path((_p, _e)): Path<(String, String)>,
) -> Json<Value> {
    let mut webapps = serde_json::Map::new();
    webapps.insert("ok".into(), json!({ "type": "php:8.3", "size": "S" }));
    for (name, _, _) in fake.hostile() {
        webapps.insert(name.into(), json!({ "type": "php:8.3", "size": "S" }));
    }
    Json(json!({ "webapps": webapps, "services": {}, "workers": {}, "routes": {} }))
}

async fn serve() -> Result<(Arc<Fake>, SocketAddr, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let fake = Arc::new(Fake {
        pwned: dir.path().join("PWNED").display().to_string(),
        environment_lists: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route(
            "/oauth2/token",
            post(|| async { Json(json!({ "access_token": access_token(), "expires_in": 900, "token_type": "bearer" })) }),
        )
        .route("/users/me", get(|| async { Json(json!({ "id": "u1", "username": "u" })) }))
        .route(
            "/users/u1/extended-access",
            get(|| async {
                Json(json!({ "items": [{ "resource_id": "p1", "resource_type": "project" }],
                             "_links": { "ref:projects:0": { "href": "/ref/projects?in=p1" } } }))
            }),
        )
        .route(
            "/ref/projects",
            get(|| async { Json(json!({ "p1": { "id": "p1", "title": "Odd project", "region": "eu" } })) }),
        )
        .route("/projects/p1/environments", get(environments))
        .route("/projects/{p}/environments/{e}/deployments/current", get(deployment))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((fake, addr, dir))
}

fn profile_text(addr: SocketAddr) -> String {
    format!(
        "name = \"odd\"\ntitle = \"Odd platform\"\napi_url = \"http://{addr}\"\nauth_url = \"http://{addr}\"\n\
         client_id = \"tether\"\ntoken_env_var = \"ODD_TOKEN\"\nssh_host_patterns = [\"*.example.test\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_links_are_refused_by_name_and_nothing_runs() -> Result<()> {
    let (fake, addr, _dir) = serve().await?;
    let user = User::new(&demo_sim(SimOptions::default()).await?.info, false)?;
    std::fs::write(&user.profile, profile_text(addr))?;
    let tether = |args: &[&str]| -> Result<std::process::Command> {
        let mut c = user.tether(args)?;
        c.env("ODD_TOKEN", "automation-token");
        Ok(c)
    };

    // The control: a proper link resolves.
    let out = run_async(tether(&[
        "ssh", "-p", "p1", "-e", "main", "-A", "ok", "--pipe",
    ])?)
    .await?;
    assert_eq!(
        text(&out.stdout),
        "p1-main-abc--ok@ssh.eu.example.test\n",
        "{}",
        text(&out.stderr)
    );

    for (name, _, bad) in fake.hostile() {
        for extra in [vec!["--pipe"], vec!["--", "true"], vec!["--terminal"]] {
            let mut args = vec!["ssh", "-p", "p1", "-e", "main", "-A", name];
            args.extend(extra.iter().copied());
            let mut cmd = tether(&args)?;
            cmd.env("TERMINAL", "/bin/false");
            let out = run_async(cmd).await?;
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} {extra:?}: {stderr}");
            assert!(
                out.stdout.is_empty(),
                "{name} printed {:?}",
                text(&out.stdout)
            );
            // The error names the bad value (as a quoted, escaped string).
            assert!(
                stderr.contains(&format!("{bad:?}")),
                "{name}: expected {bad:?} in: {stderr}"
            );
        }
    }
    assert!(
        !std::path::Path::new(&fake.pwned).exists(),
        "a hostile link ran a command"
    );

    // An environment without links, and a huge list.
    let out = run_async(tether(&[
        "ssh", "-p", "p1", "-e", "bare", "-A", "ok", "--pipe",
    ])?)
    .await?;
    assert!(
        text(&out.stderr).contains("publishes no SSH link \"pf:ssh:ok\""),
        "{}",
        text(&out.stderr)
    );
    let out = run_async(tether(&["--format", "json", "environments", "-p", "p1"])?).await?;
    let list: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(list.as_array().map(Vec::len), Some(HUGE + 2));
    let before = fake.environment_lists.load(Ordering::SeqCst);
    let last = format!("env-{}", HUGE - 1);
    let out = run_async(tether(&[
        "ssh", "-p", "p1", "-e", &last, "-A", "ok", "--pipe",
    ])?)
    .await?;
    assert_eq!(
        text(&out.stdout).trim(),
        format!("p1-{last}-xyz--ok@ssh.eu.example.test")
    );
    // One run lists the environments once, however many times it looks at them.
    assert_eq!(fake.environment_lists.load(Ordering::SeqCst) - before, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_cached_briefly_and_refreshed_on_demand() -> Result<()> {
    let (fake, addr, dir) = serve().await?;
    let profile =
        tether_core::Profile::from_toml(&profile_text(addr), std::path::Path::new("odd.toml"))?;
    let session = tether_core::auth::Session::new(
        profile.clone(),
        tether_core::auth::TokenStore::File {
            path: dir.path().join("t.json"),
        },
        tether_core::Paths::under_home(dir.path(), None),
        Arc::new(tether_core::SystemClock),
        reqwest::Client::new(),
        Some(tether_core::Sensitive::new("automation-token".into())),
    );
    let api = tether_core::api::Api::new(reqwest::Client::new(), profile.api_url.clone());
    let catalog = Catalog::new(session, api, Duration::from_secs(60));
    let p1 = tether_core::api::ProjectId::parse("p1")?;
    catalog.environments(&p1).await?;
    catalog.environments(&p1).await?;
    catalog
        .environment(&p1, &tether_core::api::EnvironmentId::parse("main")?)
        .await?;
    assert_eq!(fake.environment_lists.load(Ordering::SeqCst), 1);
    catalog.refresh().await;
    catalog.environments(&p1).await?;
    assert_eq!(fake.environment_lists.load(Ordering::SeqCst), 2);
    Ok(())
}
