//! The functions of `rserpool.h`. Each is a thin wrapper: it checks its arguments, calls the
//! Rust API ([`Client`](crate::Client), [`Session`],
//! [`SessionServer`]) and reports as RSPLIB does (-1 and `errno`,
//! `REAI_*`, `RSPERR_*`). No panic crosses into C: a panic becomes `EIO`.

use std::ffi::CStr;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use libc::{c_char, c_int, c_uchar, c_uint, c_void, size_t, sockaddr, socklen_t, ssize_t};

use super::internals::CallTags;
use super::library::{self, Library, lock};
use super::socket::{Item, PoolElementState, Role, Socket, timeout_ms};
use super::types::*;
use crate::asap::{ClientError, PoolElementSpec};
use crate::session::{PeEvent, SendInfo, SessionConfig, SessionEvent, SessionId};
use crate::transport::Listener;
use crate::wire::{
    Policy, PolicyType, PoolElementId, PoolHandle, SctpTransport, Transport, TransportUse,
};
use crate::{Session, SessionOptions, SessionServer};

/// RSPLIB's longest pool handle.
const MAX_POOL_HANDLE: usize = 32;
/// RSerPool error codes of the basic mode (RSPLIB's `RSPERR_*`, also wire cause codes).
const RSPERR_OKAY: c_uint = 0;
const RSPERR_INVALID_VALUE: c_uint = 0x11;
const RSPERR_NOT_INITIALIZED: c_uint = 0x1000;
const RSPERR_NO_REGISTRAR: c_uint = 0x1007;
const RSPERR_TIMEOUT: c_uint = 0x1008;
const RSPERR_NOT_FOUND: c_uint = 0x0009;
const RSPERR_OUT_OF_MEMORY: c_uint = 0x0006;
/// `MSG_EOR` as Linux defines it.
const MSG_EOR: c_int = libc::MSG_EOR;
/// `SCTP_UNORDERED` and `SCTP_EOF` of `sctp_sndrcvinfo.sinfo_flags`.
const SCTP_UNORDERED: u16 = 1;
const SCTP_EOF: u16 = libc::MSG_FIN as u16;
const SCTP_ABORT: u16 = 4;
fn set_errno(e: c_int) {
    // SAFETY: errno is thread-local and always writable.
    unsafe { *libc::__errno_location() = e };
}

/// Runs `f`, turning a panic into `on_panic` with errno `EIO`.
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            set_errno(libc::EIO);
            on_panic
        }
    }
}

/// -1 with errno `e`.
fn fail<T: From<i8>>(e: c_int) -> T {
    set_errno(e);
    T::from(-1)
}

/// The library, or errno `EACCES` (RSPLIB's "not initialised").
fn lib() -> Result<Arc<Library>, c_int> {
    library::library().ok_or(libc::EACCES)
}

fn socket_of(l: &Library, sd: c_int) -> Result<Arc<Socket>, c_int> {
    l.socket(sd).ok_or(libc::EBADF)
}

/// The library and the socket behind `sd`.
fn lib_socket(sd: c_int) -> Result<(Arc<Library>, Arc<Socket>), c_int> {
    let l = lib()?;
    let s = socket_of(&l, sd)?;
    Ok((l, s))
}

/// Reads a pool handle argument.
///
/// # Safety
/// `ph` is NULL or readable for `size` bytes.
unsafe fn pool_handle(ph: *const u8, size: size_t) -> Result<PoolHandle, c_int> {
    if ph.is_null() || size == 0 {
        return Err(libc::EINVAL);
    }
    if size > MAX_POOL_HANDLE {
        return Err(libc::ENAMETOOLONG);
    }
    // SAFETY: the caller promises `size` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(ph, size) };
    PoolHandle::new(bytes.to_vec()).map_err(|_| libc::EINVAL)
}

/// The policy an `rsp_loadinfo` describes (NULL: Round Robin, as RSPLIB).
fn policy_of(li: Option<&rsp_loadinfo>) -> Option<Policy> {
    let Some(li) = li else {
        return Some(Policy::RoundRobin);
    };
    let t = PolicyType(li.rli_policy);
    let (w, l, ld) = (li.rli_weight, li.rli_load, li.rli_load_degradation);
    let values: Vec<u32> = match li.rli_policy {
        0x0000_0001 | 0x0000_0003 => vec![],
        0x0000_0002 | 0x0000_0004 | 0x0000_0005 => vec![w],
        0x4000_0001 | 0x4000_0004 => vec![l],
        0x4000_0002 | 0x4000_0003 | 0xb000_1001..=0xb000_1004 => vec![l, ld],
        0xb000_2001 => vec![w, li.rli_weight_dpf, 0],
        0xb000_2002 => vec![l, li.rli_load_dpf, 0],
        0xb000_2003..=0xb000_2005 => vec![l, ld, li.rli_load_dpf, 0],
        _ => return None,
    };
    Policy::from_values(t, &values)
}

/// errno for a failed ASAP request.
fn errno_of(e: &ClientError) -> c_int {
    match e {
        ClientError::UnknownPoolHandle => libc::ENOENT,
        ClientError::Timeout => libc::ETIMEDOUT,
        ClientError::NoRegistrar => libc::EHOSTUNREACH,
        ClientError::Overloaded => libc::EAGAIN,
        ClientError::Invalid(_) => libc::EINVAL,
        ClientError::UnknownPoolElement => libc::EBADF,
        ClientError::Refused(_) => libc::EPERM,
        ClientError::Stopped => libc::EIO,
    }
}

/// `RSPERR_*` for a failed ASAP request (the registrar's cause where it gave one).
fn rsperr_of(e: &ClientError) -> c_uint {
    match e {
        ClientError::Refused(op) => c_uint::from(op.code().0),
        ClientError::UnknownPoolHandle | ClientError::UnknownPoolElement => RSPERR_NOT_FOUND,
        ClientError::Timeout => RSPERR_TIMEOUT,
        ClientError::NoRegistrar => RSPERR_NO_REGISTRAR,
        ClientError::Overloaded => RSPERR_OUT_OF_MEMORY,
        ClientError::Invalid(_) => RSPERR_INVALID_VALUE,
        ClientError::Stopped => RSPERR_NOT_INITIALIZED,
    }
}

// ---------------------------------------------------------------------------------------
// Initialisation
// ---------------------------------------------------------------------------------------

/// Fills `info` with the defaults: all zero (every setting at its default, registrars heard
/// through announces), the Component Status Protocol server and interval from the
/// environment variables `CSP_SERVER` (ADDR:PORT) and `CSP_INTERVAL` (ms) as RSPLIB does.
/// NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_initinfo(info: *mut rsp_info) {
    guard((), || {
        // SAFETY: the program passes its rsp_info (or NULL).
        let Some(info) = (unsafe { info.as_mut() }) else {
            return;
        };
        // SAFETY: rsp_info is plain data; all zero is its default.
        *info = unsafe { std::mem::zeroed() };
        if let Some(a) = std::env::var("CSP_SERVER")
            .ok()
            .and_then(|s| library::parse_addr(&s, 2960))
        {
            info.ri_csp_server = library::alloc_sockaddr(&a);
        }
        if let Some(ms) = std::env::var("CSP_INTERVAL")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        {
            info.ri_csp_interval = ms.max(250);
        }
    })
}

/// Applies one RSPLIB command-line option to `info`: returns 1 if it is one of the library's
/// (and applied), 0 if not. Options: `-registrar=ADDR[:PORT][,ADDR...]` (repeatable; port
/// 3863 if omitted), `-asapannounce=auto|off|ADDR[:PORT]`, `-cspserver=ADDR[:PORT]`,
/// `-cspinterval=MS`, `-cspidentifier=HEX`, `-log...` (accepted; rserpool logs through
/// `tracing`), and `-registrarannouncetimeout=`, `-registrarconnecttimeout=`,
/// `-registrarconnectmaxtrials=`, `-registrarrequesttimeout=`, `-registrarresponsetimeout=`,
/// `-registrarrequestmaxtrials=` (RSPLIB applies these six but returns 0; rserpool returns 1).
/// A malformed value returns 0. Memory allocated here is freed by `rsp_freeinfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_initarg(info: *mut rsp_info, arg: *const c_char) -> c_int {
    guard(0, || {
        // SAFETY: the program passes its rsp_info and a C string (or NULLs).
        let (Some(info), false) = (unsafe { info.as_mut() }, arg.is_null()) else {
            return 0;
        };
        // SAFETY: arg is a NUL-terminated string.
        let arg = unsafe { CStr::from_ptr(arg) };
        // SAFETY: info is valid.
        match unsafe { library::initarg(info, arg) } {
            library::Arg::Consumed => 1,
            library::Arg::Unknown => 0,
        }
    })
}

