//! `SshUrl`: an app's SSH address, parsed and checked at the edge. The platform's links are
//! `ssh://<user>@<host>`; anything else, or any character that `ssh` could read as an option or
//! a shell could interpret, is refused with the bad value named.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshUrlError {
    #[error("the SSH link {0:?} does not start with ssh://")]
    Scheme(String),
    #[error("the SSH link {0:?} is not of the form ssh://user@host")]
    Shape(String),
    #[error("the SSH link {link:?} has an unsafe {part} {value:?}: only letters, digits, '-', '.' and '_' are allowed, and it may not start with '-'")]
    Unsafe {
        link: String,
        part: &'static str,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SshUrl {
    user: String,
    host: String,
}

fn plain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.starts_with('.')
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

impl SshUrl {
    /// Parses a `pf:ssh:*` link's `href`.
    pub fn parse(link: &str) -> Result<SshUrl, SshUrlError> {
        let rest = link
            .strip_prefix("ssh://")
            .ok_or_else(|| SshUrlError::Scheme(link.to_string()))?;
        let mut parts = rest.split('@');
        let (Some(user), Some(host), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SshUrlError::Shape(link.to_string()));
        };
        let host = host.strip_suffix('/').unwrap_or(host);
        for (part, value) in [("user", user), ("host", host)] {
            if !plain(value) {
                return Err(SshUrlError::Unsafe {
                    link: link.to_string(),
                    part,
                    value: value.to_string(),
                });
            }
        }
        Ok(SshUrl {
            user: user.to_string(),
            host: host.to_string(),
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

/// `user@host`, as `ssh --pipe` prints it.
impl fmt::Display for SshUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

/// Joins a remote command the way the official client does: one argument passes verbatim,
/// several are each quoted for a POSIX shell.
pub fn remote_command(args: &[String]) -> Option<String> {
    match args {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(
            many.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b'=' | b':' | b',' | b'+' | b'@' | b'%'
                )
        })
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_links_parse() {
        let u = SshUrl::parse("ssh://jyu7waly36ncj-main-7rqtwti--app@ssh.us.platform.sh").unwrap();
        assert_eq!(
            u.to_string(),
            "jyu7waly36ncj-main-7rqtwti--app@ssh.us.platform.sh"
        );
        assert_eq!(u.host(), "ssh.us.platform.sh");
    }

    #[test]
    fn hostile_links_are_refused_naming_the_bad_value() {
        for (link, bad) in [
            ("ssh://-oProxyCommand=evil@host", "-oProxyCommand=evil"),
            ("ssh://user@-host", "-host"),
            ("ssh://us er@host", "us er"),
            ("ssh://user@ho\"st", "ho\"st"),
            ("ssh://us'er@host", "us'er"),
            ("ssh://a;rm -rf /@host", "a;rm -rf /"),
            ("ssh://$(touch x)@host", "$(touch x)"),
            ("ssh://user@host\nProxyCommand x", "host\nProxyCommand x"),
            ("ssh://user@host:2222", "host:2222"),
        ] {
            let err = SshUrl::parse(link).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{link}: {err}");
        }
        assert!(matches!(
            SshUrl::parse("ssh://a@b@c"),
            Err(SshUrlError::Shape(_))
        ));
        assert!(matches!(
            SshUrl::parse("https://user@host"),
            Err(SshUrlError::Scheme(_))
        ));
        assert!(matches!(
            SshUrl::parse("user@host"),
            Err(SshUrlError::Scheme(_))
        ));
        assert!(matches!(
            SshUrl::parse("ssh://userhost"),
            Err(SshUrlError::Shape(_))
        ));
    }

    #[test]
    fn remote_commands_follow_the_official_quoting() {
        assert_eq!(remote_command(&[]), None);
        assert_eq!(
            remote_command(&["echo $HOME && ls".into()]).unwrap(),
            "echo $HOME && ls"
        );
        assert_eq!(
            remote_command(&[
                "echo".into(),
                "it's $HOME".into(),
                "a b".into(),
                "plain".into()
            ])
            .unwrap(),
            r"echo 'it'\''s $HOME' 'a b' plain"
        );
        assert_eq!(shell_quote(""), "''");
    }
}
