//! The receiving half of an association: TSN tracking for SACKs (RFC 9260 §6.2), duplicate
//! detection, reassembly of fragmented messages (§6.9) and ordered / unordered delivery (§6.6).

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

use crate::chunk::{DataChunk, Sack};

/// A complete user message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Stream identifier.
    pub stream: u16,
    /// Payload protocol identifier.
    pub ppid: u32,
    /// Whether it was sent unordered.
    pub unordered: bool,
    /// The message's bytes.
    pub data: Bytes,
}

/// What became of a received DATA chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataOutcome {
    /// New, accepted.
    New,
    /// Seen before (reported in the next SACK).
    Duplicate,
    /// Dropped for lack of buffer space or beyond the TSN window: not acknowledged.
    Dropped,
    /// Accepted and acknowledged, but its stream does not exist (report Invalid Stream).
    InvalidStream,
}

/// Most TSNs tracked ahead of the cumulative TSN (bounds the gap bitmap).
const MAX_TSN_AHEAD: usize = 1 << 16;
/// Duplicate TSNs reported per SACK at most.
const MAX_DUPS: usize = 32;
/// Gap blocks per SACK at most (keeps a SACK within one packet).
pub(crate) const MAX_GAPS: usize = 64;

#[derive(Default)]
struct InStream {
    next_ssn: u16,
    waiting: HashMap<u16, Message>,
}

pub(crate) struct Receiver {
    /// The last TSN received in sequence.
    cum_tsn: u32,
    /// `cum_tsn` unwrapped to 64 bits, so fragments order without serial arithmetic.
    cum64: u64,
    /// Receipt flags of TSNs cum_tsn+1, cum_tsn+2, ...
    received: VecDeque<bool>,
    dups: Vec<u32>,
    /// Fragments waiting for the rest of their message, by unwrapped TSN.
    fragments: BTreeMap<u64, DataChunk>,
    streams: Vec<InStream>,
    ready: VecDeque<Message>,
    /// Bytes held: fragments, ordered messages waiting for their turn, and unread messages.
    buffered: usize,
    capacity: usize,
    /// The window last advertised.
    pub advertised: u32,
}

impl Receiver {
    pub fn new(peer_initial_tsn: u32, inbound_streams: u16, capacity: u32) -> Self {
        Self {
            cum_tsn: peer_initial_tsn.wrapping_sub(1),
            cum64: 1 << 32,
            received: VecDeque::new(),
            dups: Vec::new(),
            fragments: BTreeMap::new(),
            streams: (0..inbound_streams).map(|_| InStream::default()).collect(),
            ready: VecDeque::new(),
            buffered: 0,
            capacity: capacity as usize,
            advertised: capacity,
        }
    }

    /// The cumulative TSN ack point.
    pub fn cum_tsn(&self) -> u32 {
        self.cum_tsn
    }

    /// Whether TSNs above the cumulative ack have been received (there are gaps).
    pub fn has_gaps(&self) -> bool {
        !self.received.is_empty()
    }

    /// The receive window to advertise.
    pub fn a_rwnd(&self) -> u32 {
        u32::try_from(self.capacity.saturating_sub(self.buffered)).unwrap_or(u32::MAX)
    }

