//! The C API: `librserpool`, source-compatible with RSPLIB's `rserpool.h` (basic and
//! enhanced mode). `include/rserpool.h` is generated from this module by `build.rs`
//! (cbindgen).
//!
//! The functions are thin wrappers over the Rust API: a tokio runtime started by
//! `rsp_initialize` runs the ASAP client, the sessions and the SCTP stack; the program's
//! threads call in and wait on condition variables. Every RSerPool descriptor is a real file
//! descriptor (an eventfd) that is readable exactly when `rsp_recvmsg` would not block.
#![allow(
    unsafe_code,
    non_snake_case,
    non_camel_case_types,
    non_upper_case_globals,
    clippy::missing_safety_doc
)]

pub mod api;
pub mod csp;
pub mod internals;
mod library;
pub mod policytypes;
mod socket;
pub mod tagitem;
pub mod types;
