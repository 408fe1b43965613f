//! Decode and encode errors, and the error causes of RFC 5354 §3.12.

use std::fmt;

/// An error cause code (RFC 5354 §3.12, Table 2), plus the private codes RSPLIB 3.4.4 puts on the
/// wire (they are accepted on receipt and named; rserpool itself only sends RFC codes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CauseCode(pub u16);

impl CauseCode {
    /// 0x0: Unspecified Error (no cause-specific information).
    pub const UNSPECIFIED: Self = Self(0x0);
    /// 0x1: Unrecognized Parameter (carries the complete unrecognized TLV).
    pub const UNRECOGNIZED_PARAMETER: Self = Self(0x1);
    /// 0x2: Unrecognized Message (carries the unrecognized message).
    pub const UNRECOGNIZED_MESSAGE: Self = Self(0x2);
    /// 0x3: Invalid Values (carries the offending TLV).
    pub const INVALID_VALUES: Self = Self(0x3);
    /// 0x4: Non-unique PE Identifier.
    pub const NON_UNIQUE_PE_IDENTIFIER: Self = Self(0x4);
    /// 0x5: Inconsistent Pooling Policy (carries the pool's policy parameter).
    pub const INCONSISTENT_POOLING_POLICY: Self = Self(0x5);
    /// 0x6: Lack of Resources.
    pub const LACK_OF_RESOURCES: Self = Self(0x6);
    /// 0x7: Inconsistent Transport Type (carries the pool's transport parameter).
    pub const INCONSISTENT_TRANSPORT_TYPE: Self = Self(0x7);
    /// 0x8: Inconsistent Data/Control Configuration.
    pub const INCONSISTENT_DATA_CONTROL_CONFIGURATION: Self = Self(0x8);
    /// 0x9: Unknown Pool Handle.
    pub const UNKNOWN_POOL_HANDLE: Self = Self(0x9);
    /// 0xa: Rejected due to security considerations.
    pub const REJECTED_SECURITY: Self = Self(0xa);

    /// RSPLIB private code 0x10 (`RSPERR_INVALID_MESSAGE`, a bad message length).
    pub const RSPLIB_INVALID_MESSAGE: Self = Self(0x10);
    /// RSPLIB private code 0x11 (`RSPERR_INVALID_VALUE`, a TLV running past its message).
    pub const RSPLIB_INVALID_VALUE: Self = Self(0x11);
    /// RSPLIB private code 0x100a (`RSPERR_WRONG_PROTOCOL`; RFC 5354 would use 0x7).
    pub const RSPLIB_WRONG_PROTOCOL: Self = Self(0x100a);
    /// RSPLIB private code 0x100b (`RSPERR_UNSUPPORTED_POOL_POLICY`).
    pub const RSPLIB_UNSUPPORTED_POOL_POLICY: Self = Self(0x100b);
    /// RSPLIB private code 0xf000 (`RSPERR_INVALID_ID`, PE identifier 0).
    pub const RSPLIB_INVALID_ID: Self = Self(0xf000);
    /// RSPLIB private code 0xf001 (`RSPERR_OWN_ID`).
    pub const RSPLIB_OWN_ID: Self = Self(0xf001);
    /// RSPLIB private code 0xf002 (`RSPERR_DUPLICATE_ID`; RFC 5354 would use 0x4).
    pub const RSPLIB_DUPLICATE_ID: Self = Self(0xf002);
    /// RSPLIB private code 0xf003 (`RSPERR_INVALID_POOL_POLICY`).
    pub const RSPLIB_INVALID_POOL_POLICY: Self = Self(0xf003);
    /// RSPLIB private code 0xf004 (`RSPERR_INVALID_POOL_HANDLE`).
    pub const RSPLIB_INVALID_POOL_HANDLE: Self = Self(0xf004);
    /// RSPLIB private code 0xf005 (`RSPERR_INVALID_ADDRESSES`).
    pub const RSPLIB_INVALID_ADDRESSES: Self = Self(0xf005);
    /// RSPLIB private code 0xf006 (`RSPERR_INVALID_REGISTRATOR`: a registration carrying an ASAP transport).
    pub const RSPLIB_INVALID_REGISTRATOR: Self = Self(0xf006);
    /// RSPLIB private code 0xf007 (`RSPERR_NO_USABLE_ASAP_ADDRESSES`).
    pub const RSPLIB_NO_USABLE_ASAP_ADDRESSES: Self = Self(0xf007);
    /// RSPLIB private code 0xf008 (`RSPERR_NO_USABLE_USER_ADDRESSES`: addresses not of the association).
    pub const RSPLIB_NO_USABLE_USER_ADDRESSES: Self = Self(0xf008);

