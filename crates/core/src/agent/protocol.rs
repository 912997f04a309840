//! The agent's control protocol: one JSON object per line, each carrying the protocol
//! version. A client sends a [`Request`]; the agent answers with one [`Reply`], or with a
//! stream of [`Reply::Event`] lines after [`Request::Subscribe`].

use serde::{Deserialize, Serialize};

use crate::access::{Ready, SignOutReport};
use crate::cert::{CertInfo, Event};
use crate::tunnel::TunnelState;

/// The protocol spoken on the control socket. A change that an older peer would misread
/// gets a new number.
pub const VERSION: u32 = 1;

/// The longest request or reply line, newline included. A request over it is answered with
/// an error and the connection is closed (the rest of the line cannot be told apart).
pub const MAX_LINE: usize = 64 * 1024;

/// The longest reply line: replies list tunnels, which carry their endpoints' fields.
pub const MAX_REPLY_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// What the agent is doing.
    Status,
    /// The user is using the session (counts against the inactivity limit).
    Touch,
    /// Be ready to connect: a usable certificate (a new one with `new`), SSH files written.
    Ready {
        #[serde(default)]
        new: bool,
    },
    /// The user has just signed in (in another process): start keeping the session.
    SignedIn,
    /// Sign out of this profile, or of every profile with `all`.
    SignOut {
        #[serde(default)]
        all: bool,
    },
    /// Stream events until the client goes away.
    Subscribe,
    /// Close every tunnel and stop.
    Stop,
    /// Open tunnels to an app's relationships.
    TunnelOpen(crate::tunnel::OpenRequest),
    /// Every open tunnel.
    TunnelList,
    /// Close the tunnels a request selects.
    TunnelClose(crate::tunnel::CloseRequest),
    /// Open again the tunnels that the end of the last session closed, on their ports.
    TunnelReopen,
    /// An app's relationships as the app sees them (connection details for tools that open
    /// their own SSH tunnel), read over the app's connection.
    Relationships(crate::tunnel::AppKey),
}

/// The agent's state, for `agent:status` and the tray.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub version: String,
    pub profile: String,
    /// Unix seconds.
    pub started_at: u64,
    pub session: SessionState,
    pub certificate: Option<CertInfo>,
    /// Unix seconds of the last activity of any Tether process of this profile.
    pub last_activity: Option<u64>,
    pub inactivity_limit_secs: u64,
    /// Tunnels open, and of those not working (reconnecting, waiting for a sign-in).
    #[serde(default)]
    pub tunnels: usize,
    #[serde(default)]
    pub tunnels_down: usize,
    /// Tunnels the end of the last session closed, which `tunnel_reopen` opens again.
    #[serde(default)]
    pub reopenable: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The certificate is being kept fresh.
    Active,
    /// The platform demands a new sign-in (MFA, SSO or a recent login) before renewing.
    NeedsSignIn,
    /// No session: waiting for a sign-in.
    SignedOut,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status(Status),
    Ready(Ready),
    /// The request was carried out (touch, signed in).
    Done,
    SignedOut(SignOutReport),
    /// Events follow, one per line.
    Subscribed,
    Event(Event),
    /// What `tunnel_open` did.
    Opened(crate::tunnel::OpenReport),
    /// Tunnels: every open one (`tunnel_list`), or those just closed (`tunnel_close`).
    Tunnels {
        tunnels: Vec<crate::tunnel::TunnelInfo>,
    },
    /// An app's relationships: every endpoint's fields, and what could not be read.
    Relationships {
        endpoints: Vec<EndpointFields>,
        problems: Vec<String>,
    },
    /// The request failed. `code` is a [`Problem`](crate::problem::Problem) code, or
    /// `protocol` when the request itself was not understood.
    Error {
        code: String,
        message: String,
        /// The stronger sign-in that would help, when that is the problem.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_up: Option<crate::api::StepUp>,
    },
}

/// One endpoint of a relationship (`database`, `database.1`) with its fields as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointFields {
    pub id: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A request or reply on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the message is longer than the protocol allows ({MAX_LINE} bytes for a request)")]
    TooLarge,
    #[error("the message is not a JSON object: {0}")]
    Malformed(String),
    #[error("the message has no protocol version")]
    NoVersion,
    #[error("the other side speaks protocol {theirs} and this Tether speaks {VERSION}: use the same Tether version for the agent and its clients (restart the agent after an upgrade)")]
    Version { theirs: u64 },
    #[error("unknown request: {0}")]
    Unknown(String),
}

