//! Human- and machine-readable descriptions of messages: one ordered tree ([`Value`]) per
//! message, rendered as indented text ([`Value::to_text`]) or JSON ([`Value::to_json`]).

use std::fmt::Write as _;
use std::net::IpAddr;

use super::param::hex;
use super::{
    AsapMessage, DecodeError, EnrpMessage, ErrorCause, Message, OperationError, Policy,
    PoolElement, PoolHandle, SctpTransport, ServerInformation, Transport, TransportUse,
    UpdateAction,
};

/// A JSON-like value whose objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, keys in insertion order.
    Object(Vec<(String, Value)>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Self::Int(v.into())
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Self::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Self::Array(v)
    }
}

/// Builds an ordered object.
#[derive(Default)]
pub struct Obj(Vec<(String, Value)>);

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field.
    pub fn set(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.0.push((key.to_owned(), v.into()));
        self
    }

    /// Adds a field if `v` is `Some`.
    pub fn opt(self, key: &str, v: Option<impl Into<Value>>) -> Self {
        match v {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// The finished object.
    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

impl From<Obj> for Value {
    fn from(o: Obj) -> Self {
        o.build()
    }
}

impl Value {
    /// Compact JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }

    fn write_json(&self, s: &mut String) {
        match self {
            Self::Null => s.push_str("null"),
            Self::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Self::Int(i) => {
                let _ = write!(s, "{i}");
            }
            Self::Float(f) if f.is_finite() => {
                let _ = write!(s, "{f}");
            }
            Self::Float(_) => s.push_str("null"),
            Self::Str(t) => json_str(s, t),
            Self::Array(a) => {
                s.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    v.write_json(s);
                }
                s.push(']');
            }
            Self::Object(o) => {
                s.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    json_str(s, k);
                    s.push(':');
                    v.write_json(s);
                }
                s.push('}');
            }
        }
    }

    /// Indented text, one field per line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        match self {
            Self::Object(o) => text_fields(&mut s, o, 0),
            other => {
                s.push_str(&other.scalar_text());
                s.push('\n');
            }
        }
        s
    }

    fn scalar_text(&self) -> String {
        match self {
            Self::Null => "-".into(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => format!("{f:.4}"),
            Self::Str(t) => t.clone(),
            Self::Array(a) if a.is_empty() => "(none)".into(),
            Self::Array(_) | Self::Object(_) => String::new(),
        }
    }
}

fn text_fields(s: &mut String, o: &[(String, Value)], indent: usize) {
    for (k, v) in o {
        let pad = "  ".repeat(indent);
        match v {
            Value::Object(inner) => {
                let _ = writeln!(s, "{pad}{k}:");
                text_fields(s, inner, indent + 1);
            }
            Value::Array(items) if !items.is_empty() => {
                let _ = writeln!(s, "{pad}{k}:");
                for item in items {
                    match item {
                        Value::Object(inner) => {
                            let _ = writeln!(s, "{pad}  -");
                            text_fields(s, inner, indent + 2);
                        }
                        other => {
                            let _ = writeln!(s, "{pad}  - {}", other.scalar_text());
                        }
                    }
                }
            }
            other => {
                let _ = writeln!(s, "{pad}{k}: {}", other.scalar_text());
            }
        }
    }
}

fn json_str(s: &mut String, t: &str) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// Something that can describe itself as a [`Value`].
pub trait Describe {
    /// The description.
    fn describe(&self) -> Value;
}

fn id(v: u32) -> Value {
    Value::Str(format!("{v:#010x}"))
}

impl Describe for PoolHandle {
    /// The handle as text when it is printable ASCII, else as `0x` hex.
    fn describe(&self) -> Value {
        Value::Str(
            self.as_str()
                .map_or_else(|| hex(self.as_bytes()), str::to_owned),
        )
    }
}

impl Describe for IpAddr {
    fn describe(&self) -> Value {
        Value::Str(self.to_string())
    }
}

impl Describe for SctpTransport {
    fn describe(&self) -> Value {
        Obj::new()
            .set("transport", "SCTP")
            .set("port", self.port)
            .set("transport_use", use_name(self.transport_use))
            .set("addresses", addrs(&self.addresses))
            .build()
    }
}

fn use_name(u: TransportUse) -> &'static str {
    match u {
        TransportUse::DataOnly => "data only",
        TransportUse::DataPlusControl => "data plus control",
    }
}

