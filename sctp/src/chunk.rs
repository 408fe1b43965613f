//! SCTP packets and chunks (RFC 9260 §3): parsing with every length checked, and encoding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

/// Chunk type numbers (RFC 9260 §3.2, Table 1).
pub mod chunk_type {
    /// Payload Data.
    pub const DATA: u8 = 0;
    /// Initiation.
    pub const INIT: u8 = 1;
    /// Initiation Acknowledgement.
    pub const INIT_ACK: u8 = 2;
    /// Selective Acknowledgement.
    pub const SACK: u8 = 3;
    /// Heartbeat Request.
    pub const HEARTBEAT: u8 = 4;
    /// Heartbeat Acknowledgement.
    pub const HEARTBEAT_ACK: u8 = 5;
    /// Abort.
    pub const ABORT: u8 = 6;
    /// Shutdown.
    pub const SHUTDOWN: u8 = 7;
    /// Shutdown Acknowledgement.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// Operation Error.
    pub const ERROR: u8 = 9;
    /// State Cookie echo.
    pub const COOKIE_ECHO: u8 = 10;
    /// Cookie Acknowledgement.
    pub const COOKIE_ACK: u8 = 11;
    /// Shutdown Complete.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// Parameter type numbers used in INIT/INIT ACK and HEARTBEAT (RFC 9260 §3.3).
pub mod param_type {
    /// Heartbeat Info.
    pub const HEARTBEAT_INFO: u16 = 1;
    /// IPv4 Address.
    pub const IPV4: u16 = 5;
    /// IPv6 Address.
    pub const IPV6: u16 = 6;
    /// State Cookie.
    pub const STATE_COOKIE: u16 = 7;
    /// Unrecognized Parameter.
    pub const UNRECOGNIZED: u16 = 8;
    /// Cookie Preservative.
    pub const COOKIE_PRESERVATIVE: u16 = 9;
    /// Host Name Address (deprecated; refused).
    pub const HOST_NAME: u16 = 11;
    /// Supported Address Types.
    pub const SUPPORTED_ADDRESS_TYPES: u16 = 12;
}

/// Error cause codes (RFC 9260 §3.3.10).
pub mod cause {
    /// Invalid Stream Identifier.
    pub const INVALID_STREAM: u16 = 1;
    /// Missing Mandatory Parameter.
    pub const MISSING_MANDATORY_PARAMETER: u16 = 2;
    /// Stale Cookie Error.
    pub const STALE_COOKIE: u16 = 3;
    /// Out of Resource.
    pub const OUT_OF_RESOURCE: u16 = 4;
    /// Unresolvable Address.
    pub const UNRESOLVABLE_ADDRESS: u16 = 5;
    /// Unrecognized Chunk Type.
    pub const UNRECOGNIZED_CHUNK: u16 = 6;
    /// Invalid Mandatory Parameter.
    pub const INVALID_MANDATORY_PARAMETER: u16 = 7;
    /// Unrecognized Parameters.
    pub const UNRECOGNIZED_PARAMETERS: u16 = 8;
    /// No User Data.
    pub const NO_USER_DATA: u16 = 9;
    /// Cookie Received While Shutting Down.
    pub const COOKIE_WHILE_SHUTTING_DOWN: u16 = 10;
    /// Restart of an Association with New Addresses.
    pub const RESTART_WITH_NEW_ADDRESSES: u16 = 11;
    /// User-Initiated Abort.
    pub const USER_INITIATED_ABORT: u16 = 12;
    /// Protocol Violation.
    pub const PROTOCOL_VIOLATION: u16 = 13;

    /// The cause's name.
    pub fn name(code: u16) -> &'static str {
        match code {
            1 => "Invalid Stream Identifier",
            2 => "Missing Mandatory Parameter",
            3 => "Stale Cookie Error",
            4 => "Out of Resource",
            5 => "Unresolvable Address",
            6 => "Unrecognized Chunk Type",
            7 => "Invalid Mandatory Parameter",
            8 => "Unrecognized Parameters",
            9 => "No User Data",
            10 => "Cookie Received While Shutting Down",
            11 => "Restart of an Association with New Addresses",
            12 => "User-Initiated Abort",
            13 => "Protocol Violation",
            _ => "unknown cause",
        }
    }
}

/// Size of the SCTP common header.
pub const COMMON_HEADER_LEN: usize = 12;
/// Size of a DATA chunk's header (before the user data).
pub const DATA_HEADER_LEN: usize = 16;

