//! Finding ASAP/ENRP messages in captured packets (Ethernet / cooked / raw IP, IPv4 / IPv6, UDP,
//! SCTP, SCTP over UDP with DATA reassembly) and building such packets.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::file::{
    Frame, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW,
};
use crate::wire::{ASAP_PORT, ENRP_PORT, Protocol, SCTP_UDP_PORT};

/// How a message travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// SCTP directly over IP.
    Sctp {
        /// Payload protocol identifier.
        ppid: u32,
        /// Stream.
        stream: u16,
    },
    /// SCTP over UDP (RFC 6951).
    SctpOverUdp {
        /// Payload protocol identifier.
        ppid: u32,
        /// Stream.
        stream: u16,
        /// UDP source port.
        udp_src: u16,
        /// UDP destination port.
        udp_dst: u16,
    },
    /// Plain UDP (Server Announce, ENRP Presence multicast).
    Udp,
}

/// An ASAP or ENRP message found in a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedMessage {
    /// The frame that completed the message.
    pub frame: usize,
    /// Capture time of that frame (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Source (SCTP or UDP port).
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// How it travelled.
    pub carrier: Carrier,
    /// ASAP or ENRP.
    pub protocol: Protocol,
    /// The message bytes.
    pub payload: Vec<u8>,
}

/// Which ports carry what, beyond the defaults (SCTP over UDP on 9899; ASAP over UDP on 3863;
/// ENRP over UDP on 9901; SCTP PPIDs 11 and 12).
#[derive(Clone, Debug, Default)]
pub struct Ports {
    /// Extra UDP ports that carry SCTP (RFC 6951).
    pub sctp_udp: Vec<u16>,
}

/// Finds the ASAP/ENRP messages in captured frames, reassembling fragmented SCTP user messages
/// and skipping retransmitted DATA chunks. Frames that are not such traffic are ignored.
pub fn extract_messages(frames: &[Frame], ports: &Ports) -> Vec<CapturedMessage> {
    let mut x = Extractor {
        ports,
        out: Vec::new(),
        seen: HashSet::new(),
        partial: HashMap::new(),
    };
    for f in frames {
        x.frame(f);
    }
    x.out
}

type FlowKey = (SocketAddr, SocketAddr);

struct Partial {
    next_tsn: u32,
    ppid: u32,
    data: Vec<u8>,
}

struct Extractor<'p> {
    ports: &'p Ports,
    out: Vec<CapturedMessage>,
    /// (flow, TSN) of every DATA chunk seen: retransmissions are skipped.
    seen: HashSet<(FlowKey, u32)>,
    /// Fragmented user messages being reassembled, by (flow, stream, unordered).
    partial: HashMap<(FlowKey, u16, bool), Partial>,
}

struct Ctx<'a> {
    frame: &'a Frame,
    src: IpAddr,
    dst: IpAddr,
}

