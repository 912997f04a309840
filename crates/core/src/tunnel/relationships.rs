//! An app's relationships: the `PLATFORM_RELATIONSHIPS` value the platform gives each app
//! (base64 of a JSON object, relationship name → list of service endpoints), decoded into the
//! few typed fields a tunnel needs, with every other field kept as it came so that
//! `tunnel:info` can give it back. The one field changed on the way in is the official
//! client's own: a MongoDB `host` holding a whole replica-set URI becomes the URI's first host
//! (the URI moves to `url`).
//!
//! **Bad input.** The value comes from the platform, so it is checked like user input. A value
//! that is not base64, not JSON, or not an object fails [`Relationships::decode`] as a whole:
//! nothing in it can be trusted. Below that, each relationship and each endpoint stands alone:
//! a relationship that is not a list, or an endpoint with a missing or bad host or port, is
//! recorded as an [`EndpointError`] on its relationship and the others decode normally, so
//! one broken service costs one tunnel, not all of them (issue 8: "other tunnels
//! unaffected"). Endpoints keep the index the platform gave them (`database.1` stays
//! `database.1` even when `database.0` is broken); asking for a broken endpoint returns its
//! error.
//!
//! **URLs** are built the way the official client builds them (`Relationships::buildUrl` in
//! `legacy/src/Service/Relationships.php`, over guzzlehttp/psr7 2.x `Uri::fromParts` and
//! `Query::build`): `pgsql` becomes `postgresql`; `solr` becomes `http` (and a path directly
//! under `/solr` becomes `/solr/`); scheme and host are lowercased; the port is left out when
//! it is its scheme's default (psr7's list); `is_master` is dropped from the query, whose other
//! entries are written like `Query::build` (RFC 3986, booleans as `1`/`0`); user, password,
//! path, query and fragment are percent-encoded where psr7 encodes them (an existing `%XX` is
//! kept). One deliberate difference: psr7 writes an IPv6 host bare, which no parser reads; it
//! is bracketed here. JSON objects keep the platform's key order (serde_json's
//! `preserve_order`), since the official export does.
//!
//! **The export** ([`LocalRelationships`]) is what `tunnel:info` shows and what `--encode`
//! emits, the official client's object exactly: for each tunnelled endpoint, the same object
//! plus `_relationship_name` and `_relationship_key`, with `host`, `ip` and `port` (only where
//! present) replaced by `127.0.0.1` and the local port, and `url` set from the result; each
//! endpoint under its own index (see [`LocalRelationships::from_endpoints`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU16;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};

use super::LocalPort;
use crate::problem::{Classify, Problem};
use crate::secret::Sensitive;

/// The address every exported endpoint points at when tunnels listen on loopback (or on
/// every address).
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The address a tunnel listening on `ip` is reached at from here: `ip` itself, or loopback
/// for a wildcard, which is no address to connect to.
fn exported_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => LOOPBACK,
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// The platform's variable holds standard base64; `echo` adds a newline and some tools drop
/// the padding, neither of which makes the value ambiguous.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A problem with the relationships value as a whole, or with a request about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationshipsError {
    #[error(
        "the app's relationships (PLATFORM_RELATIONSHIPS) are not valid base64 ({0}); \
         the platform sent something unexpected: redeploy the environment, and report it if it persists"
    )]
    NotBase64(String),
    #[error(
        "the app's relationships (PLATFORM_RELATIONSHIPS) are not valid JSON ({0}); \
         the platform sent something unexpected: redeploy the environment, and report it if it persists"
    )]
    NotJson(String),
    #[error(
        "the app's relationships (PLATFORM_RELATIONSHIPS) are {found}, not an object of relationship names; \
         the platform sent something unexpected: redeploy the environment, and report it if it persists"
    )]
    NotAnObject { found: &'static str },
    #[error("{}", unknown_relationship(name, known))]
    UnknownRelationship { name: String, known: Vec<String> },
    #[error("{}", unknown_endpoint(name, *index, *count))]
    UnknownEndpoint {
        name: String,
        index: usize,
        count: usize,
    },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(
        "property not found: {path:?}; use a dot path such as \"database.0.port\" \
         (relationship, endpoint index, field)"
    )]
    PropertyNotFound { path: String },
}

fn unknown_relationship(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        format!("relationship {name:?} not found: this app has no relationships")
    } else {
        format!(
            "relationship {name:?} not found; this app's relationships are: {}",
            known
                .iter()
                .map(|k| crate::escape::terminal(k))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn unknown_endpoint(name: &str, index: usize, count: usize) -> String {
    match count {
        0 => format!("relationship {name:?} has no endpoints, so there is no endpoint {index}"),
        1 => format!(
            "relationship {name:?} has one endpoint, so there is no endpoint {index}; use 0"
        ),
        _ => format!(
            "relationship {name:?} has {count} endpoints, so there is no endpoint {index}; \
             use an index from 0 to {}",
            count - 1
        ),
    }
}

impl Classify for RelationshipsError {
    fn problem(&self) -> Problem {
        match self {
            RelationshipsError::UnknownRelationship { .. }
            | RelationshipsError::UnknownEndpoint { .. }
            | RelationshipsError::PropertyNotFound { .. } => Problem::Usage,
            RelationshipsError::NotBase64(_)
            | RelationshipsError::NotJson(_)
            | RelationshipsError::NotAnObject { .. } => Problem::Other,
            RelationshipsError::Endpoint(e) => e.problem(),
        }
    }
}

/// What is wrong with one relationship or one of its endpoints; the others are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}; the platform sent something unexpected for this service, so it cannot be tunnelled: check the service in the app's configuration and redeploy", self.subject())]
pub struct EndpointError {
    pub relationship: String,
    /// `None` when the relationship itself is malformed (not a list of endpoints).
    pub index: Option<usize>,
    pub problem: EndpointProblem,
}

impl EndpointError {
    /// The endpoint it concerns (`database.1`), or the relationship's name.
    pub fn id(&self) -> String {
        match self.index {
            Some(index) => EndpointId::new(self.relationship.clone(), index).to_string(),
            None => self.relationship.clone(),
        }
    }

    fn subject(&self) -> String {
        match self.index {
            Some(index) => format!(
                "relationship {}",
                EndpointId::new(self.relationship.clone(), index)
            ),
            None => format!("relationship {:?}", self.relationship),
        }
    }
}

impl Classify for EndpointError {
    fn problem(&self) -> Problem {
        Problem::Other
    }
}

/// The specific fault, named after the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointProblem {
    #[error("it is {found}, not a list of endpoints")]
    NotAList { found: &'static str },
    #[error("the endpoint is {found}, not an object")]
    NotAnObject { found: &'static str },
    #[error("the endpoint has no {field:?}")]
    Missing { field: &'static str },
    #[error("{field:?} is {found}, expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("\"host\" is empty")]
    EmptyHost,
    #[error("\"host\" {host:?} is not a host name or address (it contains whitespace, a control character or one of / @ ? #)")]
    BadHost { host: String },
    #[error("\"port\" {port} is out of range (1 to 65535)")]
    PortOutOfRange { port: String },
    #[error("\"port\" {port:?} is not a port number")]
    NotAPort { port: String },
    #[error("the name {}", .0)]
    BadName(NameFault),
}

/// Why a relationship's name cannot be used: it would be read as something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameFault {
    #[error("is empty")]
    Empty,
    /// `db.1` would be endpoint 1 of `db`.
    #[error("contains a \".\", which Tether reads as an endpoint index (name.N)")]
    Dot,
    /// It would reach a terminal as a command to it.
    #[error("contains a control character")]
    Control,
}

impl NameFault {
    /// What is wrong with a relationship name the platform sent, if anything.
    pub fn of(name: &str) -> Option<NameFault> {
        if name.is_empty() {
            Some(NameFault::Empty)
        } else if name.contains('.') {
            Some(NameFault::Dot)
        } else if name.chars().any(char::is_control) {
            Some(NameFault::Control)
        } else {
            None
        }
    }
}

/// One endpoint of one relationship: `database` is `database.0`. Printed the way the
/// official client names tunnels: the bare name for index 0, `name.N` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId {
    relationship: String,
    index: usize,
}

impl EndpointId {
    pub fn new(relationship: impl Into<String>, index: usize) -> EndpointId {
        EndpointId {
            relationship: relationship.into(),
            index,
        }
    }

    /// `database` → index 0, `database.1` → index 1. A suffix that is not a number is part of
    /// the name.
    pub fn parse(s: &str) -> EndpointId {
        match s.rsplit_once('.') {
            Some((name, index))
                if !name.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) =>
            {
                match index.parse() {
                    Ok(index) => EndpointId::new(name, index),
                    Err(_) => EndpointId::new(s, 0),
                }
            }
            _ => EndpointId::new(s, 0),
        }
    }

    pub fn relationship(&self) -> &str {
        &self.relationship
    }

    pub fn index(&self) -> usize {
        self.index
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == 0 {
            f.write_str(&self.relationship)
        } else {
            write!(f, "{}.{}", self.relationship, self.index)
        }
    }
}

/// A service endpoint a tunnel can reach: its checked address, and every field as the
/// platform sent it. `Debug` leaves the fields out (one of them is a password).
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    id: EndpointId,
    host: String,
    port: NonZeroU16,
    fields: Map<String, Value>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("scheme", &self.scheme())
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Endpoint {
    pub fn id(&self) -> &EndpointId {
        &self.id
    }

    pub fn relationship(&self) -> &str {
        &self.id.relationship
    }

    pub fn index(&self) -> usize {
        self.id.index
    }

    /// The host the tunnel forwards to, as seen from the app's container.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> NonZeroU16 {
        self.port
    }

    /// As the platform names it (`pgsql`, `redis`, `http`, …); not the URL's scheme.
    pub fn scheme(&self) -> Option<&str> {
        self.str_field("scheme")
    }

    /// The service's name in the app's services (`postgresql`, `cache`, …).
    pub fn service(&self) -> Option<&str> {
        self.str_field("service")
    }

    /// The service type and version (`postgresql:12`, `redis:7.0`, …).
    pub fn service_type(&self) -> Option<&str> {
        self.str_field("type")
    }

    pub fn username(&self) -> Option<&str> {
        self.str_field("username")
    }

    /// Every field as the platform sent it (but for a MongoDB URI in `host`; see the module
    /// docs), the password included.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The URL of the service as the app reaches it, built like the official client's.
    pub fn url(&self) -> Sensitive<String> {
        Sensitive::new(build_url(&self.fields))
    }

    /// This endpoint as the official client's `tunnel:info` shows it through a tunnel on
    /// `port`. Its tunnel keeps the endpoint with two fields appended, `_relationship_name`
    /// and `_relationship_key` (`legacy/src/Command/Tunnel/TunnelOpenCommand.php`, `execute`);
    /// `tunnel:info` then replaces `host`, `ip` and `port` where present (`array_merge` over
    /// `array_intersect_key`, so each keeps its place and none is added) and sets `url`
    /// (`legacy/src/Command/Tunnel/TunnelInfoCommand.php`, `execute`). The key is the
    /// integer index, as `tunnel:open` writes it.
    pub fn local_fields(&self, port: LocalPort) -> Map<String, Value> {
        self.local_fields_at(LOOPBACK, port)
    }

    /// [`Endpoint::local_fields`] for a tunnel listening on `ip`: a tunnel bound to another
    /// address than loopback is reached at that address, so that is what it exports; one bound
    /// to every address (`0.0.0.0`, `::`) is reached here at loopback.
    pub fn local_fields_at(&self, ip: IpAddr, port: LocalPort) -> Map<String, Value> {
        let host = Value::from(exported_ip(ip).to_string());
        let mut fields = self.fields.clone();
        fields.insert(
            "_relationship_name".to_string(),
            Value::from(self.id.relationship.clone()),
        );
        fields.insert("_relationship_key".to_string(), Value::from(self.id.index));
        for (key, value) in [
            ("host", host.clone()),
            ("ip", host),
            ("port", Value::from(port.get())),
        ] {
            if let Some(slot) = fields.get_mut(key) {
                *slot = value;
            }
        }
        let url = build_url(&fields);
        fields.insert("url".to_string(), Value::from(url));
        fields
    }

    /// The URL to reach the service through a tunnel on `port`.
    pub fn local_url(&self, port: LocalPort) -> Sensitive<String> {
        self.local_url_at(LOOPBACK, port)
    }

    /// The URL to reach the service through a tunnel listening on `ip` (see
    /// [`Endpoint::local_fields_at`]).
    pub fn local_url_at(&self, ip: IpAddr, port: LocalPort) -> Sensitive<String> {
        let mut fields = self.fields.clone();
        fields.insert("host".to_string(), Value::from(exported_ip(ip).to_string()));
        fields.insert("port".to_string(), Value::from(port.get()));
        Sensitive::new(build_url(&fields))
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }
}