/// The SCTP common header (RFC 9260 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommonHeader {
    /// Sender's port.
    pub src_port: u16,
    /// Receiver's port.
    pub dst_port: u16,
    /// Verification tag.
    pub vtag: u32,
}

/// A DATA chunk (RFC 9260 §3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataChunk {
    /// Transmission sequence number.
    pub tsn: u32,
    /// Stream identifier.
    pub stream: u16,
    /// Stream sequence number (ignored when unordered).
    pub ssn: u16,
    /// Payload protocol identifier.
    pub ppid: u32,
    /// U flag: unordered.
    pub unordered: bool,
    /// B flag: first fragment.
    pub begin: bool,
    /// E flag: last fragment.
    pub end: bool,
    /// I flag (RFC 7053): the receiver should SACK immediately.
    pub immediate: bool,
    /// The user data (at least one byte).
    pub payload: Bytes,
}

impl DataChunk {
    fn flags(&self) -> u8 {
        u8::from(self.end)
            | u8::from(self.begin) << 1
            | u8::from(self.unordered) << 2
            | u8::from(self.immediate) << 3
    }
}

/// The fixed part and the parameters of an INIT or INIT ACK chunk (RFC 9260 §3.3.2–3.3.3).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Init {
    /// Initiate tag: the verification tag the sender expects.
    pub initiate_tag: u32,
    /// Advertised receiver window credit.
    pub a_rwnd: u32,
    /// Number of outbound streams.
    pub outbound_streams: u16,
    /// Maximum number of inbound streams.
    pub inbound_streams: u16,
    /// Initial TSN.
    pub initial_tsn: u32,
    /// IPv4/IPv6 Address parameters.
    pub addresses: Vec<IpAddr>,
    /// Cookie Preservative: suggested cookie life increment (ms).
    pub cookie_preservative: Option<u32>,
    /// Supported Address Types (IPv4 = 5, IPv6 = 6), when present.
    pub supported_address_types: Option<Vec<u16>>,
    /// A Host Name Address parameter was present (RFC 9260 deprecates it; refused with an
    /// Unresolvable Address error).
    pub host_name: bool,
    /// State Cookie (INIT ACK only).
    pub cookie: Option<Bytes>,
    /// Unrecognized Parameter parameters (INIT ACK): what the peer did not understand.
    pub unrecognized_by_peer: Vec<Bytes>,
    /// Unknown parameters of ours to report (action bits 01/11), as received.
    pub unknown_to_report: Vec<Bytes>,
}

/// A SACK chunk (RFC 9260 §3.3.4).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sack {
    /// Cumulative TSN ack.
    pub cum_tsn: u32,
    /// Advertised receiver window credit.
    pub a_rwnd: u32,
    /// Gap ack blocks: (start, end) offsets from `cum_tsn`.
    pub gaps: Vec<(u16, u16)>,
    /// Duplicate TSNs.
    pub dups: Vec<u32>,
}

/// An error cause in an ABORT or ERROR chunk (RFC 9260 §3.3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCause {
    /// Cause code.
    pub code: u16,
    /// Cause-specific information.
    pub info: Bytes,
}

impl ErrorCause {
    /// A cause with information.
    pub fn new(code: u16, info: impl Into<Bytes>) -> Self {
        Self {
            code,
            info: info.into(),
        }
    }
}

/// A chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// DATA.
    Data(DataChunk),
    /// INIT.
    Init(Init),
    /// INIT ACK.
    InitAck(Init),
    /// SACK.
    Sack(Sack),
    /// HEARTBEAT: the parameters (Heartbeat Info and any others), raw.
    Heartbeat(Bytes),
    /// HEARTBEAT ACK: the parameters echoed, raw.
    HeartbeatAck(Bytes),
    /// ABORT.
    Abort {
        /// T flag: the verification tag is the reflected one.
        reflected: bool,
        /// Error causes.
        causes: Vec<ErrorCause>,
    },
    /// SHUTDOWN.
    Shutdown {
        /// Cumulative TSN ack.
        cum_tsn: u32,
    },
    /// SHUTDOWN ACK.
    ShutdownAck,
    /// ERROR.
    Error(Vec<ErrorCause>),
    /// COOKIE ECHO.
    CookieEcho(Bytes),
    /// COOKIE ACK.
    CookieAck,
    /// SHUTDOWN COMPLETE.
    ShutdownComplete {
        /// T flag: the verification tag is the reflected one.
        reflected: bool,
    },
    /// A chunk type this stack does not implement, kept for the action-bit rules.
    Unknown {
        /// Chunk type.
        ty: u8,
        /// The whole chunk (header and value, without padding).
        raw: Bytes,
    },
}

