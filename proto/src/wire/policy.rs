//! Pool Member Selection Policy parameters (RFC 5354 §3.8) and their values: every policy of
//! RFC 5356 and RSPLIB's private extensions (0xb000xxxx).
//!
//! Every value is a big-endian u32 after the u32 policy type. Loads, load degradations and
//! distance-penalty factors are fractions scaled to `0..=0xffffffff` (see [`fraction`]); weights and
//! priorities are plain integers; distances are milliseconds.

use std::fmt;

use super::codec::{Tlv, Writer, be32};
use super::error::{DecodeError, EncodeError};
use super::param::ParamType;

/// A policy type number (RFC 5356 §7.1): bit 31 X (private, non-standard), bit 30 A (adaptive).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyType(pub u32);

impl PolicyType {
    /// Round Robin (RFC 5356 §4.1).
    pub const ROUND_ROBIN: Self = Self(0x0000_0001);
    /// Weighted Round Robin (RFC 5356 §4.2).
    pub const WEIGHTED_ROUND_ROBIN: Self = Self(0x0000_0002);
    /// Random (RFC 5356 §4.3).
    pub const RANDOM: Self = Self(0x0000_0003);
    /// Weighted Random (RFC 5356 §4.4).
    pub const WEIGHTED_RANDOM: Self = Self(0x0000_0004);
    /// Priority (RFC 5356 §4.5).
    pub const PRIORITY: Self = Self(0x0000_0005);
    /// Least Used (RFC 5356 §5.1).
    pub const LEAST_USED: Self = Self(0x4000_0001);
    /// Least Used with Degradation (RFC 5356 §5.2).
    pub const LEAST_USED_DEGRADATION: Self = Self(0x4000_0002);
    /// Priority Least Used (RFC 5356 §5.3).
    pub const PRIORITY_LEAST_USED: Self = Self(0x4000_0003);
    /// Randomized Least Used (RFC 5356 §5.4).
    pub const RANDOMIZED_LEAST_USED: Self = Self(0x4000_0004);
    /// RSPLIB: Randomized Priority Least Used.
    pub const RANDOMIZED_PRIORITY_LEAST_USED: Self = Self(0xb000_1001);
    /// RSPLIB: Randomized Least Used with Degradation.
    pub const RANDOMIZED_LEAST_USED_DEGRADATION: Self = Self(0xb000_1002);
    /// RSPLIB: Priority Least Used with Degradation.
    pub const PRIORITY_LEAST_USED_DEGRADATION: Self = Self(0xb000_1003);
    /// RSPLIB: Randomized Priority Least Used with Degradation.
    pub const RANDOMIZED_PRIORITY_LEAST_USED_DEGRADATION: Self = Self(0xb000_1004);
    /// RSPLIB: Weighted Random with Distance Penalty Factor.
    pub const WEIGHTED_RANDOM_DPF: Self = Self(0xb000_2001);
    /// RSPLIB: Least Used with Distance Penalty Factor.
    pub const LEAST_USED_DPF: Self = Self(0xb000_2002);
    /// RSPLIB: Least Used with Degradation and Distance Penalty Factor.
    pub const LEAST_USED_DEGRADATION_DPF: Self = Self(0xb000_2003);
    /// RSPLIB: Priority Least Used with Distance Penalty Factor (no wire form in RSPLIB 3.4.4).
    pub const PRIORITY_LEAST_USED_DPF: Self = Self(0xb000_2004);
    /// RSPLIB: Priority Least Used with Degradation and DPF (no wire form in RSPLIB 3.4.4).
    pub const PRIORITY_LEAST_USED_DEGRADATION_DPF: Self = Self(0xb000_2005);