/// One relationship: the endpoints that decoded and the problems of those that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    name: String,
    /// How many entries the platform listed (good and bad), so indexes can be checked.
    count: usize,
    endpoints: Vec<Endpoint>,
    problems: Vec<EndpointError>,
}

impl Relationship {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoints that can be tunnelled, in the platform's order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// What is wrong with the endpoints that cannot (or with the relationship itself).
    pub fn problems(&self) -> &[EndpointError] {
        &self.problems
    }

    /// Endpoint `index` as the platform numbered it, or why there is none.
    pub fn endpoint(&self, index: usize) -> Result<&Endpoint, RelationshipsError> {
        if let Some(e) = self.endpoints.iter().find(|e| e.index() == index) {
            return Ok(e);
        }
        if let Some(p) = self
            .problems
            .iter()
            .find(|p| p.index == Some(index) || p.index.is_none())
        {
            return Err(p.clone().into());
        }
        Err(RelationshipsError::UnknownEndpoint {
            name: self.name.clone(),
            index,
            count: self.count,
        })
    }
}

/// An app's relationships, decoded, in the platform's order (which the export keeps).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Relationships {
    by_name: Vec<Relationship>,
}

impl Relationships {
    /// Decodes a `PLATFORM_RELATIONSHIPS` value (surrounding whitespace ignored). An empty
    /// value, or an empty list (PHP's encoding of an empty map), means no relationships.
    /// Fails only when the value as a whole is unusable; see the module docs.
    pub fn decode(value: impl AsRef<[u8]>) -> Result<Relationships, RelationshipsError> {
        match Relationships::json(value)? {
            None => Ok(Relationships::default()),
            Some(parsed) => Relationships::from_json(&parsed),
        }
    }

    /// A `PLATFORM_RELATIONSHIPS` value's JSON, base64-decoded (surrounding whitespace
    /// ignored); `None` when the value is empty. What [`Relationships::decode`] reads, for
    /// those that also show the value as it came (`environment:relationships`).
    pub fn json(value: impl AsRef<[u8]>) -> Result<Option<Value>, RelationshipsError> {
        let value = value.as_ref().trim_ascii();
        if value.is_empty() {
            return Ok(None);
        }
        let json = BASE64
            .decode(value)
            .map_err(|e| RelationshipsError::NotBase64(e.to_string()))?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| RelationshipsError::NotJson(e.to_string()))
    }

    /// The same from the decoded JSON.
    pub fn from_json(value: &Value) -> Result<Relationships, RelationshipsError> {
        let object = match value {
            Value::Object(o) => o,
            Value::Array(a) if a.is_empty() => return Ok(Relationships::default()),
            other => {
                return Err(RelationshipsError::NotAnObject {
                    found: kind_of(other),
                })
            }
        };
        let by_name = object
            .iter()
            .map(|(name, entries)| decode_relationship(name, entries))
            .collect();
        Ok(Relationships { by_name })
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.iter().map(|r| r.name.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Relationship> {
        self.by_name.iter()
    }

    /// A relationship by name; the error lists the names there are.
    pub fn get(&self, name: &str) -> Result<&Relationship, RelationshipsError> {
        self.by_name.iter().find(|r| r.name == name).ok_or_else(|| {
            RelationshipsError::UnknownRelationship {
                name: name.to_string(),
                known: self.names().map(str::to_string).collect(),
            }
        })
    }

    pub fn endpoint(&self, id: &EndpointId) -> Result<&Endpoint, RelationshipsError> {
        self.get(&id.relationship)?.endpoint(id.index)
    }

    /// Every endpoint that can be tunnelled, relationship by relationship.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.iter().flat_map(|r| r.endpoints.iter())
    }

    /// Every endpoint or relationship that cannot.
    pub fn problems(&self) -> impl Iterator<Item = &EndpointError> {
        self.iter().flat_map(|r| r.problems.iter())
    }

    /// The relationships as seen through tunnels: only the endpoints in `ports`, each
    /// rewritten by [`Endpoint::local_fields`] and kept under its own index, as
    /// [`LocalRelationships::from_endpoints`] says (tunnels listed in `ports`' order).
    pub fn local(
        &self,
        ports: &BTreeMap<EndpointId, LocalPort>,
    ) -> Result<LocalRelationships, RelationshipsError> {
        let mut endpoints = Vec::new();
        for (id, port) in ports {
            let endpoint = self.endpoint(id)?;
            endpoints.push((id.clone(), endpoint.local_fields(*port)));
        }
        Ok(LocalRelationships::from_endpoints(endpoints))
    }
}

/// The relationships for local use (`tunnel:info`): show them, pick one property, or encode
/// them as a `PLATFORM_RELATIONSHIPS` value. `Debug` leaves the values out.
#[derive(Clone, PartialEq)]
pub struct LocalRelationships(Value);

impl fmt::Debug for LocalRelationships {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = match &self.0 {
            Value::Object(o) => o.keys().collect(),
            _ => Vec::new(),
        };
        f.debug_tuple("LocalRelationships").field(&names).finish()
    }
}

impl LocalRelationships {
    /// The JSON object, relationship name → list of endpoints.
    pub fn as_json(&self) -> &Value {
        &self.0
    }

