//! The library's process-wide state: the tokio runtime started by `rsp_initialize`, the ASAP
//! client, the table of RSerPool sockets, and the memory the library handed to the program.

use std::collections::HashMap;
use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use libc::{c_int, sockaddr};

use crate::{Client, ClientOptions};

use super::socket::Socket;
use super::types::{rsp_info, rsp_registrar_info};

/// The running library.
pub(crate) struct Library {
    pub runtime: tokio::runtime::Runtime,
    pub client: Client,
    pub options: ClientOptions,
    pub sockets: Mutex<HashMap<c_int, Arc<Socket>>>,
    /// The fork generation it was started in (a forked child must start its own).
    pub generation: u64,
}

/// Forks so far in this process's line (a child's handler counts one up): cheaper to read
/// on every call than the process ID, which is a system call.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static AT_FORK: std::sync::Once = std::sync::Once::new();

extern "C" fn forked_child() {
    // Async-signal-safe: one atomic add.
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Whether `l` was started in this process (not inherited through fork).
fn ours(l: &Library) -> bool {
    l.generation == GENERATION.load(Ordering::Acquire)
}

impl Library {
    /// The socket behind a descriptor.
    pub fn socket(&self, sd: c_int) -> Option<Arc<Socket>> {
        lock(&self.sockets).get(&sd).cloned()
    }

    /// Runs a future on the library's runtime, from a thread of the program.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

static LIBRARY: RwLock<Option<Arc<Library>>> = RwLock::new(None);
static AT_EXIT: AtomicBool = AtomicBool::new(false);

/// Locks a mutex of the library, whatever a panic elsewhere left in it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The library, if this process initialised it.
pub(crate) fn library() -> Option<Arc<Library>> {
    let l = LIBRARY.read().unwrap_or_else(|e| e.into_inner()).clone()?;
    ours(&l).then_some(l)
}

/// Starts the library (a no-op when it runs already).
pub(crate) fn initialize(options: ClientOptions) -> std::io::Result<()> {
    let mut slot = LIBRARY.write().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = slot.as_ref() {
        if ours(l) {
            return Ok(());
        }
        // Inherited through fork: the runtime's threads are not in this process. Leave it.
        std::mem::forget(slot.take());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rserpool")
        .enable_all()
        .build()?;
    let client = runtime.block_on(Client::start(options.clone()))?;
    *slot = Some(Arc::new(Library {
        runtime,
        client,
        options,
        sockets: Mutex::new(HashMap::new()),
        generation: GENERATION.load(Ordering::Acquire),
    }));
    AT_FORK.call_once(|| {
        // SAFETY: registers a child handler without arguments that lives as long as the
        // program.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    if !AT_EXIT.swap(true, Ordering::SeqCst) {
        // SAFETY: registers a function without arguments that lives as long as the program.
        unsafe { libc::atexit(cleanup_at_exit) };
    }
    Ok(())
}

extern "C" fn cleanup_at_exit() {
    // A program that exits without rsp_cleanup still deregisters its PEs; never from a
    // thread that holds the library (try_write), and never unwinding into C.
    let _ = std::panic::catch_unwind(|| {
        if let Ok(mut slot) = LIBRARY.try_write() {
            if let Some(l) = slot.take() {
                if ours(&l) {
                    // This thread's thread-locals are gone at exit: on a thread of its own.
                    let _ = std::thread::Builder::new()
                        .name("rserpool-exit".into())
                        .spawn(move || shutdown(l))
                        .map(|t| t.join());
                } else {
                    std::mem::forget(l);
                }
            }
        }
    });
}

/// Stops the library: closes every socket, then the client, then the runtime.
pub(crate) fn cleanup() {
    let taken = LIBRARY.write().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(l) = taken {
        if ours(&l) {
            shutdown(l);
        } else {
            std::mem::forget(l);
        }
    }
}

fn shutdown(l: Arc<Library>) {
    let sockets: Vec<Arc<Socket>> = lock(&l.sockets).drain().map(|(_, s)| s).collect();
    for s in sockets {
        super::api::close_socket(&l, &s);
    }
    l.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(3), l.client.close()).await;
    });
    match Arc::try_unwrap(l) {
        Ok(l) => l.runtime.shutdown_timeout(Duration::from_secs(1)),
        // Another thread is inside a call: it will find the library gone next time.
        Err(l) => std::mem::forget(l),
    }
}

/// Memory the library allocated for the program (`rsp_initarg`, `rsp_getaddrinfo`): only
/// this is freed by `rsp_freeinfo` / `rsp_freeaddrinfo`, so a program's own pointers or a
/// double free cannot corrupt the heap.
///
/// The set is hashed with [`IdHasher`](crate::idhash::IdHasher): its keys are the library's
/// own pointers, not input an attacker picks, and SipHash (the default) cost a tenth of a
/// cache hit in `rsp_getaddrinfo`.
static ALLOCATED: Mutex<Option<crate::idhash::IdSet<usize>>> = Mutex::new(None);

/// Allocates zeroed memory with `calloc` and remembers it.
pub(crate) fn alloc(size: usize) -> *mut u8 {
    // SAFETY: calloc with a nonzero size; NULL is handled by the callers.
    let p = unsafe { libc::calloc(1, size.max(1)) }.cast::<u8>();
    if !p.is_null() {
        lock(&ALLOCATED)
            .get_or_insert_with(Default::default)
            .insert(p as usize);
    }
    p
}

/// Frees what [`alloc`] gave; anything else is left alone. Returns whether it was freed.
pub(crate) fn free(p: *mut u8) -> bool {
    if p.is_null() {
        return false;
    }
    let ours = lock(&ALLOCATED)
        .as_mut()
        .is_some_and(|s| s.remove(&(p as usize)));
    if ours {
        // SAFETY: `p` came from calloc in `alloc` and was not freed since (it was in the set).
        unsafe { libc::free(p.cast()) };
    }
    ours
}

/// Reads a socket address the program passed.
///
/// # Safety
/// `sa` is NULL or points to a `sockaddr_in` or `sockaddr_in6` as its family says.
pub(crate) unsafe fn read_sockaddr(sa: *const sockaddr) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller promises a readable sockaddr of the family it names.
    unsafe {
        match c_int::from((*sa).sa_family) {
            libc::AF_INET => {
                let a = &*sa.cast::<libc::sockaddr_in>();
                Some(SocketAddr::new(
                    IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()),
                    u16::from_be(a.sin_port),
                ))
            }
            libc::AF_INET6 => {
                let a = &*sa.cast::<libc::sockaddr_in6>();
                Some(SocketAddr::new(
                    IpAddr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                ))
            }
            _ => None,
        }
    }
}