/// One line for the wire, newline included.
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Envelope { v: VERSION, body }).unwrap_or_default();
    line.push(b'\n');
    line
}

fn decode<T: serde::de::DeserializeOwned>(line: &[u8], max: usize) -> Result<T, ProtocolError> {
    if line.len() > max {
        return Err(ProtocolError::TooLarge);
    }
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(ProtocolError::Malformed("not an object".into()));
    };
    match map.remove("v").and_then(|v| v.as_u64()) {
        None => return Err(ProtocolError::NoVersion),
        Some(v) if v != u64::from(VERSION) => return Err(ProtocolError::Version { theirs: v }),
        Some(_) => {}
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| ProtocolError::Unknown(e.to_string()))
}

/// Reads a request line (without its newline).
pub fn decode_request(line: &[u8]) -> Result<Request, ProtocolError> {
    decode(line, MAX_LINE)
}

/// Reads a reply line (without its newline).
pub fn decode_reply(line: &[u8]) -> Result<Reply, ProtocolError> {
    decode(line, MAX_REPLY_LINE)
}

/// A tunnel's state as an event announces it ([`Event::Tunnel`]). On the wire it stays the
/// sentence `tether events` prints (`open`, `reconnecting (attempt 2: …)`,
/// `closed (signed out)`), so readers of the JSON see no change; in Rust it is matched, not
/// compared as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TunnelEventState {
    Opening,
    Open,
    Reconnecting {
        attempt: u32,
        error: String,
    },
    /// Waiting for a new sign-in (MFA, SSO…).
    Failed {
        reason: String,
    },
    /// Closed, and why when it was not the user's asking (`signed out`).
    Closed {
        why: Option<String>,
    },
}

impl From<&TunnelState> for TunnelEventState {
    fn from(state: &TunnelState) -> Self {
        match state {
            TunnelState::Opening => TunnelEventState::Opening,
            TunnelState::Open => TunnelEventState::Open,
            TunnelState::Reconnecting { attempt, error } => TunnelEventState::Reconnecting {
                attempt: *attempt,
                error: error.clone(),
            },
            TunnelState::Failed { reason } => TunnelEventState::Failed {
                reason: reason.clone(),
            },
            TunnelState::Closed => TunnelEventState::Closed { why: None },
        }
    }
}

impl std::fmt::Display for TunnelEventState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelEventState::Opening => f.write_str("opening"),
            TunnelEventState::Open => f.write_str("open"),
            TunnelEventState::Reconnecting { attempt, error } => {
                write!(f, "reconnecting (attempt {attempt}: {error})")
            }
            TunnelEventState::Failed { reason } => write!(f, "failed: {reason}"),
            TunnelEventState::Closed { why: None } => f.write_str("closed"),
            TunnelEventState::Closed { why: Some(why) } => write!(f, "closed ({why})"),
        }
    }
}

impl From<TunnelEventState> for String {
    fn from(state: TunnelEventState) -> String {
        state.to_string()
    }
}

