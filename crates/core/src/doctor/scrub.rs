//! Scrubbing log text before it leaves the machine in a support bundle. Tether logs no secret
//! (the log tests check this at trace level), but a bundle is sent to someone else, so what a
//! log line could still carry is removed once more: private key blocks, values named like a
//! secret (`token`, `password`, `secret`, `code`, `verifier`, `authorization`…), the password
//! of a URL, bearer and basic credentials, JWTs, and any long opaque run of letters and digits
//! (a token or a password whatever its name). Removing too much costs a reader some ids; too
//! little would leak a session.

/// What a removed value becomes.
pub const REMOVED: &str = "<scrubbed>";

/// Names whose values are secrets (matched within a field name, case-insensitively).
const SECRET_NAMES: [&str; 13] = [
    "token",
    "password",
    "passwd",
    "secret",
    "authorization",
    "cookie",
    "verifier",
    "code",
    "state",
    "api_key",
    "apikey",
    "private",
    "credential",
];

/// A run this long of letters, digits and token punctuation, with both letters and digits,
/// is taken for a secret.
const OPAQUE_RUN: usize = 24;

/// `text` with secrets removed, line by line (a private key block as a whole).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_key = false;
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if in_key {
            if body.contains("-----END") {
                in_key = false;
            }
            continue;
        }
        if let Some(i) = body.find("-----BEGIN") {
            let closes = body[i..].contains("-----END");
            out.push_str(&scrub_line(&body[..i]));
            out.push_str("<private key block scrubbed>");
            out.push_str(end);
            in_key = !closes;
            continue;
        }
        out.push_str(&scrub_line(body));
        out.push_str(end);
    }
    out
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '=' | '~')
}

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|n| lower.contains(n))
}

/// One line: the value after a secret's name, a URL's password, `Bearer`/`Basic` credentials,
/// then long opaque runs.
fn scrub_line(line: &str) -> String {
    let named = scrub_named(line);
    let urls = scrub_userinfo(&named);
    let schemes = scrub_after_words(&urls, &["Bearer ", "bearer ", "Basic ", "basic "]);
    scrub_opaque(&schemes)
}

/// `name=value`, `name: value`, `"name":"value"` where the name is a secret's: the value goes.
fn scrub_named(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        out.push(chars[i]);
        let sep = chars[i];
        if sep == '=' || sep == ':' {
            // The name before the separator (quotes allowed around it).
            let mut j = i;
            while j > 0 && chars[j - 1] == '"' {
                j -= 1;
            }
            let end = j;
            while j > 0
                && (chars[j - 1].is_ascii_alphanumeric()
                    || chars[j - 1] == '_'
                    || chars[j - 1] == '-'
                    || chars[j - 1] == '.')
            {
                j -= 1;
            }
            let name: String = chars[j..end].iter().collect();
            // `://` is a URL, not a name.
            let url = sep == ':' && chars.get(i + 1) == Some(&'/');
            if !name.is_empty() && !url && is_secret_name(&name) {
                let mut k = i + 1;
                while k < chars.len() && chars[k] == ' ' {
                    out.push(' ');
                    k += 1;
                }
                let quote = chars.get(k).copied().filter(|c| *c == '"' || *c == '\'');
                if let Some(q) = quote {
                    k += 1;
                    while k < chars.len() && chars[k] != q {
                        if chars[k] == '\\' {
                            k += 1;
                        }
                        k += 1;
                    }
                    out.push(q);
                    out.push_str(REMOVED);
                    out.push(q);
                    i = k + 1;
                    continue;
                }
                let start = k;
                while k < chars.len()
                    && !chars[k].is_whitespace()
                    && !matches!(chars[k], ',' | '}' | ')' | ';' | '&')
                {
                    k += 1;
                }
                // `Authorization: Bearer abc`: the scheme's credentials go too.
                let word: String = chars[start..k].iter().collect();
                if matches!(word.to_ascii_lowercase().as_str(), "bearer" | "basic") {
                    while k < chars.len() && chars[k] == ' ' {
                        k += 1;
                    }
                    while k < chars.len() && token_char(chars[k]) {
                        k += 1;
                    }
                }
                if k > start {
                    out.push_str(REMOVED);
                }
                i = k;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// `scheme://user:password@host` → `scheme://user:<scrubbed>@host`.
fn scrub_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let authority_end = rest
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon + 1]);
                    out.push_str(REMOVED);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
            rest = &rest[authority_end..];
        }
    }
    out.push_str(rest);
    out
}