    /// Every policy type this codec knows, in number order.
    pub const ALL: [Self; 18] = [
        Self::ROUND_ROBIN,
        Self::WEIGHTED_ROUND_ROBIN,
        Self::RANDOM,
        Self::WEIGHTED_RANDOM,
        Self::PRIORITY,
        Self::LEAST_USED,
        Self::LEAST_USED_DEGRADATION,
        Self::PRIORITY_LEAST_USED,
        Self::RANDOMIZED_LEAST_USED,
        Self::RANDOMIZED_PRIORITY_LEAST_USED,
        Self::RANDOMIZED_LEAST_USED_DEGRADATION,
        Self::PRIORITY_LEAST_USED_DEGRADATION,
        Self::RANDOMIZED_PRIORITY_LEAST_USED_DEGRADATION,
        Self::WEIGHTED_RANDOM_DPF,
        Self::LEAST_USED_DPF,
        Self::LEAST_USED_DEGRADATION_DPF,
        Self::PRIORITY_LEAST_USED_DPF,
        Self::PRIORITY_LEAST_USED_DEGRADATION_DPF,
    ];

    /// The policy's name as RSPLIB's `rspserver -policy=` spells it.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0000_0001 => "RoundRobin",
            0x0000_0002 => "WeightedRoundRobin",
            0x0000_0003 => "Random",
            0x0000_0004 => "WeightedRandom",
            0x0000_0005 => "Priority",
            0x4000_0001 => "LeastUsed",
            0x4000_0002 => "LeastUsedDegradation",
            0x4000_0003 => "PriorityLeastUsed",
            0x4000_0004 => "RandomizedLeastUsed",
            0xb000_1001 => "RandomizedPriorityLeastUsed",
            0xb000_1002 => "RandomizedLeastUsedDegradation",
            0xb000_1003 => "PriorityLeastUsedDegradation",
            0xb000_1004 => "RandomizedPriorityLeastUsedDegradation",
            0xb000_2001 => "WeightedRandomDPF",
            0xb000_2002 => "LeastUsedDPF",
            0xb000_2003 => "LeastUsedDegradationDPF",
            0xb000_2004 => "PriorityLeastUsedDPF",
            0xb000_2005 => "PriorityLeastUsedDegradationDPF",
            _ => return None,
        })
    }

    /// The type for a name as [`PolicyType::name`] gives it (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// X bit: a private, non-standard policy (RFC 5356 §7.1).
    pub fn is_private(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// A bit: an adaptive policy (PEs push load updates). RSPLIB leaves it 0 on its private
    /// load-based types, so this reads the bit, not the policy's nature.
    pub fn adaptive_bit(self) -> bool {
        self.0 & 0x4000_0000 != 0
    }

    /// The number of 32-bit values this policy carries after its type, for known types.
    pub fn value_count(self) -> Option<usize> {
        Some(match self.0 {
            0x0000_0001 | 0x0000_0003 => 0,
            0x0000_0002 | 0x0000_0004 | 0x0000_0005 | 0x4000_0001 | 0x4000_0004 => 1,
            0x4000_0002 | 0x4000_0003 | 0xb000_1001..=0xb000_1004 => 2,
            0xb000_2001 | 0xb000_2002 => 3,
            0xb000_2003..=0xb000_2005 => 4,
            _ => return None,
        })
    }
}

impl fmt::Debug for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyType({:#010x})", self.0)
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#010x})", self.0),
            None => write!(f, "{:#010x}", self.0),
        }
    }
}

/// Converts a fraction in `0.0..=1.0` to the wire scale `0..=0xffffffff`, as RSPLIB does
/// (`round(x * 0xffffffff)`: 0.01 → 0x028f5c29, 0.5 → 0x80000000). Out-of-range input saturates.
pub fn fraction(x: f64) -> u32 {
    (x.clamp(0.0, 1.0) * f64::from(u32::MAX)).round() as u32
}

/// Converts a wire-scale fraction back to `0.0..=1.0`.
pub fn fraction_to_f64(v: u32) -> f64 {
    f64::from(v) / f64::from(u32::MAX)
}

/// The values of a policy after its type, in wire order (at most 4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PolicyValues {
    v: [u32; 4],
    n: u8,
}

impl PolicyValues {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[u32] {
        &self.v[..usize::from(self.n)]
    }
}

impl std::ops::Deref for PolicyValues {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        self.as_slice()
    }
}

