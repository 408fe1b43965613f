//! The parameters of RFC 5354 §3: addresses, transports, pool handle, pool element, server
//! information, operation error, cookie, PE identifier and PE checksum.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::codec::{Ctx, Params, Tlv, Writer, be16, be32, missing, once};
use super::error::{CauseCode, DecodeError, EncodeError};
use super::policy::Policy;

/// A parameter type (RFC 5354 §3, Table 1). The two high bits tell a receiver that does not know
/// the type what to do (RFC 5354 §3): stop or skip, report or not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ParamType(pub u16);

impl ParamType {
    /// 0x1 IPv4 Address.
    pub const IPV4_ADDRESS: Self = Self(0x1);
    /// 0x2 IPv6 Address.
    pub const IPV6_ADDRESS: Self = Self(0x2);
    /// 0x3 DCCP Transport.
    pub const DCCP_TRANSPORT: Self = Self(0x3);
    /// 0x4 SCTP Transport.
    pub const SCTP_TRANSPORT: Self = Self(0x4);
    /// 0x5 TCP Transport.
    pub const TCP_TRANSPORT: Self = Self(0x5);
    /// 0x6 UDP Transport.
    pub const UDP_TRANSPORT: Self = Self(0x6);
    /// 0x7 UDP-Lite Transport.
    pub const UDP_LITE_TRANSPORT: Self = Self(0x7);
    /// 0x8 Pool Member Selection Policy.
    pub const POLICY: Self = Self(0x8);
    /// 0x9 Pool Handle.
    pub const POOL_HANDLE: Self = Self(0x9);
    /// 0xa Pool Element.
    pub const POOL_ELEMENT: Self = Self(0xa);
    /// 0xb Server Information.
    pub const SERVER_INFORMATION: Self = Self(0xb);
    /// 0xc Operation Error.
    pub const OPERATION_ERROR: Self = Self(0xc);
    /// 0xd Cookie.
    pub const COOKIE: Self = Self(0xd);
    /// 0xe PE Identifier.
    pub const PE_IDENTIFIER: Self = Self(0xe);
    /// 0xf PE Checksum.
    pub const PE_CHECKSUM: Self = Self(0xf);
    /// 0x10 Opaque Transport.
    pub const OPAQUE_TRANSPORT: Self = Self(0x10);
    /// 0x803f Handle Resolution option (draft-dreibholz-rserpool-asap-hropt; RSPLIB). Not an RFC
    /// 5354 type: its action bits (10) make receivers that do not know it skip it.
    pub const HANDLE_RESOLUTION_OPTION: Self = Self(0x803f);

    /// Whether RFC 5354 Table 1 defines this type.
    pub fn is_rfc5354(self) -> bool {
        (0x1..=0x10).contains(&self.0)
    }

    /// The parameter's name, for known types.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x1 => "IPv4 Address",
            0x2 => "IPv6 Address",
            0x3 => "DCCP Transport",
            0x4 => "SCTP Transport",
            0x5 => "TCP Transport",
            0x6 => "UDP Transport",
            0x7 => "UDP-Lite Transport",
            0x8 => "Pool Member Selection Policy",
            0x9 => "Pool Handle",
            0xa => "Pool Element",
            0xb => "Server Information",
            0xc => "Operation Error",
            0xd => "Cookie",
            0xe => "PE Identifier",
            0xf => "PE Checksum",
            0x10 => "Opaque Transport",
            0x803f => "Handle Resolution Option",
            _ => return None,
        })
    }

    /// What RFC 5354 §3 tells a receiver that does not know this type to do.
    pub fn unrecognized_action(self) -> UnrecognizedAction {
        match self.0 >> 14 {
            0 => UnrecognizedAction::Stop,
            1 => UnrecognizedAction::StopAndReport,
            2 => UnrecognizedAction::Skip,
            _ => UnrecognizedAction::SkipAndReport,
        }
    }
}

