//! The constants of `rserpool-csp.h`: the component groups of Component Status Protocol IDs.

/// Component group of registrars.
pub const CID_GROUP_REGISTRAR: u64 = 0x0001;
/// Component group of pool elements.
pub const CID_GROUP_POOLELEMENT: u64 = 0x0002;
/// Component group of pool users.
pub const CID_GROUP_POOLUSER: u64 = 0x0003;
