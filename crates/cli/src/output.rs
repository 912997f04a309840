//! Rendering for people and for scripts.

use std::time::Duration;

use serde::Serialize;

use tether_core::access::AccessError;
use tether_core::api::{ApiError, StepUp};
use tether_core::escape::{terminal_text, Shown};
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
                println!("{}", terminal_text(&t));
            }
        }
    }
}

/// Progress for people, on stderr so that stdout stays clean for scripts.
pub fn progress(format: Format, message: &str) {
    if format == Format::Text {
        eprintln!("{}", terminal_text(message));
    }
}

/// The stronger authentication an error asks for, with its methods and login age, wherever it
/// sits in the chain.
fn step_up_in(e: &anyhow::Error) -> Option<StepUp> {
    e.chain().find_map(|c| {
        c.downcast_ref::<AccessError>()
            .and_then(AccessError::step_up)
            .or_else(|| match c.downcast_ref::<ApiError>() {
                Some(ApiError::StepUp(s)) => Some(s.clone()),
                _ => None,
            })
    })
}

/// `tether login` with exactly what a step-up asks for (`--method` per method other than a
/// password, `--max-age` when a recent login is demanded).
fn login_for(step_up: &StepUp) -> String {
    let mut command = "tether login".to_string();
    for method in step_up.amr.iter().filter(|a| *a != "pwd") {
        command.push_str(&format!(" --method {method}"));
    }
    if let Some(age) = step_up.max_age {
        command.push_str(&format!(" --max-age {age}"));
    }
    command
}

/// What the user can run about a problem: core says what is wrong in words, the CLI names
/// its own command.
fn remedy(problem: Option<Problem>, e: &anyhow::Error) -> Option<String> {
    let need =
        match problem? {
            Problem::SignIn => return Some(
                "Sign in with `tether login` (or `tether auth:api-token-login` for an API token)."
                    .into(),
            ),
            Problem::StepUp(need) => need,
            Problem::Unreachable | Problem::Usage | Problem::Other => return None,
        };
    let command = match step_up_in(e) {
        Some(step_up) => login_for(&step_up),
        None => match need {
            StepUpNeed::Mfa => "tether login --method mfa".into(),
            StepUpNeed::Sso => "tether login --method sso:<provider>".into(),
            StepUpNeed::RecentLogin => "tether login --max-age 300".into(),
        },
    };
    Some(format!("Sign in with `{command}`."))
}

pub fn error(format: Format, e: &anyhow::Error, code: u8, problem: Option<Problem>) {
    let remedy = remedy(problem, e);
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
        Format::Text => {
            let message = format!("{e:#}");
            let message = terminal_text(&message);
            match remedy {
                Some(r) => eprintln!("tether: {message}\n{r}"),
                None => eprintln!("tether: {message}"),
            }
        }
    }
}

/// The keys of a JSON object, for "try one of" messages.
pub fn keys(v: &serde_json::Value) -> String {
    v.as_object()
        .map(|o| {
            o.keys()
                .map(|k| Shown(k).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// One property's value: strings bare for people, JSON otherwise.
pub fn property(format: Format, v: &serde_json::Value) {
    match (format, v) {
        (Format::Text, serde_json::Value::String(s)) => println!("{}", Shown(s)),
        (_, other) => println!("{other}"),
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    tether_core::Clock::unix(&tether_core::SystemClock)
}

/// `2026-11-24 13:05:00 UTC (in 59 min)`. Any time the platform names, even `u64::MAX`.
pub fn when(unix: u64) -> String {
    let now = now();
    let relative = if unix >= now {
        format!("in {}", human(Duration::from_secs(unix - now)))
    } else {
        format!("{} ago", human(Duration::from_secs(now - unix)))
    };
    format!("{} ({relative})", utc(unix))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=172_799 => format!("{:.1} h", s as f64 / 3600.0),
        172_800..=63_071_999 => format!("{} days", s / 86_400),
        _ => format!("{} years", s / 31_557_600),
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
    fn a_certificate_valid_until_the_end_of_time_is_shown_without_overflow() {
        let shown = when(u64::MAX);
        assert!(shown.contains("years)"), "{shown}");
        assert!(when(0).contains("years ago"), "{}", when(0));
        assert_eq!(human(Duration::from_secs(7200)), "2.0 h");
    }

    #[test]
    fn utc_dates_are_right() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_518_000), "2026-11-24 11:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn a_step_up_names_the_login_that_satisfies_it() {
        let sso = StepUp::for_amr(vec!["sso:acme".into()], None);
        assert_eq!(login_for(&sso), "tether login --method sso:acme");
        let both = StepUp::for_amr(vec!["mfa".into(), "sso:acme".into()], Some(600));
        assert_eq!(
            login_for(&both),
            "tether login --method mfa --method sso:acme --max-age 600"
        );
        let e = anyhow::Error::new(ApiError::StepUp(StepUp::for_amr(Vec::new(), Some(90))));
        assert_eq!(
            remedy(Some(Problem::StepUp(StepUpNeed::RecentLogin)), &e).as_deref(),
            Some("Sign in with `tether login --max-age 90`.")
        );
    }
}