    /// A human-readable name; `None` for codes neither RFC 5354 nor RSPLIB define.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "Unspecified Error",
            0x1 => "Unrecognized Parameter",
            0x2 => "Unrecognized Message",
            0x3 => "Invalid Values",
            0x4 => "Non-unique PE Identifier",
            0x5 => "Inconsistent Pooling Policy",
            0x6 => "Lack of Resources",
            0x7 => "Inconsistent Transport Type",
            0x8 => "Inconsistent Data/Control Configuration",
            0x9 => "Unknown Pool Handle",
            0xa => "Rejected due to security considerations",
            0x10 => "RSPLIB: invalid message",
            0x11 => "RSPLIB: invalid value",
            0x100a => "RSPLIB: wrong protocol",
            0x100b => "RSPLIB: unsupported pool policy",
            0xf000 => "RSPLIB: invalid PE identifier",
            0xf001 => "RSPLIB: own identifier",
            0xf002 => "RSPLIB: duplicate identifier",
            0xf003 => "RSPLIB: invalid pool policy",
            0xf004 => "RSPLIB: invalid pool handle",
            0xf005 => "RSPLIB: invalid addresses",
            0xf006 => "RSPLIB: invalid registrator",
            0xf007 => "RSPLIB: no usable ASAP addresses",
            0xf008 => "RSPLIB: no usable user addresses",
            _ => return None,
        })
    }

    /// Whether RFC 5354 §3.12 defines this code (0x0–0xa).
    pub fn is_rfc(self) -> bool {
        self.0 <= 0xa
    }

    /// The RFC 5354 code that means what an RSPLIB private code means, where one exists.
    ///
    /// RSPLIB sends its internal error numbers as cause codes; a receiver that acts on causes should
    /// act on the RFC meaning. Codes without an RFC equivalent map to [`CauseCode::UNSPECIFIED`].
    pub fn rfc_equivalent(self) -> Self {
        match self.0 {
            0x0..=0xa => self,
            0x10 | 0x11 | 0xf000 | 0xf003 | 0xf004 | 0xf005 | 0xf006 => Self::INVALID_VALUES,
            0x100a => Self::INCONSISTENT_TRANSPORT_TYPE,
            0x100b => Self::INVALID_VALUES,
            0xf002 => Self::NON_UNIQUE_PE_IDENTIFIER,
            0xf007 | 0xf008 => Self::INVALID_VALUES,
            _ => Self::UNSPECIFIED,
        }
    }
}

impl fmt::Debug for CauseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CauseCode({:#x})", self.0)
    }
}

impl fmt::Display for CauseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{:#06x} ({n})", self.0),
            None => write!(f, "{:#06x} (unassigned)", self.0),
        }
    }
}