/// A Pool Member Selection Policy parameter: the policy and the PE's values for it.
///
/// Loads, degradations and DPFs are wire-scale fractions ([`fraction`]); `distance` is in
/// milliseconds and is filled in by registrars (0 from a PE).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Policy {
    /// Round Robin (0x00000001).
    RoundRobin,
    /// Weighted Round Robin (0x00000002).
    WeightedRoundRobin {
        /// Weight.
        weight: u32,
    },
    /// Random (0x00000003).
    Random,
    /// Weighted Random (0x00000004).
    WeightedRandom {
        /// Weight.
        weight: u32,
    },
    /// Priority (0x00000005); larger is preferred.
    Priority {
        /// Priority.
        priority: u32,
    },
    /// Least Used (0x40000001).
    LeastUsed {
        /// Current load.
        load: u32,
    },
    /// Least Used with Degradation (0x40000002).
    LeastUsedDegradation {
        /// Current load.
        load: u32,
        /// Load increment per selection.
        load_degradation: u32,
    },
    /// Priority Least Used (0x40000003).
    PriorityLeastUsed {
        /// Current load.
        load: u32,
        /// Load increment a new request would cause.
        load_degradation: u32,
    },
    /// Randomized Least Used (0x40000004).
    RandomizedLeastUsed {
        /// Current load.
        load: u32,
    },
    /// RSPLIB Randomized Priority Least Used (0xb0001001).
    RandomizedPriorityLeastUsed {
        /// Current load.
        load: u32,
        /// Load degradation.
        load_degradation: u32,
    },
    /// RSPLIB Randomized Least Used with Degradation (0xb0001002).
    RandomizedLeastUsedDegradation {
        /// Current load.
        load: u32,
        /// Load degradation.
        load_degradation: u32,
    },
    /// RSPLIB Priority Least Used with Degradation (0xb0001003).
    PriorityLeastUsedDegradation {
        /// Current load.
        load: u32,
        /// Load degradation.
        load_degradation: u32,
    },
    /// RSPLIB Randomized Priority Least Used with Degradation (0xb0001004).
    RandomizedPriorityLeastUsedDegradation {
        /// Current load.
        load: u32,
        /// Load degradation.
        load_degradation: u32,
    },
    /// RSPLIB Weighted Random with Distance Penalty Factor (0xb0002001).
    WeightedRandomDpf {
        /// Weight.
        weight: u32,
        /// Weight distance penalty factor.
        weight_dpf: u32,
        /// Distance (ms).
        distance: u32,
    },
    /// RSPLIB Least Used with Distance Penalty Factor (0xb0002002).
    LeastUsedDpf {
        /// Current load.
        load: u32,
        /// Load distance penalty factor.
        load_dpf: u32,
        /// Distance (ms).
        distance: u32,
    },
    /// RSPLIB Least Used with Degradation and DPF (0xb0002003).
    LeastUsedDegradationDpf {
        /// Current load.
        load: u32,
        /// Load degradation.
        load_degradation: u32,
        /// Load distance penalty factor.
        load_dpf: u32,
        /// Distance (ms).
        distance: u32,
    },
    /// RSPLIB Priority Least Used with DPF (0xb0002004). RSPLIB 3.4.4 defines the policy but
    /// cannot encode it; rserpool uses the layout of 0xb0002003.
    PriorityLeastUsedDpf {
        /// Current load.
        load: u32,
        /// Load degradation.
        load_degradation: u32,
        /// Load distance penalty factor.
        load_dpf: u32,
        /// Distance (ms).
        distance: u32,
    },
    /// RSPLIB Priority Least Used with Degradation and DPF (0xb0002005). As 0xb0002004: no
    /// RSPLIB wire form; the layout of 0xb0002003.
    PriorityLeastUsedDegradationDpf {
        /// Current load.
        load: u32,
        /// Load degradation.
        load_degradation: u32,
        /// Load distance penalty factor.
        load_dpf: u32,
        /// Distance (ms).
        distance: u32,
    },
    /// A policy type this codec does not know, carried through unchanged.
    Unknown {
        /// The policy type.
        policy_type: PolicyType,
        /// The policy-specific data.
        data: Vec<u8>,
    },
}

fn too_many_text(policy: PolicyType, takes: &[String], given: usize) -> String {
    let name = policy.name().unwrap_or("the policy");
    match takes.len() {
        0 => format!("{name} takes no values, {given} given"),
        n => format!(
            "{name} takes {n} value(s) ({}), {given} given",
            takes.join(", ")
        ),
    }
}

