//! The types and constants of `rserpool.h`, laid out as RSPLIB's (same names, members, order,
//! sizes and alignment on every ABI; `tests/capi.rs` checks the x86-64 figures).

#![allow(non_camel_case_types)]

use libc::{c_char, c_int, c_uint, size_t, sockaddr};

/// API version (RSPLIB's, unchanged since 2.x).
pub const RSPLIB_VERSION: c_int = 2;
/// API revision.
pub const RSPLIB_REVISION: c_int = 3;

/// The IANA port of ASAP.
pub const ASAP_PORT: c_int = 3863;
/// The IANA port of ENRP.
pub const ENRP_PORT: c_int = 9901;
/// The multicast group and port registrars announce themselves on to PEs and PUs (in the
/// header as a string macro).
pub const ASAP_ANNOUNCE_MULTICAST_ADDRESS: &str = "239.0.0.50:3863";
/// The multicast group and port registrars announce themselves on to each other.
pub const ENRP_ANNOUNCE_MULTICAST_ADDRESS: &str = "239.0.0.51:9901";

/// `rsp_register` / `rsp_pe_registration`: return at once, register in the background.
pub const REGF_DONTWAIT: c_int = 1 << 0;
/// The PE uses the session layer's control channel (always so for `rsp_register`).
pub const REGF_CONTROLCHANNEL: c_int = 1 << 1;
/// Keep the PE and keep trying when the first registration fails, instead of failing.
pub const REGF_DAEMONMODE: c_int = 1 << 2;
/// `rsp_deregister` / `rsp_pe_deregistration`: return at once.
pub const DEREGF_DONTWAIT: c_int = 1 << 0;

/// `rsp_getaddrinfo`: the fewest PEs to ask for.
pub const RSPGETADDRS_MIN: size_t = 1;
/// `rsp_getaddrinfo`: the most PEs to ask for (rserpool caps it at 128, as RSPLIB).
pub const RSPGETADDRS_MAX: size_t = 0xffff_ffff;
/// `rsp_getaddrinfo`: the default number of PEs (one).
pub const RSPGETADDRS_DEFAULT: size_t = 0;

/// `rsp_getaddrinfo`: the pool is unknown or empty.
pub const REAI_NONAME: c_int = -1;
/// `rsp_getaddrinfo`: out of memory.
pub const REAI_MEMORY: c_int = -2;
/// `rsp_getaddrinfo`: another error; `errno` says which.
pub const REAI_SYSTEM: c_int = -3;
/// `rsp_getaddrinfo`: an address family that is not supported.
pub const REAI_FAMILY: c_int = -4;

/// Session IDs of a one-to-many PE socket are 1 to `SESSION_SETSIZE - 1`.
pub const SESSION_SETSIZE: c_int = 16384;

/// `rsp_recvmsg` flag: the buffer holds a `union rserpool_notification`.
pub const MSG_RSERPOOL_NOTIFICATION: c_int = 1 << 0;
/// `rsp_recvmsg` flag: the buffer holds the cookie a pool user echoed after a failover.
pub const MSG_RSERPOOL_COOKIE_ECHO: c_int = 1 << 1;

/// Failover state: the PE is lost; call `rsp_forcefailover`.
pub const RSERPOOL_FAILOVER_NECESSARY: c_uint = 1;
/// Failover state: another PE serves the session.
pub const RSERPOOL_FAILOVER_COMPLETE: c_uint = 2;
/// Session change state: a pool user opened a session.
pub const RSERPOOL_SESSION_ADD: c_uint = 1;
/// Session change state: a session ended.
pub const RSERPOOL_SESSION_REMOVE: c_uint = 2;

/// Notification type: `rn_session_change`.
pub const RSERPOOL_SESSION_CHANGE: u16 = 1;
/// Notification type: `rn_failover`.
pub const RSERPOOL_FAILOVER: u16 = 2;
/// Notification type: `rn_shutdown_event`.
pub const RSERPOOL_SHUTDOWN_EVENT: u16 = 3;