/// What was wrong with a message that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The buffer ends before a header or a fixed field is complete.
    #[error("truncated: {what} needs {needed} bytes, {available} available")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The message length field is smaller than the message's fixed part.
    #[error("message length {length} is shorter than the {minimum}-byte fixed part")]
    MessageTooShort {
        /// The length field.
        length: usize,
        /// The fixed part's size.
        minimum: usize,
    },
    /// The message length field promises more bytes than were received.
    #[error("message length {length} exceeds the {available} bytes received")]
    MessageLengthExceedsData {
        /// The length field.
        length: usize,
        /// Bytes received.
        available: usize,
    },
    /// More than 3 bytes follow the end of the message given by its length field.
    #[error("{extra} bytes follow the message (at most 3 bytes of padding allowed)")]
    TrailingData {
        /// The extra bytes.
        extra: usize,
    },
    /// A parameter's length field is below the 4-byte TLV header.
    #[error("parameter {ty:#06x} has length {length} (< 4)")]
    ParameterTooShort {
        /// Parameter type.
        ty: u16,
        /// Its length field.
        length: usize,
    },
    /// A parameter's length runs past the end of the message or of its enclosing parameter.
    #[error(
        "parameter {ty:#06x} of length {length} runs past its container ({available} bytes left)"
    )]
    ParameterOverrun {
        /// Parameter type.
        ty: u16,
        /// Its length field.
        length: usize,
        /// Bytes left in the container.
        available: usize,
    },
    /// A message type this codec does not know (RFC 5354 §4 action bits decide the report).
    #[error("unrecognized message type {0:#04x}")]
    UnrecognizedMessage(u8),
    /// A parameter type this codec does not know whose action bits say "stop".
    #[error("unrecognized parameter type {0:#06x}")]
    UnrecognizedParameter(u16),
    /// A known parameter in a place where its message or container does not allow it.
    #[error("parameter {ty:#06x} ({name}) is not allowed in {context}")]
    UnexpectedParameter {
        /// Parameter type.
        ty: u16,
        /// Parameter name.
        name: &'static str,
        /// Where it was found.
        context: &'static str,
    },
    /// A mandatory parameter is absent.
    #[error("{context} lacks its mandatory {missing} parameter")]
    MissingParameter {
        /// Name of the missing parameter.
        missing: &'static str,
        /// The message or container.
        context: &'static str,
    },
    /// A parameter that may occur once occurs again.
    #[error("{context} carries more than one {name} parameter")]
    DuplicateParameter {
        /// Name of the repeated parameter.
        name: &'static str,
        /// The message or container.
        context: &'static str,
    },
    /// A parameter's value is not valid.
    #[error("invalid value in {param}: {reason}")]
    InvalidValue {
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A message that could not be decoded, and what RFC 5354 says to tell its sender.
///
/// The details are in [`DecodeErrorInfo`], reachable through `Deref` (`err.kind`, `err.offset`,
/// ...). The error is one pointer wide, so the decoder's happy path moves little.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(Box<DecodeErrorInfo>);

/// The details of a [`DecodeError`].
///
/// `offset` is the byte offset, within the message, of the offending header or TLV. When
/// `report` is true the sender should get an ASAP_ERROR / ENRP_ERROR carrying
/// [`DecodeErrorInfo::error_cause`]; otherwise the message is discarded silently (action bits
/// 00, or an unrecognized message type whose bits say so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeErrorInfo {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// Offset of the offending part within the message.
    pub offset: usize,
    /// The Operation Error cause to report.
    pub cause: CauseCode,
    /// The cause-specific information: the offending TLV (or message), empty where none applies.
    pub offending: Vec<u8>,
    /// Whether the sender should be told (RFC 5354 §3 / §4 action bits).
    pub report: bool,
}

impl DecodeError {
    #[cold]
    pub(crate) fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        // Framing errors leave no well-formed TLV to echo: an Unspecified Error is the honest
        // report (an Invalid Values cause without its TLV is itself malformed, RFC 5354 §3.12.4).
        Self(Box::new(DecodeErrorInfo {
            kind,
            offset,
            cause: CauseCode::UNSPECIFIED,
            offending: Vec::new(),
            report: true,
        }))
    }

    #[cold]
    pub(crate) fn with_cause(mut self, cause: CauseCode, offending: &[u8]) -> Self {
        self.0.cause = cause;
        // The echo must fit into an Operation Error inside a message (16-bit lengths).
        if offending.len() <= MAX_ECHO {
            self.0.offending = offending.to_vec();
        } else {
            self.0.cause = CauseCode::UNSPECIFIED;
            self.0.offending.clear();
        }
        self
    }

    pub(crate) fn silent(mut self) -> Self {
        self.0.report = false;
        self
    }
}

impl std::ops::Deref for DecodeError {
    type Target = DecodeErrorInfo;
    fn deref(&self) -> &DecodeErrorInfo {
        &self.0
    }
}

impl DecodeErrorInfo {
    /// The error cause to send back, or `None` when the message is to be dropped silently.
    pub fn error_cause(&self) -> Option<super::ErrorCause> {
        self.report.then(|| super::ErrorCause {
            code: self.cause,
            info: self.offending.clone(),
        })
    }
}

/// The largest TLV echoed back in an error cause: it must fit, with the cause, parameter and
/// message headers and the ENRP server IDs, into a 16-bit message length.
pub(crate) const MAX_ECHO: usize = 0xffff - 24;

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at offset {})", self.kind, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// A message that cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A parameter or the message exceeds the 65535 bytes a 16-bit length can describe.
    #[error("{what} would be {length} bytes, more than a 16-bit length allows")]
    TooLong {
        /// What overflowed.
        what: &'static str,
        /// Its size.
        length: usize,
    },
}
