//! `rserpool-internals.h`: the `*_tags` twins of RSPLIB's calls, which take a tag list of
//! extra settings after the public arguments (RSPLIB's own servers register with
//! `rsp_register_tags`). A NULL list means none: each twin then does what its public call
//! does.
//!
//! The tags the library reads, values in microseconds or counts as RSPLIB has them:
//! * `TAG_PoolElement_Identifier` (`rsp_register_tags`, `rsp_pe_registration_tags`): the
//!   PE identifier to register with; 0 picks a random one, as without the tag.
//! * `TAG_RspSession_ConnectTimeout` (`rsp_connect_tags`): how long connecting to a PE
//!   may take (default 5 s).
//! * `TAG_RspSession_HandleResolutionRetryDelay` (`rsp_connect_tags`): in automatic
//!   failover, the wait before resolving again when no PE could be reached (default 250 ms).
//!
//! The `TAG_RspLib_*` tags are the library's settings, which `rsp_initialize` takes from
//! `struct rsp_info` (as RSPLIB does); given to a single call they change nothing, and
//! neither does RSPLIB there.

use std::time::Duration;

use libc::{c_int, c_uchar, c_uint, size_t};

use super::api;
use super::tagitem::{TAG_USER, TagItem, find_data, tag_t, tagdata_t};
use super::types::{rsp_addrinfo, rsp_loadinfo};

/// The identifier of the PE to register (0: a random one).
pub const TAG_PoolElement_Identifier: tag_t = TAG_USER + 1000;
/// How long connecting to a PE may take, in µs.
pub const TAG_RspSession_ConnectTimeout: tag_t = TAG_USER + 2000;
/// The wait before resolving again when no PE could be reached, in µs.
pub const TAG_RspSession_HandleResolutionRetryDelay: tag_t = TAG_USER + 2001;
/// The library's cache lifetime of PEs, in µs (a library setting; not read per call).
pub const TAG_RspLib_CacheElementTimeout: tag_t = TAG_USER + 4000;
/// The registrars' announce address (a library setting; not read per call).
pub const TAG_RspLib_RegistrarAnnounceAddress: tag_t = TAG_USER + 4001;
/// How long an announced registrar is remembered, in µs (a library setting).
pub const TAG_RspLib_RegistrarAnnounceTimeout: tag_t = TAG_USER + 4002;
/// Connect attempts to a registrar (a library setting).
pub const TAG_RspLib_RegistrarConnectMaxTrials: tag_t = TAG_USER + 4003;
/// Registrar connect timeout, in µs (a library setting).
pub const TAG_RspLib_RegistrarConnectTimeout: tag_t = TAG_USER + 4004;
/// Attempts of a request to a registrar (a library setting).
pub const TAG_RspLib_RegistrarRequestMaxTrials: tag_t = TAG_USER + 4005;
/// Registrar request timeout, in µs (a library setting).
pub const TAG_RspLib_RegistrarRequestTimeout: tag_t = TAG_USER + 4006;
/// Registrar response timeout, in µs (a library setting).
pub const TAG_RspLib_RegistrarResponseTimeout: tag_t = TAG_USER + 4007;

/// What a call's tag list sets.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CallTags {
    /// `TAG_PoolElement_Identifier`, when non-zero.
    pub pe_id: Option<u32>,
    /// `TAG_RspSession_ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `TAG_RspSession_HandleResolutionRetryDelay`.
    pub retry_delay: Option<Duration>,
}

impl CallTags {
    /// The settings of a list (NULL: none).
    ///
    /// # Safety
    /// `tags` is NULL or a valid tag list.
    unsafe fn of(tags: *mut TagItem) -> Self {
        // SAFETY: the caller's promise, for every lookup.
        let get = |t| unsafe { find_data(tags, t) };
        // tagdata_t is unsigned long: 64 bits here, 32 on other targets.
        #[allow(clippy::useless_conversion)]
        let us = |v: tagdata_t| Duration::from_micros(u64::from(v));
        Self {
            pe_id: get(TAG_PoolElement_Identifier)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| v != 0),
            connect_timeout: get(TAG_RspSession_ConnectTimeout).map(us),
            retry_delay: get(TAG_RspSession_HandleResolutionRetryDelay).map(us),
        }
    }
}