    /// Endpoints already seen through their tunnels ([`Endpoint::local_fields`]), in the
    /// order the tunnels were opened, as the official client builds `tunnel:info`
    /// (`legacy/src/Command/Tunnel/TunnelInfoCommand.php`, `execute`): relationships in the
    /// order their first tunnel appears, each endpoint under its own index. That is a PHP
    /// array, so it is written as a list when its indexes are exactly 0, 1, … in order and
    /// as an object keyed by index otherwise (only `database.1` open gives
    /// `{"database":{"1":{…}}}`). Values go through the same PHP round trip as the official
    /// client's (`json_decode` to arrays, then `json_encode`): see [`php_array`].
    pub fn from_endpoints(
        endpoints: impl IntoIterator<Item = (EndpointId, Map<String, Value>)>,
    ) -> LocalRelationships {
        /// A relationship's endpoints by index, in the order they came.
        type Indexed = Vec<(usize, Map<String, Value>)>;
        let mut by_name: Vec<(String, Indexed)> = Vec::new();
        for (id, fields) in endpoints {
            let fields = fields.into_iter().map(|(k, v)| (k, php_array(v))).collect();
            match by_name
                .iter_mut()
                .find(|(name, _)| *name == id.relationship)
            {
                Some((_, list)) => match list.iter_mut().find(|(i, _)| *i == id.index) {
                    // PHP assigns over the same key, keeping its place.
                    Some(slot) => slot.1 = fields,
                    None => list.push((id.index, fields)),
                },
                None => by_name.push((id.relationship, vec![(id.index, fields)])),
            }
        }
        let out = by_name
            .into_iter()
            .map(|(name, list)| {
                let is_list = list.iter().enumerate().all(|(pos, (i, _))| pos == *i);
                let value = if is_list {
                    Value::Array(list.into_iter().map(|(_, f)| Value::Object(f)).collect())
                } else {
                    Value::Object(
                        list.into_iter()
                            .map(|(i, f)| (i.to_string(), Value::Object(f)))
                            .collect(),
                    )
                };
                (name, value)
            })
            .collect();
        LocalRelationships(Value::Object(out))
    }

    /// The value for `export PLATFORM_RELATIONSHIPS=…`: base64 of the JSON, no newline. The
    /// JSON is written as PHP's `json_encode` writes it (`/` as `\/`, non-ASCII as `\uXXXX`),
    /// so the value is the official client's byte for byte, not only once decoded.
    pub fn encode(&self) -> Sensitive<String> {
        Sensitive::new(BASE64.encode(self.php_json()))
    }

    /// The JSON text as PHP's `json_encode` (default flags) writes this value.
    pub fn php_json(&self) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PhpFormatter);
        // Writing a `Value` into memory cannot fail.
        let _ = serde::Serialize::serialize(&self.0, &mut ser);
        String::from_utf8(out).unwrap_or_default()
    }

    /// One value by dot path, as `tunnel:info -P`: `database.0.port`, `database.0`,
    /// `database`; numbers index lists. An empty path is the whole object.
    pub fn property(&self, path: &str) -> Result<&Value, RelationshipsError> {
        let not_found = || RelationshipsError::PropertyNotFound {
            path: path.to_string(),
        };
        if path.is_empty() {
            return Ok(&self.0);
        }
        path.split('.').try_fold(&self.0, |value, key| match value {
            Value::Object(o) => o.get(key).ok_or_else(not_found),
            Value::Array(a) => key
                .parse::<usize>()
                .ok()
                .filter(|_| key.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|i| a.get(i))
                .ok_or_else(not_found),
            _ => Err(not_found()),
        })
    }
}

fn decode_relationship(name: &str, entries: &Value) -> Relationship {
    let mut relationship = Relationship {
        name: name.to_string(),
        count: 0,
        endpoints: Vec::new(),
        problems: Vec::new(),
    };
    if let Some(fault) = NameFault::of(name) {
        relationship.problems.push(EndpointError {
            relationship: name.to_string(),
            index: None,
            problem: EndpointProblem::BadName(fault),
        });
        return relationship;
    }
    // The official export writes a relationship whose tunnelled indexes are not 0, 1, … as an
    // object keyed by index (`{"1": {…}}`); a value read back from it keeps those indexes.
    if let Value::Object(o) = entries {
        let indexes: Option<Vec<usize>> = o
            .keys()
            .map(|k| {
                k.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| k.parse().ok())
                    .flatten()
            })
            .collect();
        if let Some(indexes) = indexes.filter(|i| !i.is_empty()) {
            relationship.count = indexes.iter().max().map_or(0, |m| m + 1);
            for (index, entry) in indexes.into_iter().zip(o.values()) {
                match decode_endpoint(EndpointId::new(name, index), entry) {
                    Ok(endpoint) => relationship.endpoints.push(endpoint),
                    Err(problem) => relationship.problems.push(EndpointError {
                        relationship: name.to_string(),
                        index: Some(index),
                        problem,
                    }),
                }
            }
            return relationship;
        }
    }
    let entries = match entries {
        Value::Array(entries) => entries,
        other => {
            relationship.problems.push(EndpointError {
                relationship: name.to_string(),
                index: None,
                problem: EndpointProblem::NotAList {
                    found: kind_of(other),
                },
            });
            return relationship;
        }
    };
    relationship.count = entries.len();
    for (index, entry) in entries.iter().enumerate() {
        let id = EndpointId::new(name, index);
        match decode_endpoint(id, entry) {
            Ok(endpoint) => relationship.endpoints.push(endpoint),
            Err(problem) => relationship.problems.push(EndpointError {
                relationship: name.to_string(),
                index: Some(index),
                problem,
            }),
        }
    }
    relationship
}

fn decode_endpoint(id: EndpointId, entry: &Value) -> Result<Endpoint, EndpointProblem> {
    let Value::Object(fields) = entry else {
        return Err(EndpointProblem::NotAnObject {
            found: kind_of(entry),
        });
    };
    let normalized = mongodb_uri_host(fields);
    let fields = normalized.as_ref().unwrap_or(fields);
    let host = match fields.get("host") {
        None | Some(Value::Null) => return Err(EndpointProblem::Missing { field: "host" }),
        Some(Value::String(host)) => check_host(host)?,
        Some(other) => {
            return Err(EndpointProblem::WrongType {
                field: "host",
                expected: "a string",
                found: kind_of(other),
            })
        }
    };
    let port = match fields.get("port") {
        None | Some(Value::Null) => return Err(EndpointProblem::Missing { field: "port" }),
        Some(Value::Number(n)) => check_port(n)?,
        // The platform may send the port as a string; the official client casts it
        // (`legacy/src/Service/TunnelManager.php`, `create`). Only digits are a port here.
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(n) if !s.trim().starts_with('+') => check_port(&n.into())?,
            _ => return Err(EndpointProblem::NotAPort { port: s.clone() }),
        },
        Some(other) => {
            return Err(EndpointProblem::WrongType {
                field: "port",
                expected: "an integer or a string of digits",
                found: kind_of(other),
            })
        }
    };
    // The fields the URL is built from: a wrong type there would give a wrong URL.
    for field in ["scheme", "username", "password", "path", "fragment"] {
        match fields.get(field) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(EndpointProblem::WrongType {
                    field,
                    expected: "a string or null",
                    found: kind_of(other),
                })
            }
        }
    }
    match fields.get("query") {
        None | Some(Value::Null | Value::String(_) | Value::Object(_) | Value::Array(_)) => {}
        Some(other) => {
            return Err(EndpointProblem::WrongType {
                field: "query",
                expected: "an object, a list, a string or null",
                found: kind_of(other),
            })
        }
    }
    Ok(Endpoint {
        id,
        host,
        port,
        fields: fields.clone(),
    })
}

/// The official client's one rewrite of what the platform sends: a MongoDB endpoint whose
/// `host` is a whole connection URI (`mongodb://user:pass@h1,h2,h3:27017/db?…`, a replica set)
/// gets the URI's first host as `host`, the URI's port where it has no `port`, and the URI
/// itself as `url`. `None` when the endpoint is not one of those.
fn mongodb_uri_host(fields: &Map<String, Value>) -> Option<Map<String, Value>> {
    if fields.get("scheme").and_then(Value::as_str) != Some("mongodb") {
        return None;
    }
    let uri = fields.get("host")?.as_str()?;
    let rest = uri.strip_prefix("mongodb://")?;
    let authority = rest.split(['/', '?']).next().filter(|a| !a.is_empty())?;
    let first = authority.split(',').next().unwrap_or(authority);
    let first = first.rsplit_once('@').map_or(first, |(_, host)| host);
    let (host, port) = match first.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse::<u16>().ok())
        }
        _ => (first, None),
    };
    let mut fields = fields.clone();
    fields.insert("host".to_string(), Value::from(host));
    if fields.get("port").is_none_or(Value::is_null) {
        if let Some(port) = port {
            fields.insert("port".to_string(), Value::from(port));
        }
    }
    fields.insert("url".to_string(), Value::from(uri));
    Some(fields)
}