/// Why a policy spec ([`Policy::from_spec`]) is not one.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PolicySpecError {
    /// No policy has this name or short form.
    #[error("unknown policy {0:?}")]
    UnknownPolicy(String),
    /// More values than the policy takes.
    #[error("{}", too_many_text(*.policy, .takes, *.given))]
    TooManyValues {
        /// The policy.
        policy: PolicyType,
        /// The names of the values it takes.
        takes: Vec<String>,
        /// How many were given.
        given: usize,
    },
    /// A weight or priority that is not a whole number.
    #[error("{name} {text:?} is not a whole number")]
    NotWholeNumber {
        /// The value's name.
        name: &'static str,
        /// What was given.
        text: String,
    },
    /// A load, degradation or DPF that is not a fraction between 0 and 1.
    #[error("{name} {text:?} is not a fraction between 0 and 1")]
    NotFraction {
        /// The value's name.
        name: &'static str,
        /// What was given.
        text: String,
    },
    /// The policy type has no value layout this crate knows.
    #[error("{0:?} has no known values")]
    NoValues(PolicyType),
}

impl Policy {
    /// The policy's type number.
    pub fn policy_type(&self) -> PolicyType {
        use PolicyType as T;
        match self {
            Self::RoundRobin => T::ROUND_ROBIN,
            Self::WeightedRoundRobin { .. } => T::WEIGHTED_ROUND_ROBIN,
            Self::Random => T::RANDOM,
            Self::WeightedRandom { .. } => T::WEIGHTED_RANDOM,
            Self::Priority { .. } => T::PRIORITY,
            Self::LeastUsed { .. } => T::LEAST_USED,
            Self::LeastUsedDegradation { .. } => T::LEAST_USED_DEGRADATION,
            Self::PriorityLeastUsed { .. } => T::PRIORITY_LEAST_USED,
            Self::RandomizedLeastUsed { .. } => T::RANDOMIZED_LEAST_USED,
            Self::RandomizedPriorityLeastUsed { .. } => T::RANDOMIZED_PRIORITY_LEAST_USED,
            Self::RandomizedLeastUsedDegradation { .. } => T::RANDOMIZED_LEAST_USED_DEGRADATION,
            Self::PriorityLeastUsedDegradation { .. } => T::PRIORITY_LEAST_USED_DEGRADATION,
            Self::RandomizedPriorityLeastUsedDegradation { .. } => {
                T::RANDOMIZED_PRIORITY_LEAST_USED_DEGRADATION
            }
            Self::WeightedRandomDpf { .. } => T::WEIGHTED_RANDOM_DPF,
            Self::LeastUsedDpf { .. } => T::LEAST_USED_DPF,
            Self::LeastUsedDegradationDpf { .. } => T::LEAST_USED_DEGRADATION_DPF,
            Self::PriorityLeastUsedDpf { .. } => T::PRIORITY_LEAST_USED_DPF,
            Self::PriorityLeastUsedDegradationDpf { .. } => T::PRIORITY_LEAST_USED_DEGRADATION_DPF,
            Self::Unknown { policy_type, .. } => *policy_type,
        }
    }

    /// The values after the type, in wire order (empty for unknown policies).
    pub fn values(&self) -> PolicyValues {
        let (v, n): ([u32; 4], u8) = match *self {
            Self::RoundRobin | Self::Random | Self::Unknown { .. } => ([0; 4], 0),
            Self::WeightedRoundRobin { weight } | Self::WeightedRandom { weight } => {
                ([weight, 0, 0, 0], 1)
            }
            Self::Priority { priority } => ([priority, 0, 0, 0], 1),
            Self::LeastUsed { load } | Self::RandomizedLeastUsed { load } => ([load, 0, 0, 0], 1),
            Self::LeastUsedDegradation {
                load,
                load_degradation,
            }
            | Self::PriorityLeastUsed {
                load,
                load_degradation,
            }
            | Self::RandomizedPriorityLeastUsed {
                load,
                load_degradation,
            }
            | Self::RandomizedLeastUsedDegradation {
                load,
                load_degradation,
            }
            | Self::PriorityLeastUsedDegradation {
                load,
                load_degradation,
            }
            | Self::RandomizedPriorityLeastUsedDegradation {
                load,
                load_degradation,
            } => ([load, load_degradation, 0, 0], 2),
            Self::WeightedRandomDpf {
                weight,
                weight_dpf,
                distance,
            } => ([weight, weight_dpf, distance, 0], 3),
            Self::LeastUsedDpf {
                load,
                load_dpf,
                distance,
            } => ([load, load_dpf, distance, 0], 3),
            Self::LeastUsedDegradationDpf {
                load,
                load_degradation,
                load_dpf,
                distance,
            }
            | Self::PriorityLeastUsedDpf {
                load,
                load_degradation,
                load_dpf,
                distance,
            }
            | Self::PriorityLeastUsedDegradationDpf {
                load,
                load_degradation,
                load_dpf,
                distance,
            } => ([load, load_degradation, load_dpf, distance], 4),
        };
        PolicyValues { v, n }
    }

