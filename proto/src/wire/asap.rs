//! ASAP messages (RFC 5352 §2.2), PPID 11.

use super::Decoded;
use super::codec::{self, Ctx, Params, Tlv, Writer, be32, missing, once};
use super::error::{DecodeError, EncodeError};
use super::param::{
    self, OperationError, ParamType, PoolElement, PoolElementId, PoolHandle, RegistrarId, Transport,
};
use super::policy::Policy;

/// ASAP message type numbers (RFC 5352 §2.2, Figure 1).
pub mod msg_type {
    /// ASAP_REGISTRATION.
    pub const REGISTRATION: u8 = 0x01;
    /// ASAP_DEREGISTRATION.
    pub const DEREGISTRATION: u8 = 0x02;
    /// ASAP_REGISTRATION_RESPONSE.
    pub const REGISTRATION_RESPONSE: u8 = 0x03;
    /// ASAP_DEREGISTRATION_RESPONSE.
    pub const DEREGISTRATION_RESPONSE: u8 = 0x04;
    /// ASAP_HANDLE_RESOLUTION.
    pub const HANDLE_RESOLUTION: u8 = 0x05;
    /// ASAP_HANDLE_RESOLUTION_RESPONSE.
    pub const HANDLE_RESOLUTION_RESPONSE: u8 = 0x06;
    /// ASAP_ENDPOINT_KEEP_ALIVE.
    pub const ENDPOINT_KEEP_ALIVE: u8 = 0x07;
    /// ASAP_ENDPOINT_KEEP_ALIVE_ACK.
    pub const ENDPOINT_KEEP_ALIVE_ACK: u8 = 0x08;
    /// ASAP_ENDPOINT_UNREACHABLE.
    pub const ENDPOINT_UNREACHABLE: u8 = 0x09;
    /// ASAP_SERVER_ANNOUNCE.
    pub const SERVER_ANNOUNCE: u8 = 0x0a;
    /// ASAP_COOKIE.
    pub const COOKIE: u8 = 0x0b;
    /// ASAP_COOKIE_ECHO.
    pub const COOKIE_ECHO: u8 = 0x0c;
    /// ASAP_BUSINESS_CARD.
    pub const BUSINESS_CARD: u8 = 0x0d;
    /// ASAP_ERROR.
    pub const ERROR: u8 = 0x0e;

    /// The RFC name of an ASAP message type.
    pub fn name(t: u8) -> Option<&'static str> {
        Some(match t {
            0x01 => "ASAP_REGISTRATION",
            0x02 => "ASAP_DEREGISTRATION",
            0x03 => "ASAP_REGISTRATION_RESPONSE",
            0x04 => "ASAP_DEREGISTRATION_RESPONSE",
            0x05 => "ASAP_HANDLE_RESOLUTION",
            0x06 => "ASAP_HANDLE_RESOLUTION_RESPONSE",
            0x07 => "ASAP_ENDPOINT_KEEP_ALIVE",
            0x08 => "ASAP_ENDPOINT_KEEP_ALIVE_ACK",
            0x09 => "ASAP_ENDPOINT_UNREACHABLE",
            0x0a => "ASAP_SERVER_ANNOUNCE",
            0x0b => "ASAP_COOKIE",
            0x0c => "ASAP_COOKIE_ECHO",
            0x0d => "ASAP_BUSINESS_CARD",
            0x0e => "ASAP_ERROR",
            _ => return None,
        })
    }
}

/// ASAP_REGISTRATION (RFC 5352 §2.2.1): a PE registers (or re-registers) in a pool.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Registration {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE (home registrar 0, no ASAP transport, as RFC 5352 §3.1 describes).
    pub pool_element: PoolElement,
}

/// ASAP_DEREGISTRATION (RFC 5352 §2.2.2).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Deregistration {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE leaving it.
    pub pe_id: PoolElementId,
}

/// ASAP_REGISTRATION_RESPONSE (RFC 5352 §2.2.3).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RegistrationResponse {
    /// R flag: the registration was rejected.
    pub reject: bool,
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE.
    pub pe_id: PoolElementId,
    /// The rejection cause (R=1), or a warning (R=0).
    pub error: Option<OperationError>,
}

/// ASAP_DEREGISTRATION_RESPONSE (RFC 5352 §2.2.4).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeregistrationResponse {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE.
    pub pe_id: PoolElementId,
    /// Present if an error or atypical event occurred.
    pub error: Option<OperationError>,
}