/// `rsp_forcefailover`: just fail over.
pub const FFF_NONE: c_uint = 0;
/// `rsp_forcefailover`: report the current PE unreachable first.
pub const FFF_UNREACHABLE: c_uint = 1 << 0;

/// A session of a one-to-many pool element socket.
pub type rserpool_session_t = c_int;

/// A statically configured registrar (built by `rsp_initarg("-registrar=...")`).
#[repr(C)]
pub struct rsp_registrar_info {
    /// The next registrar, or NULL.
    pub rri_next: *mut rsp_registrar_info,
    /// Its addresses: a packed array of `sockaddr_in` / `sockaddr_in6`.
    pub rri_addr: *mut sockaddr,
    /// How many addresses `rri_addr` holds.
    pub rri_addrs: size_t,
}

/// The library's settings, for `rsp_initialize`. Fill it with `rsp_initinfo` and
/// `rsp_initarg`; 0 in a number means the default.
#[repr(C)]
pub struct rsp_info {
    /// Unused (RSPLIB's).
    pub ri_version: c_uint,
    /// Unused (RSPLIB's).
    pub ri_revision: c_uint,
    /// Deprecated, unused.
    pub ri_build_date: *const c_char,
    /// Deprecated, unused.
    pub ri_build_time: *const c_char,
    /// Registrars to use besides those heard announcing themselves.
    pub ri_registrars: *mut rsp_registrar_info,
    /// Nonzero: do not listen for registrar announces.
    pub ri_disable_autoconfig: c_int,
    /// The announce group to listen on (NULL: 239.0.0.50:3863).
    pub ri_registrar_announce: *mut sockaddr,
    /// How long an announce keeps a registrar in the list, ms (T7-ENRPoutdate).
    pub ri_registrar_announce_timeout: c_uint,
    /// How long a round of connection attempts to registrars may take, ms (T5-Serverhunt).
    pub ri_registrar_connect_timeout: c_uint,
    /// Unused by rserpool (server hunts go on with backoff).
    pub ri_registrar_connect_max_trials: c_uint,
    /// How long to wait for a Registration or Deregistration Response, ms (T2, T3).
    pub ri_registrar_request_timeout: c_uint,
    /// How long to wait for a Handle Resolution Response, ms (T1-ENRPrequest).
    pub ri_registrar_response_timeout: c_uint,
    /// How often a request is sent before it fails (MAX-REQUEST-RETRANSMIT).
    pub ri_registrar_request_max_trials: c_uint,
    /// The component ID in Component Status Protocol reports.
    pub ri_csp_identifier: u64,
    /// Where to send Component Status Protocol reports (NULL: none).
    pub ri_csp_server: *mut sockaddr,
    /// The interval of Component Status Protocol reports, ms.
    pub ri_csp_interval: c_uint,
}

/// A pool element's policy and its values (loads, degradations and DPFs scaled to
/// 0..0xffffffff; `rli_weight` is also the priority).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rsp_loadinfo {
    /// The policy (`PPT_*`).
    pub rli_policy: u32,
    /// Weight (or priority).
    pub rli_weight: u32,
    /// Weight distance penalty factor.
    pub rli_weight_dpf: u32,
    /// Load.
    pub rli_load: u32,
    /// Load degradation.
    pub rli_load_degradation: u32,
    /// Load distance penalty factor.
    pub rli_load_dpf: u32,
}

/// A pool element as `rsp_getaddrinfo` returns it, or the addresses `rsp_pe_registration`
/// registers.
#[repr(C)]
pub struct rsp_addrinfo {
    /// `AF_INET`, or `AF_INET6` when any address is IPv6.
    pub ai_family: c_int,
    /// `SOCK_STREAM` (SCTP, TCP) or `SOCK_DGRAM` (UDP).
    pub ai_socktype: c_int,
    /// `IPPROTO_SCTP`, `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub ai_protocol: c_int,
    /// The size of one address in `ai_addr`.
    pub ai_addrlen: size_t,
    /// How many addresses `ai_addr` holds.
    pub ai_addrs: size_t,
    /// The addresses, with the PE's port: a packed array.
    pub ai_addr: *mut sockaddr,
    /// The next PE, or NULL.
    pub ai_next: *mut rsp_addrinfo,
    /// The PE's identifier.
    pub ai_pe_id: u32,
}