impl Chunk {
    /// The chunk type number.
    pub fn ty(&self) -> u8 {
        use chunk_type::*;
        match self {
            Self::Data(_) => DATA,
            Self::Init(_) => INIT,
            Self::InitAck(_) => INIT_ACK,
            Self::Sack(_) => SACK,
            Self::Heartbeat(_) => HEARTBEAT,
            Self::HeartbeatAck(_) => HEARTBEAT_ACK,
            Self::Abort { .. } => ABORT,
            Self::Shutdown { .. } => SHUTDOWN,
            Self::ShutdownAck => SHUTDOWN_ACK,
            Self::Error(_) => ERROR,
            Self::CookieEcho(_) => COOKIE_ECHO,
            Self::CookieAck => COOKIE_ACK,
            Self::ShutdownComplete { .. } => SHUTDOWN_COMPLETE,
            Self::Unknown { ty, .. } => *ty,
        }
    }

    /// Size of the encoded chunk including padding.
    pub fn encoded_len(&self) -> usize {
        pad4(self.unpadded_len())
    }

    fn unpadded_len(&self) -> usize {
        fn causes_len(c: &[ErrorCause]) -> usize {
            let n = c.len();
            c.iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 == n {
                        4 + c.info.len()
                    } else {
                        pad4(4 + c.info.len())
                    }
                })
                .sum()
        }
        4 + match self {
            Self::Data(d) => 12 + d.payload.len(),
            Self::Init(i) | Self::InitAck(i) => 16 + init_params_len(i),
            Self::Sack(s) => 12 + 4 * s.gaps.len() + 4 * s.dups.len(),
            Self::Heartbeat(b) | Self::HeartbeatAck(b) | Self::CookieEcho(b) => b.len(),
            Self::Abort { causes, .. } | Self::Error(causes) => causes_len(causes),
            Self::Shutdown { .. } => 4,
            Self::ShutdownAck | Self::CookieAck | Self::ShutdownComplete { .. } => 0,
            Self::Unknown { raw, .. } => raw.len() - 4,
        }
    }

    /// Appends the chunk, padded to 4 bytes.
    pub fn encode(&self, out: &mut BytesMut) {
        use chunk_type::*;
        let start = out.len();
        let len = self.unpadded_len();
        let (ty, flags) = match self {
            Self::Data(d) => (DATA, d.flags()),
            Self::Abort { reflected, .. } | Self::ShutdownComplete { reflected } => {
                (self.ty(), u8::from(*reflected))
            }
            Self::Unknown { raw, .. } => {
                out.extend_from_slice(raw);
                pad_to(out, start + pad4(raw.len()));
                return;
            }
            _ => (self.ty(), 0),
        };
        out.put_u8(ty);
        out.put_u8(flags);
        out.put_u16(len as u16);
        match self {
            Self::Data(d) => {
                out.put_u32(d.tsn);
                out.put_u16(d.stream);
                out.put_u16(d.ssn);
                out.put_u32(d.ppid);
                out.extend_from_slice(&d.payload);
            }
            Self::Init(i) | Self::InitAck(i) => {
                out.put_u32(i.initiate_tag);
                out.put_u32(i.a_rwnd);
                out.put_u16(i.outbound_streams);
                out.put_u16(i.inbound_streams);
                out.put_u32(i.initial_tsn);
                encode_init_params(i, out);
            }
            Self::Sack(s) => {
                out.put_u32(s.cum_tsn);
                out.put_u32(s.a_rwnd);
                out.put_u16(s.gaps.len() as u16);
                out.put_u16(s.dups.len() as u16);
                for &(a, b) in &s.gaps {
                    out.put_u16(a);
                    out.put_u16(b);
                }
                for &d in &s.dups {
                    out.put_u32(d);
                }
            }
            Self::Heartbeat(b) | Self::HeartbeatAck(b) | Self::CookieEcho(b) => {
                out.extend_from_slice(b)
            }
            Self::Abort { causes, .. } | Self::Error(causes) => {
                for c in causes {
                    let at = out.len();
                    out.put_u16(c.code);
                    out.put_u16((4 + c.info.len()) as u16);
                    out.extend_from_slice(&c.info);
                    pad_to(out, at + pad4(4 + c.info.len()));
                }
            }
            Self::Shutdown { cum_tsn } => out.put_u32(*cum_tsn),
            Self::ShutdownAck | Self::CookieAck | Self::ShutdownComplete { .. } => {}
            Self::Unknown { .. } => unreachable!("handled above"),
        }
        pad_to(out, start + pad4(len));
    }
}