fn addrs(a: &[IpAddr]) -> Value {
    Value::Array(a.iter().map(Describe::describe).collect())
}

impl Describe for Transport {
    fn describe(&self) -> Value {
        match self {
            Self::Sctp(t) => t.describe(),
            Self::Opaque(d) => Obj::new()
                .set("transport", "opaque")
                .set("data", hex(d))
                .build(),
            Self::Dccp {
                port,
                service_code,
                address,
            } => Obj::new()
                .set("transport", "DCCP")
                .set("port", *port)
                .set("service_code", *service_code)
                .set("address", address.to_string())
                .build(),
            Self::Tcp { port, address }
            | Self::Udp { port, address }
            | Self::UdpLite { port, address } => {
                let name = match self {
                    Self::Tcp { .. } => "TCP",
                    Self::Udp { .. } => "UDP",
                    _ => "UDP-Lite",
                };
                Obj::new()
                    .set("transport", name)
                    .set("port", *port)
                    .set("address", address.to_string())
                    .build()
            }
        }
    }
}

/// Names of policy values that are fractions of 0xffffffff.
fn is_fraction(name: &str) -> bool {
    matches!(
        name,
        "load" | "load_degradation" | "load_dpf" | "weight_dpf"
    )
}

impl Describe for Policy {
    fn describe(&self) -> Value {
        let t = self.policy_type();
        let mut o = Obj::new()
            .set("type", format!("{:#010x}", t.0))
            .set("name", t.name().unwrap_or("(unknown)"));
        for (name, v) in self.value_names().iter().zip(self.values().iter()) {
            o = o.set(name, *v);
            if is_fraction(name) {
                o = o.set(
                    &format!("{name}_percent"),
                    Value::Float((super::fraction_to_f64(*v) * 10000.0).round() / 100.0),
                );
            }
        }
        if let Self::Unknown { data, .. } = self {
            o = o.set("data", hex(data));
        }
        o.build()
    }
}

impl Describe for PoolElement {
    fn describe(&self) -> Value {
        Obj::new()
            .set("pe_id", id(self.id.0))
            .set("home_registrar", id(self.home_registrar.0))
            .set("registration_life", self.registration_life)
            .set("user_transport", self.user_transport.describe())
            .set("policy", self.policy.describe())
            .opt(
                "asap_transport",
                self.asap_transport.as_ref().map(Describe::describe),
            )
            .build()
    }
}

impl Describe for ServerInformation {
    fn describe(&self) -> Value {
        Obj::new()
            .set("server_id", id(self.server_id.0))
            .set("transport", self.transport.describe())
            .build()
    }
}

impl Describe for ErrorCause {
    fn describe(&self) -> Value {
        Obj::new()
            .set("code", format!("{:#06x}", self.code.0))
            .set("name", self.code.name().unwrap_or("(unassigned)"))
            .opt("info", (!self.info.is_empty()).then(|| hex(&self.info)))
            .build()
    }
}

impl Describe for OperationError {
    fn describe(&self) -> Value {
        Value::Array(self.causes.iter().map(Describe::describe).collect())
    }
}

fn pes(v: &[PoolElement]) -> Value {
    Value::Array(v.iter().map(Describe::describe).collect())
}

fn header(name: &str, protocol: &str, ty: u8, flags: u8) -> Obj {
    Obj::new()
        .set("protocol", protocol)
        .set("message", name)
        .set("type", format!("{ty:#04x}"))
        .set("flags", format!("{flags:#04x}"))
}