fn check_host(host: &str) -> Result<String, EndpointProblem> {
    if host.is_empty() {
        return Err(EndpointProblem::EmptyHost);
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'))
    {
        return Err(EndpointProblem::BadHost {
            host: host.to_string(),
        });
    }
    Ok(host.to_string())
}

fn check_port(n: &serde_json::Number) -> Result<NonZeroU16, EndpointProblem> {
    if let Some(port) = n.as_u64() {
        return u16::try_from(port)
            .ok()
            .and_then(NonZeroU16::new)
            .ok_or_else(|| EndpointProblem::PortOutOfRange {
                port: port.to_string(),
            });
    }
    if let Some(port) = n.as_i64() {
        return Err(EndpointProblem::PortOutOfRange {
            port: port.to_string(),
        });
    }
    Err(EndpointProblem::WrongType {
        field: "port",
        expected: "an integer",
        found: "a number with a fraction",
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The official client's URL for an endpoint's fields (`Relationships::buildUrl` in
/// `legacy/src/Service/Relationships.php`, which hands the parts to guzzlehttp/psr7 2.x
/// `Uri::fromParts` and `Query::build`); see the module docs.
fn build_url(fields: &Map<String, Value>) -> String {
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let mut scheme = text("scheme");
    let mut path = text("path");
    if scheme == Some("solr") {
        scheme = Some("http");
        if path.is_some_and(|p| php_dirname(p) == "/solr") {
            path = Some("/solr/");
        }
    }
    if scheme == Some("pgsql") {
        scheme = Some("postgresql");
    }
    // psr7 lowercases the scheme and the host.
    let scheme = scheme.unwrap_or_default().to_ascii_lowercase();

    let mut user_info = String::new();
    if let Some(user) = text("username") {
        encode_into(&mut user_info, user, is_user_info_char);
    }
    // psr7 appends the password even without a user (`:secret@host`).
    if let Some(password) = text("password") {
        user_info.push(':');
        encode_into(&mut user_info, password, is_user_info_char);
    }
    let mut authority = String::new();
    if !user_info.is_empty() {
        authority.push_str(&user_info);
        authority.push('@');
    }
    let host = text("host").unwrap_or_default().to_ascii_lowercase();
    if host.contains(':') && !host.starts_with('[') {
        // An IPv6 address: psr7 would write it bare, which no parser reads.
        authority.push('[');
        authority.push_str(&host);
        authority.push(']');
    } else {
        authority.push_str(&host);
    }
    let port = match fields.get("port") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    if let Some(port) = port.filter(|p| Some(*p) != default_port(&scheme)) {
        authority.push(':');
        authority.push_str(&port.to_string());
    }

    let mut url = String::new();
    if !scheme.is_empty() {
        url.push_str(&scheme);
        url.push(':');
    }
    if !authority.is_empty() {
        url.push_str("//");
        url.push_str(&authority);
    }
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        if !authority.is_empty() && !path.starts_with('/') {
            url.push('/');
        }
        encode_into(&mut url, path, is_path_char);
    }
    let query = match fields.get("query") {
        Some(Value::String(q)) => {
            let mut s = String::new();
            encode_into(&mut s, q, is_query_char);
            s
        }
        Some(Value::Object(q)) => {
            let mut q = q.clone();
            q.shift_remove("is_master");
            php_query(q.iter().map(|(k, v)| (k.clone(), v)))
        }
        Some(Value::Array(q)) => php_query(q.iter().enumerate().map(|(i, v)| (i.to_string(), v))),
        _ => String::new(),
    };
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    if let Some(fragment) = text("fragment").filter(|f| !f.is_empty()) {
        url.push('#');
        encode_into(&mut url, fragment, is_query_char);
    }
    url
}

/// The ports psr7's `Uri` leaves out for their scheme.
fn default_port(scheme: &str) -> Option<u64> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "ftp" => Some(21),
        "gopher" => Some(70),
        "nntp" | "news" => Some(119),
        "telnet" | "tn3270" => Some(23),
        "imap" => Some(143),
        "pop" => Some(110),
        "ldap" => Some(389),
        _ => None,
    }
}

/// PHP's `dirname` for '/'-separated paths: `/solr/core` → `/solr`, `/solr/core/` → `/solr`.
fn php_dirname(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.starts_with('/') { "/" } else { "." };
    }
    match trimmed.rfind('/') {
        None => ".",
        Some(i) => {
            let dir = trimmed[..i].trim_end_matches('/');
            if dir.is_empty() {
                "/"
            } else {
                dir
            }
        }
    }
}

/// A query string as psr7's `Query::build` writes a PHP array: keys and values with PHP's
/// `rawurlencode`, `null` as a bare key, booleans as `1` and `0`, and a list (or map) value as
/// the key repeated once per element (`hosts=a&hosts=b`; its own keys are dropped).
fn php_query<'a>(entries: impl Iterator<Item = (String, &'a Value)>) -> String {
    let mut out = String::new();
    let mut pair = |key: &str, value: &Value| {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, key, is_unreserved);
        let text = match value {
            Value::Null => return,
            Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Value::String(s) => s.clone(),
            Value::Number(n) => php_number(n),
            // PHP's string of an array, with a notice.
            Value::Array(_) | Value::Object(_) => "Array".to_string(),
        };
        out.push('=');
        encode_into(&mut out, &text, is_unreserved);
    };
    for (key, value) in entries {
        match value {
            Value::Array(a) => a.iter().for_each(|v| pair(&key, v)),
            Value::Object(o) => o.values().for_each(|v| pair(&key, v)),
            v => pair(&key, v),
        }
    }
    out
}

/// PHP's string form of a JSON number, for the cases the platform could send: integers as
/// they are, whole floats without `.0`.
fn php_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// Appends `s`, percent-encoding every byte for which `keep` is false. A `%` that starts a
/// percent-encoded byte is kept, as psr7 keeps it; a lone one is encoded.
fn encode_into(out: &mut String, s: &str, keep: impl Fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape = b == b'%'
            && bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if escape || keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// RFC 3986 `unreserved`: what PHP's `rawurlencode` leaves alone.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// What psr7 leaves alone in a user or a password (so `:` and `@` are encoded).
fn is_user_info_char(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b)
}

fn is_path_char(b: u8) -> bool {
    is_user_info_char(b) || matches!(b, b':' | b'@' | b'/')
}

fn is_query_char(b: u8) -> bool {
    is_path_char(b) || b == b'?'
}