/// Frees what `rsp_initarg` and `rsp_initinfo` allocated in `info` (registrar list, announce
/// and CSP addresses). Pointers the program put there itself are left alone. NULL is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_freeinfo(info: *mut rsp_info) {
    guard((), || {
        // SAFETY: the program passes its rsp_info (or NULL).
        if let Some(info) = unsafe { info.as_mut() } {
            // SAFETY: info is valid.
            unsafe { library::freeinfo(info) };
        }
    })
}

/// Starts the library: its threads, the ASAP client (registrars from `info`, from the
/// environment variable `RSERPOOL_REGISTRARS` and from announces), the transport (our SCTP
/// over UDP, RFC 6951; `RSERPOOL_UDP_PORT` sets the UDP port, default 9899, and
/// `RSERPOOL_LOCAL` the local address). NULL: the defaults. Returns 0, or -1 with errno.
/// A second call is a no-op returning 0. In a child after `fork`, the parent's library is not
/// usable: every call fails with `EACCES` until the child calls `rsp_initialize` itself.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_initialize(info: *mut rsp_info) -> c_int {
    guard(-1, || {
        // SAFETY: the program passes a valid rsp_info or NULL.
        let options = unsafe { library::options_from(info) };
        match library::initialize(options) {
            Ok(()) => 0,
            Err(e) => fail(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    })
}

/// Stops the library: closes every RSerPool socket (PEs deregister, sessions shut down) and
/// the registrar associations, each bounded by a few seconds. Programs that exit without it
/// get the same at `exit`.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_cleanup() {
    guard((), library::cleanup)
}

// ---------------------------------------------------------------------------------------
// Basic mode
// ---------------------------------------------------------------------------------------

/// Resolves a pool handle: up to `items` PEs (0: one, as RSPLIB; at most 128) in `*info`, a
/// list to free with `rsp_freeaddrinfo`. Returns the number of PEs, `REAI_NONAME` when the
/// pool is unknown or empty, `REAI_MEMORY`, or `REAI_SYSTEM` with errno (`EINVAL` for bad
/// arguments, `ENAMETOOLONG` for a handle over 32 bytes, `EACCES` before `rsp_initialize`,
/// `EHOSTUNREACH` / `ETIMEDOUT` when no registrar answers). `staleCacheValue` (ms) is
/// RSPLIB's: 0 asks a registrar every time; otherwise fresh cached PEs answer at once, and
/// the PEs a registrar returns stay cached that long.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_getaddrinfo(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    rserpoolAddrInfo: *mut *mut rsp_addrinfo,
    items: size_t,
    staleCacheValue: c_uint,
) -> c_int {
    guard(REAI_SYSTEM, || {
        if rserpoolAddrInfo.is_null() {
            set_errno(libc::EINVAL);
            return REAI_SYSTEM;
        }
        // SAFETY: out pointer checked above.
        unsafe { *rserpoolAddrInfo = std::ptr::null_mut() };
        // SAFETY: the program passes its pool handle.
        let pool = match unsafe { pool_handle(poolHandle, poolHandleSize) } {
            Ok(p) => p,
            Err(e) => {
                set_errno(e);
                return REAI_SYSTEM;
            }
        };
        let l = match lib() {
            Ok(l) => l,
            Err(e) => {
                set_errno(e);
                return REAI_SYSTEM;
            }
        };
        let n = items.clamp(1, 128) as u32;
        let stale = Duration::from_millis(u64::from(staleCacheValue));
        // A cache hit needs no trip into the runtime, and its list is built straight from
        // the cache.
        let hit = l
            .client
            .resolve_from_cache_with(&pool, Some(n), Some(stale), |pes| addrinfo_list(pes));
        let answer = match hit {
            Some(list) => list,
            None => match l.block_on(l.client.resolve_in_driver(&pool, Some(n), Some(stale))) {
                Ok(pes) => addrinfo_list(&mut pes.iter()),
                Err(ClientError::UnknownPoolHandle) => return REAI_NONAME,
                Err(e) => {
                    set_errno(errno_of(&e));
                    return REAI_SYSTEM;
                }
            },
        };
        match answer {
            Some((_, 0)) => REAI_NONAME,
            Some((head, count)) => {
                // SAFETY: out pointer checked above.
                unsafe { *rserpoolAddrInfo = head };
                count
            }
            None => REAI_MEMORY,
        }
    })
}

/// The `rsp_addrinfo` list of PEs, in their order, and its length; `None` (nothing left
/// allocated) when memory runs out.
fn addrinfo_list(
    pes: &mut dyn Iterator<Item = &crate::wire::PoolElement>,
) -> Option<(*mut rsp_addrinfo, c_int)> {
    let mut head: *mut rsp_addrinfo = std::ptr::null_mut();
    let mut tail: *mut *mut rsp_addrinfo = &mut head;
    let mut count = 0;
    for pe in pes {
        let Some(ai) = addrinfo_of(pe) else {
            // SAFETY: head is a list this call built.
            unsafe { rsp_freeaddrinfo(head) };
            return None;
        };
        // SAFETY: tail points at `head` or at the last entry's (zeroed) next pointer.
        unsafe {
            *tail = ai;
            tail = &mut (*ai).ai_next;
        }
        count += 1;
    }
    Some((head, count))
}

/// One `rsp_addrinfo` (and its addresses, in the same allocation) for a PE.
fn addrinfo_of(pe: &crate::wire::PoolElement) -> Option<*mut rsp_addrinfo> {
    let t = &pe.user_transport;
    let port = t.port().unwrap_or(0);
    let v6 = t.addresses().iter().any(|a| a.is_ipv6());
    let count = t.addresses().len();
    let one = if v6 {
        std::mem::size_of::<libc::sockaddr_in6>()
    } else {
        std::mem::size_of::<libc::sockaddr_in>()
    };
    let head = std::mem::size_of::<rsp_addrinfo>().next_multiple_of(8);
    let p = library::alloc(head + one * count);
    if p.is_null() {
        return None;
    }
    let ai = p.cast::<rsp_addrinfo>();
    let base = p.wrapping_add(head);
    for (i, &ip) in t.addresses().iter().enumerate() {
        // One family for the whole list: IPv4 addresses beside IPv6 ones are mapped.
        let ip = match ip {
            std::net::IpAddr::V4(v4) if v6 => std::net::IpAddr::V6(v4.to_ipv6_mapped()),
            ip => ip,
        };
        // SAFETY: the block has room for every address after the header.
        unsafe { library::write_sockaddr(base.wrapping_add(i * one), &SocketAddr::new(ip, port)) };
    }
    let (socktype, protocol) = match t {
        Transport::Sctp(_) => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
        Transport::Tcp { .. } => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        _ => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
    };
    // SAFETY: ai is the start of the fresh, zeroed block.
    unsafe {
        (*ai).ai_family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        (*ai).ai_socktype = socktype;
        (*ai).ai_protocol = protocol;
        (*ai).ai_addrlen = one;
        (*ai).ai_addrs = count;
        (*ai).ai_addr = base.cast();
        (*ai).ai_pe_id = pe.id.0;
    }
    Some(ai)
}

/// Frees a list `rsp_getaddrinfo` returned. NULL, lists the library did not make, and lists
/// already freed are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_freeaddrinfo(rserpoolAddrInfo: *mut rsp_addrinfo) {
    guard((), || {
        let mut p = rserpoolAddrInfo;
        while !p.is_null() {
            // SAFETY: a non-NULL entry the library made is still valid until freed below; the
            // next pointer is read first.
            let next = unsafe { (*p).ai_next };
            if !library::free(p.cast()) {
                return;
            }
            p = next;
        }
    })
}

/// Registers (or re-registers) a PE in basic mode: its addresses and port from `rspAddrInfo`
/// (`ai_addr`, `ai_addrs`, `ai_protocol`), its policy from `rspLoadInfo` (NULL: Round Robin),
/// registration life in ms. `ai_pe_id` 0 picks a random identifier and writes it back. The
/// library re-registers the PE by itself every third of its life until
/// `rsp_pe_deregistration`. Returns 0 or an `RSPERR_*` code (the registrar's cause when it
/// refused). `REGF_DONTWAIT`: returns at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_pe_registration(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    rspAddrInfo: *mut rsp_addrinfo,
    rspLoadInfo: *const rsp_loadinfo,
    registrationLife: c_uint,
    flags: c_int,
) -> c_uint {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        pe_registration(
            poolHandle,
            poolHandleSize,
            rspAddrInfo,
            rspLoadInfo,
            registrationLife,
            flags,
            &CallTags::default(),
        )
    }
}