impl Describe for AsapMessage {
    fn describe(&self) -> Value {
        let o = header(self.name(), "asap", self.msg_type(), self.flags());
        let err =
            |o: Obj, e: &Option<OperationError>| o.opt("error", e.as_ref().map(Describe::describe));
        match self {
            Self::Registration(m) => o
                .set("pool_handle", m.pool_handle.describe())
                .set("pool_element", m.pool_element.describe()),
            Self::Deregistration(m) => o
                .set("pool_handle", m.pool_handle.describe())
                .set("pe_id", id(m.pe_id.0)),
            Self::RegistrationResponse(m) => err(
                o.set("reject", m.reject)
                    .set("pool_handle", m.pool_handle.describe())
                    .set("pe_id", id(m.pe_id.0)),
                &m.error,
            ),
            Self::DeregistrationResponse(m) => err(
                o.set("pool_handle", m.pool_handle.describe())
                    .set("pe_id", id(m.pe_id.0)),
                &m.error,
            ),
            Self::HandleResolution(m) => o
                .set("subscribe", m.subscribe)
                .set("pool_handle", m.pool_handle.describe())
                .opt("items", m.items),
            Self::HandleResolutionResponse(m) => err(
                o.set("accept_updates", m.accept_updates)
                    .set("pool_handle", m.pool_handle.describe())
                    .opt("policy", m.policy.as_ref().map(Describe::describe))
                    .set("pool_elements", pes(&m.elements)),
                &m.error,
            ),
            Self::EndpointKeepAlive(m) => o
                .set("home", m.home)
                .set("server_id", id(m.server_id.0))
                .set("pool_handle", m.pool_handle.describe())
                .opt("pe_id", m.pe_id.map(|i| id(i.0))),
            Self::EndpointKeepAliveAck(m) => o
                .set("pool_handle", m.pool_handle.describe())
                .set("pe_id", id(m.pe_id.0)),
            Self::EndpointUnreachable(m) => o
                .set("pool_handle", m.pool_handle.describe())
                .set("pe_id", id(m.pe_id.0)),
            Self::ServerAnnounce(m) => o.set("server_id", id(m.server_id.0)).set(
                "transports",
                Value::Array(m.transports.iter().map(Describe::describe).collect()),
            ),
            Self::Cookie(c) | Self::CookieEcho(c) => o.set("cookie", hex(&c.cookie)),
            Self::BusinessCard(m) => o
                .set("pool_handle", m.pool_handle.describe())
                .opt("policy", m.policy.as_ref().map(Describe::describe))
                .set("pool_elements", pes(&m.elements)),
            Self::Error(m) => o.set("error", m.error.describe()),
        }
        .build()
    }
}

impl Describe for EnrpMessage {
    fn describe(&self) -> Value {
        let ids = self.ids();
        let o = header(self.name(), "enrp", self.msg_type(), self.flags())
            .set("sender", id(ids.sender.0))
            .set("receiver", id(ids.receiver.0));
        match self {
            Self::Presence(m) => o
                .set("reply_required", m.reply_required)
                .opt("pe_checksum", m.checksum.map(|c| format!("{c:#06x}")))
                .opt(
                    "server_information",
                    m.server_info.as_ref().map(Describe::describe),
                ),
            Self::HandleTableRequest(m) => o.set("own_children_only", m.own_children_only),
            Self::HandleTableResponse(m) => o
                .set("more_to_send", m.more_to_send)
                .set("reject", m.reject)
                .set(
                    "pools",
                    Value::Array(
                        m.pools
                            .iter()
                            .map(|e| {
                                Obj::new()
                                    .set("pool_handle", e.pool_handle.describe())
                                    .set("pool_elements", pes(&e.elements))
                                    .build()
                            })
                            .collect(),
                    ),
                ),
            Self::HandleUpdate(m) => o
                .set("takeover_suggested", m.takeover_suggested)
                .set(
                    "action",
                    match m.action {
                        UpdateAction::AddPe => "ADD_PE",
                        UpdateAction::DelPe => "DEL_PE",
                    },
                )
                .set("pool_handle", m.pool_handle.describe())
                .set("pool_element", m.pool_element.describe()),
            Self::ListRequest(_) => o,
            Self::ListResponse(m) => o.set("reject", m.reject).set(
                "servers",
                Value::Array(m.servers.iter().map(Describe::describe).collect()),
            ),
            Self::InitTakeover(m) | Self::InitTakeoverAck(m) | Self::TakeoverServer(m) => {
                o.set("target", id(m.target.0))
            }
            Self::Error(m) => o.set("error", m.error.describe()),
        }
        .build()
    }
}

impl Describe for Message {
    fn describe(&self) -> Value {
        match self {
            Self::Asap(m) => m.describe(),
            Self::Enrp(m) => m.describe(),
        }
    }
}

impl Describe for DecodeError {
    fn describe(&self) -> Value {
        Obj::new()
            .set("error", self.kind.to_string())
            .set("offset", self.offset)
            .set("report", self.report)
            .opt("report_cause", self.error_cause().map(|c| c.describe()))
            .build()
    }
}