/// The action bits of an unrecognized parameter type (RFC 5354 §3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnrecognizedAction {
    /// 00: stop processing the message, discard it.
    Stop,
    /// 01: stop, discard, and report an Unrecognized Parameter error.
    StopAndReport,
    /// 10: skip the parameter.
    Skip,
    /// 11: skip the parameter and report an Unrecognized Parameter error.
    SkipAndReport,
}

/// A pool element identifier (RFC 5354 §3.14), chosen by the PE; RSPLIB never uses 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PoolElementId(pub u32);

/// A registrar (ENRP server) identifier (RFC 5353 §3.2.1); 0 means "none / unknown".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RegistrarId(pub u32);

impl fmt::Debug for PoolElementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolElementId({:#010x})", self.0)
    }
}
impl fmt::Display for PoolElementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}
impl fmt::Debug for RegistrarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegistrarId({:#010x})", self.0)
    }
}
impl fmt::Display for RegistrarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// The longest pool handle a Pool Handle parameter can carry.
pub const MAX_POOL_HANDLE_LEN: usize = 0xffff - 4;

/// A pool handle (RFC 5354 §3.9): a non-empty byte string naming a pool.
///
/// RFC 5354 allows any bytes; an empty handle names nothing and is refused (as RSPLIB does, with
/// Invalid Values). Registrars may impose a shorter limit (RSPLIB: 32 bytes).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolHandle(Box<[u8]>);

/// A pool handle that is empty or longer than [`MAX_POOL_HANDLE_LEN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a pool handle must have 1 to {MAX_POOL_HANDLE_LEN} bytes, not {0}")]
pub struct InvalidPoolHandle(pub usize);

impl PoolHandle {
    /// A pool handle from bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, InvalidPoolHandle> {
        let v = bytes.into();
        if v.is_empty() || v.len() > MAX_POOL_HANDLE_LEN {
            return Err(InvalidPoolHandle(v.len()));
        }
        Ok(Self(v.into_boxed_slice()))
    }

    /// The handle's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The handle as text when it is printable ASCII.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0)
            .ok()
            .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
    }

    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, DecodeError> {
        if tlv.value().is_empty() {
            return Err(tlv.invalid("Pool Handle", "empty pool handle"));
        }
        Ok(Self(tlv.value().into()))
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.tlv(ParamType::POOL_HANDLE.0, "Pool Handle", |w| {
            w.bytes(&self.0);
            Ok(())
        })
    }
}

impl TryFrom<&str> for PoolHandle {
    type Error = InvalidPoolHandle;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s.as_bytes())
    }
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolHandle({self})")
    }
}

impl fmt::Display for PoolHandle {
    /// Printable ASCII as a quoted string, anything else as hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "\"{s}\""),
            None => f.write_str(&hex(&self.0)),
        }
    }
}

/// Lower-case hex of bytes, prefixed `0x`.
pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// How a PE intends an SCTP transport to be used (RFC 5354 §3.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TransportUse {
    /// 0x0000: data only.
    DataOnly,
    /// 0x0001: data plus control (ASAP session-layer messages share the association).
    DataPlusControl,
}

impl TransportUse {
    fn code(self) -> u16 {
        match self {
            Self::DataOnly => 0,
            Self::DataPlusControl => 1,
        }
    }
}

/// An SCTP Transport parameter (RFC 5354 §3.4): port, transport use and at least one address.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct SctpTransport {
    /// SCTP port.
    pub port: u16,
    /// Data only, or data plus control.
    pub transport_use: TransportUse,
    /// The endpoint's addresses (at least one).
    pub addresses: Vec<IpAddr>,
}