/// `rsp_pe_registration`, with the settings of a `*_tags` call.
pub(crate) unsafe fn pe_registration(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    rspAddrInfo: *mut rsp_addrinfo,
    rspLoadInfo: *const rsp_loadinfo,
    registrationLife: c_uint,
    flags: c_int,
    tags: &CallTags,
) -> c_uint {
    guard(RSPERR_INVALID_VALUE, || {
        // SAFETY: the program passes its pool handle.
        let Ok(pool) = (unsafe { pool_handle(poolHandle, poolHandleSize) }) else {
            return RSPERR_INVALID_VALUE;
        };
        // SAFETY: the program passes its rsp_addrinfo and rsp_loadinfo (or NULL).
        let (Some(ai), li) = (unsafe { rspAddrInfo.as_mut() }, unsafe {
            rspLoadInfo.as_ref()
        }) else {
            return RSPERR_INVALID_VALUE;
        };
        let Some(policy) = policy_of(li) else {
            return RSPERR_INVALID_VALUE;
        };
        // SAFETY: ai_addr holds ai_addrs packed addresses, as the program promises.
        let Some(addrs) = (unsafe { library::read_packed(ai.ai_addr, ai.ai_addrs) }) else {
            return RSPERR_INVALID_VALUE;
        };
        let Some(port) = addrs.first().map(|a| a.port()) else {
            return RSPERR_INVALID_VALUE;
        };
        let ips: Vec<_> = addrs
            .iter()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .collect();
        let user_transport = match ai.ai_protocol {
            libc::IPPROTO_TCP if !ips.is_empty() => Transport::Tcp {
                port,
                address: ips[0],
            },
            libc::IPPROTO_UDP if !ips.is_empty() => Transport::Udp {
                port,
                address: ips[0],
            },
            _ => Transport::Sctp(SctpTransport {
                port,
                transport_use: if flags & REGF_CONTROLCHANNEL != 0 {
                    TransportUse::DataPlusControl
                } else {
                    TransportUse::DataOnly
                },
                addresses: ips,
            }),
        };
        let Ok(l) = lib() else {
            return RSPERR_NOT_INITIALIZED;
        };
        if ai.ai_pe_id == 0 {
            ai.ai_pe_id = tags
                .pe_id
                .unwrap_or_else(|| rand::random_range(1..=0xffff_fffe));
        }
        let spec = PoolElementSpec {
            pool_handle: pool,
            pe_id: Some(PoolElementId(ai.ai_pe_id)),
            user_transport,
            policy,
            reregistration_interval: Duration::from_millis(u64::from(registrationLife.max(30)) / 3),
        };
        if flags & REGF_DONTWAIT != 0 {
            let client = l.client.clone();
            l.runtime.spawn(async move { client.register(spec).await });
            return RSPERR_OKAY;
        }
        match l.block_on(l.client.register(spec)) {
            Ok(_) => RSPERR_OKAY,
            Err(e) => rsperr_of(&e),
        }
    })
}

/// Deregisters a PE registered with `rsp_pe_registration`. Returns 0 or an `RSPERR_*` code.
/// `DEREGF_DONTWAIT`: returns at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_pe_deregistration(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    identifier: u32,
    flags: c_int,
) -> c_uint {
    guard(RSPERR_INVALID_VALUE, || {
        // SAFETY: the program passes its pool handle.
        let Ok(pool) = (unsafe { pool_handle(poolHandle, poolHandleSize) }) else {
            return RSPERR_INVALID_VALUE;
        };
        let Ok(l) = lib() else {
            return RSPERR_NOT_INITIALIZED;
        };
        let id = PoolElementId(identifier);
        if flags & DEREGF_DONTWAIT != 0 {
            let client = l.client.clone();
            l.runtime
                .spawn(async move { client.deregister(&pool, id).await });
            return RSPERR_OKAY;
        }
        match l.block_on(l.client.deregister(&pool, id)) {
            Ok(()) => RSPERR_OKAY,
            Err(e) => rsperr_of(&e),
        }
    })
}

/// Reports a PE unreachable: it leaves the cache, and the registrar hears of it (ASAP
/// Endpoint Unreachable). Returns 0 or an `RSPERR_*` code.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_pe_failure(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    identifier: u32,
) -> c_uint {
    guard(RSPERR_INVALID_VALUE, || {
        // SAFETY: the program passes its pool handle.
        let Ok(pool) = (unsafe { pool_handle(poolHandle, poolHandleSize) }) else {
            return RSPERR_INVALID_VALUE;
        };
        let Ok(l) = lib() else {
            return RSPERR_NOT_INITIALIZED;
        };
        l.client
            .report_unreachable(&pool, PoolElementId(identifier));
        RSPERR_OKAY
    })
}

static POLICY_NAMES: [(u32, &CStr); 18] = [
    (0x0000_0001, c"RoundRobin"),
    (0x0000_0002, c"WeightedRoundRobin"),
    (0x0000_0003, c"Random"),
    (0x0000_0004, c"WeightedRandom"),
    (0x0000_0005, c"Priority"),
    (0x4000_0001, c"LeastUsed"),
    (0x4000_0002, c"LeastUsedDegradation"),
    (0x4000_0003, c"PriorityLeastUsed"),
    (0x4000_0004, c"RandomizedLeastUsed"),
    (0xb000_1001, c"RandomizedPriorityLeastUsed"),
    (0xb000_1002, c"RandomizedLeastUsedDegradation"),
    (0xb000_1003, c"PriorityLeastUsedDegradation"),
    (0xb000_1004, c"RandomizedPriorityLeastUsedDegradation"),
    (0xb000_2001, c"WeightedRandomDPF"),
    (0xb000_2002, c"LeastUsedDPF"),
    (0xb000_2003, c"LeastUsedDegradationDPF"),
    (0xb000_2004, c"PriorityLeastUsedDPF"),
    (0xb000_2005, c"PriorityLeastUsedDegradationDPF"),
];

/// The name of a policy (`"RoundRobin"`, `"LeastUsed"`, ...), or NULL for an unknown one.
/// The string is static.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_getpolicybytype(policyType: c_uint) -> *const c_char {
    POLICY_NAMES
        .iter()
        .find(|(t, _)| *t == policyType)
        .map_or(std::ptr::null(), |(_, n)| n.as_ptr())
}

/// The policy of a name as `rsp_getpolicybytype` gives it (ASCII case-insensitive), or
/// `PPT_UNDEFINED`. NULL gives `PPT_UNDEFINED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_getpolicybyname(policyName: *const c_char) -> c_uint {
    guard(0, || {
        if policyName.is_null() {
            return 0;
        }
        // SAFETY: a NUL-terminated string from the program.
        let name = unsafe { CStr::from_ptr(policyName) }.to_bytes();
        POLICY_NAMES
            .iter()
            .find(|(_, n)| n.to_bytes().eq_ignore_ascii_case(name))
            .map_or(0, |(t, _)| *t)
    })
}

// ---------------------------------------------------------------------------------------
// Enhanced mode: sockets
// ---------------------------------------------------------------------------------------

/// Creates an RSerPool socket: `domain` 0, `AF_INET` or `AF_INET6`; `type` `SOCK_SEQPACKET`
/// (a pool user, or a one-to-many PE whose sessions come with IDs) or `SOCK_STREAM` (a pool
/// user, or a PE that accepts each session as a socket of its own); `protocol`
/// `IPPROTO_SCTP` (or 0). Returns the descriptor, a real file descriptor that is readable
/// exactly when `rsp_recvmsg` (or `rsp_accept`) would not block, so it works in the program's
/// own `poll`, `epoll` or `select`. Errors: `EACCES` before `rsp_initialize`,
/// `EAFNOSUPPORT`, `ESOCKTNOSUPPORT`, `EPROTONOSUPPORT`, `EMFILE`.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_socket(domain: c_int, r#type: c_int, protocol: c_int) -> c_int {
    guard(-1, || {
        let l = match lib() {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        if ![0, libc::AF_INET, libc::AF_INET6].contains(&domain) {
            return fail(libc::EAFNOSUPPORT);
        }
        if ![libc::SOCK_SEQPACKET, libc::SOCK_STREAM].contains(&r#type) {
            return fail(libc::ESOCKTNOSUPPORT);
        }
        if ![0, libc::IPPROTO_SCTP].contains(&protocol) {
            return fail(libc::EPROTONOSUPPORT);
        }
        match Socket::new(domain, r#type, Role::Fresh) {
            Ok(s) => {
                let fd = s.fd();
                lock(&l.sockets).insert(fd, s);
                fd
            }
            Err(e) => fail(e.raw_os_error().unwrap_or(libc::EMFILE)),
        }
    })
}