/// ASAP_HANDLE_RESOLUTION (RFC 5352 §2.2.5).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HandleResolution {
    /// S flag: the PU asks for dynamic updates of the pool.
    pub subscribe: bool,
    /// The pool to resolve.
    pub pool_handle: PoolHandle,
    /// How many PEs the PU wants: RSPLIB's Handle Resolution option 0x803f
    /// (draft-dreibholz-rserpool-asap-hropt): 0 = the registrar's default, `u32::MAX` = all.
    /// `None` leaves the option out (the RFC form).
    pub items: Option<u32>,
}

/// ASAP_HANDLE_RESOLUTION_RESPONSE (RFC 5352 §2.2.6).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HandleResolutionResponse {
    /// A flag: the registrar accepted the request for dynamic updates.
    pub accept_updates: bool,
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The pool's overall policy (positive responses; absent means Round Robin). RSPLIB sends
    /// the first selected PE's policy parameter here.
    pub policy: Option<Policy>,
    /// The selected PEs (positive responses).
    pub elements: Vec<PoolElement>,
    /// Present on a negative response (e.g. Unknown Pool Handle).
    pub error: Option<OperationError>,
}

/// ASAP_ENDPOINT_KEEP_ALIVE (RFC 5352 §2.2.7).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EndpointKeepAlive {
    /// H flag: the sender wants to become the PE's home registrar.
    pub home: bool,
    /// The sending registrar.
    pub server_id: RegistrarId,
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE the keep-alive is for. Not in RFC 5352; RSPLIB always sends it (so a PE process
    /// with several PEs knows which one to acknowledge). `None` is the RFC form.
    pub pe_id: Option<PoolElementId>,
}

/// ASAP_ENDPOINT_KEEP_ALIVE_ACK (RFC 5352 §2.2.8).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EndpointKeepAliveAck {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE.
    pub pe_id: PoolElementId,
}

/// ASAP_ENDPOINT_UNREACHABLE (RFC 5352 §2.2.9).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EndpointUnreachable {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE that could not be reached.
    pub pe_id: PoolElementId,
}

/// ASAP_SERVER_ANNOUNCE (RFC 5352 §2.2.10).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerAnnounce {
    /// The announcing registrar.
    pub server_id: RegistrarId,
    /// Where to reach it: SCTP and TCP transports only. Empty means "the announce's source
    /// address, ASAP port" (RFC 5352 §3.6; what RSPLIB sends).
    pub transports: Vec<Transport>,
}

/// ASAP_COOKIE / ASAP_COOKIE_ECHO (RFC 5352 §2.2.11–12): opaque PE state for failover.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Cookie {
    /// The cookie's bytes.
    pub cookie: Vec<u8>,
}

/// ASAP_BUSINESS_CARD (RFC 5352 §2.2.13).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BusinessCard {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// A policy parameter after the pool handle: not in RFC 5352, but RSPLIB's encoder puts one
    /// there. `None` is the RFC form.
    pub policy: Option<Policy>,
    /// The PEs, in preferred failover order.
    pub elements: Vec<PoolElement>,
}

/// ASAP_ERROR (RFC 5352 §2.2.14).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AsapError {
    /// What went wrong.
    pub error: OperationError,
}

/// An ASAP message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AsapMessage {
    /// ASAP_REGISTRATION (0x01).
    Registration(Registration),
    /// ASAP_DEREGISTRATION (0x02).
    Deregistration(Deregistration),
    /// ASAP_REGISTRATION_RESPONSE (0x03).
    RegistrationResponse(RegistrationResponse),
    /// ASAP_DEREGISTRATION_RESPONSE (0x04).
    DeregistrationResponse(DeregistrationResponse),
    /// ASAP_HANDLE_RESOLUTION (0x05).
    HandleResolution(HandleResolution),
    /// ASAP_HANDLE_RESOLUTION_RESPONSE (0x06).
    HandleResolutionResponse(HandleResolutionResponse),
    /// ASAP_ENDPOINT_KEEP_ALIVE (0x07).
    EndpointKeepAlive(EndpointKeepAlive),
    /// ASAP_ENDPOINT_KEEP_ALIVE_ACK (0x08).
    EndpointKeepAliveAck(EndpointKeepAliveAck),
    /// ASAP_ENDPOINT_UNREACHABLE (0x09).
    EndpointUnreachable(EndpointUnreachable),
    /// ASAP_SERVER_ANNOUNCE (0x0a).
    ServerAnnounce(ServerAnnounce),
    /// ASAP_COOKIE (0x0b).
    Cookie(Cookie),
    /// ASAP_COOKIE_ECHO (0x0c).
    CookieEcho(Cookie),
    /// ASAP_BUSINESS_CARD (0x0d).
    BusinessCard(BusinessCard),
    /// ASAP_ERROR (0x0e).
    Error(AsapError),
}

