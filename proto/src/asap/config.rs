//! Settings of the ASAP client: RFC 5352 §7 timers and thresholds.

use std::net::SocketAddr;
use std::time::Duration;

use crate::wire::LifeUnit;

/// Settings of an [`AsapClient`](super::AsapClient). `Default` gives the RFC 5352 §7 values.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Registrars to use besides those heard announcing themselves: their ASAP SCTP endpoints
    /// (address and SCTP port, normally 3863).
    pub registrars: Vec<SocketAddr>,
    /// T1-ENRPrequest: how long to wait for a Handle Resolution Response (15 s).
    pub t1_enrp_request: Duration,
    /// T2-registration: how long to wait for a Registration Response (30 s).
    pub t2_registration: Duration,
    /// T3-deregistration: how long to wait for a Deregistration Response (30 s).
    pub t3_deregistration: Duration,
    /// T5-Serverhunt: how long one round of connection attempts to registrars may take before
    /// the next (10 s); doubles per failed round up to [`ClientConfig::retran_max`].
    pub t5_server_hunt: Duration,
    /// RETRAN-MAX: the cap of T5's doubling (60 s).
    pub retran_max: Duration,
    /// T7-ENRPoutdate: how long a Server Announce keeps a registrar in the list (5 s).
    pub t7_enrp_outdate: Duration,
    /// MAX-REQUEST-RETRANSMIT: how often a request is sent again (each time after a new server
    /// hunt) before it fails (2).
    pub max_request_retransmit: u32,
    /// How many registrars a server hunt tries at once (RFC 5352 §3.6 SH1: at most 3).
    pub max_parallel_hunt: usize,
    /// stale_cache_value: how long a pool user keeps the PEs a handle resolution returned and
    /// selects among them without asking again. Zero (RSPLIB's shipped clients' choice) asks
    /// the registrar every time.
    pub stale_cache_value: Duration,
    /// Unit of the Registration Life sent in registrations (milliseconds: what RSPLIB
    /// registrars expect).
    pub registration_life_unit: LifeUnit,
    /// Most requests waiting at once (a full queue refuses new ones with `Overloaded`).
    pub max_pending_requests: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            registrars: Vec::new(),
            t1_enrp_request: Duration::from_secs(15),
            t2_registration: Duration::from_secs(30),
            t3_deregistration: Duration::from_secs(30),
            t5_server_hunt: Duration::from_secs(10),
            retran_max: Duration::from_secs(60),
            t7_enrp_outdate: Duration::from_secs(5),
            max_request_retransmit: 2,
            max_parallel_hunt: 3,
            stale_cache_value: Duration::ZERO,
            registration_life_unit: LifeUnit::Milliseconds,
            max_pending_requests: 65_536,
        }
    }
}

/// A setting of a [`ClientConfig`] that cannot work.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// A timer (named as in RFC 5352 §7) is zero.
    #[error("{0} must be positive")]
    ZeroTimer(&'static str),
    /// `max_parallel_hunt` is not 1, 2 or 3.
    #[error("a server hunt tries 1 to 3 registrars at once (RFC 5352 §3.6), not {0}")]
    ParallelHunt(usize),
    /// `max_pending_requests` is zero.
    #[error("the request queue must hold at least one request")]
    NoRequestQueue,
}

impl ClientConfig {
    /// Checks the settings; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), ClientConfigError> {
        for (name, d) in [
            ("T1-ENRPrequest", self.t1_enrp_request),
            ("T2-registration", self.t2_registration),
            ("T3-deregistration", self.t3_deregistration),
            ("T5-Serverhunt", self.t5_server_hunt),
            ("RETRAN-MAX", self.retran_max),
            ("T7-ENRPoutdate", self.t7_enrp_outdate),
        ] {
            if d.is_zero() {
                return Err(ClientConfigError::ZeroTimer(name));
            }
        }
        if !(1..=3).contains(&self.max_parallel_hunt) {
            return Err(ClientConfigError::ParallelHunt(self.max_parallel_hunt));
        }
        if self.max_pending_requests == 0 {
            return Err(ClientConfigError::NoRequestQueue);
        }
        Ok(())
    }
}