/// Reads a packed array of `n` socket addresses (the layout of `rsp_bind`, `ai_addr`,
/// `rri_addr`). `None` when one is not IPv4 or IPv6.
///
/// # Safety
/// `sa` points to `n` packed `sockaddr_in` / `sockaddr_in6`.
pub(crate) unsafe fn read_packed(sa: *const sockaddr, n: usize) -> Option<Vec<SocketAddr>> {
    let mut out = Vec::with_capacity(n);
    let mut p = sa.cast::<u8>();
    for _ in 0..n {
        // SAFETY: the caller promises n packed addresses; each step moves past one.
        let a = unsafe { read_sockaddr(p.cast())? };
        p = p.wrapping_add(sockaddr_len(&a));
        out.push(a);
    }
    Some(out)
}

/// The size of the C form of an address.
pub(crate) fn sockaddr_len(a: &SocketAddr) -> usize {
    match a {
        SocketAddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
        SocketAddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
    }
}

/// Writes the C form of `a` at `p` (which has room for [`sockaddr_len`] bytes).
///
/// # Safety
/// `p` is writable for `sockaddr_len(a)` bytes, suitably aligned for `sockaddr_in6`.
pub(crate) unsafe fn write_sockaddr(p: *mut u8, a: &SocketAddr) {
    // SAFETY: the caller promises room and alignment.
    unsafe {
        match a {
            SocketAddr::V4(v4) => {
                let mut s: libc::sockaddr_in = std::mem::zeroed();
                s.sin_family = libc::AF_INET as libc::sa_family_t;
                s.sin_port = v4.port().to_be();
                s.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
                p.cast::<libc::sockaddr_in>().write_unaligned(s);
            }
            SocketAddr::V6(v6) => {
                let mut s: libc::sockaddr_in6 = std::mem::zeroed();
                s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                s.sin6_port = v6.port().to_be();
                s.sin6_addr.s6_addr = v6.ip().octets();
                s.sin6_scope_id = v6.scope_id();
                p.cast::<libc::sockaddr_in6>().write_unaligned(s);
            }
        }
    }
}