/// A JSON value as it comes out of PHP's `json_decode($json, true)` and back out of
/// `json_encode`: an object whose keys are exactly `0`, `1`, … in order (the empty object
/// included) is a PHP list, so it is written as a JSON list.
fn php_array(value: Value) -> Value {
    match value {
        Value::Object(o) => {
            let is_list = o.keys().enumerate().all(|(i, k)| *k == i.to_string());
            if is_list {
                Value::Array(o.into_iter().map(|(_, v)| php_array(v)).collect())
            } else {
                Value::Object(o.into_iter().map(|(k, v)| (k, php_array(v))).collect())
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(php_array).collect()),
        other => other,
    }
}

/// Writes JSON as PHP's `json_encode` with default flags: `/` escaped as `\/`, and every
/// character beyond ASCII as `\uXXXX` (UTF-16). serde_json already escapes `"`, `\` and
/// control characters the way PHP does.
struct PhpFormatter;

impl serde_json::ser::Formatter for PhpFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> std::io::Result<()>
    where
        W: ?Sized + std::io::Write,
    {
        let mut buf = [0u16; 2];
        for c in fragment.chars() {
            if c == '/' {
                writer.write_all(b"\\/")?;
            } else if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut buf) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn postgresql() -> Value {
        // The reference's example, as the platform sends it.
        json!({"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,
               "ip":"169.254.38.66",
               "hostname":"zydalrxgkhif2czr3xqth3qkbm.postgresql12.service._.eu-3.platformsh.site",
               "port":5432,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"postgresql.internal",
               "rel":"postgresql","path":"main","query":{"is_master":true},"password":"main",
               "type":"postgresql:12","public":false,"host_mapped":false})
    }

    fn redis() -> Value {
        json!({"username":null,"scheme":"redis","service":"cache","fragment":null,
               "ip":"169.254.129.57","hostname":"k3xj2.cache.service._.eu-3.platformsh.site",
               "port":6379,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"cache.internal",
               "rel":"redis","path":null,"query":[],"password":null,"type":"redis:7.0",
               "public":false,"host_mapped":false})
    }

    fn elasticsearch() -> Value {
        json!({"username":null,"scheme":"http","service":"search","fragment":null,
               "ip":"169.254.77.3","hostname":"q2v.search.service._.eu-3.platformsh.site",
               "port":9200,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"search.internal",
               "rel":"elasticsearch","path":null,"query":[],"password":null,
               "type":"elasticsearch:7.10","public":false,"host_mapped":false,
               "instance_ips":["169.254.77.3"]})
    }

    /// A database with a primary and a replica.
    fn replicated() -> Value {
        let mut replica = postgresql();
        replica["host"] = json!("replica.postgresql.internal");
        replica["ip"] = json!("169.254.38.67");
        replica["query"] = json!({"is_master": false});
        json!([postgresql(), replica])
    }

    fn app() -> Value {
        json!({"database": replicated(), "cache": [redis()], "search": [elasticsearch()]})
    }

    fn encoded(v: &Value) -> String {
        BASE64.encode(v.to_string())
    }

    fn decode_value(v: &Value) -> Relationships {
        match Relationships::decode(encoded(v)) {
            Ok(r) => r,
            Err(e) => unreachable!("{e}"),
        }
    }

    fn endpoint_url(endpoint: Value) -> String {
        let r = decode_value(&json!({ "x": [endpoint] }));
        let e = r.endpoint(&EndpointId::new("x", 0)).cloned();
        e.map(|e| e.url().expose().clone())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    fn problem_of(endpoint: Value) -> String {
        let r = decode_value(&json!({ "database": [endpoint], "cache": [redis()] }));
        // The other relationship is unaffected.
        assert_eq!(r.get("cache").map(|c| c.endpoints().len()), Ok(1));
        assert_eq!(r.endpoints().count(), 1);
        let problems: Vec<_> = r.problems().cloned().collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems[0].to_string()
    }

    fn port(n: u16) -> LocalPort {
        LocalPort::new(n).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn the_reference_postgresql_endpoint_decodes_with_every_field_kept() {
        let r = decode_value(&json!({ "database": [postgresql()] }));
        assert_eq!(r.problems().count(), 0);
        let e = r.endpoint(&EndpointId::parse("database")).unwrap();
        assert_eq!(e.relationship(), "database");
        assert_eq!(e.index(), 0);
        assert_eq!(e.host(), "postgresql.internal");
        assert_eq!(e.port().get(), 5432);
        assert_eq!(e.scheme(), Some("pgsql"));
        assert_eq!(e.service(), Some("postgresql12"));
        assert_eq!(e.service_type(), Some("postgresql:12"));
        assert_eq!(e.username(), Some("main"));
        assert_eq!(Value::Object(e.fields().clone()), postgresql());
        assert_eq!(
            e.url().expose(),
            "postgresql://main:main@postgresql.internal:5432/main"
        );
        assert_eq!(
            e.local_url(port(30000)).expose(),
            "postgresql://main:main@127.0.0.1:30000/main"
        );
    }

    #[test]
    fn a_whole_app_decodes_in_the_platforms_order_with_indexes() {
        let r = decode_value(&app());
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            ["database", "cache", "search"]
        );
        let ids: Vec<String> = r.endpoints().map(|e| e.id().to_string()).collect();
        assert_eq!(ids, ["database", "database.1", "cache", "search"]);
        let replica = r.endpoint(&EndpointId::parse("database.1")).unwrap();
        assert_eq!(replica.host(), "replica.postgresql.internal");
        assert_eq!(replica.index(), 1);
        assert_eq!(
            r.get("cache").unwrap().endpoints()[0].url().expose(),
            "redis://cache.internal:6379"
        );
        assert_eq!(
            r.get("search").unwrap().endpoints()[0].url().expose(),
            "http://search.internal:9200"
        );
        assert_eq!(
            replica.url().expose(),
            "postgresql://main:main@replica.postgresql.internal:5432/main"
        );
    }

    #[test]
    fn urls_follow_the_official_client() {
        let base = json!({"host": "h.internal", "port": 8080});
        let with = |extra: Value| {
            let mut v = base.clone();
            if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
                v.extend(extra);
            }
            endpoint_url(v)
        };
        // No scheme at all: a scheme-relative URL, as Guzzle builds it.
        assert_eq!(with(json!({})), "//h.internal:8080");
        // Default ports are left out for http, https and ftp only.
        assert_eq!(
            with(json!({"scheme": "http", "port": 80})),
            "http://h.internal"
        );
        assert_eq!(
            with(json!({"scheme": "https", "port": 443})),
            "https://h.internal"
        );
        assert_eq!(
            with(json!({"scheme": "redis", "port": 80})),
            "redis://h.internal:80"
        );
        // Solr is http, and a core directly under /solr becomes /solr/.
        assert_eq!(
            with(json!({"scheme": "solr", "path": "solr/maincore"})),
            "http://h.internal:8080/solr/maincore"
        );
        assert_eq!(
            with(json!({"scheme": "solr", "path": "/solr/maincore"})),
            "http://h.internal:8080/solr/"
        );
        assert_eq!(
            with(json!({"scheme": "solr", "port": 80, "path": "/solr/a/"})),
            "http://h.internal/solr/"
        );
        // mysql keeps its scheme; user without password; empty path left out.
        assert_eq!(
            with(json!({"scheme": "mysql", "username": "user", "path": ""})),
            "mysql://user@h.internal:8080"
        );
        // A password without a user is still written (psr7's `Uri::applyParts` appends it).
        assert_eq!(
            with(json!({"scheme": "mysql", "password": "secret"})),
            "mysql://:secret@h.internal:8080"
        );
        // Scheme and host are lowercased, as psr7 does.
        assert_eq!(
            with(json!({"scheme": "Redis", "host": "H.Internal"})),
            "redis://h.internal:8080"
        );
        // psr7's default ports beyond http(s).
        assert_eq!(
            with(json!({"scheme": "ldap", "port": 389})),
            "ldap://h.internal"
        );
        // is_master is dropped; other entries are kept in order, as psr7's `Query::build`
        // writes them: RFC 3986, booleans as 1 and 0, a list's key repeated.
        assert_eq!(
            with(json!({"scheme": "pgsql", "query": {"is_master": true}})),
            "postgresql://h.internal:8080"
        );
        assert_eq!(
            with(json!({"scheme": "mongodb", "path": "main",
                        "query": {"is_master": false, "authSource": "admin", "n": null,
                                  "ssl": true, "off": false, "w": 2, "r": 1.0,
                                  "tags": {"dc": "eu 1"}, "hosts": ["a", "b"]}})),
            "mongodb://h.internal:8080/main?authSource=admin&n&ssl=1&off=0&w=2&r=1\
             &tags=eu%201&hosts=a&hosts=b"
        );
        // A query given as a string is used as it is.
        assert_eq!(
            with(json!({"scheme": "amqp", "query": "heartbeat=30&x=%20"})),
            "amqp://h.internal:8080?heartbeat=30&x=%20"
        );
        // A list query is PHP's array with integer keys.
        assert_eq!(
            with(json!({"scheme": "x", "query": ["a"]})),
            "x://h.internal:8080?0=a"
        );
        // A fragment is written when not empty (psr7 `Uri::composeComponents`).
        assert_eq!(
            with(json!({"scheme": "x", "fragment": "top"})),
            "x://h.internal:8080#top"
        );
        assert_eq!(
            with(json!({"scheme": "x", "fragment": ""})),
            "x://h.internal:8080"
        );
    }

    #[test]
    fn url_parts_that_would_change_the_urls_meaning_are_percent_encoded() {
        // As psr7's `Uri` filters each part: a lone '%' is encoded, '%41' kept.
        assert_eq!(
            endpoint_url(
                json!({"scheme": "pgsql", "host": "db.internal", "port": 5432,
                                "username": "a:b@c", "password": "p@ss/w:rd#%",
                                "path": "my db?", "fragment": "a b"})
            ),
            "postgresql://a%3Ab%40c:p%40ss%2Fw%3Ard%23%25@db.internal:5432/my%20db%3F#a%20b"
        );
        assert_eq!(
            endpoint_url(json!({"scheme": "x", "host": "h", "port": 1, "password": "%41%zz"})),
            "x://:%41%25zz@h:1"
        );
        // Sub-delimiters are allowed in user info and stay as they are.
        assert_eq!(
            endpoint_url(json!({"scheme": "x", "host": "h", "port": 1,
                                "username": "u!$&'()*+,;=", "password": "-._~"})),
            "x://u!$&'()*+,;=:-._~@h:1"
        );
        // IPv6 addresses are bracketed.
        assert_eq!(
            endpoint_url(json!({"scheme": "redis", "host": "fd00::1", "port": 6379})),
            "redis://[fd00::1]:6379"
        );
    }

    #[test]
    fn values_that_are_not_base64_json_or_an_object_fail_as_a_whole() {
        let err = |v: &[u8]| Relationships::decode(v).map(|_| ()).unwrap_err();
        let e = err(b"not base64!");
        assert!(matches!(e, RelationshipsError::NotBase64(_)), "{e:?}");
        assert!(e.to_string().contains("not valid base64"), "{e}");
        assert!(
            !e.to_string().contains("not base64!"),
            "the value is not echoed: {e}"
        );

        let e = err(BASE64.encode("{\"database\": [").as_bytes());
        assert!(matches!(e, RelationshipsError::NotJson(_)), "{e:?}");
        assert!(e.to_string().contains("not valid JSON"), "{e}");

        let e = err(BASE64.encode([0xff, 0xfe, b'{']).as_bytes());
        assert!(matches!(e, RelationshipsError::NotJson(_)), "{e:?}");

        for (json, found) in [
            ("\"text\"", "a string"),
            ("42", "a number"),
            ("null", "null"),
            ("true", "a boolean"),
            ("[1]", "a list"),
        ] {
            let e = err(BASE64.encode(json).as_bytes());
            assert_eq!(e, RelationshipsError::NotAnObject { found }, "{json}");
            assert!(e
                .to_string()
                .contains(&format!("are {found}, not an object")));
        }
    }

    #[test]
    fn empty_values_mean_no_relationships_and_whitespace_and_padding_do_not_matter() {
        for value in ["", "  \n", "e30=", "e30", "e30=\n", "W10=", " W10=\r\n"] {
            let r = Relationships::decode(value).unwrap();
            assert!(r.is_empty(), "{value:?}");
        }
        let e = Relationships::decode("e30=")
            .unwrap()
            .get("database")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "relationship \"database\" not found: this app has no relationships"
        );
    }

    #[test]
    fn each_bad_endpoint_is_named_and_the_others_are_unaffected() {
        let with = |key: &str, value: Value| {
            let mut e = postgresql();
            e[key] = value;
            e
        };
        let without = |key: &str| {
            let mut e = postgresql();
            if let Value::Object(o) = &mut e {
                o.remove(key);
            }
            e
        };
        let tail = "; the platform sent something unexpected for this service, so it cannot be \
                    tunnelled: check the service in the app's configuration and redeploy";
        let cases = [
            (
                without("host"),
                "relationship database: the endpoint has no \"host\"",
            ),
            (
                with("host", Value::Null),
                "relationship database: the endpoint has no \"host\"",
            ),
            (
                without("port"),
                "relationship database: the endpoint has no \"port\"",
            ),
            (
                with("host", json!(12)),
                "relationship database: \"host\" is a number, expected a string",
            ),
            (
                with("port", json!("54x")),
                "relationship database: \"port\" \"54x\" is not a port number",
            ),
            (
                with("port", json!("")),
                "relationship database: \"port\" \"\" is not a port number",
            ),
            (
                with("port", json!("99999")),
                "relationship database: \"port\" 99999 is out of range (1 to 65535)",
            ),
            (
                with("port", json!(5432.5)),
                "relationship database: \"port\" is a number with a fraction, expected an integer",
            ),
            (
                with("host", json!("")),
                "relationship database: \"host\" is empty",
            ),
            (
                with("host", json!("db internal")),
                "relationship database: \"host\" \"db internal\" is not a host name or address \
                 (it contains whitespace, a control character or one of / @ ? #)",
            ),
            (
                with("port", json!(0)),
                "relationship database: \"port\" 0 is out of range (1 to 65535)",
            ),
            (
                with("port", json!(65536)),
                "relationship database: \"port\" 65536 is out of range (1 to 65535)",
            ),
            (
                with("port", json!(-1)),
                "relationship database: \"port\" -1 is out of range (1 to 65535)",
            ),
            (
                with("scheme", json!(["pgsql"])),
                "relationship database: \"scheme\" is a list, expected a string or null",
            ),
            (
                with("password", json!(1234)),
                "relationship database: \"password\" is a number, expected a string or null",
            ),
            (
                with("query", json!(true)),
                "relationship database: \"query\" is a boolean, expected an object, a list, a \
                 string or null",
            ),
            (
                json!("postgresql.internal:5432"),
                "relationship database: the endpoint is a string, not an object",
            ),
        ];
        for (endpoint, message) in cases {
            assert_eq!(problem_of(endpoint), format!("{message}{tail}"));
        }
        // Control characters are shown escaped, never written to a terminal as they are.
        for host in [
            "db\n.internal",
            "db\t",
            "\u{1b}[31mdb",
            "db/x",
            "user@db",
            "mongodb://a,b",
        ] {
            let p = problem_of(with("host", json!(host)));
            assert!(p.contains(&format!("{host:?}")), "{p}");
            assert!(!p.contains('\n') && !p.contains('\u{1b}'), "{p}");
        }
        // The largest port is fine.
        assert_eq!(
            endpoint_url(with("port", json!(65535))),
            "postgresql://main:main@postgresql.internal:65535/main"
        );
    }

    #[test]
    fn a_broken_endpoint_keeps_its_index_and_is_the_answer_when_asked_for() {
        let mut broken = postgresql();
        broken["port"] = json!(0);
        let mut replica = postgresql();
        replica["host"] = json!("replica.internal");
        let r = decode_value(&json!({
            "database": [broken, replica],
            "cache": "redis.internal",
            "search": [elasticsearch()],
        }));
        let ids: Vec<String> = r.endpoints().map(|e| e.id().to_string()).collect();
        assert_eq!(ids, ["database.1", "search"]);
        let problems: Vec<(String, Option<usize>)> = r
            .problems()
            .map(|p| (p.relationship.clone(), p.index))
            .collect();
        assert_eq!(
            problems,
            [
                ("database".to_string(), Some(0)),
                ("cache".to_string(), None)
            ]
        );
        let e = r.endpoint(&EndpointId::parse("database")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("relationship database: \"port\" 0 is out of range"),
            "{e}"
        );
        let e = r.endpoint(&EndpointId::parse("cache")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("relationship \"cache\": it is a string, not a list of endpoints"),
            "{e}"
        );
        // Tunnels to the good endpoints are exported as usual.
        let ports = BTreeMap::from([
            (EndpointId::parse("database.1"), port(30001)),
            (EndpointId::parse("search"), port(30002)),
        ]);
        let local = r.local(&ports).unwrap();
        // database.1 keeps its index: {"database": {"1": {…}}}.
        assert_eq!(local.property("database.1.host").unwrap(), "127.0.0.1");
        assert_eq!(local.property("database.1.port").unwrap(), 30001);
        assert!(local.property("database.0").is_err());
        // Asking to export a broken one says why it cannot be.
        let ports = BTreeMap::from([(EndpointId::parse("database"), port(30000))]);
        assert!(matches!(
            r.local(&ports),
            Err(RelationshipsError::Endpoint(EndpointError {
                index: Some(0),
                ..
            }))
        ));
    }

    #[test]
    fn relationship_names_with_a_dot_or_a_control_character_are_refused_alone() {
        let r = decode_value(&json!({
            "db.1": [postgresql()],
            "db": [postgresql()],
            "cache\u{1b}[2J": [redis()],
            "": [redis()],
        }));
        // Only `db` can be tunnelled, and `db.1` is no longer a name that could shadow it.
        let ids: Vec<String> = r.endpoints().map(|e| e.id().to_string()).collect();
        assert_eq!(ids, ["db"]);
        let faults: Vec<(String, EndpointProblem)> = r
            .problems()
            .map(|p| (p.relationship.clone(), p.problem.clone()))
            .collect();
        assert_eq!(
            faults,
            [
                ("db.1".to_string(), EndpointProblem::BadName(NameFault::Dot)),
                (
                    "cache\u{1b}[2J".to_string(),
                    EndpointProblem::BadName(NameFault::Control)
                ),
                (String::new(), EndpointProblem::BadName(NameFault::Empty)),
            ]
        );
        let e = r.get("cache\u{1b}[2J").unwrap().endpoint(0).unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        assert!(e.to_string().contains("control character"), "{e}");
        // `db.1` is endpoint 1 of `db`, which has none.
        assert!(matches!(
            r.endpoint(&EndpointId::parse("db.1")),
            Err(RelationshipsError::UnknownEndpoint { index: 1, .. })
        ));
        // Listing the names does not print the escape either.
        let e = r.get("nosuch").unwrap_err().to_string();
        assert!(
            !e.contains('\u{1b}') && e.contains("cache\\u{1b}[2J"),
            "{e}"
        );
    }

    #[test]
    fn a_tunnel_bound_beyond_loopback_exports_its_address_and_a_wildcard_exports_loopback() {
        let r = decode_value(&json!({ "database": [postgresql()] }));
        let e = r.endpoints().next().unwrap();
        let lan: IpAddr = "192.168.1.7".parse().unwrap();
        let fields = e.local_fields_at(lan, port(30000));
        assert_eq!(fields["host"], "192.168.1.7");
        assert_eq!(fields["ip"], "192.168.1.7");
        assert!(
            fields["url"]
                .as_str()
                .unwrap()
                .contains("@192.168.1.7:30000/"),
            "{}",
            fields["url"]
        );
        assert!(e
            .local_url_at(lan, port(30000))
            .expose()
            .contains("@192.168.1.7:30000/"));
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(e.local_fields_at(any, port(30000))["host"], "127.0.0.1");
        assert!(e
            .local_url_at(any, port(30000))
            .expose()
            .contains("@127.0.0.1:30000/"));
        let any6: IpAddr = "::".parse().unwrap();
        assert!(e
            .local_url_at(any6, port(30000))
            .expose()
            .contains("@[::1]:30000/"));
        // Loopback as before.
        assert_eq!(
            e.local_fields(port(30000)),
            e.local_fields_at(LOOPBACK, port(30000))
        );
    }

    #[test]
    fn a_mongodb_replica_set_uri_in_host_becomes_its_first_host_as_the_official_client_does() {
        let uri = "mongodb://main:secret@mongo1.internal,mongo2.internal:27017/main?replicaSet=rs0";
        let endpoint = json!({"scheme": "mongodb", "host": uri, "port": 27017,
                              "username": "main", "password": "secret", "path": "main",
                              "query": {"is_master": true}, "rel": "mongodb"});
        let r = decode_value(&json!({ "mongo": [endpoint] }));
        let e = r.endpoint(&EndpointId::parse("mongo")).unwrap();
        assert_eq!((e.host(), e.port().get()), ("mongo1.internal", 27017));
        assert_eq!(e.fields()["url"], uri);
        assert_eq!(e.fields()["rel"], "mongodb");
        assert_eq!(
            e.url().expose(),
            "mongodb://main:secret@mongo1.internal:27017/main"
        );
        // The port comes from the URI when the endpoint has none.
        let r = decode_value(&json!({ "mongo": [{"scheme": "mongodb",
            "host": "mongodb://a.internal:27018,b.internal:27018/db"}] }));
        let e = r.endpoint(&EndpointId::parse("mongo")).unwrap();
        assert_eq!((e.host(), e.port().get()), ("a.internal", 27018));
        // Other schemes get no such rewrite: a URI is not a host.
        let p = problem_of(json!({"scheme": "redis", "host": "mongodb://a,b/x", "port": 1}));
        assert!(p.contains("is not a host name or address"), "{p}");
    }

    #[test]
    fn unknown_relationships_and_indexes_list_what_there_is() {
        let r = decode_value(&app());
        let e = r.endpoint(&EndpointId::parse("databse")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "relationship \"databse\" not found; this app's relationships are: database, cache, search"
        );
        assert_eq!(e.problem(), Problem::Usage);
        let e = r.endpoint(&EndpointId::parse("database.2")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "relationship \"database\" has 2 endpoints, so there is no endpoint 2; use an index from 0 to 1"
        );
        let e = r.endpoint(&EndpointId::parse("cache.1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "relationship \"cache\" has one endpoint, so there is no endpoint 1; use 0"
        );
        let empty = decode_value(&json!({"none": []}));
        let e = empty.endpoint(&EndpointId::parse("none")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "relationship \"none\" has no endpoints, so there is no endpoint 0"
        );
        let ports = BTreeMap::from([(EndpointId::parse("nope"), port(30000))]);
        assert!(matches!(
            r.local(&ports),
            Err(RelationshipsError::UnknownRelationship { .. })
        ));
    }

    #[test]
    fn the_export_rewrites_host_ip_and_port_adds_the_url_and_keeps_the_rest() {
        let r = decode_value(&app());
        let ports = BTreeMap::from([
            (EndpointId::parse("database"), port(30000)),
            (EndpointId::parse("database.1"), port(30001)),
            (EndpointId::parse("cache"), port(30002)),
        ]);
        let local = r.local(&ports).unwrap();
        let mut primary = postgresql();
        primary["host"] = json!("127.0.0.1");
        primary["ip"] = json!("127.0.0.1");
        primary["port"] = json!(30000);
        primary["_relationship_name"] = json!("database");
        primary["_relationship_key"] = json!(0);
        primary["url"] = json!("postgresql://main:main@127.0.0.1:30000/main");
        let mut replica = replicated()[1].clone();
        replica["host"] = json!("127.0.0.1");
        replica["ip"] = json!("127.0.0.1");
        replica["port"] = json!(30001);
        replica["_relationship_name"] = json!("database");
        replica["_relationship_key"] = json!(1);
        replica["url"] = json!("postgresql://main:main@127.0.0.1:30001/main");
        let mut cache = redis();
        cache["host"] = json!("127.0.0.1");
        cache["ip"] = json!("127.0.0.1");
        cache["port"] = json!(30002);
        cache["_relationship_name"] = json!("cache");
        cache["_relationship_key"] = json!(0);
        cache["url"] = json!("redis://127.0.0.1:30002");
        // Only tunnelled endpoints are exported: no "search".
        assert_eq!(
            local.as_json(),
            &json!({"database": [primary, replica], "cache": [cache]})
        );

        // The encoded value is what a program reading PLATFORM_RELATIONSHIPS decodes.
        let encoded = local.encode();
        assert!(!encoded.expose().contains('\n'));
        let back = Relationships::decode(encoded.expose()).unwrap();
        let e = back.endpoint(&EndpointId::parse("database.1")).unwrap();
        assert_eq!((e.host(), e.port().get()), ("127.0.0.1", 30001));
        assert_eq!(
            e.url().expose(),
            "postgresql://main:main@127.0.0.1:30001/main"
        );
    }

    /// The platform's endpoints for the official-client cases, as JSON text in the
    /// platform's key order (the reference's PostgreSQL example, a replica, a cache whose
    /// port is a string and whose query is an empty object).
    const OFFICIAL_APP: &str = r#"{"database":[{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"169.254.38.66","hostname":"zydalrx.postgresql12.service._.eu-3.platformsh.site","port":5432,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"postgresql.internal","rel":"postgresql","path":"main","query":{"is_master":true},"password":"main","type":"postgresql:12","public":false,"host_mapped":false},{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"169.254.38.67","hostname":"r2.postgresql12.service._.eu-3.platformsh.site","port":5432,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"replica.postgresql.internal","rel":"postgresql","path":"main","query":{"is_master":false},"password":"main","type":"postgresql:12","public":false,"host_mapped":false}],"cache":[{"username":null,"scheme":"redis","service":"cache","fragment":null,"ip":"169.254.129.57","hostname":"k3xj2.cache.service._.eu-3.platformsh.site","port":"6379","cluster":"rjify4yjcwxaa-master-7rqtwti","host":"cache.internal","rel":"redis","path":null,"query":{},"password":null,"type":"redis:7.0","public":false,"host_mapped":false}]}"#;

    fn official_export(tunnels: &[(&str, u16)]) -> String {
        let r = match Relationships::decode(BASE64.encode(OFFICIAL_APP)) {
            Ok(r) => r,
            Err(e) => unreachable!("{e}"),
        };
        let endpoints = tunnels.iter().map(|(id, p)| {
            let e = r.endpoint(&EndpointId::parse(id)).unwrap();
            (e.id().clone(), e.local_fields(port(*p)))
        });
        let local = LocalRelationships::from_endpoints(endpoints);
        let text = local.php_json();
        // The encoded value is that text, byte for byte.
        assert_eq!(
            BASE64.decode(local.encode().expose()).unwrap(),
            text.as_bytes()
        );
        text
    }

    // The expected objects below follow from the official client's source:
    // TunnelOpenCommand::execute (legacy/src/Command/Tunnel/TunnelOpenCommand.php) appends
    // `_relationship_name` and `_relationship_key` (the integer index) to each endpoint;
    // TunnelInfoCommand::execute (legacy/src/Command/Tunnel/TunnelInfoCommand.php) replaces
    // `host`, `ip` and `port` in place (array_merge over array_intersect_key: only keys already
    // there), appends `url` from Relationships::buildUrl (legacy/src/Service/Relationships.php:
    // pgsql → postgresql, is_master dropped from the query, psr7 Uri::fromParts), and stores
    // it at `$relationships[name][index]`; json_encode writes that PHP array as a list when
    // its keys are 0, 1, … and as an object otherwise, escapes `/`, and writes the empty
    // `query` (an empty PHP array after json_decode) as `[]`.

    #[test]
    fn encode_one_relationship_as_the_official_client() {
        assert_eq!(
            official_export(&[("cache", 30000)]),
            r#"{"cache":[{"username":null,"scheme":"redis","service":"cache","fragment":null,"ip":"127.0.0.1","hostname":"k3xj2.cache.service._.eu-3.platformsh.site","port":30000,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"127.0.0.1","rel":"redis","path":null,"query":[],"password":null,"type":"redis:7.0","public":false,"host_mapped":false,"_relationship_name":"cache","_relationship_key":0,"url":"redis:\/\/127.0.0.1:30000"}]}"#
        );
    }

    #[test]
    fn encode_only_the_second_endpoint_keeps_its_index_as_the_official_client() {
        assert_eq!(
            official_export(&[("database.1", 30001)]),
            r#"{"database":{"1":{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"127.0.0.1","hostname":"r2.postgresql12.service._.eu-3.platformsh.site","port":30001,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"127.0.0.1","rel":"postgresql","path":"main","query":{"is_master":false},"password":"main","type":"postgresql:12","public":false,"host_mapped":false,"_relationship_name":"database","_relationship_key":1,"url":"postgresql:\/\/main:main@127.0.0.1:30001\/main"}}}"#
        );
    }

    #[test]
    fn encode_a_pgsql_endpoint_with_is_master_as_the_official_client() {
        assert_eq!(
            official_export(&[("database", 30002)]),
            r#"{"database":[{"username":"main","scheme":"pgsql","service":"postgresql12","fragment":null,"ip":"127.0.0.1","hostname":"zydalrx.postgresql12.service._.eu-3.platformsh.site","port":30002,"cluster":"rjify4yjcwxaa-master-7rqtwti","host":"127.0.0.1","rel":"postgresql","path":"main","query":{"is_master":true},"password":"main","type":"postgresql:12","public":false,"host_mapped":false,"_relationship_name":"database","_relationship_key":0,"url":"postgresql:\/\/main:main@127.0.0.1:30002\/main"}]}"#
        );
    }

    #[test]
    fn encode_keeps_the_order_tunnels_were_opened_in_and_lists_whole_relationships() {
        // Opened cache first, then database.1, then database.0: PHP keeps insertion order,
        // so "database" is {"1":…,"0":…}, an object.
        let text = official_export(&[("cache", 30000), ("database.1", 30001), ("database", 30002)]);
        let value: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["cache", "database"]);
        let db: Vec<&String> = value["database"].as_object().unwrap().keys().collect();
        assert_eq!(db, ["1", "0"]);
        // In index order it is a list again.
        let text = official_export(&[("database", 30002), ("database.1", 30001)]);
        assert!(text.starts_with(r#"{"database":[{"#), "{text}");
        // Non-ASCII is written as PHP writes it.
        let local = LocalRelationships::from_endpoints([(
            EndpointId::new("x", 0),
            Map::from_iter([("name".to_string(), json!("é/😀"))]),
        )]);
        assert_eq!(
            local.php_json(),
            r#"{"x":[{"name":"\u00e9\/\ud83d\ude00"}]}"#
        );
        // What the export says reads back with the same indexes.
        let back = Relationships::decode(BASE64.encode(official_export(&[("database.1", 30001)])))
            .unwrap();
        assert_eq!(
            back.endpoint(&EndpointId::parse("database.1"))
                .unwrap()
                .port()
                .get(),
            30001
        );
    }

    #[test]
    fn a_port_sent_as_a_string_is_cast_as_the_official_client_casts_it() {
        let r = Relationships::decode(BASE64.encode(OFFICIAL_APP)).unwrap();
        let cache = r.endpoint(&EndpointId::parse("cache")).unwrap();
        assert_eq!(cache.port().get(), 6379);
        assert_eq!(cache.url().expose(), "redis://cache.internal:6379");
    }

    #[test]
    fn the_export_adds_no_ip_where_there_was_none_and_replaces_an_old_url() {
        let mut endpoint = redis();
        if let Value::Object(o) = &mut endpoint {
            o.remove("ip");
        }
        endpoint["url"] = json!("redis://cache.internal:6379");
        let r = decode_value(&json!({ "cache": [endpoint] }));
        let local = r
            .local(&BTreeMap::from([(EndpointId::parse("cache"), port(31000))]))
            .unwrap();
        let cache = local.property("cache.0").unwrap();
        assert!(cache.get("ip").is_none());
        assert_eq!(cache["url"], "redis://127.0.0.1:31000");
    }

    #[test]
    fn properties_are_found_by_dot_path_or_named_when_missing() {
        let r = decode_value(&app());
        let ports = BTreeMap::from([
            (EndpointId::parse("database"), port(30000)),
            (EndpointId::parse("database.1"), port(30001)),
        ]);
        let local = r.local(&ports).unwrap();
        assert_eq!(local.property("database.0.port").unwrap(), 30000);
        assert_eq!(local.property("database.1.port").unwrap(), 30001);
        assert_eq!(local.property("database.0.query.is_master").unwrap(), true);
        assert_eq!(local.property("database.0.fragment").unwrap(), &Value::Null);
        assert_eq!(
            local.property("database.1.url").unwrap(),
            "postgresql://main:main@127.0.0.1:30001/main"
        );
        assert_eq!(
            local.property("database").unwrap().as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(local.property("").unwrap(), local.as_json());
        for missing in [
            "cache",
            "database.2",
            "database.x",
            "database.+0",
            "database.0.nope",
            "database.0.port.x",
            "database..port",
        ] {
            let e = local.property(missing).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "property not found: {missing:?}; use a dot path such as \"database.0.port\" \
                     (relationship, endpoint index, field)"
                )
            );
            assert_eq!(e.problem(), Problem::Usage);
        }
    }

    #[test]
    fn endpoint_ids_read_and_print_like_the_official_clients() {
        for (text, name, index, shown) in [
            ("database", "database", 0, "database"),
            ("database.0", "database", 0, "database"),
            ("database.1", "database", 1, "database.1"),
            ("a.b", "a.b", 0, "a.b"),
            ("a.b.2", "a.b", 2, "a.b.2"),
            (".1", ".1", 0, ".1"),
            (
                "x.99999999999999999999999",
                "x.99999999999999999999999",
                0,
                "x.99999999999999999999999",
            ),
        ] {
            let id = EndpointId::parse(text);
            assert_eq!((id.relationship(), id.index()), (name, index), "{text}");
            assert_eq!(id.to_string(), shown);
        }
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let r = decode_value(&json!({ "database": [json!({"host": "h", "port": 1,
            "username": "u", "password": "hunter2"})] }));
        assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
        let local = r
            .local(&BTreeMap::from([(
                EndpointId::parse("database"),
                port(30000),
            )]))
            .unwrap();
        assert!(!format!("{local:?}").contains("hunter2"), "{local:?}");
        assert_eq!(format!("{:?}", local.encode()), "<redacted>");
        let e = r.endpoint(&EndpointId::parse("database")).unwrap();
        assert_eq!(format!("{:?}", e.url()), "<redacted>");
    }

    #[test]
    fn platform_faults_are_other_and_requests_are_usage() {
        assert_eq!(
            RelationshipsError::NotBase64(String::new()).problem(),
            Problem::Other
        );
        let e = RelationshipsError::Endpoint(EndpointError {
            relationship: "x".into(),
            index: Some(0),
            problem: EndpointProblem::EmptyHost,
        });
        assert_eq!(e.problem(), Problem::Other);
    }

    /// Any JSON value, with keys drawn partly from the endpoint's own so that the decoder's
    /// checks are reached, not only its first rejection.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Floats that print and parse back exactly.
            any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
            (0u32..70000).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ]
        .boxed();
        let key = prop_oneof![
            1 => Just("host".to_string()),
            1 => Just("port".to_string()),
            1 => Just("scheme".to_string()),
            1 => Just("query".to_string()),
            1 => Just("path".to_string()),
            1 => Just("username".to_string()),
            1 => Just("password".to_string()),
            1 => Just("fragment".to_string()),
            1 => Just("is_master".to_string()),
            20 => ".{0,8}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects that usually have a host and a port, often good ones, and arbitrary other
    /// fields, so that whole endpoints decode and the URL and export code runs on them.
    fn endpointish() -> impl Strategy<Value = Value> {
        let host = prop_oneof![
            3 => "[a-z0-9.-]{1,12}".prop_map(Value::from),
            1 => any_json(),
        ];
        let port = prop_oneof![
            3 => (-2i64..70000).prop_map(Value::from),
            1 => any_json(),
        ];
        let key = prop_oneof![
            1 => Just("scheme".to_string()),
            1 => Just("query".to_string()),
            1 => Just("path".to_string()),
            1 => Just("username".to_string()),
            1 => Just("password".to_string()),
            1 => Just("fragment".to_string()),
            1 => Just("ip".to_string()),
            1 => Just("url".to_string()),
            12 => "[a-z_]{1,8}",
        ];
        (
            prop::collection::btree_map(key, any_json(), 0..6),
            prop::option::weighted(0.9, host),
            prop::option::weighted(0.9, port),
        )
            .prop_map(|(m, host, port)| {
                let mut o: Map<String, Value> = m.into_iter().collect();
                o.extend(host.map(|h| ("host".to_string(), h)));
                o.extend(port.map(|p| ("port".to_string(), p)));
                Value::Object(o)
            })
    }

    /// A valid endpoint with arbitrary extra fields (and arbitrary values of the optional
    /// typed ones).
    fn any_endpoint() -> impl Strategy<Value = Value> {
        let opt_text = prop_oneof![Just(Value::Null), ".{0,10}".prop_map(Value::from)];
        (
            "[a-z0-9.-]{1,20}",
            1u16..=65535,
            prop::option::of(prop_oneof![
                Just(Value::from("pgsql")),
                Just(Value::from("solr")),
                Just(Value::from("http")),
                Just(Value::from("redis")),
                opt_text.clone(),
            ]),
            prop::option::of(opt_text.clone()),
            prop::option::of(opt_text.clone()),
            prop::option::of(opt_text.clone()),
            prop::option::of(opt_text),
            prop::option::of(any_json()),
            prop::option::of("[0-9.]{1,15}"),
            prop::collection::btree_map("[a-z_]{1,10}", any_json(), 0..6),
        )
            .prop_map(
                |(host, port, scheme, user, pass, path, fragment, query, ip, extra)| {
                    let mut o: Map<String, Value> = extra.into_iter().collect();
                    o.insert("host".into(), host.into());
                    o.insert("port".into(), port.into());
                    for (k, v) in [
                        ("scheme", scheme),
                        ("username", user),
                        ("password", pass),
                        ("path", path),
                        ("fragment", fragment),
                    ] {
                        match v {
                            Some(v) => o.insert(k.into(), v),
                            None => o.remove(k),
                        };
                    }
                    match query {
                        Some(
                            q @ (Value::Object(_)
                            | Value::Array(_)
                            | Value::String(_)
                            | Value::Null),
                        ) => o.insert("query".into(), q),
                        _ => o.remove("query"),
                    };
                    match ip {
                        Some(ip) => o.insert("ip".into(), ip.into()),
                        None => o.remove("ip"),
                    };
                    Value::Object(o)
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = Relationships::decode(&bytes);
            // The same bytes behind valid base64 reach the JSON parser.
            let _ = Relationships::decode(BASE64.encode(&bytes));
        }

        #[test]
        fn arbitrary_json_gives_an_error_or_checked_endpoints(
            value in any_json(),
            endpoints in prop::collection::vec(endpointish(), 0..4),
            shape in 0..3,
        ) {
            let value = match shape {
                0 => value,
                1 => json!({ "r": value }),
                _ => json!({ "r": endpoints, "s": value }),
            };
            if let Ok(r) = Relationships::decode(encoded(&value)) {
                let mut ports = BTreeMap::new();
                for (i, e) in r.endpoints().enumerate() {
                    prop_assert!(!e.host().is_empty());
                    prop_assert!(!e.host().chars().any(char::is_whitespace));
                    let _ = e.url();
                    ports.insert(e.id().clone(), port(30000 + (i as u16 % 1000)));
                }
                for p in r.problems() {
                    prop_assert!(p.to_string().starts_with("relationship "));
                }
                let local = r.local(&ports);
                prop_assert!(local.is_ok());
            }
        }

        #[test]
        fn the_export_keeps_every_field_it_does_not_rewrite(
            endpoints in prop::collection::btree_map("[a-z_]{1,10}", prop::collection::vec(any_endpoint(), 1..3), 1..4),
            first_port in 1u16..60000,
        ) {
            let value = Value::Object(endpoints.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect());
            let r = Relationships::decode(encoded(&value)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.problems().count(), 0);
            let ports: BTreeMap<EndpointId, LocalPort> = r
                .endpoints()
                .enumerate()
                .map(|(i, e)| (e.id().clone(), port(first_port + i as u16)))
                .collect();
            let local = r.local(&ports).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = Relationships::decode(local.encode().expose())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back.problems().count(), 0);
            for (id, local_port) in &ports {
                let before = r.endpoint(id).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let after = back.endpoint(id).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for (key, value) in before.fields() {
                    match key.as_str() {
                        "host" | "ip" => prop_assert_eq!(&after.fields()[key], "127.0.0.1"),
                        "port" => prop_assert_eq!(after.port().get(), local_port.get()),
                        "url" => {}
                        // As PHP's json_decode/json_encode round trip leaves it.
                        _ => prop_assert_eq!(&after.fields()[key], &php_array(value.clone()), "field {}", key),
                    }
                }
                // The platform's keys in its order, then the official client's own.
                let mut expected: Vec<&str> = before.fields().keys().map(String::as_str).collect();
                expected.extend(["_relationship_name", "_relationship_key"]);
                if !before.fields().contains_key("url") { expected.push("url"); }
                let got: Vec<&str> = after.fields().keys().map(String::as_str).collect();
                prop_assert_eq!(got, expected);
                let local_url = before.local_url(*local_port);
                prop_assert_eq!(
                    after.fields()["url"].as_str(),
                    Some(local_url.expose().as_str())
                );
            }
        }
    }
}