/// `rsp_pe_registration` with a tag list (`TAG_PoolElement_Identifier` is used when
/// `ai_pe_id` is 0).
///
/// # Safety
/// As `rsp_pe_registration`; `tags` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_pe_registration_tags(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    rspAddrInfo: *mut rsp_addrinfo,
    rspLoadInfo: *const rsp_loadinfo,
    registrationLife: c_uint,
    flags: c_int,
    tags: *mut TagItem,
) -> c_uint {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        api::pe_registration(
            poolHandle,
            poolHandleSize,
            rspAddrInfo,
            rspLoadInfo,
            registrationLife,
            flags,
            &CallTags::of(tags),
        )
    }
}

/// `rsp_pe_deregistration` with a tag list (no tag is read).
///
/// # Safety
/// As `rsp_pe_deregistration`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_pe_deregistration_tags(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    identifier: u32,
    flags: c_int,
    tags: *mut TagItem,
) -> c_uint {
    let _ = tags;
    // SAFETY: the caller's promises, passed on.
    unsafe { api::rsp_pe_deregistration(poolHandle, poolHandleSize, identifier, flags) }
}

/// `rsp_pe_failure` with a tag list (no tag is read).
///
/// # Safety
/// As `rsp_pe_failure`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_pe_failure_tags(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    identifier: u32,
    tags: *mut TagItem,
) -> c_uint {
    let _ = tags;
    // SAFETY: the caller's promises, passed on.
    unsafe { api::rsp_pe_failure(poolHandle, poolHandleSize, identifier) }
}

/// `rsp_getaddrinfo` with a tag list (no tag is read).
///
/// # Safety
/// As `rsp_getaddrinfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_getaddrinfo_tags(
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    rserpoolAddrInfo: *mut *mut rsp_addrinfo,
    items: size_t,
    staleCacheValue: c_uint,
    tags: *mut TagItem,
) -> c_int {
    let _ = tags;
    // SAFETY: the caller's promises, passed on.
    unsafe {
        api::rsp_getaddrinfo(
            poolHandle,
            poolHandleSize,
            rserpoolAddrInfo,
            items,
            staleCacheValue,
        )
    }
}

/// `rsp_register` with a tag list (`TAG_PoolElement_Identifier`: the PE's identifier).
///
/// # Safety
/// As `rsp_register`; `tags` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_register_tags(
    sd: c_int,
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    loadinfo: *const rsp_loadinfo,
    reregistrationInterval: c_uint,
    flags: c_int,
    tags: *mut TagItem,
) -> c_int {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        api::register(
            sd,
            poolHandle,
            poolHandleSize,
            loadinfo,
            reregistrationInterval,
            flags,
            &CallTags::of(tags),
        )
    }
}

/// `rsp_deregister` with a tag list (no tag is read).
///
/// # Safety
/// `tags` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_deregister_tags(sd: c_int, flags: c_int, tags: *mut TagItem) -> c_int {
    let _ = tags;
    api::rsp_deregister(sd, flags)
}

/// `rsp_accept` with a tag list (no tag is read).
///
/// # Safety
/// `tags` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_accept_tags(sd: c_int, timeout: c_int, tags: *mut TagItem) -> c_int {
    let _ = tags;
    api::rsp_accept(sd, timeout)
}

/// `rsp_connect` with a tag list (`TAG_RspSession_ConnectTimeout`,
/// `TAG_RspSession_HandleResolutionRetryDelay`).
///
/// # Safety
/// As `rsp_connect`; `tags` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_connect_tags(
    sd: c_int,
    poolHandle: *const c_uchar,
    poolHandleSize: size_t,
    staleCacheValue: c_uint,
    tags: *mut TagItem,
) -> c_int {
    // SAFETY: the caller's promises, passed on.
    unsafe {
        api::connect(
            sd,
            poolHandle,
            poolHandleSize,
            staleCacheValue,
            &CallTags::of(tags),
        )
    }
}

/// `rsp_forcefailover` with a tag list (no tag is read).
///
/// # Safety
/// `tags` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsp_forcefailover_tags(
    sd: c_int,
    flags: c_uint,
    staleCacheValue: c_uint,
    tags: *mut TagItem,
) -> c_int {
    let _ = tags;
    api::rsp_forcefailover(sd, flags, staleCacheValue)
}