/// Allocates (with [`alloc`]) the C form of one address.
pub(crate) fn alloc_sockaddr(a: &SocketAddr) -> *mut sockaddr {
    let p = alloc(std::mem::size_of::<libc::sockaddr_in6>());
    if !p.is_null() {
        // SAFETY: p has room for the largest form; calloc aligns for any type.
        unsafe { write_sockaddr(p, a) };
    }
    p.cast()
}

/// Parses `ADDR[:PORT]` (IPv6 in brackets with a port), the port defaulting to `port`.
pub(crate) fn parse_addr(s: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let s = s.trim_start_matches('[').trim_end_matches(']');
    s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}

/// The client options an `rsp_info` (and the environment) describe.
///
/// # Safety
/// `info` is NULL or a valid `rsp_info` whose pointers are NULL or valid.
pub(crate) unsafe fn options_from(info: *const rsp_info) -> ClientOptions {
    let mut o = ClientOptions::default();
    // The environment first; the program's settings win.
    if let Some(p) = env_u16("RSERPOOL_UDP_PORT") {
        o.transport.udp_port = p;
        o.transport.remote_udp_port = p;
    }
    if let Ok(l) = std::env::var("RSERPOOL_LOCAL") {
        if let Ok(ip) = l.parse() {
            o.transport.local = ip;
        }
    }
    if let Ok(r) = std::env::var("RSERPOOL_REGISTRARS") {
        o.asap.registrars.extend(
            r.split([',', ' '])
                .filter(|s| !s.is_empty())
                .filter_map(|s| parse_addr(s, 3863)),
        );
    }
    if std::env::var("RSERPOOL_ANNOUNCE").is_ok_and(|v| v == "off") {
        o.announce_group = None;
    }
    // SAFETY: the caller promises a valid rsp_info or NULL.
    let Some(info) = (unsafe { info.as_ref() }) else {
        return o;
    };
    let mut r = info.ri_registrars;
    let mut guard = 0;
    // SAFETY: the list is the program's (or rsp_initarg's), of valid entries; the guard stops
    // a cycle.
    while let Some(entry) = unsafe { r.cast_const().as_ref() } {
        if let Some(addrs) = unsafe { read_packed(entry.rri_addr, entry.rri_addrs) } {
            o.asap.registrars.extend(addrs);
        }
        r = entry.rri_next;
        guard += 1;
        if guard > 1024 {
            break;
        }
    }
    if info.ri_disable_autoconfig != 0 {
        o.announce_group = None;
    } else if let Some(a) = unsafe { read_sockaddr(info.ri_registrar_announce) } {
        o.announce_group = Some(a);
    }
    let ms = |v: u32| (v > 0).then(|| Duration::from_millis(u64::from(v)));
    if let Some(d) = ms(info.ri_registrar_announce_timeout) {
        o.asap.t7_enrp_outdate = d;
    }
    if let Some(d) = ms(info.ri_registrar_connect_timeout) {
        o.asap.t5_server_hunt = d;
    }
    if let Some(d) = ms(info.ri_registrar_request_timeout) {
        o.asap.t2_registration = d;
        o.asap.t3_deregistration = d;
    }
    if let Some(d) = ms(info.ri_registrar_response_timeout) {
        o.asap.t1_enrp_request = d;
    }
    if info.ri_registrar_request_max_trials > 0 {
        o.asap.max_request_retransmit = info.ri_registrar_request_max_trials;
    }
    o
}

fn env_u16(name: &str) -> Option<u16> {
    std::env::var(name).ok()?.parse().ok()
}

/// What `rsp_initarg` made of an argument.
pub(crate) enum Arg {
    /// Applied.
    Consumed,
    /// Not an option of the library.
    Unknown,
}

