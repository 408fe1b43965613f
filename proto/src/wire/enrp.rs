//! ENRP messages (RFC 5353 §2), PPID 12. Every ENRP message starts with the sending and the
//! receiving server's ID (0 = all / unknown).

use super::Decoded;
use super::codec::{self, Ctx, Params, Writer, be16, be32, missing, once};
use super::error::{DecodeError, DecodeErrorKind, EncodeError};
use super::param::{self, OperationError, PoolElement, PoolHandle, RegistrarId, ServerInformation};

/// ENRP message type numbers (RFC 5353 §2, Figure 1).
pub mod msg_type {
    /// ENRP_PRESENCE.
    pub const PRESENCE: u8 = 0x01;
    /// ENRP_HANDLE_TABLE_REQUEST.
    pub const HANDLE_TABLE_REQUEST: u8 = 0x02;
    /// ENRP_HANDLE_TABLE_RESPONSE.
    pub const HANDLE_TABLE_RESPONSE: u8 = 0x03;
    /// ENRP_HANDLE_UPDATE.
    pub const HANDLE_UPDATE: u8 = 0x04;
    /// ENRP_LIST_REQUEST.
    pub const LIST_REQUEST: u8 = 0x05;
    /// ENRP_LIST_RESPONSE.
    pub const LIST_RESPONSE: u8 = 0x06;
    /// ENRP_INIT_TAKEOVER.
    pub const INIT_TAKEOVER: u8 = 0x07;
    /// ENRP_INIT_TAKEOVER_ACK.
    pub const INIT_TAKEOVER_ACK: u8 = 0x08;
    /// ENRP_TAKEOVER_SERVER.
    pub const TAKEOVER_SERVER: u8 = 0x09;
    /// ENRP_ERROR.
    pub const ERROR: u8 = 0x0a;

    /// The RFC name of an ENRP message type.
    pub fn name(t: u8) -> Option<&'static str> {
        Some(match t {
            0x01 => "ENRP_PRESENCE",
            0x02 => "ENRP_HANDLE_TABLE_REQUEST",
            0x03 => "ENRP_HANDLE_TABLE_RESPONSE",
            0x04 => "ENRP_HANDLE_UPDATE",
            0x05 => "ENRP_LIST_REQUEST",
            0x06 => "ENRP_LIST_RESPONSE",
            0x07 => "ENRP_INIT_TAKEOVER",
            0x08 => "ENRP_INIT_TAKEOVER_ACK",
            0x09 => "ENRP_TAKEOVER_SERVER",
            0x0a => "ENRP_ERROR",
            _ => return None,
        })
    }
}

/// The sending and receiving server IDs every ENRP message starts with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ServerIds {
    /// The sending registrar.
    pub sender: RegistrarId,
    /// The intended receiver; 0 for "all" (multicast) or unknown.
    pub receiver: RegistrarId,
}

/// ENRP_PRESENCE (RFC 5353 §2.1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Presence {
    /// Sender and receiver.
    pub ids: ServerIds,
    /// Flag bit 0, "reply required" (RFC 5353 §3.4.3 uses it; the figure in §2.1 omits it;
    /// RSPLIB and Wireshark use bit 0).
    pub reply_required: bool,
    /// The sender's PE checksum of the PEs it owns (RFC 5353 §3.6; SHOULD be present).
    pub checksum: Option<u16>,
    /// The sender's server information (MUST be present in a reply to a "reply required").
    pub server_info: Option<ServerInformation>,
}

/// ENRP_HANDLE_TABLE_REQUEST (RFC 5353 §2.2).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HandleTableRequest {
    /// Sender and receiver.
    pub ids: ServerIds,
    /// W flag: only the PEs the receiver owns.
    pub own_children_only: bool,
}

/// One pool's entries in a Handle Table Response: a pool handle and its PEs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PoolEntry {
    /// The pool.
    pub pool_handle: PoolHandle,
    /// Its PEs (at least one), each with its ASAP transport.
    pub elements: Vec<PoolElement>,
}

/// ENRP_HANDLE_TABLE_RESPONSE (RFC 5353 §2.3).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HandleTableResponse {
    /// Sender and receiver.
    pub ids: ServerIds,
    /// M flag: more entries follow in later responses.
    pub more_to_send: bool,
    /// R flag: the request is rejected (no entries then).
    pub reject: bool,
    /// The pool entries.
    pub pools: Vec<PoolEntry>,
}

