//! pcap and pcapng files: reading frames, writing pcap.

use std::io::{self, Write};

/// Link type of Ethernet frames (pcap LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Link type of raw IPv4/IPv6 packets (LINKTYPE_RAW).
pub const LINKTYPE_RAW: u32 = 101;
/// Link type of BSD loopback (LINKTYPE_NULL).
pub const LINKTYPE_NULL: u32 = 0;
/// Link type of Linux cooked capture v1 (LINKTYPE_LINUX_SLL).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Link type of Linux cooked capture v2 (LINKTYPE_LINUX_SLL2).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// Link type of raw IPv4 (LINKTYPE_IPV4).
pub const LINKTYPE_IPV4: u32 = 228;
/// Link type of raw IPv6 (LINKTYPE_IPV6).
pub const LINKTYPE_IPV6: u32 = 229;

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// 1-based frame number, as Wireshark counts.
    pub number: usize,
    /// Capture time in nanoseconds since the Unix epoch (0 where the file gives none).
    pub timestamp_ns: u64,
    /// The link type of `data`.
    pub linktype: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// A capture file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Neither a pcap nor a pcapng file.
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    UnknownFormat(u32),
    /// The file ends inside a header or record.
    #[error("capture file truncated at byte {0}")]
    Truncated(usize),
    /// A pcapng block is malformed.
    #[error("malformed pcapng block at byte {0}")]
    BadBlock(usize),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads every frame of a pcap or pcapng file held in memory.
pub fn read_frames(bytes: &[u8]) -> Result<Vec<Frame>, CaptureError> {
    if bytes.len() < 4 {
        return Err(CaptureError::Truncated(0));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => read_pcap(bytes, false, magic == 0xa1b2_3c4d),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => read_pcap(bytes, true, magic == 0x4d3c_b2a1),
        0x0a0d_0d0a => read_pcapng(bytes),
        m => Err(CaptureError::UnknownFormat(m)),
    }
}

fn u32_at(b: &[u8], off: usize, big: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

fn u16_at(b: &[u8], off: usize, big: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(off..off + 2)?.try_into().ok()?;
    Some(if big {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

fn read_pcap(b: &[u8], big: bool, nanos: bool) -> Result<Vec<Frame>, CaptureError> {
    let linktype = u32_at(b, 20, big).ok_or(CaptureError::Truncated(b.len()))? & 0x0fff_ffff;
    let mut frames = Vec::new();
    let mut pos = 24;
    while pos < b.len() {
        let hdr = |o| u32_at(b, pos + o, big).ok_or(CaptureError::Truncated(pos));
        let (sec, frac, incl) = (hdr(0)?, hdr(4)?, hdr(8)? as usize);
        let data = b
            .get(pos + 16..pos + 16 + incl)
            .ok_or(CaptureError::Truncated(pos))?;
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        frames.push(Frame {
            number: frames.len() + 1,
            timestamp_ns: u64::from(sec) * 1_000_000_000 + frac_ns,
            linktype,
            data: data.to_vec(),
        });
        pos += 16 + incl;
    }
    Ok(frames)
}

/// Interface data of a pcapng section.
struct Iface {
    linktype: u32,
    /// Timestamp ticks per second.
    tps: u64,
}

fn read_pcapng(b: &[u8]) -> Result<Vec<Frame>, CaptureError> {
    let mut frames = Vec::new();
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut big = false;
    let mut pos = 0;
    while pos + 12 <= b.len() {
        let ty = u32_at(b, pos, big).ok_or(CaptureError::Truncated(pos))?;
        if ty == 0x0a0d_0d0a {
            // Section header: its byte-order magic decides the section's endianness.
            let bom = u32_at(b, pos + 8, false).ok_or(CaptureError::Truncated(pos))?;
            big = match bom {
                0x1a2b_3c4d => false,
                0x4d3c_2b1a => true,
                _ => return Err(CaptureError::BadBlock(pos)),
            };
            ifaces.clear();
        }
        let len = u32_at(b, pos + 4, big).ok_or(CaptureError::Truncated(pos))? as usize;
        if len < 12 || len % 4 != 0 || pos + len > b.len() {
            return Err(CaptureError::BadBlock(pos));
        }
        let body = &b[pos + 8..pos + len - 4];
        match ty {
            // Interface Description Block.
            1 => {
                let linktype = u32::from(u16_at(body, 0, big).ok_or(CaptureError::BadBlock(pos))?);
                let mut tps = 1_000_000;
                // Options after linktype(2), reserved(2), snaplen(4).
                let mut o = 8;
                while o + 4 <= body.len() {
                    let code = u16_at(body, o, big).unwrap_or(0);
                    let olen = u16_at(body, o + 2, big).unwrap_or(0) as usize;
                    if code == 0 {
                        break;
                    }
                    if code == 9 && olen >= 1 && o + 4 < body.len() {
                        // if_tsresol: 2^-n if the top bit is set, else 10^-n.
                        let r = body[o + 4];
                        tps = if r & 0x80 != 0 {
                            1u64.checked_shl(u32::from(r & 0x7f)).unwrap_or(u64::MAX)
                        } else {
                            10u64.checked_pow(u32::from(r)).unwrap_or(u64::MAX)
                        };
                    }
                    o += 4 + ((olen + 3) & !3);
                }
                ifaces.push(Iface { linktype, tps });
            }
            // Enhanced Packet Block.
            6 => {
                let iface = u32_at(body, 0, big).ok_or(CaptureError::BadBlock(pos))? as usize;
                let hi = u64::from(u32_at(body, 4, big).ok_or(CaptureError::BadBlock(pos))?);
                let lo = u64::from(u32_at(body, 8, big).ok_or(CaptureError::BadBlock(pos))?);
                let caplen = u32_at(body, 12, big).ok_or(CaptureError::BadBlock(pos))? as usize;
                let data = body
                    .get(20..20 + caplen)
                    .ok_or(CaptureError::BadBlock(pos))?;
                let Some(ifc) = ifaces.get(iface) else {
                    return Err(CaptureError::BadBlock(pos));
                };
                let ticks = (hi << 32) | lo;
                let ns = if ifc.tps >= 1_000_000_000 {
                    ticks / (ifc.tps / 1_000_000_000)
                } else {
                    ticks.saturating_mul(1_000_000_000 / ifc.tps.max(1))
                };
                frames.push(Frame {
                    number: frames.len() + 1,
                    timestamp_ns: ns,
                    linktype: ifc.linktype,
                    data: data.to_vec(),
                });
            }
            // Simple Packet Block: interface 0, no timestamp.
            3 => {
                let ifc = ifaces.first().ok_or(CaptureError::BadBlock(pos))?;
                let orig = u32_at(body, 0, big).ok_or(CaptureError::BadBlock(pos))? as usize;
                let data = &body[4..];
                frames.push(Frame {
                    number: frames.len() + 1,
                    timestamp_ns: 0,
                    linktype: ifc.linktype,
                    data: data[..orig.min(data.len())].to_vec(),
                });
            }
            _ => {}
        }
        pos += len;
    }
    Ok(frames)
}

/// Writes a classic pcap file (microsecond timestamps).
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Starts a file with the given link type (e.g. [`LINKTYPE_ETHERNET`]).
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&h)?;
        Ok(Self { out })
    }

    /// Appends a frame captured at `timestamp_us` (microseconds since the Unix epoch).
    pub fn write_frame(&mut self, timestamp_us: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(&((timestamp_us / 1_000_000) as u32).to_le_bytes());
        h.extend_from_slice(&((timestamp_us % 1_000_000) as u32).to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