/// Applies one RSPLIB command-line option to `info`.
///
/// # Safety
/// `info` is a valid `rsp_info`.
pub(crate) unsafe fn initarg(info: &mut rsp_info, arg: &CStr) -> Arg {
    let Ok(arg) = arg.to_str() else {
        return Arg::Unknown;
    };
    let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
    let number = || value.parse::<u32>().ok();
    match key {
        // RSPLIB's logging options: rserpool logs through `tracing`; accepted.
        k if k.starts_with("-log") => Arg::Consumed,
        "-registrar" => {
            let addrs: Option<Vec<SocketAddr>> = value
                .split(',')
                .map(|s| parse_addr(s.trim(), 3863))
                .collect();
            let Some(addrs) = addrs.filter(|a| !a.is_empty()) else {
                return Arg::Unknown;
            };
            let size: usize = addrs.iter().map(sockaddr_len).sum();
            let block = alloc(size);
            let entry =
                alloc(std::mem::size_of::<rsp_registrar_info>()).cast::<rsp_registrar_info>();
            if block.is_null() || entry.is_null() {
                free(block);
                free(entry.cast());
                return Arg::Unknown;
            }
            let mut p = block;
            for a in &addrs {
                // SAFETY: block has room for all addresses, packed.
                unsafe { write_sockaddr(p, a) };
                p = p.wrapping_add(sockaddr_len(a));
            }
            // SAFETY: entry is a fresh zeroed rsp_registrar_info; appended at the list's end.
            unsafe {
                (*entry).rri_addr = block.cast();
                (*entry).rri_addrs = addrs.len();
                let mut tail = &raw mut info.ri_registrars;
                while !(*tail).is_null() {
                    tail = &raw mut (**tail).rri_next;
                }
                *tail = entry;
            }
            Arg::Consumed
        }
        "-asapannounce" => match value {
            "auto" => {
                info.ri_disable_autoconfig = 0;
                Arg::Consumed
            }
            "off" => {
                info.ri_disable_autoconfig = 1;
                Arg::Consumed
            }
            v => match parse_addr(v, 3863) {
                Some(a) => {
                    free(info.ri_registrar_announce.cast());
                    info.ri_registrar_announce = alloc_sockaddr(&a);
                    info.ri_disable_autoconfig = 0;
                    Arg::Consumed
                }
                None => Arg::Unknown,
            },
        },
        "-cspserver" => match parse_addr(value, 2960) {
            Some(a) => {
                free(info.ri_csp_server.cast());
                info.ri_csp_server = alloc_sockaddr(&a);
                Arg::Consumed
            }
            None => Arg::Unknown,
        },
        "-cspinterval" => set(&mut info.ri_csp_interval, number()),
        "-cspidentifier" => {
            let v = value.trim_start_matches("0x");
            match u64::from_str_radix(v, 16) {
                Ok(id) => {
                    info.ri_csp_identifier = id;
                    Arg::Consumed
                }
                Err(_) => Arg::Unknown,
            }
        }
        // RSPLIB applies these six but reports them unknown, so its programs reject them;
        // rserpool reports them applied.
        "-registrarannouncetimeout" => set(&mut info.ri_registrar_announce_timeout, number()),
        "-registrarconnecttimeout" => set(&mut info.ri_registrar_connect_timeout, number()),
        "-registrarconnectmaxtrials" => set(&mut info.ri_registrar_connect_max_trials, number()),
        "-registrarrequesttimeout" => set(&mut info.ri_registrar_request_timeout, number()),
        "-registrarresponsetimeout" => set(&mut info.ri_registrar_response_timeout, number()),
        "-registrarrequestmaxtrials" => set(&mut info.ri_registrar_request_max_trials, number()),
        _ => Arg::Unknown,
    }
}

fn set(field: &mut u32, v: Option<u32>) -> Arg {
    match v {
        Some(v) => {
            *field = v;
            Arg::Consumed
        }
        None => Arg::Unknown,
    }
}

/// Frees what [`initarg`] allocated in `info` and clears those fields.
///
/// # Safety
/// `info` is a valid `rsp_info`.
pub(crate) unsafe fn freeinfo(info: &mut rsp_info) {
    let mut r = info.ri_registrars;
    let mut guard = 0;
    // SAFETY: walks the list; entries that are ours are freed with their addresses, others are
    // left to the program.
    unsafe {
        while !r.is_null() && guard < 1024 {
            let next = (*r).rri_next;
            let addr = (*r).rri_addr;
            if free(r.cast()) {
                free(addr.cast());
            }
            r = next;
            guard += 1;
        }
    }
    info.ri_registrars = std::ptr::null_mut();
    if free(info.ri_registrar_announce.cast()) {
        info.ri_registrar_announce = std::ptr::null_mut();
    }
    if free(info.ri_csp_server.cast()) {
        info.ri_csp_server = std::ptr::null_mut();
    }
}