const FLAG_BIT0: u8 = 0x01;

impl AsapMessage {
    /// The message type number.
    pub fn msg_type(&self) -> u8 {
        use msg_type as t;
        match self {
            Self::Registration(_) => t::REGISTRATION,
            Self::Deregistration(_) => t::DEREGISTRATION,
            Self::RegistrationResponse(_) => t::REGISTRATION_RESPONSE,
            Self::DeregistrationResponse(_) => t::DEREGISTRATION_RESPONSE,
            Self::HandleResolution(_) => t::HANDLE_RESOLUTION,
            Self::HandleResolutionResponse(_) => t::HANDLE_RESOLUTION_RESPONSE,
            Self::EndpointKeepAlive(_) => t::ENDPOINT_KEEP_ALIVE,
            Self::EndpointKeepAliveAck(_) => t::ENDPOINT_KEEP_ALIVE_ACK,
            Self::EndpointUnreachable(_) => t::ENDPOINT_UNREACHABLE,
            Self::ServerAnnounce(_) => t::SERVER_ANNOUNCE,
            Self::Cookie(_) => t::COOKIE,
            Self::CookieEcho(_) => t::COOKIE_ECHO,
            Self::BusinessCard(_) => t::BUSINESS_CARD,
            Self::Error(_) => t::ERROR,
        }
    }

    /// The message's RFC name.
    pub fn name(&self) -> &'static str {
        msg_type::name(self.msg_type()).expect("every variant has a name")
    }

    /// The message flags as on the wire.
    pub fn flags(&self) -> u8 {
        let bit = match self {
            Self::RegistrationResponse(m) => m.reject,
            Self::HandleResolution(m) => m.subscribe,
            Self::HandleResolutionResponse(m) => m.accept_updates,
            Self::EndpointKeepAlive(m) => m.home,
            _ => false,
        };
        if bit { FLAG_BIT0 } else { 0 }
    }

    /// Encodes the message, appending it to `out`. The bytes end at the message length
    /// (RFC 5354 §4; the transport pads, as SCTP does its chunks).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut w = Writer::new(out);
        w.message(self.msg_type(), self.flags(), |w| match self {
            Self::Registration(m) => {
                m.pool_handle.encode(w)?;
                m.pool_element.encode(w)
            }
            Self::Deregistration(m) => {
                m.pool_handle.encode(w)?;
                param::encode_pe_id(w, m.pe_id)
            }
            Self::RegistrationResponse(RegistrationResponse {
                pool_handle,
                pe_id,
                error,
                ..
            })
            | Self::DeregistrationResponse(DeregistrationResponse {
                pool_handle,
                pe_id,
                error,
            }) => {
                pool_handle.encode(w)?;
                param::encode_pe_id(w, *pe_id)?;
                error.as_ref().map_or(Ok(()), |e| e.encode(w))
            }
            Self::HandleResolution(m) => {
                m.pool_handle.encode(w)?;
                if let Some(items) = m.items {
                    w.tlv(
                        ParamType::HANDLE_RESOLUTION_OPTION.0,
                        "Handle Resolution Option",
                        |w| {
                            w.u32(items);
                            Ok(())
                        },
                    )?;
                }
                Ok(())
            }
            Self::HandleResolutionResponse(m) => {
                m.pool_handle.encode(w)?;
                if let Some(p) = &m.policy {
                    p.encode(w)?;
                }
                for pe in &m.elements {
                    pe.encode(w)?;
                }
                m.error.as_ref().map_or(Ok(()), |e| e.encode(w))
            }
            Self::EndpointKeepAlive(m) => {
                w.u32(m.server_id.0);
                m.pool_handle.encode(w)?;
                m.pe_id.map_or(Ok(()), |id| param::encode_pe_id(w, id))
            }
            Self::EndpointKeepAliveAck(EndpointKeepAliveAck { pool_handle, pe_id })
            | Self::EndpointUnreachable(EndpointUnreachable { pool_handle, pe_id }) => {
                pool_handle.encode(w)?;
                param::encode_pe_id(w, *pe_id)
            }
            Self::ServerAnnounce(m) => {
                w.u32(m.server_id.0);
                for t in &m.transports {
                    t.encode(w)?;
                }
                Ok(())
            }
            Self::Cookie(c) | Self::CookieEcho(c) => param::encode_cookie(w, &c.cookie),
            Self::BusinessCard(m) => {
                m.pool_handle.encode(w)?;
                if let Some(p) = &m.policy {
                    p.encode(w)?;
                }
                for pe in &m.elements {
                    pe.encode(w)?;
                }
                Ok(())
            }
            Self::Error(m) => m.error.encode(w),
        })
    }

    /// Encodes the message into a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(64);
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Decodes one message (the user message of one SCTP DATA chunk sequence, one UDP datagram,
    /// or one TCP-mapped frame). Unknown parameters whose action bits say "skip" are skipped; use
    /// [`AsapMessage::decode_full`] to learn about them.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_full(buf).map(|d| d.message)
    }

    /// Decodes one message, also returning the unknown parameters that were skipped (those with
    /// action bits 11 ask for an Unrecognized Parameter report: [`Decoded::unrecognized_report`]).
    pub fn decode_full(buf: &[u8]) -> Result<Decoded<Self>, DecodeError> {
        let ty = buf.first().copied().unwrap_or(0);
        let msg = codec::frame(buf, fixed_len(ty))?;
        let flags = msg[1];
        let mut ctx = Ctx::default();
        let message = decode_body(msg, ty, flags & FLAG_BIT0 != 0, &mut ctx)?;
        Ok(Decoded {
            message,
            skipped: ctx.skipped,
        })
    }
}

