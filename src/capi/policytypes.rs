//! The constants of `rserpool-policytypes.h`: the pool policies (RFC 5356 and RSPLIB's
//! private ones) and the bounds of their values.

use libc::c_uint;

/// No policy (unknown name).
pub const PPT_UNDEFINED: c_uint = 0x0000_0000;
/// Round Robin.
pub const PPT_ROUNDROBIN: c_uint = 0x0000_0001;
/// Weighted Round Robin.
pub const PPT_WEIGHTED_ROUNDROBIN: c_uint = 0x0000_0002;
/// Random.
pub const PPT_RANDOM: c_uint = 0x0000_0003;
/// Weighted Random.
pub const PPT_WEIGHTED_RANDOM: c_uint = 0x0000_0004;
/// Priority.
pub const PPT_PRIORITY: c_uint = 0x0000_0005;
/// Least Used.
pub const PPT_LEASTUSED: c_uint = 0x4000_0001;
/// Least Used with Degradation.
pub const PPT_LEASTUSED_DEGRADATION: c_uint = 0x4000_0002;
/// Priority Least Used.
pub const PPT_PRIORITY_LEASTUSED: c_uint = 0x4000_0003;
/// Randomized Least Used.
pub const PPT_RANDOMIZED_LEASTUSED: c_uint = 0x4000_0004;
/// RSPLIB: Randomized Priority Least Used.
pub const PPT_RANDOMIZED_PRIORITY_LEASTUSED: c_uint = 0xb000_1001;
/// RSPLIB: Randomized Least Used with Degradation.
pub const PPT_RANDOMIZED_LEASTUSED_DEGRADATION: c_uint = 0xb000_1002;
/// RSPLIB: Priority Least Used with Degradation.
pub const PPT_PRIORITY_LEASTUSED_DEGRADATION: c_uint = 0xb000_1003;
/// RSPLIB: Randomized Priority Least Used with Degradation.
pub const PPT_RANDOMIZED_PRIORITY_LEASTUSED_DEGRADATION: c_uint = 0xb000_1004;
/// RSPLIB: Weighted Random with Distance Penalty Factor.
pub const PPT_WEIGHTED_RANDOM_DPF: c_uint = 0xb000_2001;
/// RSPLIB: Least Used with Distance Penalty Factor.
pub const PPT_LEASTUSED_DPF: c_uint = 0xb000_2002;
/// RSPLIB: Least Used with Degradation and Distance Penalty Factor.
pub const PPT_LEASTUSED_DEGRADATION_DPF: c_uint = 0xb000_2003;
/// RSPLIB: Priority Least Used with Distance Penalty Factor.
pub const PPT_PRIORITY_LEASTUSED_DPF: c_uint = 0xb000_2004;
/// RSPLIB: Priority Least Used with Degradation and Distance Penalty Factor.
pub const PPT_PRIORITY_LEASTUSED_DEGRADATION_DPF: c_uint = 0xb000_2005;

/// The least weight.
pub const PPV_MIN_WEIGHT: c_uint = 0;
/// The greatest weight.
pub const PPV_MAX_WEIGHT: c_uint = 0xffff_ffff;
/// The least load.
pub const PPV_MIN_LOAD: c_uint = 0;
/// The greatest load (a load is a fraction of this).
pub const PPV_MAX_LOAD: c_uint = 0xffff_ffff;
/// The least load degradation.
pub const PPV_MIN_LOAD_DEGRADATION: c_uint = 0;
/// The greatest load degradation.
pub const PPV_MAX_LOAD_DEGRADATION: c_uint = 0xffff_ffff;
/// The least load DPF.
pub const PPV_MIN_LOADDPF: c_uint = 0;
/// The greatest load DPF.
pub const PPV_MAX_LOADDPF: c_uint = 0xffff_ffff;
/// The least weight DPF.
pub const PPV_MIN_WEIGHTDPF: c_uint = 0;
/// The greatest weight DPF.
pub const PPV_MAX_WEIGHTDPF: c_uint = 0xffff_ffff;
