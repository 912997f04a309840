//! The HTML of the sign-in pages: password, one-time code, consent, and errors. Plain server-side
//! HTML with stable element ids, so that people and WebDriver tests can use the same page.

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --accent: #4f46e5; --muted: #6b7280; --card: #ffffff; --bg: #f3f4f6; --border: #e5e7eb; }
@media (prefers-color-scheme: dark) { :root { --card: #1f2937; --bg: #111827; --border: #374151; --muted: #9ca3af; } }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
       background: var(--bg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { width: 100%; max-width: 380px; background: var(--card); border: 1px solid var(--border);
       border-radius: 12px; padding: 32px; box-shadow: 0 10px 30px rgba(0,0,0,.08); }
.brand { display: flex; align-items: center; gap: 10px; margin-bottom: 4px; font-weight: 600; }
.brand .dot { width: 12px; height: 12px; border-radius: 50%; background: var(--accent); }
.sim { font-size: 12px; color: var(--muted); margin: 0 0 20px; }
h1 { font-size: 20px; margin: 0 0 16px; }
label { display: block; font-size: 13px; font-weight: 600; margin: 14px 0 6px; }
input[type=text], input[type=password] { width: 100%; padding: 10px 12px; font-size: 15px;
       border: 1px solid var(--border); border-radius: 8px; background: transparent; color: inherit; }
input:focus { outline: 2px solid var(--accent); outline-offset: 1px; }
.code { letter-spacing: 6px; font-size: 22px !important; text-align: center; }
button { width: 100%; margin-top: 20px; padding: 10px; font-size: 15px; font-weight: 600; border: 0;
         border-radius: 8px; background: var(--accent); color: white; cursor: pointer; }
button.secondary { background: transparent; color: inherit; border: 1px solid var(--border); margin-top: 10px; }
.error { background: #fef2f2; color: #991b1b; border: 1px solid #fecaca; border-radius: 8px; padding: 10px 12px; margin-bottom: 8px; }
.who { color: var(--muted); margin: 0 0 8px; }
ul { padding-left: 20px; color: var(--muted); }
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · tether-sim</title><style>{STYLE}</style></head><body><main>\
         <div class=\"brand\"><span class=\"dot\"></span>Platform sign-in</div>\
         <p class=\"sim\">tether-sim: a local development platform, not a real service</p>\
         {body}</main></body></html>",
        title = escape(title)
    )
}

fn error_block(error: Option<&str>) -> String {
    error
        .map(|e| {
            format!(
                "<div class=\"error\" id=\"error\" role=\"alert\">{}</div>",
                escape(e)
            )
        })
        .unwrap_or_default()
}

/// A line for someone trying the demo platform (what to type), when there is one.
fn hint_block(hint: Option<&str>) -> String {
    hint.map(|h| format!("<p class=\"who\" id=\"demo-hint\">{}</p>", escape(h)))
        .unwrap_or_default()
}

/// The password page; `probes`, the API's origin when the navigation probes are on.
pub fn login(
    txn: &str,
    error: Option<&str>,
    username: &str,
    hint: Option<&str>,
    probes: Option<&str>,
) -> String {
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{hint}{err}\
             <form method=\"post\" action=\"/oauth2/authorize\">\
             <input type=\"hidden\" name=\"txn\" value=\"{txn}\">\
             <input type=\"hidden\" name=\"step\" value=\"password\">\
             <label for=\"username\">Username or email</label>\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{user}\" autofocus required>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\" id=\"submit\">Continue</button></form>{probes}",
            hint = hint_block(hint),
            err = error_block(error),
            txn = escape(txn),
            user = escape(username),
            probes = probes.map(crate::probes::block).unwrap_or_default(),
        ),
    )
}

pub fn totp(txn: &str, error: Option<&str>, username: &str, hint: Option<&str>) -> String {
    page(
        "Two-factor authentication",
        &format!(
            "<h1>Two-factor authentication</h1><p class=\"who\">Signed in as <b>{user}</b></p>{hint}{err}\
             <form method=\"post\" action=\"/oauth2/authorize\">\
             <input type=\"hidden\" name=\"txn\" value=\"{txn}\">\
             <input type=\"hidden\" name=\"step\" value=\"totp\">\
             <label for=\"totp\">Enter the 6-digit code from your authenticator app</label>\
             <input type=\"text\" class=\"code\" id=\"totp\" name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" autofocus required>\
             <button type=\"submit\" id=\"submit\">Verify</button></form>",
            hint = hint_block(hint),
            err = error_block(error),
            txn = escape(txn),
            user = escape(username),
        ),
    )
}

pub fn consent(txn: &str, client_id: &str, username: &str) -> String {
    page(
        "Authorize access",
        &format!(
            "<h1>Authorize {client}</h1><p class=\"who\">Signed in as <b>{user}</b></p>\
             <p><b>{client}</b> asks to:</p><ul><li>use the API on your behalf</li>\
             <li>request SSH certificates for your account</li><li>stay signed in (offline access)</li></ul>\
             <form method=\"post\" action=\"/oauth2/authorize\">\
             <input type=\"hidden\" name=\"txn\" value=\"{txn}\">\
             <input type=\"hidden\" name=\"step\" value=\"consent\">\
             <button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Allow</button>\
             <button type=\"submit\" id=\"deny\" class=\"secondary\" name=\"decision\" value=\"deny\">Deny</button></form>",
            client = escape(client_id),
            user = escape(username),
            txn = escape(txn),
        ),
    )
}

pub fn error(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><div class=\"error\" id=\"error\" role=\"alert\">{}</div>",
            escape(title),
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_break_out_of_the_markup() {
        let html = login(
            "t",
            Some("<script>x</script>"),
            "\"><img src=x>",
            Some("<b>hint</b>"),
            None,
        );
        assert!(!html.contains("<script>x"));
        assert!(!html.contains("\"><img"));
        assert!(!html.contains("<b>hint"));
    }
}