/// Binds a socket to addresses (a packed array of `addrcnt` `sockaddr_in`/`sockaddr_in6`;
/// fewer than 1: any address). The port of the first, if not 0, is the SCTP port a PE
/// registers; otherwise `rsp_register` picks a free one. Errors: `EBADF`, `EINVAL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_bind(sd: c_int, addrs: *const sockaddr, addrcnt: c_int) -> c_int {
    guard(-1, || {
        let s = match lib().and_then(|l| socket_of(&l, sd)) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let list = if addrcnt < 1 || addrs.is_null() {
            Vec::new()
        } else {
            // SAFETY: the program passes addrcnt packed addresses.
            match unsafe { library::read_packed(addrs, addrcnt as usize) } {
                Some(a) => a,
                None => return fail(libc::EINVAL),
            }
        };
        let mut st = s.lock();
        if !matches!(st.role, Role::Fresh) {
            return fail(libc::EINVAL);
        }
        st.bound = list;
        0
    })
}

/// Marks a PE socket as accepting sessions. Sessions are accepted from `rsp_register` on
/// whether or not this is called; it exists for RSPLIB's programs. Errors: `EBADF`.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_listen(sd: c_int, backlog: c_int) -> c_int {
    let _ = backlog;
    guard(-1, || match lib().and_then(|l| socket_of(&l, sd)) {
        Ok(_) => 0,
        Err(e) => fail(e),
    })
}

/// Sets the SCTP settings of a pool user's future associations to PEs (ms, counts; 0 keeps
/// a value) and writes the values in effect back. Errors: `EBADF`, `EINVAL` (NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_update_session_parameters(
    sd: c_int,
    params: *mut rserpool_session_parameters,
) -> c_int {
    guard(-1, || {
        let s = match lib().and_then(|l| socket_of(&l, sd)) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        // SAFETY: the program passes its struct (or NULL).
        let Some(p) = (unsafe { params.as_mut() }) else {
            return fail(libc::EINVAL);
        };
        let mut st = s.lock();
        let cur = &mut st.params;
        for (new, old) in [
            (p.sp_rto_initial, &mut cur.sp_rto_initial),
            (p.sp_rto_min, &mut cur.sp_rto_min),
            (p.sp_rto_max, &mut cur.sp_rto_max),
            (p.sp_assoc_max_rxt, &mut cur.sp_assoc_max_rxt),
            (p.sp_path_max_rxt, &mut cur.sp_path_max_rxt),
            (p.sp_hbinterval, &mut cur.sp_hbinterval),
        ] {
            if new != 0 {
                *old = new;
            }
        }
        *p = effective(&st.params);
        0
    })
}

/// The session options a socket's parameters give.
fn session_options(p: &rserpool_session_parameters) -> SessionOptions {
    let mut o = SessionOptions::default();
    let ms = |v: c_uint| Duration::from_millis(u64::from(v));
    let a = &mut o.association;
    if p.sp_rto_initial != 0 {
        a.rto_initial = ms(p.sp_rto_initial);
    }
    if p.sp_rto_min != 0 {
        a.rto_min = ms(p.sp_rto_min);
    }
    if p.sp_rto_max != 0 {
        a.rto_max = ms(p.sp_rto_max);
    }
    if p.sp_assoc_max_rxt != 0 {
        a.max_retrans = p.sp_assoc_max_rxt;
    }
    if p.sp_path_max_rxt != 0 {
        a.path_max_retrans = p.sp_path_max_rxt;
    }
    if p.sp_hbinterval != 0 {
        a.heartbeat_interval = Some(ms(p.sp_hbinterval));
    }
    o
}

fn effective(p: &rserpool_session_parameters) -> rserpool_session_parameters {
    let a = session_options(p).association;
    let ms = |d: Duration| c_uint::try_from(d.as_millis()).unwrap_or(c_uint::MAX);
    rserpool_session_parameters {
        sp_rto_initial: ms(a.rto_initial),
        sp_rto_min: ms(a.rto_min),
        sp_rto_max: ms(a.rto_max),
        sp_assoc_max_rxt: a.max_retrans,
        sp_path_max_rxt: a.path_max_retrans,
        sp_hbinterval: a.heartbeat_interval.map_or(0, ms),
    }
}

// ---------------------------------------------------------------------------------------
// Enhanced mode: pool element
// ---------------------------------------------------------------------------------------

/// Registers the socket as a PE of `poolHandle` (at most 32 bytes) with the policy of
/// `loadinfo` (NULL: Round Robin), re-registering every `reregistrationInterval` ms
/// (registration life: 3 times that). The PE serves sessions on its SCTP port (from `rsp_bind`
/// or a free one) with the session layer's control channel. Waits for the registrar unless
/// `REGF_DONTWAIT`; `REGF_DAEMONMODE` keeps the PE (and keeps trying) when the first
/// registration fails. Called again with the same pool handle: updates the policy values
/// (how a PE pushes its load) and re-registers at once. Errors: `EBADF` (no such socket, a
/// pool user's, or another pool handle), `EINVAL`, `ENAMETOOLONG`, `EADDRINUSE` (the port),
/// `EHOSTUNREACH` / `ETIMEDOUT` (no registrar answered), `EPERM` (the registrar refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_register(
    sd: c_int,
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    loadinfo: *const rsp_loadinfo,
    reregistrationInterval: c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        register(
            sd,
            poolHandle,
            poolHandleSize,
            loadinfo,
            reregistrationInterval,
            flags,
            &CallTags::default(),
        )
    }
}

/// `rsp_register`, with the settings of a `*_tags` call.
pub(crate) unsafe fn register(
    sd: c_int,
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    loadinfo: *const rsp_loadinfo,
    reregistrationInterval: c_uint,
    flags: c_int,
    tags: &CallTags,
) -> c_int {
    guard(-1, || {
        let (l, s) = match lib_socket(sd) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        // SAFETY: the program passes its pool handle and load info (or NULL).
        let pool = match unsafe { pool_handle(poolHandle, poolHandleSize) } {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let li = unsafe { loadinfo.as_ref() }.copied();
        let Some(policy) = policy_of(li.as_ref()) else {
            return fail(libc::EINVAL);
        };
        let interval = Duration::from_millis(u64::from(reregistrationInterval.max(10)));
        let wait = flags & REGF_DONTWAIT == 0;
        let existing = match &s.lock().role {
            Role::PoolElement(pe) if pe.pool == pool => Some(pe.clone()),
            Role::Fresh => None,
            _ => return fail(libc::EBADF),
        };
        if let Some(pe) = existing {
            *lock(&pe.loadinfo) = li.unwrap_or_default();
            let client = l.client.clone();
            let (pool, id) = (pe.pool.clone(), pe.id);
            let update = async move { client.update_policy(&pool, id, policy).await };
            if !wait {
                l.runtime.spawn(update);
                return 0;
            }
            return match l.block_on(update) {
                Ok(()) => 0,
                Err(e) => fail(errno_of(&e)),
            };
        }
        let bound = s.lock().bound.clone();
        let port = bound.first().map_or(0, |a| a.port());
        let listener = match l.block_on(listen(&l, port)) {
            Ok(listener) => listener,
            Err(e) => return fail(e),
        };
        let addresses: Vec<_> = bound
            .iter()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .collect();
        let id = PoolElementId(
            tags.pe_id
                .unwrap_or_else(|| rand::random_range(1..=0xffff_fffe)),
        );
        let server = {
            let _rt = l.runtime.enter();
            SessionServer::start_with(listener, pool.clone(), pe_handler(&s))
        };
        let spec = PoolElementSpec {
            pool_handle: pool.clone(),
            pe_id: Some(id),
            user_transport: Transport::Sctp(SctpTransport {
                port: server.port(),
                transport_use: TransportUse::DataPlusControl,
                addresses,
            }),
            policy,
            reregistration_interval: interval,
        };
        let pe = Arc::new(PoolElementState {
            server,
            pool,
            id,
            loadinfo: Mutex::new(li.unwrap_or_default()),
            registered: Mutex::new(true),
        });
        s.lock().role = Role::PoolElement(pe.clone());
        let client = l.client.clone();
        let register = async move { client.register(spec).await };
        if !wait {
            l.runtime.spawn(register);
            return 0;
        }
        match l.block_on(register) {
            Ok(_) => 0,
            Err(_) if flags & REGF_DAEMONMODE != 0 => 0,
            Err(e) => {
                // Undone: the socket is fresh again.
                s.lock().role = Role::Fresh;
                *lock(&pe.registered) = false;
                l.block_on(pe.server.close());
                fail(errno_of(&e))
            }
        }
    })
}

/// Listens on `port` of the library's endpoint, or on a free port when it is 0.
async fn listen(l: &Library, port: u16) -> Result<Listener, c_int> {
    let endpoint = l.client.endpoint();
    if port != 0 {
        return endpoint.listen(port).await.map_err(|_| libc::EADDRINUSE);
    }
    for _ in 0..64 {
        let p = rand::random_range(20000..=48000u16);
        if let Ok(listener) = endpoint.listen(p).await {
            return Ok(listener);
        }
    }
    Err(libc::EADDRINUSE)
}

/// What a PE socket does with its sessions' events: one-to-many (`SOCK_SEQPACKET`) queues
/// them with session IDs; `SOCK_STREAM` makes a socket per session for `rsp_accept`.
fn pe_handler(s: &Arc<Socket>) -> impl FnMut(PeEvent) + Send + 'static {
    let parent = Arc::downgrade(s);
    let one_to_many = s.socktype == libc::SOCK_SEQPACKET;
    let mut children: std::collections::HashMap<SessionId, Arc<Socket>> = Default::default();
    move |e| {
        let Some(parent) = parent.upgrade() else {
            return;
        };
        if one_to_many {
            parent.push(match e {
                PeEvent::SessionAdded { session } => session_change(session, RSERPOOL_SESSION_ADD),
                PeEvent::SessionRemoved { session } => {
                    session_change(session, RSERPOOL_SESSION_REMOVE)
                }
                PeEvent::PeerShutdown { session } => shutdown_event(session),
                PeEvent::CookieEcho { session, cookie } => Item::CookieEcho { session, cookie },
                PeEvent::Message {
                    session,
                    info,
                    data,
                } => Item::Data {
                    session,
                    pe: 0,
                    info,
                    data,
                },
            });
            return;
        }
        match e {
            PeEvent::SessionAdded { session } => {
                let pe = match &parent.lock().role {
                    Role::PoolElement(pe) => pe.clone(),
                    _ => return,
                };
                if let Ok(child) = Socket::new(
                    parent.domain,
                    parent.socktype,
                    Role::Accepted { pe, session },
                ) {
                    children.insert(session, child.clone());
                    parent.push_pending(child);
                }
            }
            PeEvent::SessionRemoved { session } => {
                if let Some(c) = children.remove(&session) {
                    c.push(Item::Eof);
                }
            }
            PeEvent::PeerShutdown { .. } => {}
            PeEvent::CookieEcho { session, cookie } => {
                if let Some(c) = children.get(&session) {
                    c.push(Item::CookieEcho { session, cookie });
                }
            }
            PeEvent::Message {
                session,
                info,
                data,
            } => {
                if let Some(c) = children.get(&session) {
                    c.push(Item::Data {
                        session,
                        pe: 0,
                        info,
                        data,
                    });
                }
            }
        }
    }
}