/// A user transport (RFC 5354 §3.3–3.7, §3.16): how pool users reach a PE.
///
/// TCP, UDP, UDP-Lite and DCCP carry exactly one address and are always data-only.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Transport {
    /// SCTP Transport (0x4).
    Sctp(SctpTransport),
    /// TCP Transport (0x5).
    Tcp {
        /// TCP port.
        port: u16,
        /// The address.
        address: IpAddr,
    },
    /// UDP Transport (0x6).
    Udp {
        /// UDP port.
        port: u16,
        /// The address.
        address: IpAddr,
    },
    /// UDP-Lite Transport (0x7).
    UdpLite {
        /// UDP-Lite port.
        port: u16,
        /// The address.
        address: IpAddr,
    },
    /// DCCP Transport (0x3).
    Dccp {
        /// DCCP port.
        port: u16,
        /// DCCP service code.
        service_code: u32,
        /// The address.
        address: IpAddr,
    },
    /// Opaque Transport (0x10): transport data the registrar passes through uninterpreted.
    Opaque(Vec<u8>),
}

impl Transport {
    /// The parameter type this transport is encoded as.
    pub fn param_type(&self) -> ParamType {
        match self {
            Self::Sctp(_) => ParamType::SCTP_TRANSPORT,
            Self::Tcp { .. } => ParamType::TCP_TRANSPORT,
            Self::Udp { .. } => ParamType::UDP_TRANSPORT,
            Self::UdpLite { .. } => ParamType::UDP_LITE_TRANSPORT,
            Self::Dccp { .. } => ParamType::DCCP_TRANSPORT,
            Self::Opaque(_) => ParamType::OPAQUE_TRANSPORT,
        }
    }

