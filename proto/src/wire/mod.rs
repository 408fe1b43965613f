//! The ASAP (RFC 5352) and ENRP (RFC 5353) wire codec: every message, every parameter of
//! RFC 5354 and every policy of RFC 5356 (plus RSPLIB's extensions), in one typed model used for
//! both directions.
//!
//! * [`AsapMessage`] and [`EnrpMessage`] encode with `encode` / `to_bytes` and decode with
//!   `decode` / `decode_full`.
//! * Decoding never panics and never trusts a length field: every length is checked against the
//!   bytes present, and nothing is allocated beyond what the input holds.
//! * A message that cannot be decoded yields a [`DecodeError`] saying what is wrong, where, and
//!   what RFC 5354 says to send back ([`DecodeErrorInfo::error_cause`], or nothing for a silent
//!   discard).
//! * Unknown parameter types follow their action bits (RFC 5354 §3): stop or skip, report or not;
//!   skipped ones are listed in [`Decoded::skipped`].
//! * Encoded lengths exclude padding, padding is zero (RFC 5354 §2, §4).
//!
//! # Example
//!
//! ```
//! use rserpool_proto::wire::{AsapMessage, HandleResolution, PoolHandle};
//!
//! let msg = AsapMessage::HandleResolution(HandleResolution {
//!     subscribe: false,
//!     pool_handle: PoolHandle::try_from("EchoPool").unwrap(),
//!     items: None,
//! });
//! let bytes = msg.to_bytes().unwrap();
//! assert_eq!(bytes, b"\x05\x00\x00\x10\x00\x09\x00\x0cEchoPool");
//! assert_eq!(AsapMessage::decode(&bytes).unwrap(), msg);
//! ```

mod asap;
mod codec;
#[cfg(feature = "describe")]
pub mod describe;
mod enrp;
mod error;
mod param;
mod policy;

pub use asap::{
    AsapError, AsapMessage, BusinessCard, Cookie, Deregistration, DeregistrationResponse,
    EndpointKeepAlive, EndpointKeepAliveAck, EndpointUnreachable, HandleResolution,
    HandleResolutionResponse, Registration, RegistrationResponse, ServerAnnounce,
    msg_type as asap_type,
};
pub use codec::{SkippedParameter, message_length};
pub use enrp::{
    EnrpError, EnrpMessage, HandleTableRequest, HandleTableResponse, HandleUpdate, ListResponse,
    PoolEntry, Presence, ServerIds, Takeover, UpdateAction, msg_type as enrp_type,
};
pub use error::{CauseCode, DecodeError, DecodeErrorInfo, DecodeErrorKind, EncodeError};
pub use param::{
    ErrorCause, InvalidPoolHandle, LifeUnit, MAX_POOL_HANDLE_LEN, OffendingParameter,
    OperationError, ParamType, PoolElement, PoolElementId, PoolHandle, RegistrarId, SctpTransport,
    ServerInformation, Transport, TransportUse, UnrecognizedAction,
};
pub use policy::{Policy, PolicySpecError, PolicyType, PolicyValues, fraction, fraction_to_f64};

/// SCTP payload protocol identifier of ASAP (IANA).
pub const PPID_ASAP: u32 = 11;
/// SCTP payload protocol identifier of ENRP (IANA).
pub const PPID_ENRP: u32 = 12;
/// The ASAP port: registrars' SCTP/TCP port and the Server Announce UDP port (IANA).
pub const ASAP_PORT: u16 = 3863;
/// The ENRP port: registrars' SCTP port and the Presence UDP port (IANA).
pub const ENRP_PORT: u16 = 9901;
/// RFC 6951's well-known UDP port for SCTP encapsulation.
pub const SCTP_UDP_PORT: u16 = 9899;

/// A decoded message and the unknown parameters skipped while decoding it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Decoded<M> {
    /// The message.
    pub message: M,
    /// Unknown parameters whose action bits said "skip" (RFC 5354 §3).
    pub skipped: Vec<SkippedParameter>,
}

impl<M> Decoded<M> {
    /// The Operation Error to send back for skipped parameters whose action bits (11) ask for a
    /// report: one Unrecognized Parameter cause each (RFC 5354 §3.12.2). `None` if none asks.
    pub fn unrecognized_report(&self) -> Option<OperationError> {
        let causes: Vec<_> = self
            .skipped
            .iter()
            .filter(|s| s.report)
            .map(|s| ErrorCause {
                code: CauseCode::UNRECOGNIZED_PARAMETER,
                info: s.tlv.clone(),
            })
            .collect();
        (!causes.is_empty()).then_some(OperationError { causes })
    }
}

/// Which of the two RSerPool protocols a message belongs to. Their message type numbers
/// overlap, so the transport tells them apart: SCTP PPID 11/12, or the port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Protocol {
    /// ASAP (RFC 5352).
    Asap,
    /// ENRP (RFC 5353).
    Enrp,
}

impl Protocol {
    /// The protocol a PPID stands for.
    pub fn from_ppid(ppid: u32) -> Option<Self> {
        match ppid {
            PPID_ASAP => Some(Self::Asap),
            PPID_ENRP => Some(Self::Enrp),
            _ => None,
        }
    }

    /// The protocol's PPID.
    pub fn ppid(self) -> u32 {
        match self {
            Self::Asap => PPID_ASAP,
            Self::Enrp => PPID_ENRP,
        }
    }
}

/// An ASAP or ENRP message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// An ASAP message.
    Asap(AsapMessage),
    /// An ENRP message.
    Enrp(EnrpMessage),
}

impl Message {
    /// Decodes a message of the given protocol.
    pub fn decode(protocol: Protocol, buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_full(protocol, buf).map(|d| d.message)
    }

    /// Decodes a message of the given protocol, with the skipped unknown parameters.
    pub fn decode_full(protocol: Protocol, buf: &[u8]) -> Result<Decoded<Self>, DecodeError> {
        Ok(match protocol {
            Protocol::Asap => {
                let d = AsapMessage::decode_full(buf)?;
                Decoded {
                    message: Self::Asap(d.message),
                    skipped: d.skipped,
                }
            }
            Protocol::Enrp => {
                let d = EnrpMessage::decode_full(buf)?;
                Decoded {
                    message: Self::Enrp(d.message),
                    skipped: d.skipped,
                }
            }
        })
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Asap(_) => Protocol::Asap,
            Self::Enrp(_) => Protocol::Enrp,
        }
    }

    /// The message's RFC name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Asap(m) => m.name(),
            Self::Enrp(m) => m.name(),
        }
    }

    /// Encodes the message, appending to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Asap(m) => m.encode(out),
            Self::Enrp(m) => m.encode(out),
        }
    }

    /// Encodes the message into a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(64);
        self.encode(&mut v)?;
        Ok(v)
    }
}

impl From<AsapMessage> for Message {
    fn from(m: AsapMessage) -> Self {
        Self::Asap(m)
    }
}

impl From<EnrpMessage> for Message {
    fn from(m: EnrpMessage) -> Self {
        Self::Enrp(m)
    }
}