impl TryFrom<String> for TunnelEventState {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let within = |rest: &str| {
            rest.strip_prefix(" (")
                .and_then(|r| r.strip_suffix(')'))
                .map(str::to_string)
        };
        let state = match s.as_str() {
            "opening" => Some(TunnelEventState::Opening),
            "open" => Some(TunnelEventState::Open),
            "closed" => Some(TunnelEventState::Closed { why: None }),
            _ => {
                if let Some(reason) = s.strip_prefix("failed: ") {
                    Some(TunnelEventState::Failed {
                        reason: reason.to_string(),
                    })
                } else if let Some(rest) = s.strip_prefix("closed") {
                    within(rest).map(|why| TunnelEventState::Closed { why: Some(why) })
                } else if let Some(rest) = s.strip_prefix("reconnecting") {
                    within(rest).and_then(|inner| {
                        let (attempt, error) = inner.strip_prefix("attempt ")?.split_once(": ")?;
                        Some(TunnelEventState::Reconnecting {
                            attempt: attempt.parse().ok()?,
                            error: error.to_string(),
                        })
                    })
                } else {
                    None
                }
            }
        };
        state.ok_or_else(|| format!("{s:?} is not a tunnel state"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_states_in_events_are_an_enum_that_reads_and_writes_the_same_text() {
        let states = [
            (TunnelEventState::Opening, "opening"),
            (TunnelEventState::Open, "open"),
            (
                TunnelEventState::Reconnecting {
                    attempt: 3,
                    error: "connect: refused (os error 111)".into(),
                },
                "reconnecting (attempt 3: connect: refused (os error 111))",
            ),
            (
                TunnelEventState::Failed {
                    reason: "MFA is required: sign in again".into(),
                },
                "failed: MFA is required: sign in again",
            ),
            (TunnelEventState::Closed { why: None }, "closed"),
            (
                TunnelEventState::Closed {
                    why: Some("signed out".into()),
                },
                "closed (signed out)",
            ),
        ];
        for (state, text) in states {
            let event = Event::Tunnel {
                app: "p/main/app".into(),
                relationship: "db".into(),
                port: 30000,
                state: state.clone(),
                down: false,
                needs_sign_in: false,
            };
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["state"], text);
            assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
        }
        // The tunnel host's states map onto the same text as before.
        for state in [
            TunnelState::Opening,
            TunnelState::Open,
            TunnelState::Reconnecting {
                attempt: 2,
                error: "timed out".into(),
            },
            TunnelState::Failed {
                reason: "sign in".into(),
            },
            TunnelState::Closed,
        ] {
            assert_eq!(
                TunnelEventState::from(&state).to_string(),
                state.to_string()
            );
        }
        assert!(TunnelEventState::try_from("ajar".to_string()).is_err());
    }
    use proptest::prelude::*;

    #[test]
    fn requests_round_trip_with_their_version() {
        for r in [
            Request::Status,
            Request::Touch,
            Request::Ready { new: true },
            Request::SignedIn,
            Request::SignOut { all: false },
            Request::Subscribe,
            Request::TunnelList,
            Request::Stop,
            Request::TunnelClose(crate::tunnel::CloseRequest::default()),
            Request::TunnelOpen(crate::tunnel::OpenRequest {
                app: crate::tunnel::AppKey {
                    project: "abc".parse().unwrap(),
                    environment: "main".parse().unwrap(),
                    app: "app".parse().unwrap(),
                },
                relationships: vec!["database".into()],
                port: Some(30000),
                bind: None,
            }),
        ] {
            let line = encode(&r);
            assert!(line.ends_with(b"\n"));
            assert_eq!(decode_request(&line[..line.len() - 1]), Ok(r));
        }
        assert_eq!(
            std::str::from_utf8(&encode(&Request::Ready { new: false })).unwrap(),
            "{\"v\":1,\"op\":\"ready\",\"new\":false}\n"
        );
        // A missing flag takes its default.
        assert_eq!(
            decode_request(br#"{"v":1,"op":"ready"}"#),
            Ok(Request::Ready { new: false })
        );
    }

    #[test]
    fn bad_requests_are_told_apart() {
        assert_eq!(
            decode_request(br#"{"v":2,"op":"status"}"#),
            Err(ProtocolError::Version { theirs: 2 })
        );
        assert_eq!(
            decode_request(br#"{"op":"status"}"#),
            Err(ProtocolError::NoVersion)
        );
        assert!(matches!(
            decode_request(b"hello"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(br#"{"v":1,"op":"format_disk"}"#),
            Err(ProtocolError::Unknown(_))
        ));
        assert_eq!(
            decode_request(&vec![b' '; MAX_LINE + 1]),
            Err(ProtocolError::TooLarge)
        );
        assert!(ProtocolError::Version { theirs: 2 }
            .to_string()
            .contains("restart the agent"));
    }

    #[test]
    fn events_carry_their_kind() {
        let line = encode(&Reply::Event(Event::Renewed {
            valid_before: 5,
            has_mfa: true,
        }));
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"v\":1,\"reply\":\"event\",\"event\":\"renewed\",\"valid_before\":5,\"has_mfa\":true}\n"
        );
        let back = decode_reply(&line[..line.len() - 1]).unwrap();
        assert!(matches!(
            back,
            Reply::Event(Event::Renewed {
                valid_before: 5,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn the_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_reply(&bytes);
        }

        #[test]
        fn json_like_input_never_panics(s in r#"\{("[a-z]{1,3}":(1|"[a-z_]{0,12}"|null|\[\]|\{\}|true),?){0,5}\}"#) {
            let _ = decode_request(s.as_bytes());
        }
    }
}