    /// The port, where the transport has one.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Sctp(t) => Some(t.port),
            Self::Tcp { port, .. }
            | Self::Udp { port, .. }
            | Self::UdpLite { port, .. }
            | Self::Dccp { port, .. } => Some(*port),
            Self::Opaque(_) => None,
        }
    }

    /// The addresses (empty for opaque transports).
    pub fn addresses(&self) -> &[IpAddr] {
        match self {
            Self::Sctp(t) => &t.addresses,
            Self::Tcp { address, .. }
            | Self::Udp { address, .. }
            | Self::UdpLite { address, .. }
            | Self::Dccp { address, .. } => std::slice::from_ref(address),
            Self::Opaque(_) => &[],
        }
    }

    /// The transport use: SCTP's field; every other transport is data-only (RFC 5354 §3.3–3.7).
    pub fn transport_use(&self) -> TransportUse {
        match self {
            Self::Sctp(t) => t.transport_use,
            _ => TransportUse::DataOnly,
        }
    }

    pub(crate) fn is_transport_type(ty: u16) -> bool {
        matches!(ty, 0x3..=0x7 | 0x10)
    }

    pub(crate) fn decode(buf: &[u8], tlv: &Tlv<'_>, ctx: &mut Ctx) -> Result<Self, DecodeError> {
        Ok(match tlv.ty {
            0x4 => Self::Sctp(SctpTransport::decode(buf, tlv, ctx)?),
            0x10 => Self::Opaque(tlv.value().to_vec()),
            0x3 => {
                let v = tlv.need(8, "DCCP Transport")?;
                let address = single_address(buf, tlv, 8, ctx, "DCCP Transport")?;
                Self::Dccp {
                    port: be16(v, 0),
                    service_code: be32(v, 4),
                    address,
                }
            }
            ty => {
                let (name, make): (&'static str, fn(u16, IpAddr) -> Self) = match ty {
                    0x5 => ("TCP Transport", |port, address| Self::Tcp { port, address }),
                    0x6 => ("UDP Transport", |port, address| Self::Udp { port, address }),
                    0x7 => ("UDP-Lite Transport", |port, address| Self::UdpLite {
                        port,
                        address,
                    }),
                    _ => return Err(tlv.unexpected("a transport")),
                };
                let v = tlv.need(4, name)?;
                let address = single_address(buf, tlv, 4, ctx, name)?;
                make(be16(v, 0), address)
            }
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let what = self.param_type().name().unwrap_or("transport");
        match self {
            Self::Sctp(t) => t.encode(w),
            Self::Opaque(data) => w.tlv(ParamType::OPAQUE_TRANSPORT.0, what, |w| {
                w.bytes(data);
                Ok(())
            }),
            Self::Dccp {
                port,
                service_code,
                address,
            } => w.tlv(ParamType::DCCP_TRANSPORT.0, what, |w| {
                w.u16(*port);
                w.u16(0);
                w.u32(*service_code);
                encode_address(w, address)
            }),
            Self::Tcp { port, address }
            | Self::Udp { port, address }
            | Self::UdpLite { port, address } => w.tlv(self.param_type().0, what, |w| {
                w.u16(*port);
                w.u16(0);
                encode_address(w, address)
            }),
        }
    }
}

impl From<SctpTransport> for Transport {
    fn from(t: SctpTransport) -> Self {
        Self::Sctp(t)
    }
}

impl SctpTransport {
    pub(crate) fn decode(buf: &[u8], tlv: &Tlv<'_>, ctx: &mut Ctx) -> Result<Self, DecodeError> {
        let v = tlv.need(4, "SCTP Transport")?;
        let transport_use = match be16(v, 2) {
            0 => TransportUse::DataOnly,
            1 => TransportUse::DataPlusControl,
            x => {
                return Err(tlv.invalid(
                    "SCTP Transport",
                    format!("transport use {x:#06x} is neither 0 nor 1"),
                ));
            }
        };
        let addresses = addresses(buf, tlv, 4, ctx, "SCTP Transport")?;
        if addresses.is_empty() {
            return Err(tlv.invalid("SCTP Transport", "no address"));
        }
        Ok(Self {
            port: be16(v, 0),
            transport_use,
            addresses,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.tlv(ParamType::SCTP_TRANSPORT.0, "SCTP Transport", |w| {
            w.u16(self.port);
            w.u16(self.transport_use.code());
            for a in &self.addresses {
                encode_address(w, a)?;
            }
            Ok(())
        })
    }
}

fn decode_address(tlv: &Tlv<'_>) -> Result<IpAddr, DecodeError> {
    Ok(match tlv.ty {
        0x1 => {
            let v = tlv.need(4, "IPv4 Address")?;
            IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))
        }
        _ => {
            let v = tlv.need(16, "IPv6 Address")?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&v[..16]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    })
}

fn encode_address(w: &mut Writer<'_>, a: &IpAddr) -> Result<(), EncodeError> {
    match a {
        IpAddr::V4(a) => w.tlv(ParamType::IPV4_ADDRESS.0, "IPv4 Address", |w| {
            w.bytes(&a.octets());
            Ok(())
        }),
        IpAddr::V6(a) => w.tlv(ParamType::IPV6_ADDRESS.0, "IPv6 Address", |w| {
            w.bytes(&a.octets());
            Ok(())
        }),
    }
}

/// The address parameters inside a transport TLV, after `skip` bytes of fixed fields.
fn addresses(
    buf: &[u8],
    tlv: &Tlv<'_>,
    skip: usize,
    ctx: &mut Ctx,
    context: &'static str,
) -> Result<Vec<IpAddr>, DecodeError> {
    let mut out = Vec::new();
    let mut it = Params::inside(buf, tlv, skip);
    while let Some(p) = it.next(ctx, &[]) {
        let p = p?;
        match p.ty {
            0x1 | 0x2 => out.push(decode_address(&p)?),
            _ => return Err(p.unexpected(context)),
        }
    }
    Ok(out)
}

fn single_address(
    buf: &[u8],
    tlv: &Tlv<'_>,
    skip: usize,
    ctx: &mut Ctx,
    context: &'static str,
) -> Result<IpAddr, DecodeError> {
    let a = addresses(buf, tlv, skip, ctx, context)?;
    match a.as_slice() {
        [one] => Ok(*one),
        [] => Err(tlv.invalid(context, "no address")),
        _ => Err(tlv.invalid(
            context,
            format!("{} addresses; exactly one allowed", a.len()),
        )),
    }
}

/// The unit of the Registration Life field of a PE parameter.
///
/// RFC 5354 §3.10 says seconds; RSPLIB 3.4.4 sends and reads milliseconds (its PEs register with
/// 90000 for 90 s). Interoperating with RSPLIB PEs needs milliseconds, the default.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum LifeUnit {
    /// Milliseconds, as RSPLIB (the default).
    #[default]
    Milliseconds,
    /// Seconds, as RFC 5354 §3.10.
    Seconds,
}

impl LifeUnit {
    /// The duration of a Registration Life value; `None` for the infinite life (-1) and other
    /// negative values.
    pub fn duration(self, life: i32) -> Option<Duration> {
        let v = u64::try_from(life).ok()?;
        Some(match self {
            Self::Milliseconds => Duration::from_millis(v),
            Self::Seconds => Duration::from_secs(v),
        })
    }

    /// The Registration Life value for a duration (saturating at the largest finite value).
    pub fn value(self, d: Duration) -> i32 {
        let v = match self {
            Self::Milliseconds => d.as_millis(),
            Self::Seconds => u128::from(d.as_secs()),
        };
        i32::try_from(v).unwrap_or(i32::MAX)
    }
}

/// A Pool Element parameter (RFC 5354 §3.10): one PE and how to reach it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PoolElement {
    /// The PE identifier.
    pub id: PoolElementId,
    /// The PE's home registrar; 0 when undetermined (as in a registration).
    pub home_registrar: RegistrarId,
    /// Registration life, as on the wire: a signed 32-bit value, -1 meaning infinite.
    ///
    /// RFC 5354 §3.10 says seconds; RSPLIB 3.4.4 sends and interprets **milliseconds** (its PEs
    /// send 90000 for 90 s). The codec passes the raw value through; [`LifeUnit`], a setting of
    /// the registrar and the client, reads it (see the README).
    pub registration_life: i32,
    /// How pool users reach the PE.
    pub user_transport: Transport,
    /// The PE's selection policy and its values.
    pub policy: Policy,
    /// The PE's ASAP transport (SCTP, data only): present in ENRP messages, absent in a
    /// registration (RFC 5352 §3.1 lets the registrar take it from the association).
    pub asap_transport: Option<SctpTransport>,
}