fn notification_bytes<T: Copy>(n: &T) -> Vec<u8> {
    let size = std::mem::size_of::<T>();
    // SAFETY: T is one of the plain repr(C) notification structs; reading its bytes is fine
    // (padding bytes are zero: the structs are built from Default).
    unsafe { std::slice::from_raw_parts((n as *const T).cast::<u8>(), size) }.to_vec()
}

fn session_change(session: SessionId, state: c_uint) -> Item {
    let n = rserpool_session_change {
        rsc_type: RSERPOOL_SESSION_CHANGE,
        rsc_flags: 0,
        rsc_length: std::mem::size_of::<rserpool_session_change>() as u32,
        rsc_state: state,
        rsc_session: session.0 as c_int,
    };
    Item::Notification(notification_bytes(&n))
}

fn shutdown_event(session: SessionId) -> Item {
    let n = rserpool_shutdown_event {
        rse_type: RSERPOOL_SHUTDOWN_EVENT,
        rse_flags: 0,
        rse_length: std::mem::size_of::<rserpool_shutdown_event>() as u32,
        rse_session: session.0 as c_int,
    };
    Item::Notification(notification_bytes(&n))
}

fn failover(state: c_uint, has_cookie: bool) -> Item {
    let mut n = rserpool_failover {
        rf_type: RSERPOOL_FAILOVER,
        rf_length: std::mem::size_of::<rserpool_failover>() as u32,
        rf_state: state,
        rf_session: 1,
        ..Default::default()
    };
    n.rf_has_cookie = u8::from(has_cookie);
    Item::Notification(notification_bytes(&n))
}

/// Deregisters the socket's PE (its sessions go on). Errors: `EBADF` (no PE),
/// `EHOSTUNREACH` / `ETIMEDOUT`. `DEREGF_DONTWAIT`: returns at once.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_deregister(sd: c_int, flags: c_int) -> c_int {
    guard(-1, || {
        let (l, s) = match lib_socket(sd) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let pe = match &s.lock().role {
            Role::PoolElement(pe) => pe.clone(),
            _ => return fail(libc::EBADF),
        };
        if !std::mem::replace(&mut *lock(&pe.registered), false) {
            return fail(libc::EBADF);
        }
        let client = l.client.clone();
        let dereg = async move { client.deregister(&pe.pool, pe.id).await };
        if flags & DEREGF_DONTWAIT != 0 {
            l.runtime.spawn(dereg);
            return 0;
        }
        match l.block_on(dereg) {
            Ok(()) => 0,
            Err(e) => fail(errno_of(&e)),
        }
    })
}

/// Accepts a session on a `SOCK_STREAM` PE socket: a new descriptor for it, or -1 with
/// `ETIMEDOUT` after `timeout` ms (negative: wait forever; 0: `EAGAIN` when none is waiting).
/// Errors: `EBADF`, `EOPNOTSUPP` (a one-to-many socket: its sessions come with IDs).
#[unsafe(no_mangle)]
pub extern "C" fn rsp_accept(sd: c_int, timeout: c_int) -> c_int {
    guard(-1, || {
        let (l, s) = match lib_socket(sd) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        if !matches!(s.lock().role, Role::PoolElement(_)) {
            return fail(libc::EBADF);
        }
        if s.socktype != libc::SOCK_STREAM {
            return fail(libc::EOPNOTSUPP);
        }
        let st = s.lock();
        let (mut st, ready) = s.wait(st, timeout_ms(timeout), |st| {
            !st.pending.is_empty() || st.closed
        });
        let Some(child) = st.pending.pop_front().filter(|_| ready) else {
            return fail(if timeout == 0 {
                libc::EAGAIN
            } else if st.closed {
                libc::EBADF
            } else {
                libc::ETIMEDOUT
            });
        };
        s.readiness(&st);
        drop(st);
        let fd = child.fd();
        lock(&l.sockets).insert(fd, child);
        fd
    })
}

// ---------------------------------------------------------------------------------------
// Enhanced mode: pool user
// ---------------------------------------------------------------------------------------

/// Connects the socket to a pool: resolves the handle, connects to a PE (waiting up to the
/// connect timeout, 5 s), as RSPLIB's `rsp_connect` does. Returns 0 even when no PE was
/// reached: the first send then fails, and a `RSERPOOL_FAILOVER` notification
/// (`RSERPOOL_FAILOVER_NECESSARY`) asks for `rsp_forcefailover`. Errors: `EBADF` (no such
/// socket, or connected already, or a PE's), `EINVAL`, `ENAMETOOLONG`.
/// `staleCacheValue` (ms): how long the PEs of the session's handle resolutions stay cached
/// (0: a registrar is asked every time), as in `rsp_getaddrinfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_connect(
    sd: c_int,
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    staleCacheValue: c_uint,
) -> c_int {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        connect(
            sd,
            poolHandle,
            poolHandleSize,
            staleCacheValue,
            &CallTags::default(),
        )
    }
}

/// `rsp_connect`, with the settings of a `*_tags` call.
pub(crate) unsafe fn connect(
    sd: c_int,
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    staleCacheValue: c_uint,
    tags: &CallTags,
) -> c_int {
    guard(-1, || {
        let (l, s) = match lib_socket(sd) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        // SAFETY: the program passes its pool handle.
        let pool = match unsafe { pool_handle(poolHandle, poolHandleSize) } {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let mut st = s.lock();
        if !matches!(st.role, Role::Fresh) {
            return fail(libc::EBADF);
        }
        let defaults = SessionConfig::default();
        let options = SessionOptions {
            session: SessionConfig {
                connect_timeout: tags.connect_timeout.unwrap_or(defaults.connect_timeout),
                retry_delay: tags.retry_delay.unwrap_or(defaults.retry_delay),
                ..defaults
            },
            stale_cache_value: Some(Duration::from_millis(u64::from(staleCacheValue))),
            ..session_options(&st.params)
        };
        let connect_timeout = options.session.connect_timeout;
        let limit = connect_timeout + l.options.asap.t1_enrp_request;
        let session = {
            let _rt = l.runtime.enter();
            Session::connect_with(&l.client, pool.clone(), options, pu_handler(&s))
        };
        st.role = Role::PoolUser {
            session: Arc::new(session),
            pool,
            connect_timeout,
        };
        st.connect_outcome = None;
        let _ = s.wait(st, Some(limit), |st| st.connect_outcome.is_some());
        0
    })
}

fn pu_handler(s: &Arc<Socket>) -> impl FnMut(SessionEvent) + Send + 'static {
    let socket = Arc::downgrade(s);
    move |e| {
        let Some(s) = socket.upgrade() else {
            return;
        };
        match e {
            SessionEvent::Connected { .. } => s.set_outcome(true),
            SessionEvent::Message { info, data } => {
                let pe = s.lock_pe();
                s.push(Item::Data {
                    session: SessionId(1),
                    pe,
                    info,
                    data,
                })
            }
            SessionEvent::FailoverNecessary { has_cookie } => {
                s.push(failover(RSERPOOL_FAILOVER_NECESSARY, has_cookie))
            }
            SessionEvent::FailoverComplete { has_cookie, .. } => {
                s.push(failover(RSERPOOL_FAILOVER_COMPLETE, has_cookie));
                s.set_outcome(true);
            }
            SessionEvent::NoPoolElement { .. } => s.set_outcome(false),
            SessionEvent::PeerShutdown => s.push(shutdown_event(SessionId(1))),
        }
    }
}