impl Extractor<'_> {
    fn frame(&mut self, f: &Frame) {
        let ip = match f.linktype {
            LINKTYPE_ETHERNET => ethernet_payload(&f.data),
            LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Some(&f.data[..]),
            LINKTYPE_NULL => f.data.get(4..),
            LINKTYPE_LINUX_SLL => f.data.get(16..),
            LINKTYPE_LINUX_SLL2 => f.data.get(20..),
            _ => None,
        };
        if let Some(ip) = ip {
            self.ip(f, ip);
        }
    }

    fn ip(&mut self, frame: &Frame, p: &[u8]) {
        let Some(&v) = p.first() else { return };
        let (src, dst, proto, payload) = match v >> 4 {
            4 => {
                if p.len() < 20 {
                    return;
                }
                let ihl = usize::from(p[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
                let frag = u16::from_be_bytes([p[6], p[7]]);
                // IP fragments are not reassembled (RSerPool traffic is small).
                if frag & 0x3fff != 0 || ihl < 20 || total < ihl {
                    return;
                }
                let s = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
                let d = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
                (s, d, p[9], &p[ihl..total])
            }
            6 => {
                if p.len() < 40 {
                    return;
                }
                let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
                let end = (40 + plen).min(p.len());
                let s: [u8; 16] = p[8..24].try_into().expect("16 bytes");
                let d: [u8; 16] = p[24..40].try_into().expect("16 bytes");
                let (mut next, mut off) = (p[6], 40);
                // Hop-by-hop, routing and destination options; a fragment header ends the walk.
                while matches!(next, 0 | 43 | 60) && off + 8 <= end {
                    next = p[off];
                    off += (usize::from(p[off + 1]) + 1) * 8;
                }
                if off > end || next == 44 {
                    return;
                }
                (
                    IpAddr::V6(Ipv6Addr::from(s)),
                    IpAddr::V6(Ipv6Addr::from(d)),
                    next,
                    &p[off..end],
                )
            }
            _ => return,
        };
        let ctx = Ctx { frame, src, dst };
        match proto {
            17 => self.udp(&ctx, payload),
            132 => self.sctp(&ctx, payload, None),
            _ => {}
        }
    }

    fn udp(&mut self, c: &Ctx<'_>, p: &[u8]) {
        if p.len() < 8 {
            return;
        }
        let sp = u16::from_be_bytes([p[0], p[1]]);
        let dp = u16::from_be_bytes([p[2], p[3]]);
        let len = usize::from(u16::from_be_bytes([p[4], p[5]])).clamp(8, p.len());
        let data = &p[8..len];
        let is_sctp = |port| port == SCTP_UDP_PORT || self.ports.sctp_udp.contains(&port);
        if is_sctp(sp) || is_sctp(dp) {
            self.sctp(c, data, Some((sp, dp)));
            return;
        }
        let protocol = if sp == ASAP_PORT || dp == ASAP_PORT {
            Protocol::Asap
        } else if sp == ENRP_PORT || dp == ENRP_PORT {
            Protocol::Enrp
        } else {
            return;
        };
        self.out.push(CapturedMessage {
            frame: c.frame.number,
            timestamp_ns: c.frame.timestamp_ns,
            src: SocketAddr::new(c.src, sp),
            dst: SocketAddr::new(c.dst, dp),
            carrier: Carrier::Udp,
            protocol,
            payload: data.to_vec(),
        });
    }

    fn sctp(&mut self, c: &Ctx<'_>, p: &[u8], udp: Option<(u16, u16)>) {
        if p.len() < 12 {
            return;
        }
        let src = SocketAddr::new(c.src, u16::from_be_bytes([p[0], p[1]]));
        let dst = SocketAddr::new(c.dst, u16::from_be_bytes([p[2], p[3]]));
        let flow = (src, dst);
        let mut pos = 12;
        while pos + 4 <= p.len() {
            let ty = p[pos];
            let flags = p[pos + 1];
            let len = usize::from(u16::from_be_bytes([p[pos + 2], p[pos + 3]]));
            if len < 4 || pos + len > p.len() {
                return;
            }
            if ty == 0 && len >= 16 {
                let ch = &p[pos..pos + len];
                let tsn = u32::from_be_bytes([ch[4], ch[5], ch[6], ch[7]]);
                let stream = u16::from_be_bytes([ch[8], ch[9]]);
                let ppid = u32::from_be_bytes([ch[12], ch[13], ch[14], ch[15]]);
                if self.seen.insert((flow, tsn)) {
                    self.data(c, flow, flags, tsn, stream, ppid, &ch[16..], udp);
                }
            }
            pos += (len + 3) & !3;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        c: &Ctx<'_>,
        flow: FlowKey,
        flags: u8,
        tsn: u32,
        stream: u16,
        ppid: u32,
        data: &[u8],
        udp: Option<(u16, u16)>,
    ) {
        let (unordered, begin, end) = (flags & 4 != 0, flags & 2 != 0, flags & 1 != 0);
        let key = (flow, stream, unordered);
        let complete = match (begin, end) {
            (true, true) => Some((ppid, data.to_vec())),
            (true, false) => {
                self.partial.insert(
                    key,
                    Partial {
                        next_tsn: tsn.wrapping_add(1),
                        ppid,
                        data: data.to_vec(),
                    },
                );
                None
            }
            (false, _) => match self.partial.get_mut(&key) {
                Some(part) if part.next_tsn == tsn => {
                    part.data.extend_from_slice(data);
                    part.next_tsn = tsn.wrapping_add(1);
                    if end {
                        self.partial.remove(&key).map(|p| (p.ppid, p.data))
                    } else {
                        None
                    }
                }
                // A fragment out of sequence: the message cannot be rebuilt from this capture.
                _ => {
                    self.partial.remove(&key);
                    None
                }
            },
        };
        let Some((ppid, payload)) = complete else {
            return;
        };
        let Some(protocol) = Protocol::from_ppid(ppid) else {
            return;
        };
        let carrier = match udp {
            None => Carrier::Sctp { ppid, stream },
            Some((udp_src, udp_dst)) => Carrier::SctpOverUdp {
                ppid,
                stream,
                udp_src,
                udp_dst,
            },
        };
        self.out.push(CapturedMessage {
            frame: c.frame.number,
            timestamp_ns: c.frame.timestamp_ns,
            src: flow.0,
            dst: flow.1,
            carrier,
            protocol,
            payload,
        });
    }
}

fn ethernet_payload(f: &[u8]) -> Option<&[u8]> {
    let mut off = 12;
    loop {
        let et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
        match et {
            0x8100 | 0x88a8 => off += 4,
            0x0800 | 0x86dd => return f.get(off + 2..),
            _ => return None,
        }
    }
}

/// Builders for packets, as written into sample captures.
pub mod build {
    use std::net::{IpAddr, SocketAddr};

    /// An SCTP DATA chunk (RFC 9260 §3.3.1), unfragmented and ordered, padded to 4 bytes.
    pub fn data_chunk(tsn: u32, stream: u16, ssn: u16, ppid: u32, payload: &[u8]) -> Vec<u8> {
        data_chunk_flags(0x03, tsn, stream, ssn, ppid, payload)
    }

    /// An SCTP DATA chunk with explicit flags (U = 4, B = 2, E = 1).
    pub fn data_chunk_flags(
        flags: u8,
        tsn: u32,
        stream: u16,
        ssn: u16,
        ppid: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let len = 16 + payload.len();
        let mut c = Vec::with_capacity((len + 3) & !3);
        c.push(0);
        c.push(flags);
        c.extend_from_slice(&(len as u16).to_be_bytes());
        c.extend_from_slice(&tsn.to_be_bytes());
        c.extend_from_slice(&stream.to_be_bytes());
        c.extend_from_slice(&ssn.to_be_bytes());
        c.extend_from_slice(&ppid.to_be_bytes());
        c.extend_from_slice(payload);
        c.resize((len + 3) & !3, 0);
        c
    }

    /// An SCTP packet: common header with CRC32c (RFC 9260 §3.1, Appendix A) and the chunks.
    pub fn sctp_packet(src_port: u16, dst_port: u16, vtag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + chunks.iter().map(Vec::len).sum::<usize>());
        p.extend_from_slice(&src_port.to_be_bytes());
        p.extend_from_slice(&dst_port.to_be_bytes());
        p.extend_from_slice(&vtag.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        for c in chunks {
            p.extend_from_slice(c);
        }
        let crc = crc32c::crc32c(&p);
        // The checksum is stored in the byte order of the CRC's computation (little-endian).
        p[8..12].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn sum16(data: &[u8]) -> u32 {
        data.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    }

    fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// A UDP datagram in an IPv4 or IPv6 packet, with checksums. Both addresses must be of the
    /// same family.
    pub fn ip_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let ulen = 8 + payload.len();
        let mut udp = Vec::with_capacity(ulen);
        udp.extend_from_slice(&src.port().to_be_bytes());
        udp.extend_from_slice(&dst.port().to_be_bytes());
        udp.extend_from_slice(&(ulen as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        ip_packet(src.ip(), dst.ip(), 17, udp, Some(6))
    }

    /// An IP packet around `l4`; `csum_at` is the offset of an L4 checksum to fill in with the
    /// pseudo-header sum.
    pub fn ip_packet(
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        mut l4: Vec<u8>,
        csum_at: Option<usize>,
    ) -> Vec<u8> {
        let len = l4.len();
        let pseudo = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                sum16(&s.octets()) + sum16(&d.octets()) + u32::from(proto) + len as u32
            }
            _ => {
                let (s, d) = (to_v6(src), to_v6(dst));
                sum16(&s) + sum16(&d) + u32::from(proto) + len as u32
            }
        };
        if let Some(at) = csum_at {
            let c = fold(pseudo + sum16(&l4));
            let c = if c == 0 { 0xffff } else { c };
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        let mut p = Vec::with_capacity(40 + len);
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                p.extend_from_slice(&[0x45, 0]);
                p.extend_from_slice(&((20 + len) as u16).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                let c = fold(sum16(&p[..20]));
                p[10..12].copy_from_slice(&c.to_be_bytes());
            }
            _ => {
                p.extend_from_slice(&[0x60, 0, 0, 0]);
                p.extend_from_slice(&(len as u16).to_be_bytes());
                p.extend_from_slice(&[proto, 64]);
                p.extend_from_slice(&to_v6(src));
                p.extend_from_slice(&to_v6(dst));
            }
        }
        p.extend_from_slice(&l4);
        p
    }

    fn to_v6(a: IpAddr) -> [u8; 16] {
        match a {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        }
    }

    /// An Ethernet II frame around an IP packet (locally administered MAC addresses).
    pub fn ethernet(ip: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + ip.len());
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
        let et: u16 = if ip.first().map(|b| b >> 4) == Some(6) {
            0x86dd
        } else {
            0x0800
        };
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use crate::capture::{LINKTYPE_ETHERNET, PcapWriter, read_frames};

    fn frames(packets: &[Vec<u8>]) -> Vec<Frame> {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET).unwrap();
        for (i, p) in packets.iter().enumerate() {
            w.write_frame(i as u64, &ethernet(p)).unwrap();
        }
        read_frames(&w.finish().unwrap()).unwrap()
    }

    fn sctp_udp(chunks: &[Vec<u8>]) -> Vec<u8> {
        let a: SocketAddr = "127.0.0.1:9899".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:9899".parse().unwrap();
        ip_udp(a, b, &sctp_packet(3863, 40000, 7, chunks))
    }

    #[test]
    fn reassembles_fragments_and_skips_retransmissions() {
        let msg: Vec<u8> = (0..100u8).collect();
        let f1 = data_chunk_flags(2, 10, 1, 0, 11, &msg[..60]);
        let f2 = data_chunk_flags(1, 11, 1, 0, 11, &msg[60..]);
        let other = data_chunk(12, 2, 0, 12, b"enrp");
        let fs = frames(&[
            sctp_udp(std::slice::from_ref(&f1)),
            sctp_udp(&[f1, f2.clone()]),
            sctp_udp(&[f2, other]),
        ]);
        let got = extract_messages(&fs, &Ports::default());
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].payload, msg);
        assert_eq!(got[0].protocol, Protocol::Asap);
        assert_eq!(got[0].frame, 2);
        assert_eq!(got[1].payload, b"enrp");
        assert_eq!(got[1].protocol, Protocol::Enrp);
        assert_eq!(
            got[1].carrier,
            Carrier::SctpOverUdp {
                ppid: 12,
                stream: 2,
                udp_src: 9899,
                udp_dst: 9899
            }
        );
    }

    #[test]
    fn plain_udp_announces_and_ipv6() {
        let a: SocketAddr = "[::1]:3863".parse().unwrap();
        let b: SocketAddr = "[ff05::1:3863]:3863".parse().unwrap();
        let got = extract_messages(
            &frames(&[ip_udp(a, b, b"\x0a\x00\x00\x08\x11\x11\x11\x11")]),
            &Ports::default(),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].src, got[0].dst, got[0].carrier),
            (a, b, Carrier::Udp)
        );
    }

    #[test]
    fn truncated_packets_are_ignored() {
        let p = sctp_udp(&[data_chunk(1, 0, 0, 11, b"abcd")]);
        for cut in 0..p.len() {
            let _ = extract_messages(&frames(&[p[..cut].to_vec()]), &Ports::default());
        }
    }
}