#[inline]
pub(crate) const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn pad_to(out: &mut BytesMut, len: usize) {
    if out.len() < len {
        out.put_bytes(0, len - out.len());
    } else {
        // The last cause's padding is not counted in the chunk length but is still sent.
        out.truncate(len);
    }
}

fn param_len(value: usize) -> usize {
    pad4(4 + value)
}

fn init_params_len(i: &Init) -> usize {
    let mut n = 0;
    for a in &i.addresses {
        n += param_len(if a.is_ipv4() { 4 } else { 16 });
    }
    if i.cookie_preservative.is_some() {
        n += 8;
    }
    if let Some(t) = &i.supported_address_types {
        n += param_len(2 * t.len());
    }
    if let Some(c) = &i.cookie {
        n += param_len(c.len());
    }
    for u in &i.unrecognized_by_peer {
        n += param_len(u.len());
    }
    // The last parameter's padding does not count in the chunk length.
    let last_pad = last_param_pad(i);
    n - last_pad
}

fn last_param_pad(i: &Init) -> usize {
    let last = if let Some(u) = i.unrecognized_by_peer.last() {
        4 + u.len()
    } else if let Some(c) = &i.cookie {
        4 + c.len()
    } else if let Some(t) = &i.supported_address_types {
        4 + 2 * t.len()
    } else {
        return 0;
    };
    pad4(last) - last
}

fn encode_init_params(i: &Init, out: &mut BytesMut) {
    let param = |out: &mut BytesMut, ty: u16, value: &[u8]| {
        let at = out.len();
        out.put_u16(ty);
        out.put_u16((4 + value.len()) as u16);
        out.extend_from_slice(value);
        pad_to(out, at + pad4(4 + value.len()));
    };
    for a in &i.addresses {
        match a {
            IpAddr::V4(v4) => param(out, param_type::IPV4, &v4.octets()),
            IpAddr::V6(v6) => param(out, param_type::IPV6, &v6.octets()),
        }
    }
    if let Some(p) = i.cookie_preservative {
        param(out, param_type::COOKIE_PRESERVATIVE, &p.to_be_bytes());
    }
    if let Some(t) = &i.supported_address_types {
        let v: Vec<u8> = t.iter().flat_map(|x| x.to_be_bytes()).collect();
        param(out, param_type::SUPPORTED_ADDRESS_TYPES, &v);
    }
    if let Some(c) = &i.cookie {
        param(out, param_type::STATE_COOKIE, c);
    }
    // Unrecognized Parameter parameters wrap the peer's parameter (INIT ACK).
    for u in &i.unrecognized_by_peer {
        param(out, param_type::UNRECOGNIZED, u);
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the common header.
    #[error("packet of {0} bytes is shorter than the common header")]
    TooShort(usize),
    /// The CRC32c does not match.
    #[error("bad CRC32c checksum")]
    BadChecksum,
    /// A chunk's length is below 4 or runs past the packet.
    #[error("chunk {ty} at offset {offset} has a bad length")]
    BadChunkLength {
        /// Chunk type.
        ty: u8,
        /// Offset in the packet.
        offset: usize,
    },
    /// A chunk's fixed part is shorter than its type requires.
    #[error("chunk {ty} at offset {offset} is too short for its type")]
    ChunkTooShort {
        /// Chunk type.
        ty: u8,
        /// Offset in the packet.
        offset: usize,
    },
    /// A DATA chunk without user data (RFC 9260 §6.2: abort with No User Data).
    #[error("DATA chunk with TSN {0} carries no user data")]
    EmptyData(u32),
}

/// A parsed packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The common header.
    pub header: CommonHeader,
    /// The chunks, in order. Parsing stops at an unknown chunk whose action bits say "stop".
    pub chunks: Vec<Chunk>,
    /// Unknown chunks to report in an ERROR (action bits 01 and 11), as received.
    pub unrecognized: Vec<Bytes>,
}

