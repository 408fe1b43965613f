//! The State Cookie (RFC 9260 §5.1.3–5.1.5): everything needed to create an association,
//! carried by the peer and signed with HMAC-SHA-256, so that an INIT leaves no state behind.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the truncated MAC at the end of a cookie.
const MAC_LEN: usize = 16;
const VERSION: u8 = 1;
/// Peer addresses kept in a cookie; more are dropped (the peer keeps working over the rest).
pub const MAX_COOKIE_ADDRESSES: usize = 16;

/// What a state cookie records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieData {
    /// Creation time, ms on the endpoint's clock.
    pub created_ms: u64,
    /// Lifespan in ms.
    pub life_ms: u32,
    /// Our SCTP port.
    pub local_port: u16,
    /// The peer's SCTP port.
    pub peer_port: u16,
    /// Our verification tag (the Initiate Tag of our INIT ACK).
    pub local_tag: u32,
    /// Our initial TSN.
    pub local_initial_tsn: u32,
    /// The peer's verification tag (its INIT's Initiate Tag).
    pub peer_tag: u32,
    /// The peer's advertised window.
    pub peer_a_rwnd: u32,
    /// The peer's initial TSN.
    pub peer_initial_tsn: u32,
    /// Negotiated outbound streams.
    pub outbound_streams: u16,
    /// Negotiated inbound streams.
    pub inbound_streams: u16,
    /// Tie-tags (RFC 9260 §5.2.1): our and the peer's tags of an existing association, else 0.
    pub tie_local: u32,
    /// See `tie_local`.
    pub tie_peer: u32,
    /// Where the INIT came from (IP and UDP encapsulation port).
    pub source: SocketAddr,
    /// The addresses the INIT listed.
    pub addresses: Vec<IpAddr>,
}

fn put_addr(b: &mut BytesMut, a: &IpAddr) {
    match a {
        IpAddr::V4(v) => {
            b.put_u8(4);
            b.extend_from_slice(&v.octets());
        }
        IpAddr::V6(v) => {
            b.put_u8(6);
            b.extend_from_slice(&v.octets());
        }
    }
}

