//! Capture files of ASAP/ENRP traffic, for tools and tests: read pcap and pcapng, find the
//! messages in them (SCTP, SCTP over UDP per RFC 6951, UDP), and write pcap.
//!
//! ```no_run
//! use rserpool_proto::capture::{Ports, extract_messages, read_frames};
//! use rserpool_proto::wire::Message;
//!
//! let bytes = std::fs::read("capture.pcap").unwrap();
//! for m in extract_messages(&read_frames(&bytes).unwrap(), &Ports::default()) {
//!     println!("frame {}: {:?}", m.frame, Message::decode(m.protocol, &m.payload));
//! }
//! ```

mod file;
mod packet;

pub use file::{
    CaptureError, Frame, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW, PcapWriter, read_frames,
};
pub use packet::{CapturedMessage, Carrier, Ports, build, extract_messages};