/// The parameters of a message body, collected by type.
#[derive(Default)]
struct Body {
    pool_handle: Option<PoolHandle>,
    pe_id: Option<PoolElementId>,
    error: Option<OperationError>,
    policy: Option<Policy>,
    elements: Vec<PoolElement>,
    cookie: Option<Vec<u8>>,
    items: Option<u32>,
    transports: Vec<Transport>,
}

impl Body {
    fn pool_handle(&mut self, ctx: &'static str) -> Result<PoolHandle, DecodeError> {
        self.pool_handle
            .take()
            .ok_or_else(|| missing("Pool Handle", ctx, None))
    }

    fn pe_id(&mut self, ctx: &'static str) -> Result<PoolElementId, DecodeError> {
        self.pe_id
            .take()
            .ok_or_else(|| missing("PE Identifier", ctx, None))
    }
}

/// The size of a message type's header and fixed fields.
fn fixed_len(ty: u8) -> usize {
    match ty {
        // Server Identifier after the header.
        msg_type::ENDPOINT_KEEP_ALIVE | msg_type::SERVER_ANNOUNCE => 8,
        _ => 4,
    }
}

/// Which parameters each message type accepts at its top level.
fn allowed(ty: u8) -> &'static [u16] {
    use msg_type as t;
    match ty {
        t::REGISTRATION => &[0x9, 0xa],
        t::DEREGISTRATION | t::ENDPOINT_KEEP_ALIVE_ACK | t::ENDPOINT_UNREACHABLE => &[0x9, 0xe],
        t::REGISTRATION_RESPONSE | t::DEREGISTRATION_RESPONSE => &[0x9, 0xe, 0xc],
        t::HANDLE_RESOLUTION => &[0x9, 0x803f],
        t::HANDLE_RESOLUTION_RESPONSE => &[0x9, 0x8, 0xa, 0xc],
        // RSPLIB adds a PE Identifier to every keep-alive.
        t::ENDPOINT_KEEP_ALIVE => &[0x9, 0xe],
        t::SERVER_ANNOUNCE => &[0x4, 0x5],
        t::COOKIE | t::COOKIE_ECHO => &[0xd],
        // RSPLIB's encoder puts a policy after the pool handle.
        t::BUSINESS_CARD => &[0x9, 0x8, 0xa],
        t::ERROR => &[0xc],
        _ => &[],
    }
}