/// What came with a message from `rsp_recvmsg`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rsp_sndrcvinfo {
    /// The session (one-to-many PE sockets).
    pub rinfo_session: rserpool_session_t,
    /// The PPID, in network byte order.
    pub rinfo_ppid: u32,
    /// The PE it came from (pool users).
    pub rinfo_pe_id: u32,
    /// Unused on receipt.
    pub rinfo_timetolive: u32,
    /// The SCTP stream.
    pub rinfo_stream: u16,
}

/// The header every notification starts with.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rserpool_notification_header {
    /// `RSERPOOL_SESSION_CHANGE`, `RSERPOOL_FAILOVER` or `RSERPOOL_SHUTDOWN_EVENT`.
    pub rn_type: u16,
    /// Unused (0).
    pub rn_flags: u16,
    /// The notification's size in bytes.
    pub rn_length: u32,
}

/// A pool user's session lost its PE, or failed over.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rserpool_failover {
    /// `RSERPOOL_FAILOVER`.
    pub rf_type: u16,
    /// Unused (0).
    pub rf_flags: u16,
    /// `sizeof(struct rserpool_failover)`.
    pub rf_length: u32,
    /// `RSERPOOL_FAILOVER_NECESSARY` or `RSERPOOL_FAILOVER_COMPLETE`.
    pub rf_state: c_uint,
    /// The session.
    pub rf_session: rserpool_session_t,
    /// 1 if a cookie is held (and, on completion, was echoed to the new PE).
    pub rf_has_cookie: libc::c_uchar,
}

/// A session of a one-to-many PE socket came or went.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rserpool_session_change {
    /// `RSERPOOL_SESSION_CHANGE`.
    pub rsc_type: u16,
    /// Unused (0).
    pub rsc_flags: u16,
    /// `sizeof(struct rserpool_session_change)`.
    pub rsc_length: u32,
    /// `RSERPOOL_SESSION_ADD` or `RSERPOOL_SESSION_REMOVE`.
    pub rsc_state: c_uint,
    /// The session.
    pub rsc_session: rserpool_session_t,
}

/// The peer began a graceful shutdown of a session.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rserpool_shutdown_event {
    /// `RSERPOOL_SHUTDOWN_EVENT`.
    pub rse_type: u16,
    /// Unused (0).
    pub rse_flags: u16,
    /// `sizeof(struct rserpool_shutdown_event)`.
    pub rse_length: u32,
    /// The session.
    pub rse_session: rserpool_session_t,
}

/// What `rsp_recvmsg` puts in the buffer when it sets `MSG_RSERPOOL_NOTIFICATION`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union rserpool_notification {
    /// The common header: `rn_header.rn_type` says which member is valid.
    pub rn_header: rserpool_notification_header,
    /// `RSERPOOL_FAILOVER`.
    pub rn_failover: rserpool_failover,
    /// `RSERPOOL_SESSION_CHANGE`.
    pub rn_session_change: rserpool_session_change,
    /// `RSERPOOL_SHUTDOWN_EVENT`.
    pub rn_shutdown_event: rserpool_shutdown_event,
}

/// SCTP settings of a pool user's associations to PEs, ms and counts (0: unchanged).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rserpool_session_parameters {
    /// Initial retransmission timeout.
    pub sp_rto_initial: c_uint,
    /// Least retransmission timeout.
    pub sp_rto_min: c_uint,
    /// Greatest retransmission timeout.
    pub sp_rto_max: c_uint,
    /// Retransmissions before the association is lost.
    pub sp_assoc_max_rxt: c_uint,
    /// Retransmissions before a path is down.
    pub sp_path_max_rxt: c_uint,
    /// Heartbeat interval.
    pub sp_hbinterval: c_uint,
}
