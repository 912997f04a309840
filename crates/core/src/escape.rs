//! Text from the platform or an app, made safe to show. Project titles, environment and app
//! names, relationship names and hosts come from a server; printed raw, an escape sequence in
//! one of them would be a command to the user's terminal (retitle it, move the cursor, hide
//! what follows, or paste). Every shell prints such text through [`terminal`], which writes
//! control characters (and the invisible bidirectional overrides that reorder what a reader
//! sees) as Rust escapes: `\u{1b}`, `\n`. Markup escaping for notification servers is
//! [`markup`].

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether a character must not reach a terminal as itself.
fn unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character escaped; unchanged (and not copied) when it has none.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unprintable) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unprintable(c) {
            // `escape_debug` writes \n, \t, \r by name and the rest as \u{…}.
            let _ = write!(out, "{}", c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A whole message or table for a terminal: as [`terminal`], but its line breaks kept. The
/// shells pass everything they print through this as well, so a platform string that reached
/// a message unescaped (an API error's text) still cannot command the terminal; the fields
/// themselves go through [`terminal`] so that a line break in one cannot fake a line.
pub fn terminal_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && unprintable(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.split('\n')
            .map(terminal)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// [`terminal`] as a `Display`, for format strings: `println!("{}", Shown(&title))`.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Through `pad`, so widths and alignment in tables still apply.
        f.pad(&terminal(self.0))
    }
}

/// `text` for a notification server that reads bodies as markup (the freedesktop
/// `body-markup` capability): `&`, `<` and `>` as entities, so a name cannot open a link or
/// hide the rest of the message.
pub fn markup(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_control_characters_and_bidi_overrides_and_keeps_the_rest() {
        assert!(matches!(terminal("Prod – main ü"), Cow::Borrowed(_)));
        assert_eq!(terminal("a\u{1b}]0;pwned\u{7}b"), "a\\u{1b}]0;pwned\\u{7}b");
        assert_eq!(terminal("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(terminal("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(terminal("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(terminal_text("a\nb\u{1b}[2J\n"), "a\nb\\u{1b}[2J\n");
        assert!(matches!(terminal_text("a\nb"), Cow::Borrowed(_)));
        assert_eq!(format!("[{:<9}]", Shown("a\u{1b}")), "[a\\u{1b}  ]");
    }

    #[test]
    fn markup_escapes_the_three_characters_servers_read() {
        assert_eq!(
            markup("<a href=\"x\">db & co</a>"),
            "&lt;a href=\"x\"&gt;db &amp; co&lt;/a&gt;"
        );
        assert!(matches!(markup("plain"), Cow::Borrowed(_)));
    }
}