    /// Unread complete messages waiting.
    pub fn readable(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn on_data(&mut self, d: DataChunk) -> DataOutcome {
        let offset = d.tsn.wrapping_sub(self.cum_tsn);
        if offset == 0 || offset > (1 << 31) {
            self.dup(d.tsn);
            return DataOutcome::Duplicate;
        }
        let idx = offset as usize - 1;
        if idx >= MAX_TSN_AHEAD {
            return DataOutcome::Dropped;
        }
        if self.received.get(idx).copied().unwrap_or(false) {
            self.dup(d.tsn);
            return DataOutcome::Duplicate;
        }
        // RFC 9260 §6.2: with the window closed, only the next TSN in sequence is taken (it lets
        // buffered fragments complete); anything else waits for a retransmission.
        if self.buffered + d.payload.len() > self.capacity && idx != 0 {
            return DataOutcome::Dropped;
        }
        if self.received.len() <= idx {
            self.received.resize(idx + 1, false);
        }
        self.received[idx] = true;
        let tsn64 = self.cum64 + offset as u64;
        while self.received.front() == Some(&true) {
            self.received.pop_front();
            self.cum_tsn = self.cum_tsn.wrapping_add(1);
            self.cum64 += 1;
        }
        if usize::from(d.stream) >= self.streams.len() {
            return DataOutcome::InvalidStream;
        }
        self.buffered += d.payload.len();
        if d.begin && d.end {
            self.complete(
                Message {
                    stream: d.stream,
                    ppid: d.ppid,
                    unordered: d.unordered,
                    data: d.payload,
                },
                d.ssn,
            );
        } else {
            self.fragments.insert(tsn64, d);
            self.reassemble(tsn64);
        }
        DataOutcome::New
    }

    fn dup(&mut self, tsn: u32) {
        if self.dups.len() < MAX_DUPS {
            self.dups.push(tsn);
        }
    }

    /// Tries to complete the message the fragment at `t` belongs to.
    fn reassemble(&mut self, t: u64) {
        let (stream, unordered, ssn) = {
            let f = &self.fragments[&t];
            (f.stream, f.unordered, f.ssn)
        };
        let same = |f: &DataChunk| {
            f.stream == stream && f.unordered == unordered && (unordered || f.ssn == ssn)
        };
        let mut first = t;
        loop {
            match self.fragments.get(&first) {
                Some(f) if same(f) && f.begin => break,
                Some(f) if same(f) => first -= 1,
                _ => return,
            }
        }
        let mut last = t;
        loop {
            match self.fragments.get(&last) {
                Some(f) if same(f) && f.end => break,
                Some(f) if same(f) => last += 1,
                _ => return,
            }
        }
        let mut data = BytesMut::new();
        let mut ppid = 0;
        for k in first..=last {
            let f = self.fragments.remove(&k).expect("walked above");
            if k == first {
                ppid = f.ppid;
            }
            data.extend_from_slice(&f.payload);
        }
        self.complete(
            Message {
                stream,
                ppid,
                unordered,
                data: data.freeze(),
            },
            ssn,
        );
    }

    fn complete(&mut self, m: Message, ssn: u16) {
        if m.unordered {
            self.ready.push_back(m);
            return;
        }
        let s = &mut self.streams[usize::from(m.stream)];
        if ssn != s.next_ssn {
            s.waiting.insert(ssn, m);
            return;
        }
        self.ready.push_back(m);
        s.next_ssn = s.next_ssn.wrapping_add(1);
        while let Some(m) = s.waiting.remove(&s.next_ssn) {
            self.ready.push_back(m);
            s.next_ssn = s.next_ssn.wrapping_add(1);
        }
    }

    /// Internal state, for debugging.
    pub fn debug(&self) -> String {
        let waiting: Vec<(usize, u16, Vec<u16>)> = self
            .streams
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.waiting.is_empty())
            .map(|(i, s)| (i, s.next_ssn, s.waiting.keys().copied().collect()))
            .collect();
        format!(
            "cum {} fragments {} (first {:?}) waiting {:?} ready {} buffered {}",
            self.cum_tsn,
            self.fragments.len(),
            self.fragments
                .values()
                .next()
                .map(|f| (f.tsn, f.stream, f.ssn, f.begin, f.end)),
            waiting,
            self.ready.len(),
            self.buffered
        )
    }

    /// The next complete message, freeing its bytes from the window.
    pub fn recv(&mut self) -> Option<Message> {
        let m = self.ready.pop_front()?;
        self.buffered -= m.data.len();
        Some(m)
    }

    /// Whether reading opened the window enough to tell the peer (RFC 9260 §6.2: by at least a
    /// quarter of the buffer, or from nearly closed).
    pub fn window_update_due(&self) -> bool {
        let now = self.a_rwnd() as usize;
        let adv = self.advertised as usize;
        now > adv && (now - adv >= self.capacity / 4 || adv < self.capacity / 8)
    }