    /// A policy from a spec as RSPLIB's `rspserver -policy=` takes it: the name
    /// ([`PolicyType::name`], case-insensitive, or a short form: `rr`, `wrr`, `random`,
    /// `wrand`, `prio`, `lu`, `lud`, `plu`, `rlu`), then its values separated by colons —
    /// weights and priorities as integers, loads, degradations and DPFs as fractions 0…1 —
    /// e.g. `LeastUsedDegradation:0.2:0.05`, `wrand:3`. Missing values are 0 (weights 1); the
    /// distance of DPF policies is left to the registrar.
    pub fn from_spec(spec: &str) -> Result<Self, PolicySpecError> {
        let mut parts = spec.split(':');
        let name = parts.next().unwrap_or_default();
        let t = match name.to_ascii_lowercase().as_str() {
            "rr" => PolicyType::ROUND_ROBIN,
            "wrr" => PolicyType::WEIGHTED_ROUND_ROBIN,
            "rand" => PolicyType::RANDOM,
            "wrand" => PolicyType::WEIGHTED_RANDOM,
            "prio" => PolicyType::PRIORITY,
            "lu" => PolicyType::LEAST_USED,
            "lud" => PolicyType::LEAST_USED_DEGRADATION,
            "plu" => PolicyType::PRIORITY_LEAST_USED,
            "rlu" => PolicyType::RANDOMIZED_LEAST_USED,
            _ => PolicyType::from_name(name)
                .ok_or_else(|| PolicySpecError::UnknownPolicy(name.to_string()))?,
        };
        let n = t.value_count().unwrap_or(0);
        let template = Self::from_values(t, &[0; 4][..n]).ok_or(PolicySpecError::NoValues(t))?;
        let names = template.value_names();
        let given: Vec<&str> = parts.collect();
        let settable = names.iter().filter(|&&v| v != "distance").count();
        if given.len() > settable {
            return Err(PolicySpecError::TooManyValues {
                policy: t,
                takes: names[..settable].iter().map(|s| s.to_string()).collect(),
                given: given.len(),
            });
        }
        let mut v = [0u32; 4];
        for (i, &vn) in names.iter().enumerate() {
            let text = given.get(i).copied();
            v[i] = match (vn, text) {
                ("distance", _) => 0,
                ("weight", None) => 1,
                (_, None) => 0,
                ("weight" | "priority", Some(x)) => {
                    x.parse::<u32>()
                        .map_err(|_| PolicySpecError::NotWholeNumber {
                            name: vn,
                            text: x.to_string(),
                        })?
                }
                (_, Some(x)) => {
                    let bad = || PolicySpecError::NotFraction {
                        name: vn,
                        text: x.to_string(),
                    };
                    let f: f64 = x.parse().map_err(|_| bad())?;
                    if !(0.0..=1.0).contains(&f) {
                        return Err(bad());
                    }
                    fraction(f)
                }
            };
        }
        Self::from_values(t, &v[..n]).ok_or(PolicySpecError::NoValues(t))
    }