/// The action of a Handle Update (RFC 5353 §2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UpdateAction {
    /// 0x0000 ADD_PE: add or update the PE.
    AddPe,
    /// 0x0001 DEL_PE: delete the PE.
    DelPe,
}

/// ENRP_HANDLE_UPDATE (RFC 5353 §2.4, T flag of draft-dreibholz-rserpool-enrp-takeover).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HandleUpdate {
    /// Sender and receiver.
    pub ids: ServerIds,
    /// T flag: the receiver is suggested to take the PE over.
    pub takeover_suggested: bool,
    /// Add/update or delete.
    pub action: UpdateAction,
    /// The pool.
    pub pool_handle: PoolHandle,
    /// The PE (with its ASAP transport).
    pub pool_element: PoolElement,
}

/// ENRP_LIST_RESPONSE (RFC 5353 §2.6).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ListResponse {
    /// Sender and receiver.
    pub ids: ServerIds,
    /// R flag: the request is rejected (no servers then).
    pub reject: bool,
    /// The peers the sender knows.
    pub servers: Vec<ServerInformation>,
}

/// ENRP_INIT_TAKEOVER, ENRP_INIT_TAKEOVER_ACK and ENRP_TAKEOVER_SERVER (RFC 5353 §2.7–2.9).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Takeover {
    /// Sender and receiver.
    pub ids: ServerIds,
    /// The registrar being taken over.
    pub target: RegistrarId,
}

/// ENRP_ERROR (RFC 5353 §2.10).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EnrpError {
    /// Sender and receiver.
    pub ids: ServerIds,
    /// What went wrong.
    pub error: OperationError,
}

/// An ENRP message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EnrpMessage {
    /// ENRP_PRESENCE (0x01).
    Presence(Presence),
    /// ENRP_HANDLE_TABLE_REQUEST (0x02).
    HandleTableRequest(HandleTableRequest),
    /// ENRP_HANDLE_TABLE_RESPONSE (0x03).
    HandleTableResponse(HandleTableResponse),
    /// ENRP_HANDLE_UPDATE (0x04).
    HandleUpdate(HandleUpdate),
    /// ENRP_LIST_REQUEST (0x05).
    ListRequest(ServerIds),
    /// ENRP_LIST_RESPONSE (0x06).
    ListResponse(ListResponse),
    /// ENRP_INIT_TAKEOVER (0x07).
    InitTakeover(Takeover),
    /// ENRP_INIT_TAKEOVER_ACK (0x08).
    InitTakeoverAck(Takeover),
    /// ENRP_TAKEOVER_SERVER (0x09).
    TakeoverServer(Takeover),
    /// ENRP_ERROR (0x0a).
    Error(EnrpError),
}

impl EnrpMessage {
    /// The message type number.
    pub fn msg_type(&self) -> u8 {
        use msg_type as t;
        match self {
            Self::Presence(_) => t::PRESENCE,
            Self::HandleTableRequest(_) => t::HANDLE_TABLE_REQUEST,
            Self::HandleTableResponse(_) => t::HANDLE_TABLE_RESPONSE,
            Self::HandleUpdate(_) => t::HANDLE_UPDATE,
            Self::ListRequest(_) => t::LIST_REQUEST,
            Self::ListResponse(_) => t::LIST_RESPONSE,
            Self::InitTakeover(_) => t::INIT_TAKEOVER,
            Self::InitTakeoverAck(_) => t::INIT_TAKEOVER_ACK,
            Self::TakeoverServer(_) => t::TAKEOVER_SERVER,
            Self::Error(_) => t::ERROR,
        }
    }