    /// Builds a SACK (and records the advertised window).
    pub fn sack(&mut self) -> Sack {
        let mut gaps = Vec::new();
        let mut i = 0;
        while i < self.received.len() && gaps.len() < MAX_GAPS {
            if self.received[i] {
                let start = i;
                while i < self.received.len() && self.received[i] {
                    i += 1;
                }
                gaps.push(((start + 1) as u16, i as u16));
            } else {
                i += 1;
            }
        }
        self.advertised = self.a_rwnd();
        Sack {
            cum_tsn: self.cum_tsn,
            a_rwnd: self.advertised,
            gaps,
            dups: std::mem::take(&mut self.dups),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(
        tsn: u32,
        stream: u16,
        ssn: u16,
        flags: (bool, bool, bool),
        payload: &'static [u8],
    ) -> DataChunk {
        DataChunk {
            tsn,
            stream,
            ssn,
            ppid: 11,
            unordered: flags.0,
            begin: flags.1,
            end: flags.2,
            immediate: false,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn reassembles_out_of_order_and_delivers_in_ssn_order() {
        let mut r = Receiver::new(100, 4, 1 << 16);
        // Message ssn 0 in three fragments (TSN 100..102), message ssn 1 whole (TSN 103).
        assert_eq!(
            r.on_data(data(103, 0, 1, (false, true, true), b"second")),
            DataOutcome::New
        );
        assert!(!r.readable(), "ssn 1 waits for ssn 0");
        let s = r.sack();
        assert_eq!((s.cum_tsn, s.gaps.as_slice()), (99, &[(4u16, 4u16)][..]));
        r.on_data(data(102, 0, 0, (false, false, true), b"c"));
        r.on_data(data(100, 0, 0, (false, true, false), b"a"));
        assert!(!r.readable());
        assert_eq!(
            r.on_data(data(100, 0, 0, (false, true, false), b"a")),
            DataOutcome::Duplicate
        );
        r.on_data(data(101, 0, 0, (false, false, false), b"b"));
        assert_eq!(r.recv().unwrap().data, &b"abc"[..]);
        assert_eq!(r.recv().unwrap().data, &b"second"[..]);
        let s = r.sack();
        assert_eq!((s.cum_tsn, s.gaps.len(), s.dups), (103, 0, vec![100]));
        assert_eq!(r.a_rwnd(), 1 << 16);
    }

    #[test]
    fn unordered_messages_skip_the_queue_and_tsns_wrap() {
        let mut r = Receiver::new(u32::MAX, 2, 1 << 16);
        r.on_data(data(0, 1, 5, (false, true, true), b"ordered"));
        r.on_data(data(u32::MAX, 1, 0, (true, true, true), b"unordered"));
        assert_eq!(r.recv().unwrap().data, &b"unordered"[..]);
        assert!(r.recv().is_none(), "ssn 5 waits for ssn 0");
        assert_eq!(r.sack().cum_tsn, 0);
    }

    #[test]
    fn a_full_window_drops_all_but_the_next_tsn() {
        let mut r = Receiver::new(1, 1, 10);
        assert_eq!(
            r.on_data(data(1, 0, 0, (false, true, true), b"0123456789")),
            DataOutcome::New
        );
        assert_eq!(r.a_rwnd(), 0);
        assert_eq!(
            r.on_data(data(3, 0, 2, (false, true, true), b"x")),
            DataOutcome::Dropped
        );
        assert_eq!(
            r.sack().gaps.len(),
            0,
            "a dropped chunk is not acknowledged"
        );
        r.recv();
        assert!(r.window_update_due());
        assert_eq!(
            r.on_data(data(5, 0, 0, (false, true, true), b"x")),
            DataOutcome::New
        );
        assert_eq!(
            r.on_data(data(2, 9, 0, (false, true, true), b"x")),
            DataOutcome::InvalidStream
        );
    }

    #[test]
    fn many_fragmented_messages_in_a_row() {
        let mut r = Receiver::new(1000, 16, 1 << 20);
        for msg in 0..3u16 {
            for k in 0..30u32 {
                let tsn = 1000 + u32::from(msg) * 30 + k;
                let d = DataChunk {
                    tsn,
                    stream: msg,
                    ssn: 0,
                    ppid: 1,
                    unordered: false,
                    begin: k == 0,
                    end: k == 29,
                    immediate: false,
                    payload: Bytes::from(vec![msg as u8; 1400]),
                };
                assert_eq!(r.on_data(d), DataOutcome::New);
            }
        }
        let mut n = 0;
        while let Some(m) = r.recv() {
            assert_eq!(m.data.len(), 42000);
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