/// The word after each of `words` (`Bearer abc` → `Bearer <scrubbed>`).
fn scrub_after_words(line: &str, words: &[&str]) -> String {
    let mut out = line.to_string();
    for w in words {
        let mut done = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(w) {
            done.push_str(&rest[..i + w.len()]);
            rest = &rest[i + w.len()..];
            let end = rest.find(|c: char| !token_char(c)).unwrap_or(rest.len());
            if end > 0 {
                done.push_str(REMOVED);
            }
            rest = &rest[end..];
        }
        done.push_str(rest);
        out = done;
    }
    out
}

/// Long runs of token characters with letters and digits (JWTs, refresh tokens, API tokens,
/// generated passwords, key material). Paths are left alone (a run with `/` and no digits
/// beyond a few is a path; one that looks like base64 is not).
fn scrub_opaque(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if looks_secret(run) {
            out.push_str(REMOVED);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn looks_secret(run: &str) -> bool {
    if run.len() < OPAQUE_RUN {
        return false;
    }
    // The longest stretch between separators a path, a host name or a version has.
    let longest = run
        .split(['/', '.', '-', '_'])
        .map(str::len)
        .max()
        .unwrap_or(0);
    let digits = run.chars().filter(char::is_ascii_digit).count();
    let letters = run.chars().filter(char::is_ascii_alphabetic).count();
    // A JWT: three base64url parts.
    if run.starts_with("eyJ") {
        return true;
    }
    // A word-like path or host (`/home/alice/.local/share/tether/logs/agent.log`) is kept;
    // a stretch of 16 or more without a separator, or a long run with many digits, is not.
    letters > 0 && digits > 0 && (longest >= 16 || digits * 4 >= run.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_values_urls_bearers_jwts_and_keys_are_removed() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQtaGVyZQ";
        let text = format!(
            "2026 TRACE refresh token=abc123 password: \"hunter 2\" \"access_token\":\"{jwt}\"\n\
             url=pgsql://main:s3cret@127.0.0.1:30001/main Authorization: Bearer zz9 here\n\
             -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n\
             id demo-api-token-alice-0123456789abcdef done\n\
             log /home/alice/.local/share/tether/logs/agent-tether-sim.log kept, port 30001, project jyu7waly36ncj\n"
        );
        let s = scrub(&text);
        for secret in [
            "abc123",
            "hunter 2",
            jwt,
            "s3cret",
            "zz9",
            "b3BlbnNzaC1rZXkt",
            "0123456789abcdef",
        ] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        for kept in [
            "/home/alice/.local/share/tether/logs/agent-tether-sim.log",
            "port 30001",
            "jyu7waly36ncj",
            "pgsql://main:",
            "@127.0.0.1:30001/main",
            "<private key block scrubbed>",
        ] {
            assert!(s.contains(kept), "{kept} lost from {s}");
        }
        assert_eq!(s.lines().count(), 5, "{s}");
    }

    #[test]
    fn a_relationship_password_goes_whatever_its_name() {
        let pw = format!(
            "relpw-{:032x}",
            0x1234_5678_9abc_def0_1234_5678_9abc_def0_u128
        );
        let s = scrub(&format!("PASS main {pw}\r\n"));
        assert!(!s.contains(&pw[6..]), "{s}");
    }
}