fn decode_body(msg: &[u8], ty: u8, bit0: bool, ctx: &mut Ctx) -> Result<AsapMessage, DecodeError> {
    use msg_type as t;
    let Some(name) = t::name(ty) else {
        return Err(codec::unrecognized_message(msg));
    };
    let allowed = allowed(ty);
    let mut b = Body::default();
    let mut it = Params::new(msg, fixed_len(ty), msg.len());
    while let Some(p) = it.next(ctx, &[ParamType::HANDLE_RESOLUTION_OPTION.0]) {
        let p = p?;
        if !allowed.contains(&p.ty) {
            return Err(p.unexpected(name));
        }
        collect(msg, &p, &mut b, ctx, name)?;
    }
    let server_id = || RegistrarId(be32(msg, 4));
    Ok(match ty {
        t::REGISTRATION => AsapMessage::Registration(Registration {
            pool_handle: b.pool_handle(name)?,
            pool_element: b
                .elements
                .pop()
                .ok_or_else(|| missing("Pool Element", name, None))?,
        }),
        t::DEREGISTRATION => AsapMessage::Deregistration(Deregistration {
            pool_handle: b.pool_handle(name)?,
            pe_id: b.pe_id(name)?,
        }),
        t::REGISTRATION_RESPONSE => AsapMessage::RegistrationResponse(RegistrationResponse {
            reject: bit0,
            pool_handle: b.pool_handle(name)?,
            pe_id: b.pe_id(name)?,
            error: b.error,
        }),
        t::DEREGISTRATION_RESPONSE => AsapMessage::DeregistrationResponse(DeregistrationResponse {
            pool_handle: b.pool_handle(name)?,
            pe_id: b.pe_id(name)?,
            error: b.error,
        }),
        t::HANDLE_RESOLUTION => AsapMessage::HandleResolution(HandleResolution {
            subscribe: bit0,
            pool_handle: b.pool_handle(name)?,
            items: b.items,
        }),
        t::HANDLE_RESOLUTION_RESPONSE => {
            AsapMessage::HandleResolutionResponse(HandleResolutionResponse {
                accept_updates: bit0,
                pool_handle: b.pool_handle(name)?,
                policy: b.policy,
                elements: b.elements,
                error: b.error,
            })
        }
        t::ENDPOINT_KEEP_ALIVE => AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
            home: bit0,
            server_id: server_id(),
            pool_handle: b.pool_handle(name)?,
            pe_id: b.pe_id,
        }),
        t::ENDPOINT_KEEP_ALIVE_ACK => AsapMessage::EndpointKeepAliveAck(EndpointKeepAliveAck {
            pool_handle: b.pool_handle(name)?,
            pe_id: b.pe_id(name)?,
        }),
        t::ENDPOINT_UNREACHABLE => AsapMessage::EndpointUnreachable(EndpointUnreachable {
            pool_handle: b.pool_handle(name)?,
            pe_id: b.pe_id(name)?,
        }),
        t::SERVER_ANNOUNCE => AsapMessage::ServerAnnounce(ServerAnnounce {
            server_id: server_id(),
            transports: b.transports,
        }),
        t::COOKIE | t::COOKIE_ECHO => {
            let c = Cookie {
                cookie: b.cookie.ok_or_else(|| missing("Cookie", name, None))?,
            };
            if ty == t::COOKIE {
                AsapMessage::Cookie(c)
            } else {
                AsapMessage::CookieEcho(c)
            }
        }
        t::BUSINESS_CARD => AsapMessage::BusinessCard(BusinessCard {
            pool_handle: b.pool_handle(name)?,
            policy: b.policy,
            elements: b.elements,
        }),
        _ => AsapMessage::Error(AsapError {
            error: b
                .error
                .ok_or_else(|| missing("Operation Error", name, None))?,
        }),
    })
}

fn collect(
    msg: &[u8],
    p: &Tlv<'_>,
    b: &mut Body,
    ctx: &mut Ctx,
    name: &'static str,
) -> Result<(), DecodeError> {
    match p.ty {
        0x9 => once(
            &mut b.pool_handle,
            PoolHandle::decode(p)?,
            p,
            "Pool Handle",
            name,
        ),
        0xe => once(
            &mut b.pe_id,
            param::decode_pe_id(p)?,
            p,
            "PE Identifier",
            name,
        ),
        0xc => once(
            &mut b.error,
            OperationError::decode(p)?,
            p,
            "Operation Error",
            name,
        ),
        0x8 => once(&mut b.policy, Policy::decode(p)?, p, "policy", name),
        0xd => once(&mut b.cookie, p.value().to_vec(), p, "Cookie", name),
        0x803f => {
            let v = p.need(4, "Handle Resolution Option")?;
            once(
                &mut b.items,
                be32(v, 0),
                p,
                "Handle Resolution Option",
                name,
            )
        }
        0xa => {
            // A registration carries exactly one PE; responses and business cards a list.
            if name == "ASAP_REGISTRATION" && !b.elements.is_empty() {
                return Err(codec::duplicate(p, "Pool Element", name));
            }
            b.elements.push(PoolElement::decode(msg, p, ctx)?);
            Ok(())
        }
        _ => {
            b.transports.push(Transport::decode(msg, p, ctx)?);
            Ok(())
        }
    }
}