impl Socket {
    /// The PE serving this pool user's session, for `rinfo_pe_id`.
    fn lock_pe(&self) -> u32 {
        match &self.lock().role {
            Role::PoolUser { session, .. } => session.status().pool_element.map_or(0, |p| p.0),
            _ => 0,
        }
    }
}

fn pool_user(s: &Socket) -> Result<Arc<Session>, c_int> {
    match &s.lock().role {
        Role::PoolUser { session, .. } => Ok(session.clone()),
        _ => Err(libc::EBADF),
    }
}

/// How long a pool user's connect to a PE may take.
fn connect_timeout(s: &Socket) -> Duration {
    match &s.lock().role {
        Role::PoolUser {
            connect_timeout, ..
        } => *connect_timeout,
        _ => SessionConfig::default().connect_timeout,
    }
}

/// Fails the pool user's session over to another PE now (`FFF_UNREACHABLE`: reporting the
/// current one unreachable first), echoing the newest cookie to it, and waits for the outcome
/// (bounded by the connect timeout). Queued notifications are dropped; a `RSERPOOL_FAILOVER`
/// / `RSERPOOL_FAILOVER_COMPLETE` notification follows. Errors: `EBADF` (not a pool user's
/// session), `ENOENT` (no PE could be reached). `staleCacheValue` (ms) replaces the one
/// of `rsp_connect` for this and later handle resolutions.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_forcefailover(sd: c_int, flags: c_uint, staleCacheValue: c_uint) -> c_int {
    guard(-1, || {
        let (l, s) = match lib_socket(sd) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let session = match pool_user(&s) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let limit = connect_timeout(&s) + l.options.asap.t1_enrp_request;
        {
            let mut st = s.lock();
            st.queue.retain(|i| !matches!(i, Item::Notification(_)));
            st.connect_outcome = None;
            s.readiness(&st);
        }
        // Not under the socket's lock: the session's events take it inside the session's.
        // Their outcome comes after this call (a call's events wait for the session's task).
        session.force_failover_with(
            flags & FFF_UNREACHABLE != 0,
            Duration::from_millis(u64::from(staleCacheValue)),
        );
        let st = s.lock();
        let (st, _) = s.wait(st, Some(limit), |st| st.connect_outcome.is_some());
        match st.connect_outcome {
            Some(true) => 0,
            _ => fail(libc::ENOENT),
        }
    })
}

/// 1 if the pool user's session holds a cookie from a PE (it goes to the next PE on
/// failover), 0 if not or on any error.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_has_cookie(sd: c_int) -> c_int {
    guard(0, || {
        match lib()
            .and_then(|l| socket_of(&l, sd))
            .and_then(|s| pool_user(&s))
        {
            Ok(session) => c_int::from(session.status().has_cookie),
            Err(_) => 0,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Session I/O
// ---------------------------------------------------------------------------------------

/// Sends a message on a session: `sctpPPID` in network byte order (as RSPLIB; 11, ASAP, is
/// refused with `EINVAL`), `sctpStreamID`, `sctpTimeToLive` ms (0: reliable), `sctpFlags`
/// `SCTP_UNORDERED`, and `SCTP_EOF` / `SCTP_ABORT` to end a PE's session after it.
/// `sessionID` selects the session of a one-to-many PE socket. Returns `dataLength`, or -1:
/// `EBADF`, `EINVAL`, `EIO` (the PE is lost: fail over first), `EAGAIN` (a failover is in
/// progress and its queue is full), `ENOTCONN`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_sendmsg(
    sd: c_int,
    data: *const c_void,
    dataLength: size_t,
    msg_flags: c_uint,
    sessionID: rserpool_session_t,
    sctpPPID: u32,
    sctpStreamID: u16,
    sctpTimeToLive: u32,
    sctpFlags: u16,
    timeout: c_int,
) -> ssize_t {
    let _ = (msg_flags, timeout);
    guard(-1, || {
        let (l, s) = match lib_socket(sd) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        if (data.is_null() && dataLength > 0) || dataLength == 0 {
            return fail(libc::EINVAL);
        }
        // SAFETY: the program passes dataLength readable bytes.
        let bytes =
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data.cast(), dataLength) });
        let info = SendInfo {
            stream: sctpStreamID,
            ppid: u32::from_be(sctpPPID),
            unordered: sctpFlags & SCTP_UNORDERED != 0,
            lifetime: (sctpTimeToLive > 0)
                .then(|| Duration::from_millis(u64::from(sctpTimeToLive))),
        };
        if info.ppid == crate::wire::PPID_ASAP {
            return fail(libc::EINVAL);
        }
        let target = pe_target(&s, sessionID);
        let result = match target {
            Target::User(session) => session.send_now(info, bytes).map_err(|e| match e {
                crate::session::SessionError::FailoverNecessary => libc::EIO,
                crate::session::SessionError::QueueFull => libc::EAGAIN,
                crate::session::SessionError::Closed => libc::EBADF,
                crate::session::SessionError::ReservedPpid => libc::EINVAL,
                crate::session::SessionError::NotConnected => libc::ENOTCONN,
            }),
            Target::Element(pe, session) => {
                let r = pe.server.send_now(session, info, bytes);
                if r.is_ok() && sctpFlags & (SCTP_EOF | SCTP_ABORT) != 0 {
                    let _ = l.block_on(pe.server.close_session(session));
                }
                r.map_err(|e| match e {
                    crate::session::PeSessionError::ReservedPpid => libc::EINVAL,
                    _ => libc::EBADF,
                })
            }
            Target::None(e) => Err(e),
        };
        match result {
            Ok(()) => dataLength as ssize_t,
            Err(e) => fail(e),
        }
    })
}

enum Target {
    User(Arc<Session>),
    Element(Arc<PoolElementState>, SessionId),
    None(c_int),
}

fn pe_target(s: &Socket, session: rserpool_session_t) -> Target {
    match &s.lock().role {
        Role::PoolUser { session, .. } => Target::User(session.clone()),
        Role::PoolElement(pe) => match u32::try_from(session) {
            Ok(id) if id > 0 => Target::Element(pe.clone(), SessionId(id)),
            _ => Target::None(libc::EINVAL),
        },
        Role::Accepted { pe, session } => Target::Element(pe.clone(), *session),
        Role::Fresh => Target::None(libc::ENOTCONN),
    }
}

/// Sends a cookie to the pool user of a session (PE side): it keeps the newest and echoes it
/// to the PE it fails over to. Returns `cookieSize`, or -1: `EBADF`, `EINVAL` (NULL, empty or
/// over 65531 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_send_cookie(
    sd: c_int,
    cookie: *const c_uchar,
    cookieSize: size_t,
    sessionID: rserpool_session_t,
    timeout: c_int,
) -> ssize_t {
    let _ = timeout;
    guard(-1, || {
        let (_, s) = match lib_socket(sd) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        if cookie.is_null() || cookieSize == 0 || cookieSize > 65531 {
            return fail(libc::EINVAL);
        }
        // SAFETY: the program passes cookieSize readable bytes.
        let c = Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(cookie, cookieSize) });
        match pe_target(&s, sessionID) {
            Target::Element(pe, session) => match pe.server.send_cookie_now(session, c) {
                Ok(()) => cookieSize as ssize_t,
                Err(crate::session::PeSessionError::BadCookie) => fail(libc::EINVAL),
                Err(_) => fail(libc::EBADF),
            },
            Target::User(_) => fail(libc::EBADF),
            Target::None(e) => fail(e),
        }
    })
}