    /// Sets the load of a load-based policy (a wire fraction); `false`, changing nothing, for
    /// policies without a load.
    pub fn set_load(&mut self, new: u32) -> bool {
        match self {
            Self::LeastUsed { load }
            | Self::RandomizedLeastUsed { load }
            | Self::LeastUsedDegradation { load, .. }
            | Self::PriorityLeastUsed { load, .. }
            | Self::RandomizedPriorityLeastUsed { load, .. }
            | Self::RandomizedLeastUsedDegradation { load, .. }
            | Self::PriorityLeastUsedDegradation { load, .. }
            | Self::RandomizedPriorityLeastUsedDegradation { load, .. }
            | Self::LeastUsedDpf { load, .. }
            | Self::LeastUsedDegradationDpf { load, .. }
            | Self::PriorityLeastUsedDpf { load, .. }
            | Self::PriorityLeastUsedDegradationDpf { load, .. } => {
                *load = new;
                true
            }
            _ => false,
        }
    }

    /// The names of [`Policy::values`], in the same order.
    pub fn value_names(&self) -> &'static [&'static str] {
        match self.policy_type().value_count() {
            None | Some(0) => &[],
            Some(_) => match self {
                Self::WeightedRoundRobin { .. } | Self::WeightedRandom { .. } => &["weight"],
                Self::Priority { .. } => &["priority"],
                Self::LeastUsed { .. } | Self::RandomizedLeastUsed { .. } => &["load"],
                Self::WeightedRandomDpf { .. } => &["weight", "weight_dpf", "distance"],
                Self::LeastUsedDpf { .. } => &["load", "load_dpf", "distance"],
                Self::LeastUsedDegradationDpf { .. }
                | Self::PriorityLeastUsedDpf { .. }
                | Self::PriorityLeastUsedDegradationDpf { .. } => {
                    &["load", "load_degradation", "load_dpf", "distance"]
                }
                _ => &["load", "load_degradation"],
            },
        }
    }

    /// A policy of a known type from its values in wire order; `None` for an unknown type or a
    /// wrong number of values.
    pub fn from_values(t: PolicyType, v: &[u32]) -> Option<Self> {
        if t.value_count()? != v.len() {
            return None;
        }
        use PolicyType as T;
        Some(match t {
            T::ROUND_ROBIN => Self::RoundRobin,
            T::RANDOM => Self::Random,
            T::WEIGHTED_ROUND_ROBIN => Self::WeightedRoundRobin { weight: v[0] },
            T::WEIGHTED_RANDOM => Self::WeightedRandom { weight: v[0] },
            T::PRIORITY => Self::Priority { priority: v[0] },
            T::LEAST_USED => Self::LeastUsed { load: v[0] },
            T::RANDOMIZED_LEAST_USED => Self::RandomizedLeastUsed { load: v[0] },
            T::LEAST_USED_DEGRADATION => Self::LeastUsedDegradation {
                load: v[0],
                load_degradation: v[1],
            },
            T::PRIORITY_LEAST_USED => Self::PriorityLeastUsed {
                load: v[0],
                load_degradation: v[1],
            },
            T::RANDOMIZED_PRIORITY_LEAST_USED => Self::RandomizedPriorityLeastUsed {
                load: v[0],
                load_degradation: v[1],
            },
            T::RANDOMIZED_LEAST_USED_DEGRADATION => Self::RandomizedLeastUsedDegradation {
                load: v[0],
                load_degradation: v[1],
            },
            T::PRIORITY_LEAST_USED_DEGRADATION => Self::PriorityLeastUsedDegradation {
                load: v[0],
                load_degradation: v[1],
            },
            T::RANDOMIZED_PRIORITY_LEAST_USED_DEGRADATION => {
                Self::RandomizedPriorityLeastUsedDegradation {
                    load: v[0],
                    load_degradation: v[1],
                }
            }
            T::WEIGHTED_RANDOM_DPF => Self::WeightedRandomDpf {
                weight: v[0],
                weight_dpf: v[1],
                distance: v[2],
            },
            T::LEAST_USED_DPF => Self::LeastUsedDpf {
                load: v[0],
                load_dpf: v[1],
                distance: v[2],
            },
            T::LEAST_USED_DEGRADATION_DPF => Self::LeastUsedDegradationDpf {
                load: v[0],
                load_degradation: v[1],
                load_dpf: v[2],
                distance: v[3],
            },
            T::PRIORITY_LEAST_USED_DPF => Self::PriorityLeastUsedDpf {
                load: v[0],
                load_degradation: v[1],
                load_dpf: v[2],
                distance: v[3],
            },
            T::PRIORITY_LEAST_USED_DEGRADATION_DPF => Self::PriorityLeastUsedDegradationDpf {
                load: v[0],
                load_degradation: v[1],
                load_dpf: v[2],
                distance: v[3],
            },
            _ => return None,
        })
    }

    /// Decodes a Pool Member Selection Policy TLV. A known type with too few values is an
    /// Invalid Values error; bytes after the known values are ignored (forward compatible);
    /// an unknown type is kept as [`Policy::Unknown`] for the registrar to judge.
    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, DecodeError> {
        const NAME: &str = "Pool Member Selection Policy";
        let v = tlv.need(4, NAME)?;
        let t = PolicyType(be32(v, 0));
        let Some(n) = t.value_count() else {
            return Ok(Self::Unknown {
                policy_type: t,
                data: v[4..].to_vec(),
            });
        };
        let v = tlv.need(4 + 4 * n, NAME)?;
        let mut vals = [0u32; 4];
        for (i, x) in vals.iter_mut().enumerate().take(n) {
            *x = be32(v, 4 + 4 * i);
        }
        Ok(Self::from_values(t, &vals[..n]).expect("value count matches the type"))
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.tlv(ParamType::POLICY.0, "Pool Member Selection Policy", |w| {
            w.u32(self.policy_type().0);
            match self {
                Self::Unknown { data, .. } => w.bytes(data),
                _ => {
                    for &x in self.values().as_slice() {
                        w.u32(x);
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_rspserver_policy() {
        assert_eq!(Policy::from_spec("RoundRobin"), Ok(Policy::RoundRobin));
        assert_eq!(Policy::from_spec("rr"), Ok(Policy::RoundRobin));
        assert_eq!(
            Policy::from_spec("weightedrandom:7"),
            Ok(Policy::WeightedRandom { weight: 7 })
        );
        assert_eq!(
            Policy::from_spec("wrr"),
            Ok(Policy::WeightedRoundRobin { weight: 1 })
        );
        assert_eq!(
            Policy::from_spec("LeastUsedDegradation:0.5:0.25"),
            Ok(Policy::LeastUsedDegradation {
                load: fraction(0.5),
                load_degradation: fraction(0.25)
            })
        );
        assert_eq!(
            Policy::from_spec("LeastUsedDPF:0.5:1"),
            Ok(Policy::LeastUsedDpf {
                load: fraction(0.5),
                load_dpf: u32::MAX,
                distance: 0
            })
        );
        use PolicySpecError as E;
        assert_eq!(
            Policy::from_spec("Fastest"),
            Err(E::UnknownPolicy("Fastest".into()))
        );
        assert_eq!(
            Policy::from_spec("lu:1.5"),
            Err(E::NotFraction {
                name: "load",
                text: "1.5".into()
            })
        );
        assert_eq!(
            Policy::from_spec("wrand:x"),
            Err(E::NotWholeNumber {
                name: "weight",
                text: "x".into()
            })
        );
        assert_eq!(
            Policy::from_spec("rr:1").unwrap_err().to_string(),
            "RoundRobin takes no values, 1 given"
        );
        assert_eq!(
            Policy::from_spec("LeastUsedDPF:0:0:5")
                .unwrap_err()
                .to_string(),
            "LeastUsedDPF takes 2 value(s) (load, load_dpf), 3 given"
        );
        assert_eq!(
            Policy::from_spec("lu:1.5").unwrap_err().to_string(),
            "load \"1.5\" is not a fraction between 0 and 1"
        );
    }

    #[test]
    fn loads_change_only_where_a_policy_has_one() {
        let mut p = Policy::from_spec("plu:0.1:0.2").unwrap();
        assert!(p.set_load(fraction(0.9)));
        assert_eq!(p.values().as_slice()[0], fraction(0.9));
        let mut rr = Policy::RoundRobin;
        assert!(!rr.set_load(5));
        assert_eq!(rr, Policy::RoundRobin);
    }
}
