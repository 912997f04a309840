//! A browser-less user agent for the simulator's sign-in pages: it fills the password, TOTP
//! and consent forms as a person would and hands back the redirect, for tests that sign in
//! where no browser runs (inside a namespace) or that check the flow's rules.

use anyhow::{anyhow, bail, Context, Result};

use crate::{totp_now, ALICE_PASSWORD};

pub fn hidden_txn(html: &str) -> Result<String> {
    let start = html
        .find("name=\"txn\" value=\"")
        .ok_or_else(|| anyhow!("no txn in page: {html}"))?
        + 18;
    let end = html[start..]
        .find('"')
        .ok_or_else(|| anyhow!("unterminated txn"))?;
    Ok(html[start..start + end].to_string())
}

/// A browser-less user agent that fills the login page's forms (keeps cookies).
pub struct FormAgent {
    pub http: reqwest::Client,
    auth: String,
}

impl FormAgent {
    pub fn new(auth: &str) -> Self {
        FormAgent {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .no_proxy()
                .build()
                .unwrap_or_default(),
            auth: auth.to_string(),
        }
    }

    pub async fn post(&self, form: &[(&str, &str)]) -> Result<reqwest::Response> {
        Ok(self
            .http
            .post(format!("{}/oauth2/authorize", self.auth))
            .form(form)
            .send()
            .await?)
    }

    /// Walks the pages as a person would and returns the redirect's Location.
    pub async fn login(&self, url: &str, totp_secret: Option<&str>) -> Result<String> {
        let mut resp = self.http.get(url).send().await?;
        loop {
            if resp.status().is_redirection() {
                return resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("redirect without Location"));
            }
            let html = resp.text().await?;
            let txn = hidden_txn(&html)?;
            resp = if html.contains("id=\"password\"") {
                self.post(&[
                    ("txn", &txn),
                    ("step", "password"),
                    ("username", "alice"),
                    ("password", ALICE_PASSWORD),
                ])
                .await?
            } else if html.contains("id=\"totp\"") {
                let code = totp_now(totp_secret.context("the page asked for a code")?)?;
                self.post(&[("txn", &txn), ("step", "totp"), ("totp", &code)])
                    .await?
            } else if html.contains("id=\"allow\"") {
                self.post(&[("txn", &txn), ("step", "consent"), ("decision", "allow")])
                    .await?
            } else {
                bail!("unexpected page: {html}");
            };
        }
    }
}