/// Receives the next message, notification or Cookie Echo, in the order they happened:
/// `*msg_flags` gets `MSG_EOR` at a message's end, with `MSG_RSERPOOL_NOTIFICATION` (the buffer
/// holds a `union rserpool_notification`) or `MSG_RSERPOOL_COOKIE_ECHO` (the buffer holds the
/// cookie; `rinfo_ppid` is 11 in host order, as RSPLIB). A message larger than the buffer
/// comes in parts, the last with `MSG_EOR`. `rinfo` gets session, PPID (network byte order),
/// PE and stream. Waits `timeout` ms (negative: forever; 0: `EAGAIN` at once). Returns the
/// bytes received, 0 when the session ended, or -1: `EBADF`, `EINVAL`, `EAGAIN`, `ETIMEDOUT`
/// is reported as `EAGAIN` (as RSPLIB), `ENOMEM` (a notification larger than the buffer).
/// `rsp_read` / `rsp_recv` on other descriptors read them as `read` does.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_recvmsg(
    sd: c_int,
    buffer: *mut c_void,
    bufferLength: size_t,
    rinfo: *mut rsp_sndrcvinfo,
    msg_flags: *mut c_int,
    timeout: c_int,
) -> ssize_t {
    guard(-1, || {
        let s = match lib().and_then(|l| socket_of(&l, sd)) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        if buffer.is_null() && bufferLength > 0 {
            return fail(libc::EINVAL);
        }
        // SAFETY: the program passes bufferLength writable bytes (checked for NULL above).
        let buf: &mut [u8] = if bufferLength == 0 {
            &mut []
        } else {
            unsafe { std::slice::from_raw_parts_mut(buffer.cast(), bufferLength) }
        };
        let st = s.lock();
        let (mut st, ready) = s.wait(st, timeout_ms(timeout), |st| {
            !st.queue.is_empty() || st.closed
        });
        if !ready {
            return fail(libc::EAGAIN);
        }
        let offset = st.offset;
        let Some(item) = st.queue.front() else {
            return 0;
        };
        let mut info = rsp_sndrcvinfo::default();
        let (bytes, flags): (&[u8], c_int) = match item {
            Item::Eof => {
                // Stays readable: every further call returns 0 too.
                return 0;
            }
            Item::Data {
                session,
                pe,
                info: i,
                data,
            } => {
                info.rinfo_session = session.0 as c_int;
                info.rinfo_ppid = i.ppid.to_be();
                info.rinfo_pe_id = *pe;
                info.rinfo_stream = i.stream;
                (&data[offset..], 0)
            }
            Item::Notification(n) => {
                if n.len() > buf.len() {
                    return fail(libc::ENOMEM);
                }
                (&n[..], MSG_RSERPOOL_NOTIFICATION)
            }
            Item::CookieEcho { session, cookie } => {
                info.rinfo_session = session.0 as c_int;
                info.rinfo_ppid = crate::wire::PPID_ASAP;
                (&cookie[offset..], MSG_RSERPOOL_COOKIE_ECHO)
            }
        };
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        let whole = n == bytes.len();
        if whole {
            st.queue.pop_front();
            st.offset = 0;
        } else {
            st.offset += n;
        }
        s.readiness(&st);
        drop(st);
        // SAFETY: the program passes writable out pointers or NULL.
        unsafe {
            if let Some(r) = rinfo.as_mut() {
                *r = info;
            }
            if let Some(f) = msg_flags.as_mut() {
                *f = flags | if whole { MSG_EOR } else { 0 };
            }
        }
        n as ssize_t
    })
}

/// As `rsp_recvmsg`, but gathers the parts of a message until `MSG_EOR` or a full buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_recvfullmsg(
    sd: c_int,
    buffer: *mut c_void,
    bufferLength: size_t,
    rinfo: *mut rsp_sndrcvinfo,
    msg_flags: *mut c_int,
    timeout: c_int,
) -> ssize_t {
    guard(-1, || {
        let mut total: usize = 0;
        let mut flags: c_int = 0;
        loop {
            // SAFETY: stays within the program's buffer.
            let n = unsafe {
                rsp_recvmsg(
                    sd,
                    buffer.cast::<u8>().wrapping_add(total).cast(),
                    bufferLength - total,
                    rinfo,
                    &raw mut flags,
                    timeout,
                )
            };
            if n <= 0 {
                return if total > 0 { total as ssize_t } else { n };
            }
            total += n as usize;
            if flags & MSG_EOR != 0 || total >= bufferLength {
                // SAFETY: a writable out pointer or NULL.
                if let Some(f) = unsafe { msg_flags.as_mut() } {
                    *f = flags;
                }
                return total as ssize_t;
            }
        }
    })
}

/// `read` for RSerPool sockets (`rsp_recvmsg`, waiting forever) and for every other
/// descriptor (plain `read`: standard input works, as with RSPLIB).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_read(fd: c_int, buffer: *mut c_void, bufferLength: size_t) -> ssize_t {
    guard(-1, || {
        if library::library().and_then(|l| l.socket(fd)).is_some() {
            // SAFETY: the program's buffer.
            unsafe {
                rsp_recvmsg(
                    fd,
                    buffer,
                    bufferLength,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    -1,
                )
            }
        } else {
            // SAFETY: plain read on the program's descriptor and buffer.
            unsafe { libc::read(fd, buffer, bufferLength) }
        }
    })
}

/// `recv` for RSerPool sockets (`rsp_recvmsg`; `MSG_DONTWAIT` does not wait) and every other
/// descriptor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_recv(
    sd: c_int,
    buffer: *mut c_void,
    bufferLength: size_t,
    flags: c_int,
) -> ssize_t {
    guard(-1, || {
        if library::library().and_then(|l| l.socket(sd)).is_some() {
            let timeout = if flags & libc::MSG_DONTWAIT != 0 {
                0
            } else {
                -1
            };
            // SAFETY: the program's buffer.
            unsafe {
                rsp_recvmsg(
                    sd,
                    buffer,
                    bufferLength,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    timeout,
                )
            }
        } else {
            // SAFETY: plain recv on the program's descriptor and buffer.
            unsafe { libc::recv(sd, buffer, bufferLength, flags) }
        }
    })
}

/// `write` for RSerPool sockets (`rsp_sendmsg` with PPID 0 on stream 0) and every other
/// descriptor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_write(fd: c_int, data: *const c_char, dataLength: size_t) -> ssize_t {
    guard(-1, || {
        if library::library().and_then(|l| l.socket(fd)).is_some() {
            // SAFETY: the program's data.
            unsafe { rsp_sendmsg(fd, data.cast(), dataLength, 0, 0, 0, 0, 0, 0, -1) }
        } else {
            // SAFETY: plain write on the program's descriptor and data.
            unsafe { libc::write(fd, data.cast(), dataLength) }
        }
    })
}

/// `send` for RSerPool sockets (`rsp_sendmsg` with PPID 0 on stream 0) and every other
/// descriptor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_send(
    sd: c_int,
    data: *const c_void,
    dataLength: size_t,
    flags: c_int,
) -> ssize_t {
    guard(-1, || {
        if library::library().and_then(|l| l.socket(sd)).is_some() {
            // SAFETY: the program's data.
            unsafe { rsp_sendmsg(sd, data, dataLength, flags as c_uint, 0, 0, 0, 0, 0, -1) }
        } else {
            // SAFETY: plain send on the program's descriptor and data.
            unsafe { libc::send(sd, data, dataLength, flags) }
        }
    })
}

// ---------------------------------------------------------------------------------------
// Waiting, options, names
// ---------------------------------------------------------------------------------------

/// `poll` over RSerPool sockets and any other descriptors alike (they are all real
/// descriptors): an RSerPool socket has `POLLIN` when `rsp_recvmsg` or `rsp_accept` would not
/// block. `timeout` ms, negative: forever.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_poll(ufds: *mut libc::pollfd, nfds: c_uint, timeout: c_int) -> c_int {
    // SAFETY: the program's array, passed on to poll.
    guard(-1, || unsafe {
        libc::poll(ufds, libc::nfds_t::from(nfds), timeout)
    })
}

/// `select` over RSerPool sockets and any other descriptors alike. A NULL timeout waits
/// forever, as `select` does (RSPLIB's crashes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_select(
    n: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    // SAFETY: the program's sets and timeout, passed on to select.
    guard(-1, || unsafe {
        libc::select(n, readfds, writefds, exceptfds, timeout)
    })
}

/// `getsockopt` on other descriptors; on RSerPool sockets -1 with `ENOPROTOOPT` (as RSPLIB,
/// whose are stubs).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_getsockopt(
    sd: c_int,
    level: c_int,
    optname: c_int,
    optval: *mut c_void,
    optlen: *mut socklen_t,
) -> c_int {
    guard(-1, || {
        if library::library().and_then(|l| l.socket(sd)).is_some() {
            return fail(libc::ENOPROTOOPT);
        }
        // SAFETY: passed on to getsockopt.
        unsafe { libc::getsockopt(sd, level, optname, optval, optlen) }
    })
}