    /// The message's RFC name.
    pub fn name(&self) -> &'static str {
        msg_type::name(self.msg_type()).expect("every variant has a name")
    }

    /// The sending and receiving server IDs.
    pub fn ids(&self) -> ServerIds {
        match self {
            Self::Presence(m) => m.ids,
            Self::HandleTableRequest(m) => m.ids,
            Self::HandleTableResponse(m) => m.ids,
            Self::HandleUpdate(m) => m.ids,
            Self::ListRequest(ids) => *ids,
            Self::ListResponse(m) => m.ids,
            Self::InitTakeover(m) | Self::InitTakeoverAck(m) | Self::TakeoverServer(m) => m.ids,
            Self::Error(m) => m.ids,
        }
    }

    /// The message flags as on the wire.
    pub fn flags(&self) -> u8 {
        match self {
            Self::Presence(m) => u8::from(m.reply_required),
            Self::HandleTableRequest(m) => u8::from(m.own_children_only),
            Self::HandleTableResponse(m) => u8::from(m.reject) | (u8::from(m.more_to_send) << 1),
            Self::HandleUpdate(m) => u8::from(m.takeover_suggested),
            Self::ListResponse(m) => u8::from(m.reject),
            _ => 0,
        }
    }

    /// Encodes the message, appending it to `out` (ending at the message length).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut w = Writer::new(out);
        w.message(self.msg_type(), self.flags(), |w| {
            let ids = self.ids();
            w.u32(ids.sender.0);
            w.u32(ids.receiver.0);
            match self {
                Self::Presence(m) => {
                    if let Some(sum) = m.checksum {
                        param::encode_checksum(w, sum)?;
                    }
                    m.server_info.as_ref().map_or(Ok(()), |s| s.encode(w))
                }
                Self::HandleTableRequest(_) | Self::ListRequest(_) => Ok(()),
                Self::HandleTableResponse(m) => {
                    for entry in &m.pools {
                        entry.pool_handle.encode(w)?;
                        for pe in &entry.elements {
                            pe.encode(w)?;
                        }
                    }
                    Ok(())
                }
                Self::HandleUpdate(m) => {
                    w.u16(match m.action {
                        UpdateAction::AddPe => 0,
                        UpdateAction::DelPe => 1,
                    });
                    w.u16(0);
                    m.pool_handle.encode(w)?;
                    m.pool_element.encode(w)
                }
                Self::ListResponse(m) => {
                    for s in &m.servers {
                        s.encode(w)?;
                    }
                    Ok(())
                }
                Self::InitTakeover(m) | Self::InitTakeoverAck(m) | Self::TakeoverServer(m) => {
                    w.u32(m.target.0);
                    Ok(())
                }
                Self::Error(m) => m.error.encode(w),
            }
        })
    }

    /// Encodes the message into a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(64);
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Decodes one message. Skippable unknown parameters are skipped silently; use
    /// [`EnrpMessage::decode_full`] to learn about them.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_full(buf).map(|d| d.message)
    }

    /// Decodes one message, also returning the skipped unknown parameters.
    pub fn decode_full(buf: &[u8]) -> Result<Decoded<Self>, DecodeError> {
        let ty = buf.first().copied().unwrap_or(0);
        let msg = codec::frame(buf, fixed_len(ty))?;
        let mut ctx = Ctx::default();
        let message = decode_body(msg, ty, msg[1], &mut ctx)?;
        Ok(Decoded {
            message,
            skipped: ctx.skipped,
        })
    }
}

/// The size of a message type's header and fixed fields.
fn fixed_len(ty: u8) -> usize {
    use msg_type as t;
    match ty {
        // Header, sender, receiver, then the update action or the target server.
        t::HANDLE_UPDATE | t::INIT_TAKEOVER | t::INIT_TAKEOVER_ACK | t::TAKEOVER_SERVER => 16,
        t::PRESENCE..=t::ERROR => 12,
        // Unknown types: only the common header is certain.
        _ => 4,
    }
}