impl PoolElement {
    /// Registration life value meaning "infinite" (RFC 5354 §3.10).
    pub const INFINITE_LIFE: i32 = -1;

    pub(crate) fn decode(buf: &[u8], tlv: &Tlv<'_>, ctx: &mut Ctx) -> Result<Self, DecodeError> {
        const CTX: &str = "Pool Element";
        let v = tlv.need(12, CTX)?;
        let mut user_transport = None;
        let mut policy = None;
        let mut asap_transport = None;
        let mut it = Params::inside(buf, tlv, 12);
        while let Some(p) = it.next(ctx, &[]) {
            let p = p?;
            match p.ty {
                // The first transport is the user transport; an SCTP transport after it is the
                // ASAP transport (RFC 5354 §3.10 orders them user, policy, ASAP).
                ty if Transport::is_transport_type(ty) && user_transport.is_none() => {
                    user_transport = Some(Transport::decode(buf, &p, ctx)?);
                }
                0x4 => once(
                    &mut asap_transport,
                    SctpTransport::decode(buf, &p, ctx)?,
                    &p,
                    "ASAP transport",
                    CTX,
                )?,
                0x8 => once(&mut policy, Policy::decode(&p)?, &p, "policy", CTX)?,
                _ => return Err(p.unexpected(CTX)),
            }
        }
        Ok(Self {
            id: PoolElementId(be32(v, 0)),
            home_registrar: RegistrarId(be32(v, 4)),
            registration_life: be32(v, 8) as i32,
            user_transport: user_transport
                .ok_or_else(|| missing("user transport", CTX, Some(tlv)))?,
            policy: policy
                .ok_or_else(|| missing("Pool Member Selection Policy", CTX, Some(tlv)))?,
            asap_transport,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.tlv(ParamType::POOL_ELEMENT.0, "Pool Element", |w| {
            w.u32(self.id.0);
            w.u32(self.home_registrar.0);
            w.u32(self.registration_life as u32);
            self.user_transport.encode(w)?;
            self.policy.encode(w)?;
            if let Some(t) = &self.asap_transport {
                t.encode(w)?;
            }
            Ok(())
        })
    }
}

/// A Server Information parameter (RFC 5354 §3.11): a registrar's ID and ENRP transport.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerInformation {
    /// The registrar's ID.
    pub server_id: RegistrarId,
    /// Its ENRP SCTP transport.
    pub transport: SctpTransport,
}

impl ServerInformation {
    pub(crate) fn decode(buf: &[u8], tlv: &Tlv<'_>, ctx: &mut Ctx) -> Result<Self, DecodeError> {
        const CTX: &str = "Server Information";
        let v = tlv.need(4, CTX)?;
        let mut transport = None;
        let mut it = Params::inside(buf, tlv, 4);
        while let Some(p) = it.next(ctx, &[]) {
            let p = p?;
            match p.ty {
                0x4 => once(
                    &mut transport,
                    SctpTransport::decode(buf, &p, ctx)?,
                    &p,
                    "SCTP Transport",
                    CTX,
                )?,
                _ => return Err(p.unexpected(CTX)),
            }
        }
        Ok(Self {
            server_id: RegistrarId(be32(v, 0)),
            transport: transport.ok_or_else(|| missing("SCTP Transport", CTX, Some(tlv)))?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.tlv(ParamType::SERVER_INFORMATION.0, "Server Information", |w| {
            w.u32(self.server_id.0);
            self.transport.encode(w)
        })
    }
}

/// One error cause inside an Operation Error (RFC 5354 §3.12).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ErrorCause {
    /// The cause code.
    pub code: CauseCode,
    /// Cause-specific information, as on the wire (e.g. the offending TLV).
    pub info: Vec<u8>,
}

impl ErrorCause {
    /// A cause without cause-specific information.
    pub fn new(code: CauseCode) -> Self {
        Self {
            code,
            info: Vec::new(),
        }
    }

