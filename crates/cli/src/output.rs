//! Rendering for people and for scripts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use tether_core::problem::{Problem, StepUpNeed};

use crate::Format;

/// Prints a value as JSON, or as the given text.
pub fn print<T: Serialize>(format: Format, value: &T, text: impl FnOnce() -> String) {
    match format {
        Format::Json => match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("tether: cannot render JSON: {e}"),
        },
        Format::Text => {
            let t = text();
            if !t.is_empty() {
                println!("{t}");
            }
        }
    }
}

/// Progress for people, on stderr so that stdout stays clean for scripts.
pub fn progress(format: Format, message: &str) {
    if format == Format::Text {
        eprintln!("{message}");
    }
}

/// What the user can run about a problem: core says what is wrong in words, the CLI names
/// its own command.
fn remedy(problem: Option<Problem>) -> Option<&'static str> {
    match problem? {
        Problem::SignIn => {
            Some("Sign in with `tether login` (or `tether auth:api-token-login` for an API token).")
        }
        Problem::StepUp(StepUpNeed::Mfa) => Some("Sign in with `tether login --method mfa`."),
        Problem::StepUp(StepUpNeed::Sso) => Some("Sign in with `tether login --method sso`."),
        Problem::StepUp(StepUpNeed::RecentLogin) => {
            Some("Sign in with `tether login --max-age 300`.")
        }
        Problem::Unreachable | Problem::Usage | Problem::Other => None,
    }
}

pub fn error(format: Format, e: &anyhow::Error, code: u8, problem: Option<Problem>) {
    let remedy = remedy(problem);
    match format {
        Format::Json => eprintln!(
            "{}",
            serde_json::json!({ "error": {
                "exit_code": code,
                "problem": problem.map(Problem::code),
                "message": format!("{e:#}"),
                "remedy": remedy,
            } })
        ),
        Format::Text => match remedy {
            Some(r) => eprintln!("tether: {e:#}\n{r}"),
            None => eprintln!("tether: {e:#}"),
        },
    }
}

/// The keys of a JSON object, for "try one of" messages.
pub fn keys(v: &serde_json::Value) -> String {
    v.as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// One property's value: strings bare for people, JSON otherwise.
pub fn property(format: Format, v: &serde_json::Value) {
    match (format, v) {
        (Format::Text, serde_json::Value::String(s)) => println!("{s}"),
        (_, other) => println!("{other}"),
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    tether_core::Clock::unix(&tether_core::SystemClock)
}

/// `2026-11-24 13:05:00 UTC (in 59 min)`.
pub fn when(unix: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix);
    let relative = match t.duration_since(SystemTime::now()) {
        Ok(d) => format!("in {}", human(d)),
        Err(e) => format!("{} ago", human(e.duration())),
    };
    format!("{} ({relative})", utc(unix))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        _ => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// A UTC timestamp without a date library (civil-from-days, H. Hinnant).
pub fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_right() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_518_000), "2026-11-24 11:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
