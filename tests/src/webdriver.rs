//! A small W3C WebDriver client (the JSON-over-HTTP protocol) for chromedriver, WebKitWebDriver
//! and tauri-driver: sessions, navigation, elements, keys, clicks, screenshots.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

use crate::{spawn_on_free_port, ChildGuard};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An element, as a script argument.
pub fn element_arg(element: &str) -> Value {
    json!({ ELEMENT_KEY: element })
}

/// Clicks an element from a script, after the script returns: for a click that closes its
/// window (an app intercepting a redirect), where a WebDriver click would wait for a page that
/// never loads.
pub async fn click_later(d: &WebDriver, element: &str) -> Result<()> {
    d.execute(
        "const b = arguments[0]; setTimeout(() => b.click(), 50); return true;",
        json!([element_arg(element)]),
    )
    .await?;
    Ok(())
}

pub struct WebDriver {
    http: reqwest::Client,
    base: String,
    session: String,
}

impl WebDriver {
    pub async fn new_session(base: &str, capabilities: Value) -> Result<WebDriver> {
        // A command that hangs (a page that never loads) fails the test rather than stalling it.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(90))
            .build()?;
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": capabilities } }))
            .send()
            .await?
            .json()
            .await?;
        let session = resp["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("WebDriver did not start a session: {resp}"))?
            .to_string();
        Ok(WebDriver {
            http,
            base: base.to_string(),
            session,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req
            .send()
            .await?
            .json()
            .await
            .context("WebDriver answered no JSON")?;
        if let Some(err) = resp["value"]["error"].as_str() {
            bail!("WebDriver {path}: {err}: {}", resp["value"]["message"]);
        }
        Ok(resp["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await?;
        Ok(())
    }

    /// Finds an element by CSS selector, waiting up to `timeout` for it to appear.
    pub async fn find(&self, css: &str, timeout: Duration) -> Result<String> {
        let start = Instant::now();
        loop {
            let r = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({ "using": "css selector", "value": css })),
                )
                .await;
            match r {
                Ok(v) => {
                    if let Some(id) = v[ELEMENT_KEY].as_str() {
                        return Ok(id.to_string());
                    }
                }
                Err(e) if start.elapsed() > timeout => {
                    return Err(e.context(format!("no element {css:?}")))
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn send_keys(&self, element: &str, text: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await?;
        Ok(())
    }

    /// Finds the element `css` selects (waiting up to `timeout` for it) and clicks it. A page
    /// that renders again between the two (the app redraws on each of its agent's events)
    /// replaces the element found: it is found again and clicked.
    pub async fn click_on(&self, css: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        // An element that was there is looked for again a little while, whatever `timeout`.
        let again = timeout.max(Duration::from_secs(5));
        loop {
            let element = self
                .find(css, timeout.saturating_sub(start.elapsed()))
                .await?;
            match self.click(&element).await {
                Err(e) if e.to_string().contains("stale element") && start.elapsed() < again => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                done => return done,
            }
        }
    }

    pub async fn click(&self, element: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    pub async fn text(&self, element: &str) -> Result<String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn page_source(&self) -> Result<String> {
        let v = self.call(reqwest::Method::GET, "/source", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png =
            base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())?;
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Runs a script in the page and returns what it returns (WebDriver "Execute Script").
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Runs an asynchronous script: its last argument is the callback that returns.
    pub async fn execute_async(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    pub async fn window_handles(&self) -> Result<Vec<String>> {
        let v = self
            .call(reqwest::Method::GET, "/window/handles", None)
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn window_handle(&self) -> Result<String> {
        let v = self.call(reqwest::Method::GET, "/window", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn switch_to_window(&self, handle: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            "/window",
            Some(json!({ "handle": handle })),
        )
        .await?;
        Ok(())
    }

    /// Waits for a window other than `known` to appear, and switches to it.
    pub async fn switch_to_new_window(
        &self,
        known: &[String],
        timeout: Duration,
    ) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Some(h) = self
                .window_handles()
                .await?
                .into_iter()
                .find(|h| !known.contains(h))
            {
                self.switch_to_window(&h).await?;
                return Ok(h);
            }
            if start.elapsed() > timeout {
                bail!("no new window in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn current_url(&self) -> Result<String> {
        let v = self.call(reqwest::Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Ends the session (the browser or app closes); the guard that started the driver ends
    /// whatever remains.
    pub async fn quit(&self) -> Result<()> {
        self.http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await?;
        Ok(())
    }
}

/// Headless Chromium driven by chromedriver, with a fresh profile and no background traffic.
/// Everything of it lives in its temporary directory (profile, crash dumps, HOME and XDG
/// directories), and dropping it ends chromedriver, the browser and every process of theirs
/// (even when the test fails before it quits the session), then removes the directory.
pub struct Chromium {
    pub driver: WebDriver,
    chromedriver: ChildGuard,
    dir: tempfile::TempDir,
}

impl Chromium {
    pub async fn start() -> Result<Chromium> {
        let dir = tempfile::Builder::new()
            .prefix("tether-chromium-")
            .tempdir()?;
        let profile = dir.path().join("profile");
        let home = dir.path().join("home");
        let crashes = dir.path().join("crashes");
        // Chromium makes its singleton socket and scoped dirs in TMPDIR and leaves them when
        // it is killed: they go with this directory.
        let tmp = dir.path().join("tmp");
        for d in [&profile, &home, &crashes, &tmp] {
            std::fs::create_dir_all(d)?;
        }
        let (chromedriver, port) =
            spawn_on_free_port("chromedriver", Duration::from_secs(20), |port| {
                let mut cmd = Command::new("chromedriver");
                cmd.arg(format!("--port={port}"))
                    .arg("--allowed-ips=127.0.0.1")
                    // The browser inherits these: nothing under the real home's ~/.config.
                    .env("HOME", &home)
                    .env("XDG_CONFIG_HOME", home.join(".config"))
                    .env("XDG_CACHE_HOME", home.join(".cache"))
                    .env("XDG_DATA_HOME", home.join(".local/share"))
                    .env("BREAKPAD_DUMP_LOCATION", &crashes)
                    .env("TMPDIR", &tmp)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                Ok(cmd)
            })?;
        let binary = [
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| anyhow!("Chromium is not installed (make test installs it)"))?;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=900,900",
                    "--disable-crash-reporter", "--disable-breakpad",
                    format!("--crash-dumps-dir={}", crashes.display()),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let driver = WebDriver::new_session(&format!("http://127.0.0.1:{port}"), caps).await?;
        Ok(Chromium {
            driver,
            chromedriver,
            dir,
        })
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.chromedriver.stop();
        // A browser outside chromedriver's process group still names its directory.
        crate::kill_processes_mentioning(&self.dir.path().display().to_string());
    }
}

/// Fills the platform's sign-in pages in a real browser, whichever come: the password (skipped
/// when the browser is still signed in), the TOTP code (`totp_secret`), then Allow.
pub async fn sign_in(
    d: &WebDriver,
    url: &str,
    username: &str,
    password: &str,
    totp_secret: Option<&str>,
) -> Result<()> {
    d.goto(url).await?;
    fill_sign_in(d, username, password, totp_secret).await
}

/// Fills the platform's sign-in pages already shown in the current window (see [`sign_in`]).
pub async fn fill_sign_in(
    d: &WebDriver,
    username: &str,
    password: &str,
    totp_secret: Option<&str>,
) -> Result<()> {
    let wait = Duration::from_secs(15);
    let start = Instant::now();
    let mut done_password = false;
    let mut done_totp = false;
    loop {
        if let Ok(allow) = d.find("#allow", Duration::ZERO).await {
            // An app may close the window on the redirect.
            click_later(d, &allow).await?;
            return Ok(());
        }
        if !done_password {
            if let Ok(user) = d.find("#username", Duration::ZERO).await {
                d.send_keys(&user, username).await?;
                d.send_keys(&d.find("#password", wait).await?, password)
                    .await?;
                d.click_on("#submit", wait).await?;
                done_password = true;
                continue;
            }
        }
        if !done_totp {
            if let Ok(totp) = d.find("#totp", Duration::ZERO).await {
                let secret =
                    totp_secret.ok_or_else(|| anyhow!("the page asks for a one-time code"))?;
                d.send_keys(&totp, &crate::totp_now(secret)?).await?;
                d.click_on("#submit", wait).await?;
                done_totp = true;
                continue;
            }
        }
        if start.elapsed() > wait {
            bail!(
                "the sign-in pages did not reach consent: {}",
                d.page_source().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