/// `setsockopt` on other descriptors; on RSerPool sockets -1 with `ENOPROTOOPT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_setsockopt(
    sd: c_int,
    level: c_int,
    optname: c_int,
    optval: *const c_void,
    optlen: socklen_t,
) -> c_int {
    guard(-1, || {
        if library::library().and_then(|l| l.socket(sd)).is_some() {
            return fail(libc::ENOPROTOOPT);
        }
        // SAFETY: passed on to setsockopt.
        unsafe { libc::setsockopt(sd, level, optname, optval, optlen) }
    })
}

/// Writes a pool handle and PE ID to the program's out arguments (each may be NULL).
///
/// # Safety
/// Out pointers are NULL or writable; `ph` for `*ph_size` bytes.
unsafe fn write_name(
    pool: &PoolHandle,
    id: u32,
    ph: *mut u8,
    ph_size: *mut size_t,
    identifier: *mut u32,
) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        if !ph.is_null() {
            let Some(size) = ph_size.as_mut() else {
                return fail(libc::EINVAL);
            };
            let b = pool.as_bytes();
            if *size < b.len() {
                return fail(libc::ENOBUFS);
            }
            std::ptr::copy_nonoverlapping(b.as_ptr(), ph, b.len());
            *size = b.len();
        } else if let Some(size) = ph_size.as_mut() {
            *size = pool.as_bytes().len();
        }
        if let Some(i) = identifier.as_mut() {
            *i = id;
        }
    }
    0
}

/// The socket's own pool handle and PE identifier (a PE's, or an accepted session's PE).
/// Errors: `EBADF` (not a PE), `ENOBUFS` (`*poolHandleSize` too small).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_getsockname(
    sd: c_int,
    poolHandle: *mut c_uchar,
    poolHandleSize: *mut size_t,
    identifier: *mut u32,
) -> c_int {
    guard(-1, || {
        let s = match lib().and_then(|l| socket_of(&l, sd)) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let (pool, id) = match &s.lock().role {
            Role::PoolElement(pe) | Role::Accepted { pe, .. } => (pe.pool.clone(), pe.id.0),
            _ => return fail(libc::EBADF),
        };
        // SAFETY: the program's out pointers.
        unsafe { write_name(&pool, id, poolHandle, poolHandleSize, identifier) }
    })
}

/// The pool handle and PE identifier of the PE serving a pool user's session. Errors:
/// `EBADF` (not a pool user), `ENOTCONN` (no PE now), `ENOBUFS`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_getpeername(
    sd: c_int,
    poolHandle: *mut c_uchar,
    poolHandleSize: *mut size_t,
    identifier: *mut u32,
) -> c_int {
    guard(-1, || {
        let s = match lib().and_then(|l| socket_of(&l, sd)) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let (pool, pe) = match &s.lock().role {
            Role::PoolUser { session, pool, .. } => (pool.clone(), session.status().pool_element),
            _ => return fail(libc::EBADF),
        };
        let Some(pe) = pe else {
            return fail(libc::ENOTCONN);
        };
        // SAFETY: the program's out pointers.
        unsafe { write_name(&pool, pe.0, poolHandle, poolHandleSize, identifier) }
    })
}

/// Makes a system descriptor usable with the `rsp_*` calls. Every descriptor is usable as it
/// is, so this returns `sd` (or, with `toSD` not -1, a duplicate of `sd` at `toSD`, which
/// must be free: `EBUSY` otherwise). Errors: `EBADF`.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_mapsocket(sd: c_int, toSD: c_int) -> c_int {
    guard(-1, || {
        // SAFETY: fcntl F_GETFD only queries.
        if unsafe { libc::fcntl(sd, libc::F_GETFD) } < 0 {
            return fail(libc::EBADF);
        }
        if toSD < 0 || toSD == sd {
            return sd;
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(toSD, libc::F_GETFD) } >= 0 {
            return fail(libc::EBUSY);
        }
        // SAFETY: toSD is free; dup2 makes it a copy of sd.
        let r = unsafe { libc::dup2(sd, toSD) };
        if r < 0 { -1 } else { r }
    })
}

/// Undoes `rsp_mapsocket`: 0 (descriptors need no mapping). Errors: `EBADF` (an RSerPool
/// socket: close it with `rsp_close`).
#[unsafe(no_mangle)]
pub extern "C" fn rsp_unmapsocket(sd: c_int) -> c_int {
    guard(-1, || {
        if library::library().and_then(|l| l.socket(sd)).is_some() {
            return fail(libc::EBADF);
        }
        0
    })
}

/// Closes an RSerPool socket: a PE deregisters (bounded by a few seconds) and shuts its
/// sessions down; a pool user shuts its session down; an accepted session is shut down.
/// Errors: `EBADF`.
#[unsafe(no_mangle)]
pub extern "C" fn rsp_close(sd: c_int) -> c_int {
    guard(-1, || {
        let l = match lib() {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let Some(s) = lock(&l.sockets).remove(&sd) else {
            return fail(libc::EBADF);
        };
        close_socket(&l, &s);
        0
    })
}

/// Ends what a socket has going (the socket is out of the table already).
pub(crate) fn close_socket(l: &Library, s: &Arc<Socket>) {
    let role = {
        let mut st = s.lock();
        st.closed = true;
        s.notify(&st);
        std::mem::replace(&mut st.role, Role::Fresh)
    };
    let limit = Duration::from_secs(3);
    match role {
        Role::Fresh => {}
        Role::PoolUser { session, .. } => {
            l.block_on(async { tokio::time::timeout(limit, session.close()).await })
                .ok();
        }
        Role::PoolElement(pe) => {
            let registered = std::mem::replace(&mut *lock(&pe.registered), false);
            let client = l.client.clone();
            l.block_on(async {
                if registered {
                    let _ = tokio::time::timeout(limit, client.deregister(&pe.pool, pe.id)).await;
                }
                pe.server.close().await;
            });
        }
        Role::Accepted { pe, session } => {
            let _ = l.block_on(async {
                tokio::time::timeout(limit, pe.server.close_session(session)).await
            });
        }
    }
}

/// Prints a notification as RSPLIB does (e.g. `RSERPOOL_FAILOVER for session 1,
/// state=RSERPOOL_FAILOVER_NECESSARY, cookie=no`). NULL arguments are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_print_notification(
    notification: *const rserpool_notification,
    fd: *mut libc::FILE,
) {
    guard((), || {
        if notification.is_null() || fd.is_null() {
            return;
        }
        // SAFETY: the program's notification, as rsp_recvmsg filled it.
        let n = unsafe { &*notification };
        // SAFETY: every member starts with the header; reading the one rn_type names.
        let text = unsafe {
            match n.rn_header.rn_type {
                RSERPOOL_FAILOVER => format!(
                    "RSERPOOL_FAILOVER for session {}, state={}, cookie={}",
                    n.rn_failover.rf_session,
                    match n.rn_failover.rf_state {
                        RSERPOOL_FAILOVER_NECESSARY => "RSERPOOL_FAILOVER_NECESSARY".to_string(),
                        RSERPOOL_FAILOVER_COMPLETE => "RSERPOOL_FAILOVER_COMPLETE".to_string(),
                        s => format!("{s}"),
                    },
                    if n.rn_failover.rf_has_cookie != 0 {
                        "yes"
                    } else {
                        "no"
                    }
                ),
                RSERPOOL_SESSION_CHANGE => format!(
                    "RSERPOOL_SESSION_CHANGE for session {}, state={}",
                    n.rn_session_change.rsc_session,
                    match n.rn_session_change.rsc_state {
                        RSERPOOL_SESSION_ADD => "RSERPOOL_SESSION_ADD".to_string(),
                        RSERPOOL_SESSION_REMOVE => "RSERPOOL_SESSION_REMOVE".to_string(),
                        s => format!("{s}"),
                    }
                ),
                RSERPOOL_SHUTDOWN_EVENT => format!(
                    "RSERPOOL_SHUTDOWN_EVENT for session {}",
                    n.rn_shutdown_event.rse_session
                ),
                t => format!("unknown notification type {t}"),
            }
        };
        // SAFETY: writes the bytes of a live string to the program's FILE.
        unsafe { libc::fwrite(text.as_ptr().cast(), 1, text.len(), fd) };
    })
}

/// Sets the status text Component Status Protocol reports carry for the socket (kept; the
/// reports themselves come with the operations issue). Errors: `EBADF`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_csp_setstatus(
    sd: c_int,
    sessionID: rserpool_session_t,
    statusText: *const c_char,
) -> c_int {
    let _ = sessionID;
    guard(-1, || {
        let s = match lib().and_then(|l| socket_of(&l, sd)) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let text = if statusText.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated string from the program.
            unsafe { CStr::from_ptr(statusText) }
                .to_string_lossy()
                .into_owned()
        };
        s.lock().status_text = text;
        0
    })
}