/// Checks the CRC32c of a packet (RFC 9260 §6.8, Appendix A).
pub fn checksum_ok(p: &[u8]) -> bool {
    if p.len() < COMMON_HEADER_LEN {
        return false;
    }
    let got = u32::from_le_bytes([p[8], p[9], p[10], p[11]]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&p[..8]), &[0; 4]);
    let crc = crc32c::crc32c_append(crc, &p[12..]);
    crc == got
}

/// Parses only the common header (no checksum check).
pub fn parse_header(p: &[u8]) -> Result<CommonHeader, PacketError> {
    if p.len() < COMMON_HEADER_LEN {
        return Err(PacketError::TooShort(p.len()));
    }
    Ok(CommonHeader {
        src_port: u16::from_be_bytes([p[0], p[1]]),
        dst_port: u16::from_be_bytes([p[2], p[3]]),
        vtag: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
    })
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Packet {
    /// Parses a packet, checking its CRC32c. Chunk payloads are slices of `p` (no copy).
    pub fn parse(p: &Bytes) -> Result<Self, PacketError> {
        let header = parse_header(p)?;
        if !checksum_ok(p) {
            return Err(PacketError::BadChecksum);
        }
        let mut chunks = Vec::new();
        let mut unrecognized = Vec::new();
        let mut pos = COMMON_HEADER_LEN;
        while p.len() - pos >= 4 {
            let ty = p[pos];
            let flags = p[pos + 1];
            let len = usize::from(be16(p, pos + 2));
            if len < 4 || len > p.len() - pos {
                return Err(PacketError::BadChunkLength { ty, offset: pos });
            }
            let v = p.slice(pos + 4..pos + len);
            let too_short = |need: usize| {
                if v.len() < need {
                    Err(PacketError::ChunkTooShort { ty, offset: pos })
                } else {
                    Ok(())
                }
            };
            use chunk_type::*;
            let chunk = match ty {
                DATA => {
                    too_short(12)?;
                    let tsn = be32(&v, 0);
                    if v.len() == 12 {
                        return Err(PacketError::EmptyData(tsn));
                    }
                    Chunk::Data(DataChunk {
                        tsn,
                        stream: be16(&v, 4),
                        ssn: be16(&v, 6),
                        ppid: be32(&v, 8),
                        unordered: flags & 4 != 0,
                        begin: flags & 2 != 0,
                        end: flags & 1 != 0,
                        immediate: flags & 8 != 0,
                        payload: v.slice(12..),
                    })
                }
                INIT | INIT_ACK => {
                    too_short(16)?;
                    let i = parse_init(&v, ty == INIT_ACK);
                    if ty == INIT {
                        Chunk::Init(i)
                    } else {
                        Chunk::InitAck(i)
                    }
                }
                SACK => {
                    too_short(12)?;
                    let ngaps = usize::from(be16(&v, 8));
                    let ndups = usize::from(be16(&v, 10));
                    too_short(12 + 4 * ngaps + 4 * ndups)?;
                    let gaps = (0..ngaps)
                        .map(|i| (be16(&v, 12 + 4 * i), be16(&v, 14 + 4 * i)))
                        .collect();
                    let dups = (0..ndups)
                        .map(|i| be32(&v, 12 + 4 * ngaps + 4 * i))
                        .collect();
                    Chunk::Sack(Sack {
                        cum_tsn: be32(&v, 0),
                        a_rwnd: be32(&v, 4),
                        gaps,
                        dups,
                    })
                }
                HEARTBEAT => Chunk::Heartbeat(v),
                HEARTBEAT_ACK => Chunk::HeartbeatAck(v),
                ABORT => Chunk::Abort {
                    reflected: flags & 1 != 0,
                    causes: parse_causes(&v),
                },
                SHUTDOWN => {
                    too_short(4)?;
                    Chunk::Shutdown {
                        cum_tsn: be32(&v, 0),
                    }
                }
                SHUTDOWN_ACK => Chunk::ShutdownAck,
                ERROR => Chunk::Error(parse_causes(&v)),
                COOKIE_ECHO => Chunk::CookieEcho(v),
                COOKIE_ACK => Chunk::CookieAck,
                SHUTDOWN_COMPLETE => Chunk::ShutdownComplete {
                    reflected: flags & 1 != 0,
                },
                _ => {
                    let raw = p.slice(pos..pos + len);
                    match ty >> 6 {
                        0b00 => break,
                        0b01 => {
                            unrecognized.push(raw);
                            break;
                        }
                        0b10 => {}
                        _ => unrecognized.push(raw),
                    }
                    pos = (pos + pad4(len)).min(p.len());
                    continue;
                }
            };
            chunks.push(chunk);
            // The last chunk's padding may be missing (RFC 9260 §3.2: accept it either way).
            pos = (pos + pad4(len)).min(p.len());
        }
        Ok(Self {
            header,
            chunks,
            unrecognized,
        })
    }

    /// Encodes a packet with its CRC32c.
    pub fn encode(header: &CommonHeader, chunks: &[Chunk]) -> Bytes {
        let len = COMMON_HEADER_LEN + chunks.iter().map(Chunk::encoded_len).sum::<usize>();
        let mut out = BytesMut::with_capacity(len);
        out.put_u16(header.src_port);
        out.put_u16(header.dst_port);
        out.put_u32(header.vtag);
        out.put_u32(0);
        for c in chunks {
            c.encode(&mut out);
        }
        let crc = crc32c::crc32c(&out);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out.freeze()
    }
}

fn parse_causes(v: &Bytes) -> Vec<ErrorCause> {
    let mut out = Vec::new();
    let mut pos = 0;
    while v.len() - pos >= 4 {
        let code = be16(v, pos);
        let len = usize::from(be16(v, pos + 2));
        if len < 4 || len > v.len() - pos {
            break;
        }
        out.push(ErrorCause {
            code,
            info: v.slice(pos + 4..pos + len),
        });
        pos = (pos + pad4(len)).min(v.len());
    }
    out
}

fn parse_init(v: &Bytes, ack: bool) -> Init {
    let mut i = Init {
        initiate_tag: be32(v, 0),
        a_rwnd: be32(v, 4),
        outbound_streams: be16(v, 8),
        inbound_streams: be16(v, 10),
        initial_tsn: be32(v, 12),
        ..Init::default()
    };
    let mut pos = 16;
    while v.len() - pos >= 4 {
        let ty = be16(v, pos);
        let len = usize::from(be16(v, pos + 2));
        if len < 4 || len > v.len() - pos {
            break;
        }
        let val = v.slice(pos + 4..pos + len);
        let raw = v.slice(pos..pos + len);
        match ty {
            param_type::IPV4 if val.len() >= 4 => {
                i.addresses
                    .push(IpAddr::V4(Ipv4Addr::new(val[0], val[1], val[2], val[3])));
            }
            param_type::IPV6 if val.len() >= 16 => {
                let a: [u8; 16] = val[..16].try_into().expect("16 bytes");
                i.addresses.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            param_type::COOKIE_PRESERVATIVE if val.len() >= 4 => {
                i.cookie_preservative = Some(be32(&val, 0));
            }
            param_type::SUPPORTED_ADDRESS_TYPES => {
                i.supported_address_types = Some(val.chunks_exact(2).map(|c| be16(c, 0)).collect());
            }
            param_type::HOST_NAME => i.host_name = true,
            param_type::STATE_COOKIE if ack => i.cookie = Some(val),
            param_type::UNRECOGNIZED if ack => i.unrecognized_by_peer.push(val),
            _ => match ty >> 14 {
                0b00 => break,
                0b01 => {
                    i.unknown_to_report.push(raw);
                    break;
                }
                0b10 => {}
                _ => i.unknown_to_report.push(raw),
            },
        }
        pos = (pos + pad4(len)).min(v.len());
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Arbitrary bytes with a correct checksum, so that the chunk parser sees them.
    fn with_crc(mut p: Vec<u8>) -> Bytes {
        if p.len() >= 12 {
            p[8..12].copy_from_slice(&[0; 4]);
            let crc = crc32c::crc32c(&p);
            p[8..12].copy_from_slice(&crc.to_le_bytes());
        }
        Bytes::from(p)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn parsing_never_panics_and_reencodes(p in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(pkt) = Packet::parse(&with_crc(p)) {
                // What parses, re-encodes to something that parses to the same chunks (but for
                // the peer's unknown INIT parameters, which are only reported back).
                let again = Packet::parse(&Packet::encode(&pkt.header, &pkt.chunks)).unwrap();
                let norm = |mut v: Vec<Chunk>| {
                    for c in &mut v {
                        if let Chunk::Init(i) | Chunk::InitAck(i) = c {
                            i.unknown_to_report.clear();
                            i.host_name = false;
                        }
                    }
                    v
                };
                prop_assert_eq!(norm(again.chunks), norm(pkt.chunks));
            }
        }

        #[test]
        fn unknown_chunk_with_unpadded_tail(ty in 64u8..=255, len in 4u16..8, extra in 0usize..3) {
            // A last chunk whose padding is missing, of a type this stack does not know.
            let mut p = vec![0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, ty, 0];
            p.extend_from_slice(&len.to_be_bytes());
            p.resize(12 + usize::from(len) + extra.min(3), 0);
            let _ = Packet::parse(&with_crc(p));
        }
    }

    fn roundtrip(chunks: Vec<Chunk>) {
        let h = CommonHeader {
            src_port: 9,
            dst_port: 10,
            vtag: 0xdead_beef,
        };
        let bytes = Packet::encode(&h, &chunks);
        assert_eq!(bytes.len() % 4, 0);
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.chunks, chunks);
    }

    #[test]
    fn chunks_roundtrip() {
        roundtrip(vec![
            Chunk::Data(DataChunk {
                tsn: 7,
                stream: 3,
                ssn: 9,
                ppid: 11,
                unordered: true,
                begin: true,
                end: false,
                immediate: false,
                payload: Bytes::from_static(b"hello"),
            }),
            Chunk::Sack(Sack {
                cum_tsn: 100,
                a_rwnd: 65536,
                gaps: vec![(2, 3), (5, 9)],
                dups: vec![99],
            }),
            Chunk::Heartbeat(Bytes::from_static(&[0, 1, 0, 8, 1, 2, 3, 4])),
            Chunk::Shutdown { cum_tsn: 5 },
            Chunk::ShutdownAck,
            Chunk::Error(vec![ErrorCause::new(
                cause::INVALID_STREAM,
                vec![0, 5, 0, 0],
            )]),
            Chunk::CookieEcho(Bytes::from_static(b"cookie!")),
            Chunk::CookieAck,
        ]);
        roundtrip(vec![Chunk::Init(Init {
            initiate_tag: 1,
            a_rwnd: 2,
            outbound_streams: 3,
            inbound_streams: 4,
            initial_tsn: 5,
            addresses: vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            cookie_preservative: Some(1000),
            supported_address_types: Some(vec![5]),
            ..Init::default()
        })]);
        roundtrip(vec![Chunk::InitAck(Init {
            initiate_tag: 1,
            cookie: Some(Bytes::from_static(b"abc")),
            unrecognized_by_peer: vec![Bytes::from_static(&[0xc0, 0, 0, 4])],
            ..Init::default()
        })]);
        roundtrip(vec![Chunk::Abort {
            reflected: true,
            causes: vec![
                ErrorCause::new(cause::USER_INITIATED_ABORT, b"bye".to_vec()),
                ErrorCause::new(cause::PROTOCOL_VIOLATION, vec![]),
            ],
        }]);
        roundtrip(vec![Chunk::ShutdownComplete { reflected: true }]);
    }

    #[test]
    fn checksum_is_checked() {
        let h = CommonHeader {
            src_port: 1,
            dst_port: 2,
            vtag: 3,
        };
        let mut b = BytesMut::from(&Packet::encode(&h, &[Chunk::CookieAck])[..]);
        b[13] ^= 1;
        assert_eq!(Packet::parse(&b.freeze()), Err(PacketError::BadChecksum));
    }

    #[test]
    fn unknown_chunks_follow_their_action_bits() {
        let h = CommonHeader {
            src_port: 1,
            dst_port: 2,
            vtag: 3,
        };
        let unk = |ty: u8| Chunk::Unknown {
            ty,
            raw: Bytes::from(vec![ty, 0, 0, 5, 0xaa]),
        };
        // 10: skip; 11: skip and report; 01: stop and report; 00: stop.
        let p = Packet::parse(&Packet::encode(
            &h,
            &[
                unk(0x80),
                Chunk::CookieAck,
                unk(0xc1),
                unk(0x41),
                Chunk::ShutdownAck,
            ],
        ))
        .unwrap();
        assert_eq!(p.chunks, vec![Chunk::CookieAck]);
        assert_eq!(p.unrecognized.len(), 2);
        let p = Packet::parse(&Packet::encode(&h, &[unk(0x3f), Chunk::CookieAck])).unwrap();
        assert!(p.chunks.is_empty() && p.unrecognized.is_empty());
    }
}