    /// A cause carrying a policy parameter (Inconsistent Pooling Policy, RFC 5354 §3.12.6).
    pub fn inconsistent_policy(pool_policy: &Policy) -> Result<Self, EncodeError> {
        let mut info = Vec::new();
        pool_policy.encode(&mut Writer::new(&mut info))?;
        Ok(Self {
            code: CauseCode::INCONSISTENT_POOLING_POLICY,
            info,
        })
    }

    /// Invalid Values (RFC 5354 §3.12.4) carrying the offending parameter TLV.
    pub fn invalid_values(offending: OffendingParameter<'_>) -> Self {
        let mut info = Vec::new();
        let mut w = Writer::new(&mut info);
        let built = match offending {
            OffendingParameter::PoolHandle(p) => p.encode(&mut w),
            OffendingParameter::PoolElement(p) => p.encode(&mut w),
            OffendingParameter::Transport(t) => t.encode(&mut w),
            OffendingParameter::Policy(p) => p.encode(&mut w),
        };
        if built.is_err() {
            // Only a parameter beyond 64 KiB fails to encode: report without it.
            info.clear();
        }
        Self {
            code: CauseCode::INVALID_VALUES,
            info,
        }
    }

    /// A cause carrying a transport parameter (Inconsistent Transport Type, RFC 5354 §3.12.8).
    pub fn inconsistent_transport(pool_transport: &Transport) -> Result<Self, EncodeError> {
        let mut info = Vec::new();
        pool_transport.encode(&mut Writer::new(&mut info))?;
        Ok(Self {
            code: CauseCode::INCONSISTENT_TRANSPORT_TYPE,
            info,
        })
    }
}

/// A parameter to echo in an Invalid Values cause ([`ErrorCause::invalid_values`]).
#[derive(Clone, Copy, Debug)]
pub enum OffendingParameter<'a> {
    /// A Pool Handle.
    PoolHandle(&'a PoolHandle),
    /// A Pool Element.
    PoolElement(&'a PoolElement),
    /// A user transport.
    Transport(&'a Transport),
    /// A policy.
    Policy(&'a Policy),
}

/// An Operation Error parameter (RFC 5354 §3.12): one or more error causes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OperationError {
    /// The causes (at least one).
    pub causes: Vec<ErrorCause>,
}

impl OperationError {
    /// An Operation Error with one cause.
    pub fn new(cause: ErrorCause) -> Self {
        Self {
            causes: vec![cause],
        }
    }

    /// The first cause's code.
    pub fn code(&self) -> CauseCode {
        self.causes
            .first()
            .map_or(CauseCode::UNSPECIFIED, |c| c.code)
    }

    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, DecodeError> {
        let v = tlv.value();
        let mut causes = Vec::new();
        let mut pos = 0;
        while v.len() - pos >= 4 {
            let code = be16(v, pos);
            let len = be16(v, pos + 2) as usize;
            if len < 4 || len > v.len() - pos {
                return Err(tlv.invalid(
                    "Operation Error",
                    format!(
                        "error cause {code:#06x} at {pos} has length {len}, {} bytes left",
                        v.len() - pos
                    ),
                ));
            }
            causes.push(ErrorCause {
                code: CauseCode(code),
                info: v[pos + 4..pos + len].to_vec(),
            });
            pos += super::codec::pad4(len).min(v.len() - pos);
        }
        if causes.is_empty() {
            return Err(tlv.invalid("Operation Error", "no error cause"));
        }
        Ok(Self { causes })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.tlv(ParamType::OPERATION_ERROR.0, "Operation Error", |w| {
            for c in &self.causes {
                // Error causes are laid out like TLVs (RFC 5354 §3.12): code, length, info, padding.
                w.tlv(c.code.0, "error cause", |w| {
                    w.bytes(&c.info);
                    Ok(())
                })?;
            }
            Ok(())
        })
    }
}

impl From<ErrorCause> for OperationError {
    fn from(c: ErrorCause) -> Self {
        Self::new(c)
    }
}

pub(crate) fn decode_pe_id(tlv: &Tlv<'_>) -> Result<PoolElementId, DecodeError> {
    Ok(PoolElementId(be32(tlv.need(4, "PE Identifier")?, 0)))
}

pub(crate) fn encode_pe_id(w: &mut Writer<'_>, id: PoolElementId) -> Result<(), EncodeError> {
    w.tlv(ParamType::PE_IDENTIFIER.0, "PE Identifier", |w| {
        w.u32(id.0);
        Ok(())
    })
}

pub(crate) fn decode_checksum(tlv: &Tlv<'_>) -> Result<u16, DecodeError> {
    Ok(be16(tlv.need(2, "PE Checksum")?, 0))
}

pub(crate) fn encode_checksum(w: &mut Writer<'_>, sum: u16) -> Result<(), EncodeError> {
    // RFC 5354 §3.15: length 6, then 2 bytes of padding.
    w.tlv(ParamType::PE_CHECKSUM.0, "PE Checksum", |w| {
        w.u16(sum);
        Ok(())
    })
}

pub(crate) fn encode_cookie(w: &mut Writer<'_>, cookie: &[u8]) -> Result<(), EncodeError> {
    w.tlv(ParamType::COOKIE.0, "Cookie", |w| {
        w.bytes(cookie);
        Ok(())
    })
}