fn get_addr(b: &[u8], pos: &mut usize) -> Option<IpAddr> {
    let fam = *b.get(*pos)?;
    *pos += 1;
    match fam {
        4 => {
            let o: [u8; 4] = b.get(*pos..*pos + 4)?.try_into().ok()?;
            *pos += 4;
            Some(IpAddr::V4(Ipv4Addr::from(o)))
        }
        6 => {
            let o: [u8; 16] = b.get(*pos..*pos + 16)?.try_into().ok()?;
            *pos += 16;
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// Signs and checks cookies with a secret key.
#[derive(Clone)]
pub struct CookieSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSigner(..)")
    }
}

/// A cookie that is malformed or whose MAC does not match: discard silently (RFC 9260 §5.1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidCookie;

impl CookieData {
    /// How many microseconds past its lifespan the cookie is at `now_ms`, if it is stale.
    pub fn staleness(&self, now_ms: u64) -> Option<u32> {
        let expires = self.created_ms + u64::from(self.life_ms);
        (now_ms > expires)
            .then(|| u32::try_from((now_ms - expires).saturating_mul(1000)).unwrap_or(u32::MAX))
    }
}

impl CookieSigner {
    /// A signer with the given key.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// Encodes and signs a cookie.
    pub fn seal(&self, c: &CookieData) -> Bytes {
        let mut b = BytesMut::with_capacity(96 + 17 * c.addresses.len());
        b.put_u8(VERSION);
        b.put_u64(c.created_ms);
        b.put_u32(c.life_ms);
        b.put_u16(c.local_port);
        b.put_u16(c.peer_port);
        b.put_u32(c.local_tag);
        b.put_u32(c.local_initial_tsn);
        b.put_u32(c.peer_tag);
        b.put_u32(c.peer_a_rwnd);
        b.put_u32(c.peer_initial_tsn);
        b.put_u16(c.outbound_streams);
        b.put_u16(c.inbound_streams);
        b.put_u32(c.tie_local);
        b.put_u32(c.tie_peer);
        put_addr(&mut b, &c.source.ip());
        b.put_u16(c.source.port());
        let n = c.addresses.len().min(MAX_COOKIE_ADDRESSES);
        b.put_u8(n as u8);
        for a in &c.addresses[..n] {
            put_addr(&mut b, a);
        }
        let mac = self.mac(&b);
        b.extend_from_slice(&mac);
        b.freeze()
    }

    /// Checks the MAC of a cookie and returns its contents (the caller judges its age with
    /// [`CookieData::staleness`]: RFC 9260 §5.2.4 accepts a stale cookie in one case).
    pub fn open(&self, cookie: &[u8]) -> Result<CookieData, InvalidCookie> {
        if cookie.len() < MAC_LEN + 1 {
            return Err(InvalidCookie);
        }
        let (data, mac) = cookie.split_at(cookie.len() - MAC_LEN);
        // Constant-time comparison of the MAC.
        let mut m = HmacSha256::new_from_slice(&self.key).expect("any key length");
        m.update(data);
        m.verify_truncated_left(mac).map_err(|_| InvalidCookie)?;
        parse(data).ok_or(InvalidCookie)
    }
}

fn parse(b: &[u8]) -> Option<CookieData> {
    if *b.first()? != VERSION || b.len() < 50 {
        return None;
    }
    let u16_at = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let created_ms = u64::from_be_bytes(b[1..9].try_into().ok()?);
    let mut pos = 49;
    let src_ip = get_addr(b, &mut pos)?;
    let src_port = u16::from_be_bytes(b.get(pos..pos + 2)?.try_into().ok()?);
    pos += 2;
    let n = usize::from(*b.get(pos)?);
    pos += 1;
    let mut addresses = Vec::with_capacity(n.min(MAX_COOKIE_ADDRESSES));
    for _ in 0..n {
        addresses.push(get_addr(b, &mut pos)?);
    }
    Some(CookieData {
        created_ms,
        life_ms: u32_at(9),
        local_port: u16_at(13),
        peer_port: u16_at(15),
        local_tag: u32_at(17),
        local_initial_tsn: u32_at(21),
        peer_tag: u32_at(25),
        peer_a_rwnd: u32_at(29),
        peer_initial_tsn: u32_at(33),
        outbound_streams: u16_at(37),
        inbound_streams: u16_at(39),
        tie_local: u32_at(41),
        tie_peer: u32_at(45),
        source: SocketAddr::new(src_ip, src_port),
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CookieData {
        CookieData {
            created_ms: 1000,
            life_ms: 60_000,
            local_port: 3863,
            peer_port: 40000,
            local_tag: 1,
            local_initial_tsn: 2,
            peer_tag: 3,
            peer_a_rwnd: 4,
            peer_initial_tsn: 5,
            outbound_streams: 6,
            inbound_streams: 7,
            tie_local: 8,
            tie_peer: 9,
            source: "127.0.0.1:9899".parse().unwrap(),
            addresses: vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        }
    }

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let s = CookieSigner::new([7; 32]);
        let c = sample();
        let sealed = s.seal(&c);
        assert_eq!(s.open(&sealed).unwrap(), c);
        for i in 0..sealed.len() {
            let mut t = sealed.to_vec();
            t[i] ^= 0x40;
            assert_eq!(s.open(&t), Err(InvalidCookie), "byte {i}");
        }
        assert_eq!(CookieSigner::new([8; 32]).open(&sealed), Err(InvalidCookie));
        assert_eq!(c.staleness(61_000), None);
        assert_eq!(c.staleness(61_500), Some(500_000));
        assert_eq!(s.open(&sealed[..10]), Err(InvalidCookie));
    }
}