fn decode_body(msg: &[u8], ty: u8, flags: u8, ctx: &mut Ctx) -> Result<EnrpMessage, DecodeError> {
    use msg_type as t;
    let Some(name) = t::name(ty) else {
        return Err(codec::unrecognized_message(msg));
    };
    let ids = ServerIds {
        sender: RegistrarId(be32(msg, 4)),
        receiver: RegistrarId(be32(msg, 8)),
    };
    let bit0 = flags & 0x01 != 0;
    let mut it = Params::new(msg, fixed_len(ty), msg.len());
    Ok(match ty {
        t::PRESENCE => {
            let (mut checksum, mut server_info) = (None, None);
            while let Some(p) = it.next(ctx, &[]) {
                let p = p?;
                match p.ty {
                    0xf => once(
                        &mut checksum,
                        param::decode_checksum(&p)?,
                        &p,
                        "PE Checksum",
                        name,
                    )?,
                    0xb => once(
                        &mut server_info,
                        ServerInformation::decode(msg, &p, ctx)?,
                        &p,
                        "Server Information",
                        name,
                    )?,
                    _ => return Err(p.unexpected(name)),
                }
            }
            EnrpMessage::Presence(Presence {
                ids,
                reply_required: bit0,
                checksum,
                server_info,
            })
        }
        t::HANDLE_TABLE_RESPONSE => {
            let mut pools: Vec<PoolEntry> = Vec::new();
            while let Some(p) = it.next(ctx, &[]) {
                let p = p?;
                match p.ty {
                    0x9 => pools.push(PoolEntry {
                        pool_handle: PoolHandle::decode(&p)?,
                        elements: Vec::new(),
                    }),
                    0xa => match pools.last_mut() {
                        Some(entry) => entry.elements.push(PoolElement::decode(msg, &p, ctx)?),
                        None => {
                            return Err(p.invalid(name, "Pool Element before any Pool Handle"));
                        }
                    },
                    _ => return Err(p.unexpected(name)),
                }
            }
            EnrpMessage::HandleTableResponse(HandleTableResponse {
                ids,
                more_to_send: flags & 0x02 != 0,
                reject: bit0,
                pools,
            })
        }
        t::HANDLE_UPDATE => {
            let action = match be16(msg, 12) {
                0 => UpdateAction::AddPe,
                1 => UpdateAction::DelPe,
                a => {
                    return Err(DecodeError::new(
                        DecodeErrorKind::InvalidValue {
                            param: "Update Action",
                            reason: format!("{a:#06x} is neither ADD_PE (0) nor DEL_PE (1)"),
                        },
                        12,
                    ));
                }
            };
            let (mut pool_handle, mut pool_element) = (None, None);
            while let Some(p) = it.next(ctx, &[]) {
                let p = p?;
                match p.ty {
                    0x9 => once(
                        &mut pool_handle,
                        PoolHandle::decode(&p)?,
                        &p,
                        "Pool Handle",
                        name,
                    )?,
                    0xa => once(
                        &mut pool_element,
                        PoolElement::decode(msg, &p, ctx)?,
                        &p,
                        "Pool Element",
                        name,
                    )?,
                    _ => return Err(p.unexpected(name)),
                }
            }
            EnrpMessage::HandleUpdate(HandleUpdate {
                ids,
                takeover_suggested: bit0,
                action,
                pool_handle: pool_handle.ok_or_else(|| missing("Pool Handle", name, None))?,
                pool_element: pool_element.ok_or_else(|| missing("Pool Element", name, None))?,
            })
        }
        t::LIST_RESPONSE => {
            let mut servers = Vec::new();
            while let Some(p) = it.next(ctx, &[]) {
                let p = p?;
                match p.ty {
                    0xb => servers.push(ServerInformation::decode(msg, &p, ctx)?),
                    _ => return Err(p.unexpected(name)),
                }
            }
            EnrpMessage::ListResponse(ListResponse {
                ids,
                reject: bit0,
                servers,
            })
        }
        t::ERROR => {
            let mut error = None;
            while let Some(p) = it.next(ctx, &[]) {
                let p = p?;
                match p.ty {
                    0xc => once(
                        &mut error,
                        OperationError::decode(&p)?,
                        &p,
                        "Operation Error",
                        name,
                    )?,
                    _ => return Err(p.unexpected(name)),
                }
            }
            EnrpMessage::Error(EnrpError {
                ids,
                error: error.ok_or_else(|| missing("Operation Error", name, None))?,
            })
        }
        // Messages without parameters: anything after the fixed part must be skippable.
        _ => {
            if let Some(p) = it.next(ctx, &[]) {
                return Err(p?.unexpected(name));
            }
            match ty {
                t::HANDLE_TABLE_REQUEST => EnrpMessage::HandleTableRequest(HandleTableRequest {
                    ids,
                    own_children_only: bit0,
                }),
                t::LIST_REQUEST => EnrpMessage::ListRequest(ids),
                _ => {
                    let tk = Takeover {
                        ids,
                        target: RegistrarId(be32(msg, 12)),
                    };
                    match ty {
                        t::INIT_TAKEOVER => EnrpMessage::InitTakeover(tk),
                        t::INIT_TAKEOVER_ACK => EnrpMessage::InitTakeoverAck(tk),
                        _ => EnrpMessage::TakeoverServer(tk),
                    }
                }
            }
        }
    })
}
